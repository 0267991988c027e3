// CPU training throughput of the whole small ResNet (depth 8, width 8) on 28 px digits, and RSS at the end.
// Run from bench/scripts: node cpu-train-throughput.mjs
import { loadDigits, smallResnet, fineTune } from '../../dist/index.js';
const train = await (await loadDigits()).source('train', { limit: 1500 });
const m = await smallResnet({ numClasses: 10, depth: 8, width: 8, device: 'cpu', seed: 0 });
const t = performance.now();
await fineTune(m, { data: train, method: 'erm', cut: 0, epochs: 3, batchSize: 16, optimizer: { type: 'adamw', lr: 1e-2 }, schedule: { type: 'cosine' } });
const s = (performance.now() - t) / 1000;
console.log(`${(4500 / s).toFixed(0)} img/s (${s.toFixed(1)} s, rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB)`);
