// `advbn doctor`: which native binary is loaded and why, which devices exist, and whether a tiny
// AdvBN step works on each. Exit code 0 only when everything passed, so scripts can gate on it.
import { listDevices, nativeInfo, selfCheck, type DeviceInfo, type NativeInfo, type SelfCheckReport } from '../devices.js';
import { nativeLoadReport, type NativeLoadReport } from '../native.js';
import { packageInfo, type PackageInfo } from '../package-root.js';
import { parseFlags, runCommand } from './args.js';

const USAGE = `usage: advbn doctor [--json]

Which native binary loaded and why, the devices, and a tiny AdvBN step on each. Exit code 0 only
when every check passed (1 otherwise), so scripts can gate on it.

  --json   the report as JSON`;

export interface DoctorReport {
  ok: boolean;
  package: PackageInfo;
  native: NativeInfo | null;
  load: NativeLoadReport;
  devices: DeviceInfo[];
  checks: SelfCheckReport[];
  /** Set when something failed before the device checks could run. */
  error?: string;
}

export async function collectDoctorReport(): Promise<DoctorReport> {
  const load = nativeLoadReport();
  const report: DoctorReport = { ok: false, package: packageInfo(), native: null, load, devices: [], checks: [] };
  if (!load.ok) {
    report.error = load.reason;
    return report;
  }
  try {
    report.native = nativeInfo();
    report.devices = listDevices();
  } catch (err) {
    report.error = err instanceof Error ? err.message : String(err);
    return report;
  }
  for (const device of report.devices) {
    try {
      report.checks.push(await selfCheck(device.id));
    } catch (err) {
      const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      report.checks.push({ device: device.id, ok: false, cleanLoss: Number.NaN, advLoss: Number.NaN, millis: 0, message });
    }
  }
  report.ok = report.checks.length > 0 && report.checks.every((c) => c.ok);
  return report;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatDoctorReport(report: DoctorReport): string {
  const lines = [`advbn ${report.package.version}`];
  if (report.native) {
    lines.push(`native ${report.native.version} (${report.native.variant} build, candle ${report.native.candleVersion})`);
  }
  lines.push(`binary: ${report.load.path ?? 'none loaded'}`, `why:    ${report.load.reason}`, '', 'load attempts:');
  lines.push(table(report.load.attempts.map((a) => [`  ${a.ok ? 'ok  ' : 'fail'}`, a.candidate, a.error ?? ''])));
  if (report.devices.length > 0) {
    lines.push('', 'devices:');
    lines.push(table(report.devices.map((d) => [`  ${d.id}`, d.kind, d.name])));
  }
  if (report.checks.length > 0) {
    lines.push('', 'self-checks:');
    const rows = [['  device', 'result', 'clean loss', 'adv loss', 'ms', 'message']];
    for (const c of report.checks) {
      rows.push([`  ${c.device}`, c.ok ? 'ok' : 'FAILED', c.cleanLoss.toFixed(4), c.advLoss.toFixed(4), c.millis.toFixed(0), c.message]);
    }
    lines.push(table(rows));
  }
  if (report.error) lines.push('', `error: ${report.error}`);
  lines.push('', report.ok ? 'all checks passed' : 'doctor found problems (exit code 1)');
  return lines.join('\n');
}

export async function runDoctor(args: readonly string[]): Promise<number> {
  return runCommand('doctor', async () => {
    const v = parseFlags(args, { json: 'boolean' });
    if (v.help) {
      console.log(USAGE);
      return 0;
    }
    const report = await collectDoctorReport();
    console.log(v.json ? JSON.stringify(report, null, 2) : formatDoctorReport(report));
    return report.ok ? 0 : 1;
  });
}
