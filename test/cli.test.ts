import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, runCli } from './cli-run.js';

const root = new URL('..', import.meta.url);
const version = (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string }).version;

const advbn = (...args: string[]) => runCli(args, 60_000);

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
    const result = spawnSync(process.execPath, [CLI, 'doctor', '--json'], {
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

  it('exits 2 with one line naming the commands for an unknown command', () => {
    const unknown = advbn('frobnicate');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr.trim().split('\n')).toEqual([
      'advbn: unknown command "frobnicate" (commands: doctor, corrupt, fine-tune, evaluate, predict, visualize, reproduce, digits; advbn --help describes them)',
    ]);
  });

  it('a user error of any command is one line on stderr with exit 2, pointing to its --help', () => {
    const cases: [string[], RegExp][] = [
      [['doctor', '--bogus'], /^advbn doctor: Unknown option '--bogus'/],
      [['corrupt', '--input', '.', '--output', 'x', '--corruption', 'fog', '--severity', '7'], /^advbn corrupt: --severity must be severities 1 to 5/],
      [['fine-tune', '--data', 'd', '--out', 'o', '--weights', 'w.pth', '--epochs', 'many'], /^advbn fine-tune: --epochs must be .*, got "many"/],
      [['evaluate', '--bogus'], /^advbn evaluate: Unknown option '--bogus'/],
      [['predict', '--weights', 'w.pth', '--top-k', '0', '.'], /^advbn predict: --top-k must be a whole number >= 1/],
      [['visualize', '--steps', '0'], /^advbn visualize: --steps must be a whole number >= 1/],
      [['reproduce', '--seeds', 'two'], /^advbn reproduce: --seeds must be a whole number >= 1/],
      [['reproduce', '--epochs'], /^advbn reproduce: Option '--epochs <value>' argument missing/],
      [['digits', 'export', '--split', 'val'], /^advbn digits export: --out DIR is required/],
      [['digits'], /^advbn digits: a subcommand is required: export/],
    ];
    for (const [args, message] of cases) {
      const run = advbn(...args);
      expect(run.status, `${args.join(' ')}\n${run.stderr}`).toBe(2);
      expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
      expect(run.stderr).toMatch(message);
      expect(run.stderr.trim()).toMatch(new RegExp(`\\(advbn ${args[0] === 'digits' && args[1] === 'export' ? 'digits export' : args[0]} --help lists the options\\)$`));
      expect(run.stdout).toBe('');
    }
    for (const command of ['doctor', 'corrupt', 'fine-tune', 'evaluate', 'predict', 'visualize', 'reproduce', 'digits']) {
      const help = advbn(command, '--help');
      expect(help.status, command).toBe(0);
      expect(help.stdout, command).toMatch(new RegExp(`^usage: advbn ${command}`));
    }
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
    for (const [bad, message] of [
      [['--split', 'val'], '--split must be train, test or both'],
      [['--per-domain', '0'], '--per-domain must be a whole number >= 1'],
      [['--bogus'], "Unknown option '--bogus'"],
    ] as const) {
      const r = advbn('digits', 'export', '--out', join(out, 'x'), ...bad);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`advbn digits export: ${message}`);
      expect(r.stderr).toContain('(advbn digits export --help lists the options)');
    }
    expect(advbn('digits', 'export').status).toBe(2);
    expect(advbn('digits', 'import').stderr).toContain('unknown subcommand "import"');
    expect(advbn('reproduce', '--help').stdout).toContain('--save-models');
  });
});
