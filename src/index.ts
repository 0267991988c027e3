/**
 * advbn: fine-tune image classifiers with Adversarial Batch Normalization
 * (Shu et al., NeurIPS 2021), on a Rust/Candle native core. The API by task: Models, Training,
 * Data, Evaluation, Reports and Runtime (`src/api/`).
 *
 * @packageDocumentation
 */
export * from './api/data.js';
export * from './api/evaluation.js';
export * from './api/models.js';
export * from './api/reports.js';
export * from './api/runtime.js';
export * from './api/training.js';
