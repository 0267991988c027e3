/* CONTRACT (hand-written first; `npm run build:native` regenerates this file with napi-rs,
   the generated file must keep these names and types). */

/** Raw native handle of a model. Every method throws or rejects with a message of the form
 *  `[ADVBN_CODE option=name] human text` or `[ADVBN_CODE] human text`. */
export declare class NativeModel {
  get arch(): string
  get numClasses(): number
  get numStages(): number
  get inChannels(): number
  get device(): string
  /** True once a fine-tune with method 'advbn' has created the adversarial BN branch. */
  get hasAdvBn(): boolean
  get parameterCount(): number
  get disposed(): boolean
  /** Logits, row-major [batch.size, numClasses]. `bn` is 'clean' or 'adv'. */
  predict(batch: NativeBatch, bn: string): Promise<Float32Array>
  /** Sum of cross-entropy over the batch, number correct, batch size. Eval mode, no perturbation. */
  evaluate(batch: NativeBatch, bn: string): Promise<EvalStats>
  dispose(): void
}

export interface EvalStats {
  lossSum: number
  correct: number
  count: number
}

export interface ModelConfig {
  /** 'resnet18' | 'resnet34' | 'resnet50' | 'small_resnet' */
  arch: string
  numClasses: number
  /** 'cpu' | 'cuda' | 'cuda:N' | 'auto' */
  device: string
  seed: number
  inChannels?: number
  /** small_resnet only: 6n+2 (8, 14, 20, 32, 44, 56) */
  depth?: number
  /** small_resnet only: channels of the first stage (doubles per stage) */
  width?: number
}

export interface ArrayDatasetOptions {
  /** [N, C, H, W] or [N, H, W, C] depending on layout */
  shape: Array<number>
  /** 'nchw' | 'nhwc' */
  layout: string
  /** default: max label + 1 */
  numClasses?: number
  /** per-channel normalisation applied after uint8 /255 scaling; both or neither */
  mean?: Array<number>
  std?: Array<number>
}

export declare class NativeDataset {
  /** Copies and validates the data once (NaN/inf, label range, shape). uint8 is scaled by 1/255. */
  static fromArrays(images: Float32Array | Uint8Array, labels: Int32Array, options: ArrayDatasetOptions): NativeDataset
  get length(): number
  get numClasses(): number
  get channels(): number
  get height(): number
  get width(): number
  /** Gathers the given sample indices into a batch on `device`. */
  batch(indices: Uint32Array, device: string): Promise<NativeBatch>
  dispose(): void
}

export declare class NativeBatch {
  get size(): number
  dispose(): void
}

export interface TrainerConfig {
  /** 'erm' | 'advbn' */
  method: string
  /** 0 = train the whole network (erm only); k = freeze stem + stages 1..k */
  cut: number
  /** 'sgd' | 'adamw' */
  optimizer: string
  lr: number
  momentum: number
  weightDecay: number
  nesterov: boolean
  beta1: number
  beta2: number
  adamEps: number
  /** 'constant' | 'step' | 'cosine' */
  schedule: string
  /** epochs at which lr is multiplied by gamma (step schedule) */
  milestones: Array<number>
  gamma: number
  minLr: number
  warmupEpochs: number
  epochs: number
  stepsPerEpoch: number
  advSteps: number
  advStepSize: number
  advEpsilon: number
  /** undefined = automatic (true when the cut follows a ReLU, which it does for ResNets) */
  reluClamp?: boolean
  seed: number
}

export interface StepLogs {
  /** total loss optimised: clean + adv for advbn, clean for erm */
  loss: number
  cleanLoss: number
  /** NaN-free: absent for erm */
  advLoss?: number
  /** eval-mode loss on the worst-case features found by the attack (advbn only) */
  attackLoss?: number
  /** eval-mode loss on the unperturbed features before the attack (advbn only) */
  attackCleanLoss?: number
  alphaMin?: number
  alphaMax?: number
  betaMin?: number
  betaMax?: number
  /** correct predictions of the clean branch on this batch */
  correct: number
  count: number
  lr: number
}

export declare class NativeTrainer {
  constructor(model: NativeModel, config: TrainerConfig)
  /** One optimisation step; `epoch` and `stepInEpoch` (0-based) drive the lr schedule. */
  step(batch: NativeBatch, epoch: number, stepInEpoch: number): Promise<StepLogs>
  learningRate(epoch: number, stepInEpoch: number): number
}

export interface NativeInfo {
  version: string
  /** 'cpu' | 'cuda' */
  variant: string
  candleVersion: string
}

export interface DeviceInfo {
  /** 'cpu' | 'cuda:0' ... */
  id: string
  kind: string
  name: string
}

export interface SelfCheckReport {
  device: string
  ok: boolean
  cleanLoss: number
  advLoss: number
  millis: number
  message: string
}

export declare function createModel(config: ModelConfig): Promise<NativeModel>
export declare function nativeInfo(): NativeInfo
export declare function listDevices(): Array<DeviceInfo>
/** Runs a tiny AdvBN training step on the device and checks the result is finite and sane. */
export declare function selfCheck(device: string): Promise<SelfCheckReport>
/** Seeded sample order for one epoch: identity when shuffle is false. */
export declare function epochOrder(length: number, shuffle: boolean, seed: number, epoch: number): Uint32Array
/** Test hook: panics inside native code; must surface as a JS error, never kill the process. */
export declare function debugPanic(message: string): void
export declare function debugPanicAsync(message: string): Promise<void>
