import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CORRUPTION_NAMES, imageFolder, normalize } from '../src/index.js';
import { batchArrays, pattern, tempDir, writeImage } from './image-files.js';
import { runCli } from './cli-run.js';

const tmp = tempDir('corrupt-cli');
afterAll(() => tmp.cleanup());

const advbn = (...args: string[]) => runCli(['corrupt', ...args], 60_000);

const PNG_MAGIC = '89504e47';
const JPEG_MAGIC = 'ffd8ff';
const magic = (path: string) => readFileSync(path).subarray(0, 4).toString('hex');

// Input: a folder with a nested PNG and a JPEG of another size.
const input = join(tmp.path, 'in');
writeImage(join(input, 'sub', 'a.png'), pattern(40, 36, 1), 40, 36, 'png');
writeImage(join(input, 'b.jpg'), pattern(48, 40, 2), 48, 40, 'jpeg');

describe('advbn corrupt', () => {
  it('--list prints the 19 names, one per line', () => {
    const result = advbn('--list');
    expect(result.status).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual([...CORRUPTION_NAMES]);
  });

  it('writes every corruption and severity in the input layout and format, and prints a summary', () => {
    const out = join(tmp.path, 'out');
    const result = advbn('--input', input, '--output', out, '--corruption', 'gaussian_noise,contrast', '--severity', 'all', '--seed', '7');
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^wrote 20 images \(2 inputs x 2 corruptions x 5 severities\)/);
    expect(result.stdout).toMatch(/gaussian_noise\s+10\n/);
    expect(result.stdout).toMatch(/contrast\s+10\n/);
    expect(magic(join(out, 'gaussian_noise', '3', 'sub', 'a.png')).startsWith(PNG_MAGIC)).toBe(true);
    expect(magic(join(out, 'contrast', '5', 'b.jpg')).startsWith(JPEG_MAGIC)).toBe(true);

    // The same seed gives the same bytes; another seed other noise.
    const again = join(tmp.path, 'again');
    const other = join(tmp.path, 'other');
    expect(advbn('--input', input, '--output', again, '--corruption', 'gaussian_noise', '--severity', '2,4', '--seed', '7').status).toBe(0);
    expect(advbn('--input', input, '--output', other, '--corruption', 'gaussian_noise', '--severity', '2', '--seed', '8').status).toBe(0);
    for (const file of [join('gaussian_noise', '2', 'sub', 'a.png'), join('gaussian_noise', '4', 'b.jpg')]) {
      expect(readFileSync(join(again, file)).equals(readFileSync(join(out, file)))).toBe(true);
    }
    const noise2 = join('gaussian_noise', '2', 'sub', 'a.png');
    expect(readFileSync(join(other, noise2)).equals(readFileSync(join(out, noise2)))).toBe(false);
  });

  it('the error against the original grows with severity', async () => {
    const out = join(tmp.path, 'severity');
    const image = join(input, 'sub', 'a.png');
    const names = ['gaussian_noise', 'contrast', 'brightness', 'pixelate'];
    expect(advbn('--input', image, '--output', out, '--corruption', names.join(','), '--severity', 'all').status).toBe(0);
    const raw = [normalize([0, 0, 0], [1, 1, 1])];
    // Read the outputs back as an image folder whose classes are the severities 1..5.
    using original = await imageFolder(join(input), { classes: ['sub'], transforms: raw });
    const reference = (await first(original)).images;
    for (const name of names) {
      using severities = await imageFolder(join(out, name), { transforms: raw });
      expect(severities.classNames).toEqual(['1', '2', '3', '4', '5']);
      const { images, labels } = await first(severities);
      expect(Array.from(labels)).toEqual([0, 1, 2, 3, 4]);
      const size = reference.length;
      const errors = [0, 1, 2, 3, 4].map((s) => {
        let sum = 0;
        for (let i = 0; i < size; i += 1) sum += Math.abs(images[s * size + i]! - reference[i]!);
        return sum / size;
      });
      for (let s = 1; s < 5; s += 1) expect(errors[s], `${name} severity ${s + 1}`).toBeGreaterThanOrEqual(errors[s - 1]!);
      expect(errors[4], name).toBeGreaterThan(1.5 * errors[0]!);
    }
  });

  it('bad arguments: one line on stderr naming the argument, exit 2', () => {
    const out = join(tmp.path, 'bad');
    const cases: [string[], string][] = [
      [['--input', input, '--output', out, '--corruption', 'fog', '--severity', '7'], '--severity'],
      [['--input', input, '--output', out, '--corruption', 'fog,rain', '--severity', '1'], '--corruption'],
      [['--output', out, '--corruption', 'fog', '--severity', '1'], '--input'],
      [['--input', join(tmp.path, 'missing'), '--output', out, '--corruption', 'fog', '--severity', '1'], '--input'],
      [['--input', input, '--output', out, '--corruption', 'fog', '--severity', '1', '--seed', '-3'], '--seed'],
      [['--input', input, '--output', join(input, 'x'), '--corruption', 'fog', '--severity', '1'], '--output'],
      [['--input', input, '--output', out, '--corruption', 'fog', '--severity', '1', '--frobnicate'], '--frobnicate'],
    ];
    for (const [args, argument] of cases) {
      const result = advbn(...args);
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stderr).toContain(argument);
      expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
      expect(result.stderr).toMatch(/^advbn corrupt: .*\(advbn corrupt --help lists the options\)\n$/);
    }
  });
});

async function first(dataset: { batches: (o: object) => AsyncIterable<import('../src/index.js').Batch> }) {
  for await (const batch of dataset.batches({ batchSize: 16 })) return await batchArrays(batch);
  throw new Error('no batch');
}
