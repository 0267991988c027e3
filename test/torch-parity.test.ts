// Parity with PyTorch through the public API: torchvision's ResNet-18 (5 classes) with weights
// given by a formula (the one of test/fixtures/torch/make_fixture.py, which made logits.bin with
// torch), written here as a .safetensors file with torchvision's names, loaded with
// `resnet18({ weights })`, predicts torch's logits.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resnet18 } from '../src/index.js';

const fixtures = join(import.meta.dirname, 'fixtures', 'torch');
const tmp = mkdtempSync(join(tmpdir(), 'advbn-torch-parity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const NUM_CLASSES = 5;
const INPUT_SHAPE = [2, 3, 64, 64] as const;
/** Largest accepted |ours - torch| over the logits (torch's are up to ~23 in size). */
const TOLERANCE = 1e-4;

// ---- The formula of make_fixture.py (spec "advbn-parity-v1"), u32 arithmetic via Math.imul ----

function fnv1a32(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i += 1) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function mix32(x: number): number {
  x >>>= 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** Uniform in [-1, 1), exact in float64. */
function unit(nameHash: number, i: number): number {
  return (mix32((nameHash ^ mix32(i)) >>> 0) / 4294967296) * 2 - 1;
}

function formulaValues(name: string, shape: readonly number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  let value: (s: number) => number;
  if (name.endsWith('running_mean') || name.endsWith('.bias')) value = (s) => 0.1 * s;
  else if (name.endsWith('running_var')) value = (s) => 1 + 0.5 * s;
  else if (name.endsWith('.weight') && shape.length === 4) {
    const gain = Math.sqrt(6 / (shape[1]! * shape[2]! * shape[3]!));
    value = (s) => s * gain;
  } else if (name.endsWith('.weight') && shape.length === 2) {
    const root = Math.sqrt(shape[1]!);
    value = (s) => s / root;
  } else if (name.endsWith('.weight') && shape.length === 1) value = (s) => 1 + 0.2 * s;
  else throw new Error(`no formula for ${name}`);
  const hash = fnv1a32(name);
  const out = new Float32Array(n); // the store rounds to float32, nearest even
  for (let i = 0; i < n; i += 1) out[i] = value(unit(hash, i));
  return out;
}

function formulaInput(): Float32Array {
  const hash = fnv1a32('input');
  const out = new Float32Array(INPUT_SHAPE.reduce((a, b) => a * b, 1));
  for (let i = 0; i < out.length; i += 1) out[i] = unit(hash, i);
  return out;
}

interface Entry {
  name: string;
  dtype: 'F32' | 'I64';
  shape: number[];
  data: Uint8Array;
}

/** torchvision's state dict with the formula's values (`num_batches_tracked` at 0), as in state_dict.txt. */
function formulaState(): Entry[] {
  const lines = readFileSync(join(fixtures, 'state_dict.txt'), 'utf8').trim().split('\n');
  return lines.map((line) => {
    const [name, dtype, ...dims] = line.split(' ') as [string, string, ...string[]];
    const shape = dims.map(Number);
    if (dtype === 'int64') return { name, dtype: 'I64', shape, data: new Uint8Array(8) };
    if (dtype !== 'float32') throw new Error(`${name}: dtype ${dtype}`);
    const values = formulaValues(name, shape);
    return { name, dtype: 'F32', shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
  });
}

/** A .safetensors file: u64 LE header length, JSON header (padded to 8 bytes), raw LE data. */
function writeSafetensors(path: string, entries: Entry[]): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.data.byteLength] };
    offset += e.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const file = Buffer.alloc(8 + json.length + offset);
  file.writeBigUInt64LE(BigInt(json.length), 0);
  file.write(json, 8, 'ascii');
  let at = 8 + json.length;
  for (const e of entries) {
    file.set(e.data, at);
    at += e.data.byteLength;
  }
  writeFileSync(path, file);
}

function torchLogits(): Float32Array {
  const bytes = readFileSync(join(fixtures, 'logits.bin'));
  expect(bytes.byteLength).toBe(INPUT_SHAPE[0] * NUM_CLASSES * 4);
  const out = new Float32Array(bytes.byteLength / 4);
  for (let i = 0; i < out.length; i += 1) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

describe('PyTorch parity', () => {
  it('computes the formula exactly as make_fixture.py does', () => {
    // fixture.json "check_values".
    const check = JSON.parse(readFileSync(join(fixtures, 'fixture.json'), 'utf8')) as { spec: string; check_values: Record<string, number> };
    expect(check.spec).toBe('advbn-parity-v1');
    expect(fnv1a32('conv1.weight')).toBe(check.check_values["fnv1a32('conv1.weight')"]);
    expect(mix32(1)).toBe(check.check_values['mix32(1)']);
    expect(formulaValues('conv1.weight', [64, 3, 7, 7])[0]).toBe(check.check_values['conv1.weight[0]']);
    expect(formulaInput()[0]).toBe(check.check_values['input[0]']);
  });

  it("gives torchvision's eval-mode logits for torchvision-named weights", async () => {
    const file = join(tmp, 'resnet18_formula.safetensors');
    writeSafetensors(file, formulaState());
    const model = await resnet18({ numClasses: NUM_CLASSES, device: 'cpu', weights: file });
    try {
      expect(model.weightsReport?.loaded).toBe(102);
      expect(model.weightsReport?.reinitialized).toEqual([]);
      expect(model.weightsReport?.ignored).toHaveLength(20);
      const { logits } = await model.predict({ data: formulaInput(), shape: INPUT_SHAPE, layout: 'nchw' });
      const torch = torchLogits();
      expect(logits).toHaveLength(torch.length);
      let maxAbs = 0;
      let scale = 0;
      for (let i = 0; i < torch.length; i += 1) {
        maxAbs = Math.max(maxAbs, Math.abs(logits[i]! - torch[i]!));
        scale = Math.max(scale, Math.abs(torch[i]!));
      }
      console.log(`torch parity (TS): max |ours - torch| = ${maxAbs.toExponential(3)}, logit scale ${scale.toFixed(3)}, relative ${(maxAbs / scale).toExponential(3)}`);
      expect(maxAbs).toBeLessThanOrEqual(TOLERANCE);
    } finally {
      model.dispose();
    }
  });
});
