// Settings of the reproduction experiments. Sizes are chosen so the default digits run fits in
// about 10 minutes on 2 CPU cores (and --quick in about 2); every number is in results.json.

/** A method of the comparison: a fineTune method, optionally on AugMix-augmented images. */
export interface MethodSpec {
  /** Name in the report. */
  name: string;
  /** fineTune method. */
  method: 'erm' | 'advbn' | 'mixstyle' | 'dsu';
  /** AugMix on top (the paper's "complementary" claim). */
  augmix: boolean;
}

/** Every method `reproduce` knows. */
export const METHODS: readonly MethodSpec[] = [
  { name: 'erm', method: 'erm', augmix: false },
  { name: 'advbn', method: 'advbn', augmix: false },
  { name: 'mixstyle', method: 'mixstyle', augmix: false },
  { name: 'dsu', method: 'dsu', augmix: false },
  { name: 'advbn_augmix', method: 'advbn', augmix: true },
];

/** Settings of a digits run. */
export interface DigitsConfig {
  /** The model trained and fine-tuned. */
  model: {
    /** Architecture (a CIFAR-style small ResNet). */
    arch: 'small_resnet';
    /** Depth 6n+2. */
    depth: number;
    /** Channels of the first stage. */
    width: number;
  };
  /** MNIST training digits used (class-stratified, seeded per run). */
  trainLimit: number;
  /** Clean test digits evaluated. */
  testLimit: number;
  /** Test digits per style domain. */
  domainLimit: number;
  /** Test digits per corruption and severity. */
  corruptionLimit: number;
  /** Batch size of the baseline's training. */
  batchSize: number;
  /** The baseline: whole network, AdamW, cosine schedule. */
  baseline: {
    /** Passes over the training digits. */
    epochs: number;
    /** Learning rate. */
    lr: number;
    /** AdamW weight decay. */
    weightDecay: number;
  };
  /** Each method's fine-tune: SGD momentum 0.9, cosine schedule, the tail after `cut`. */
  fineTune: {
    /** Passes over the training digits. */
    epochs: number;
    /** Learning rate. */
    lr: number;
    /** Stage after which the network is split. */
    cut: number;
    /** Samples per step. */
    batchSize: number;
    /** AdvBN attack settings (the paper's). */
    advbn: {
      /** Sign-gradient steps K. */
      steps: number;
      /** Step size. */
      stepSize: number;
      /** Box half-width. */
      epsilon: number;
    };
  };
}

/** The default digits run (3 seeds). */
export const DIGITS: DigitsConfig = {
  model: { arch: 'small_resnet', depth: 8, width: 8 },
  trainLimit: 3000,
  testLimit: 500,
  domainLimit: 500,
  corruptionLimit: 100,
  batchSize: 16,
  baseline: { epochs: 3, lr: 1e-2, weightDecay: 1e-4 },
  fineTune: { epochs: 1, lr: 0.02, cut: 1, batchSize: 64, advbn: { steps: 6, stepSize: 0.2, epsilon: 1.1 } },
};

/** `--quick`: one seed, smaller splits. */
export const DIGITS_QUICK: DigitsConfig = {
  ...DIGITS,
  trainLimit: 1500,
  testLimit: 200,
  domainLimit: 200,
  corruptionLimit: 30,
};

/** Settings of a PACS run (leave-one-domain-out, ResNet-18 at 96 px; meant for a GPU). */
export const PACS = {
  domains: ['photo', 'art_painting', 'cartoon', 'sketch'],
  model: { arch: 'resnet18' as const },
  size: 96,
  batchSize: 64,
  baseline: { epochs: 30, lr: 0.05, weightDecay: 5e-4 },
  fineTune: { epochs: 10, lr: 0.005, cut: 1, advbn: { steps: 6, stepSize: 0.2, epsilon: 1.1 } },
};
