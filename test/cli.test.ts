import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url);
const cli = new URL('dist/cli/main.js', root).pathname;
const version = (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string }).version;

function advbn(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('advbn CLI', () => {
  it('doctor --json exits 0 with every device check ok', () => {
    const result = advbn('doctor', '--json');
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      package: { name: string; version: string };
      native: { version: string; variant: string };
      load: { ok: boolean; path: string; reason: string; attempts: unknown[] };
      devices: Array<{ id: string }>;
      checks: Array<{ device: string; ok: boolean; cleanLoss: number; advLoss: number }>;
    };
    expect(report.ok).toBe(true);
    expect(report.package).toEqual({ name: 'advbn', version });
    expect(report.load.ok).toBe(true);
    expect(report.devices.map((d) => d.id)).toContain('cpu');
    expect(report.checks).toHaveLength(report.devices.length);
    for (const check of report.checks) {
      expect(check.ok).toBe(true);
      expect(Number.isFinite(check.cleanLoss) && Number.isFinite(check.advLoss)).toBe(true);
    }
  });

  it('doctor prints a human report', () => {
    const result = advbn('doctor');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('self-checks:');
    expect(result.stdout).toContain('all checks passed');
  });

  it('doctor exits 1 and says why when the addon cannot be loaded', () => {
    const result = spawnSync(process.execPath, [cli, 'doctor', '--json'], {
      encoding: 'utf8',
      env: { ...process.env, ADVBN_NATIVE_PATH: '/nonexistent/advbn.node' },
    });
    expect(result.status).toBe(1);
    const report = JSON.parse(result.stdout) as { ok: boolean; error: string; load: { attempts: Array<{ error: string }> } };
    expect(report.ok).toBe(false);
    expect(report.error).toContain('ADVBN_NATIVE_PATH');
    expect(report.load.attempts[0]?.error).toBe('not found');
  });

  it('prints the version and help', () => {
    expect(advbn('--version').stdout.trim()).toBe(version);
    const help = advbn('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('doctor');
  });

  it('exits 2 with usage for an unknown command', () => {
    const unknown = advbn('frobnicate');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    expect(unknown.stderr).toContain('usage: advbn');
  });

  it('digits export writes the folders and the manifest, and exits 2 on bad flags', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'advbn-cli-export-')), 'd');
    const ok = advbn('digits', 'export', '--out', out, '--domains', 'sketch', '--split', 'test', '--per-domain', '12', '--seed', '1');
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('sketch: test 12');
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { seed: number; domains: Record<string, { test: { count: number } }> };
    expect(manifest.seed).toBe(1);
    expect(manifest.domains.sketch!.test.count).toBe(12);
    for (const bad of [['--split', 'val'], ['--per-domain', '0'], ['--bogus']]) {
      const r = advbn('digits', 'export', '--out', join(out, 'x'), ...bad);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('usage: advbn digits export');
    }
    expect(advbn('digits', 'export').status).toBe(2);
    expect(advbn('digits', 'import').stderr).toContain('unknown subcommand "import"');
    expect(advbn('reproduce', '--help').stdout).toContain('--save-models');
  });
});
