#!/usr/bin/env node
// `npm run test:gpu`: GPU checks. Skips (exit 0, saying why) when the CUDA build or a GPU is
// missing. Otherwise: (1) the kernel tests (Rust, prebuilt binary from
// `scripts/build-cuda.sh --device-bundle`, or cargo when present) compare every kernel with
// the CPU path on random inputs with poisoned outputs; (2) a short ResNet-18 AdvBN fine-tune on
// the GPU must track the same run on the CPU.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const advbn = await import(join(root, 'dist', 'index.js'));

const report = advbn.nativeLoadReport();
const gpus = report.ok ? advbn.listDevices().filter((d) => d.kind === 'cuda') : [];
if (report.variant !== 'cuda' || gpus.length === 0) {
  console.log(`SKIPPED: GPU tests need the CUDA build and a GPU (${report.reason}; CUDA devices: ${gpus.length})`);
  process.exit(0);
}
let failures = 0;

function kernelTests() {
  const bundled = join(root, '.device', 'gpu_kernels');
  const [cmd, args] = existsSync(bundled)
    ? [bundled, ['--nocapture']]
    : ['cargo', ['test', '--release', '-p', 'advbn-core', '--features', 'cudnn', '--test', 'gpu_kernels', '--', '--nocapture']];
  console.log(`kernel tests: ${cmd} ${args.join(' ')}`);
  const run = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, ADVBN_POISON_OUTPUTS: '1' } });
  if (run.status !== 0) failures += 1;
}

function syntheticData(n, classes, size, seed) {
  let state = seed >>> 0;
  const rand = () => (state = (state * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  const images = new Float32Array(n * 3 * size * size);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i += 1) {
    labels[i] = i % classes;
    for (let j = 0; j < 3 * size * size; j += 1) images[i * 3 * size * size + j] = rand() + (j % classes === labels[i] ? 0.5 : 0);
  }
  return advbn.fromArrays({ data: images, shape: [n, 3, size, size], layout: 'nchw' }, labels);
}

async function fineTuneTracksCpu() {
  const data = syntheticData(32, 4, 64, 7);
  const histories = {};
  for (const device of ['cpu', 'cuda']) {
    const model = await advbn.resnet18({ numClasses: 4, device, seed: 3 });
    const started = performance.now();
    histories[device] = await advbn.fineTune(model, { data, epochs: 2, batchSize: 16, shuffle: false, lr: 0.01, cut: 1 });
    console.log(`${device}: ${(performance.now() - started).toFixed(0)} ms`, JSON.stringify(histories[device].history.loss));
    model.dispose();
  }
  for (const key of ['cleanLoss', 'advLoss']) {
    const [cpu, gpu] = [histories.cpu.history[key], histories.cuda.history[key]];
    cpu.forEach((value, epoch) => {
      const rel = Math.abs(gpu[epoch] - value) / Math.max(Math.abs(value), 1e-6);
      const ok = rel < 2e-2;
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${key}[${epoch}] cpu ${value.toFixed(5)} gpu ${gpu[epoch].toFixed(5)} (rel ${rel.toExponential(1)})`);
      if (!ok) failures += 1;
    });
  }
}

kernelTests();
await fineTuneTracksCpu();
console.log(failures === 0 ? 'GPU tests passed' : `${failures} GPU check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
