// Running the built CLI from tests (the global setup compiles dist/ first), and the ImageNet-C
// tables the CLI tests check against, copied from the method doc as an independent oracle (the
// library's own lists are what they test).
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');

/** `node dist/cli/main.js ...args`, its output as text. */
export function runCli(args: readonly string[], timeoutMs = 120_000) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: timeoutMs });
}

/**
 * Starts the CLI, sends `signal` once its stdout matches `when` (at once if it exits first) and
 * resolves to its exit code and everything it printed.
 */
export async function interruptCli(args: readonly string[], when: RegExp, signal: NodeJS.Signals = 'SIGINT'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (when.test(stdout)) resolve();
    });
    void exit.then(() => resolve());
  });
  child.kill(signal);
  const code = await exit;
  return { code, stdout, stderr };
}

/** ImageNet-C's 15 benchmark corruptions, in the doc's order. */
export const IMAGENET_C_BENCHMARK = [
  'gaussian_noise',
  'shot_noise',
  'impulse_noise',
  'defocus_blur',
  'glass_blur',
  'motion_blur',
  'zoom_blur',
  'snow',
  'frost',
  'fog',
  'brightness',
  'contrast',
  'elastic_transform',
  'pixelate',
  'jpeg_compression',
];

/** AlexNet's ImageNet-C errors per benchmark corruption (mean over severities), from the method doc. */
export const ALEXNET_ERRORS: Record<string, number> = {
  gaussian_noise: 0.886428,
  shot_noise: 0.894468,
  impulse_noise: 0.92264,
  defocus_blur: 0.81988,
  glass_blur: 0.826268,
  motion_blur: 0.785948,
  zoom_blur: 0.79836,
  snow: 0.866816,
  frost: 0.826572,
  fog: 0.819324,
  brightness: 0.564592,
  contrast: 0.853204,
  elastic_transform: 0.646056,
  pixelate: 0.71784,
  jpeg_compression: 0.6065,
};
