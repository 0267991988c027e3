// A validator of the subset of JSON Schema (draft 2020-12) that advbn's file schemas use: type,
// enum, minimum/maximum, minLength, format date-time, minItems/maxItems/uniqueItems/items,
// required/properties/additionalProperties/minProperties, anyOf and `$ref` into the root's `$defs`.

type Schema = Record<string, unknown>;

/** `$.a.b[2]["odd key"]`: the JSON path of a child. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : Number.isFinite(value) ? 'number' : 'non-finite number';
  return typeof value;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function check(schema: Schema, value: unknown, path: string, errors: string[], root: Schema): void {
  if (typeof schema.$ref === 'string') {
    const name = schema.$ref.replace('#/$defs/', '');
    const target = (root.$defs as Record<string, Schema> | undefined)?.[name];
    if (!target) throw new Error(`advbn internal error: schema $ref ${schema.$ref} names no $defs entry`);
    check(target, value, path, errors, root);
    return;
  }
  const actual = typeOf(value);
  if (Array.isArray(schema.anyOf)) {
    const attempts = (schema.anyOf as Schema[]).map((sub) => {
      const found: string[] = [];
      check(sub, value, path, found, root);
      return found;
    });
    if (!attempts.some((found) => found.length === 0)) errors.push(...attempts.reduce((a, b) => (b.length < a.length ? b : a)));
    return;
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) {
    errors.push(`${path}: must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}, got ${JSON.stringify(value) ?? actual}`);
    return;
  }
  if (typeof schema.type === 'string') {
    const ok = actual === schema.type || (schema.type === 'number' && actual === 'integer');
    if (!ok) {
      errors.push(`${path}: must be ${schema.type === 'integer' || schema.type === 'array' || schema.type === 'object' ? 'an' : 'a'} ${schema.type}, got ${actual}`);
      return;
    }
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) errors.push(`${path}: must be >= ${schema.minimum}, got ${value}`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) errors.push(`${path}: must be <= ${schema.maximum}, got ${value}`);
  }
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) errors.push(`${path}: must not be empty`);
    if (schema.format === 'date-time' && !(DATE_TIME.test(value) && !Number.isNaN(Date.parse(value)))) {
      errors.push(`${path}: must be an ISO 8601 date-time, got ${JSON.stringify(value)}`);
    }
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) errors.push(`${path}: must have at least ${schema.minItems} items, got ${value.length}`);
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) errors.push(`${path}: must have at most ${schema.maxItems} items, got ${value.length}`);
    if (schema.uniqueItems === true && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) errors.push(`${path}: items must be unique`);
    if (schema.items) value.forEach((item, i) => void check(schema.items as Schema, item, childPath(path, i), errors, root));
  }
  if (actual === 'object') {
    const object = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    for (const key of (schema.required ?? []) as string[]) {
      if (object[key] === undefined) errors.push(`${childPath(path, key)}: required field is missing`);
    }
    const keys = Object.keys(object);
    if (typeof schema.minProperties === 'number' && keys.length < schema.minProperties) errors.push(`${path}: must have at least ${schema.minProperties} entries`);
    for (const key of keys) {
      const sub = properties[key] ?? schema.additionalProperties;
      if (sub === false) errors.push(`${childPath(path, key)}: unknown field`);
      else if (sub && sub !== true && object[key] !== undefined) check(sub as Schema, object[key], childPath(path, key), errors, root);
    }
  }
}

/**
 * Every way `value` violates `schema`, each as `<JSON path>: <problem>` (e.g.
 * `$.report.clean: required field is missing`); an empty list means it is valid.
 */
export function schemaErrors(schema: Readonly<Record<string, unknown>>, value: unknown): string[] {
  const errors: string[] = [];
  check(schema as Schema, value, '$', errors, schema as Schema);
  return errors;
}
