// Settings of the reproduction experiments. Sizes are chosen so the default digits run fits in
// about 10 minutes on 2 CPU cores (and --quick in about 2); every number is in results.json.

import { DIGIT_DOMAINS, type DigitDomain } from '../data/digits.js';
import type { AdvbnAttackOptions, FineTuneMethod } from '../training/options.js';

/** A method of the comparison: a fineTune method, optionally on AugMix-augmented images. */
export interface MethodSpec {
  /** Name in the report. */
  name: string;
  /** fineTune method. */
  method: FineTuneMethod;
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
  { name: 'advbn_mixstyle', method: 'advbn_mixstyle', augmix: false },
  { name: 'advbn_dsu', method: 'advbn_dsu', augmix: false },
];

/** A preset's AdvBN attack: fineTune's `advbn` option with every field given. */
export type PresetAttack = Required<Pick<AdvbnAttackOptions, 'steps' | 'stepSize' | 'epsilon'>>;

/** A preset's baseline training (the whole network, before any method fine-tunes its tail). */
export interface PresetBaseline {
  /** Passes over the training data. */
  epochs: number;
  /** Learning rate. */
  lr: number;
  /** Weight decay (AdamW's for digits, SGD's for PACS). */
  weightDecay: number;
}

/** Settings of a digits run (leave-one-domain-out over the six digit domains). */
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
  /** Domains held out in turn (each with every seed); the others are the sources. */
  heldOut: DigitDomain[];
  /** Training digits per source domain (each domain's own, class-stratified, seeded per run). */
  trainPerDomain: number;
  /** Test digits of the held-out domain. */
  targetLimit: number;
  /** Test digits of the source domains (dealt in turn): the in-domain figure, and the sample every corruption is applied to. */
  sourceTestLimit: number;
  /** Whether the 15 corruptions x 5 severities are evaluated. */
  corruptions: boolean;
  /** Batch size of the baseline's training. */
  batchSize: number;
  /** The baseline: whole network, AdamW, cosine schedule. */
  baseline: PresetBaseline;
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
    advbn: PresetAttack;
  };
}

/**
 * The default digits run: every domain held out once, 2 seeds (12 pairs), about 7-9 minutes on 2 CPU
 * cores. 500 training digits per source domain (2500 per baseline) and 6 baseline epochs (AdamW
 * 3e-3: at 1e-2 the PyTorch twin's baselines trained unstably) put the baselines' in-domain
 * accuracy near 85% and every held-out accuracy well above chance.
 */
export const DIGITS: DigitsConfig = {
  model: { arch: 'small_resnet', depth: 8, width: 16 },
  heldOut: [...DIGIT_DOMAINS],
  trainPerDomain: 500,
  targetLimit: 500,
  sourceTestLimit: 100,
  corruptions: true,
  batchSize: 32,
  baseline: { epochs: 6, lr: 3e-3, weightDecay: 1e-4 },
  fineTune: { epochs: 1, lr: 0.02, cut: 1, batchSize: 64, advbn: { steps: 6, stepSize: 0.2, epsilon: 1.1 } },
};

/** Seeds of the default digits run. */
export const DIGITS_SEEDS = 2;

/** `--quick`: two held-out domains, one seed, smaller splits (about 1 minute on 2 cores). */
export const DIGITS_QUICK: DigitsConfig = {
  ...DIGITS,
  heldOut: ['mnist_m', 'low_light'],
  trainPerDomain: 400,
  targetLimit: 300,
  sourceTestLimit: 50,
  baseline: { ...DIGITS.baseline, epochs: 5 },
};

/** `--full`: every domain with 5 seeds. */
export const DIGITS_FULL_SEEDS = 5;

/** Settings of a PACS run (leave-one-domain-out, ResNet-18; meant for a GPU). */
export interface PacsPreset {
  /** The four PACS domains (sub-folders of the root). */
  domains: string[];
  /** Domains held out in turn (each with every seed); default all four. */
  heldOut: string[];
  /** PACS' seven classes. */
  numClasses: number;
  /** The network. */
  model: {
    /** Architecture. */
    arch: 'resnet18';
  };
  /** Side of the (square) training and test images, in pixels. */
  size: number;
  /** Samples per step. */
  batchSize: number;
  /** The baseline: whole network, ERM, SGD, cosine schedule. */
  baseline: PresetBaseline;
  /** Each method's fine-tune of the tail after `cut`: SGD, cosine schedule. */
  fineTune: {
    /** Passes over the source domains. */
    epochs: number;
    /** Learning rate. */
    lr: number;
    /** Stage after which the network is split. */
    cut: number;
    /** AdvBN attack settings (the paper's). */
    advbn: PresetAttack;
  };
}

/** Overrides of the PACS preset (`reproduce({ preset: 'pacs', pacs })`), e.g. a smaller run for a smoke test. */
export interface PacsOverrides {
  /** Domains held out in turn (a subset of the four). */
  heldOut?: string[];
  /** Image side in pixels. */
  size?: number;
  /** Samples per step. */
  batchSize?: number;
  /** The baseline's settings to change. */
  baseline?: Partial<PacsPreset['baseline']>;
  /** The fine-tunes' settings to change. */
  fineTune?: Partial<PacsPreset['fineTune']>;
}

/** The PACS run: ResNet-18 at 96 px, every domain held out (about a GPU's job). */
export const PACS: PacsPreset = {
  domains: ['photo', 'art_painting', 'cartoon', 'sketch'],
  heldOut: ['photo', 'art_painting', 'cartoon', 'sketch'],
  numClasses: 7,
  model: { arch: 'resnet18' },
  size: 96,
  batchSize: 64,
  baseline: { epochs: 30, lr: 0.05, weightDecay: 5e-4 },
  fineTune: { epochs: 10, lr: 0.005, cut: 1, advbn: { steps: 6, stepSize: 0.2, epsilon: 1.1 } },
};

/**
 * Settings of the ImageNet run (`--preset imagenet`): the paper's recipe as the method doc
 * (shared/docs/advbn-method.md) states it. ResNet-50 from the user's torchvision weights, cut
 * after `layer1` (stage 1), dual BatchNorms (method `'advbn'`), 20 epochs of SGD (lr 1e-3,
 * momentum 0.9, weight decay 1e-4), the rate x0.1 after epoch 10, batch 256 on one device;
 * training crops `randomResizedCrop(size)` + `horizontalFlip()`, evaluation
 * `resizeShorter(round(size / 0.875))` + `centerCrop(size)` (256 / 224). Every number goes to
 * `fineTune` as an option; `epochs`, `batchSize` and `size` may be overridden (smaller GPUs,
 * smoke tests), and the report then says the run is not the paper's recipe.
 */
export interface ImageNetPreset {
  /** The network: torchvision's ResNet-50, from the user's weights. */
  model: {
    /** Architecture. */
    arch: 'resnet50';
  };
  /** fineTune method: AdvBN with the dual (clean / adversarial) BatchNorms of the tail. */
  method: 'advbn';
  /** Stage after which the network is split (1: after `layer1`). */
  cut: number;
  /** Passes over the training images. */
  epochs: number;
  /** Samples per step (one device). */
  batchSize: number;
  /** The optimiser. */
  optimizer: {
    /** SGD with momentum and L2 weight decay. */
    type: 'sgd';
    /** Learning rate. */
    lr: number;
    /** Momentum. */
    momentum: number;
    /** Weight decay. */
    weightDecay: number;
  };
  /** Step schedule: the rate is multiplied by `gamma` from the 0-based epoch `floor(epochs / 2)` on (epoch 10 of 20). */
  schedule: {
    /** Schedule kind. */
    type: 'step';
    /** Factor at the milestone. */
    gamma: number;
  };
  /** The AdvBN attack (the paper's K, step size and box). */
  advbn: PresetAttack;
  /** Training crop and evaluation centre crop, in pixels. */
  size: number;
  /** Seed of the shuffle and the attack. */
  seed: number;
  /** Steps between checkpoints within an epoch (a checkpoint is also written after every epoch). */
  checkpointEvery: number;
}

/** The paper's ImageNet recipe (see {@link ImageNetPreset}). */
export const IMAGENET: ImageNetPreset = {
  model: { arch: 'resnet50' },
  method: 'advbn',
  cut: 1,
  epochs: 20,
  batchSize: 256,
  optimizer: { type: 'sgd', lr: 1e-3, momentum: 0.9, weightDecay: 1e-4 },
  schedule: { type: 'step', gamma: 0.1 },
  advbn: { steps: 6, stepSize: 0.2, epsilon: 1.1 },
  size: 224,
  seed: 0,
  checkpointEvery: 500,
};

/** One figure of the paper's ImageNet table (ResNet-50), as the method doc gives it. */
export interface PaperFigure {
  /** What is measured: top-1 accuracy, or ImageNet-C's mCE normalised by AlexNet (lower is better). */
  metric: 'top-1' | 'mCE';
  /** The BatchNorm branch the paper reports for this test set. */
  bn: 'clean' | 'adv';
  /** Name of the test set in the report. */
  label: string;
  /** The standard (pretrained, not fine-tuned) ResNet-50, as a fraction. */
  standard: number;
  /** The AdvBN fine-tune, as a fraction. */
  advbn: number;
}

/**
 * The paper's headline ImageNet numbers (ResNet-50; shared/docs/advbn-method.md, "Evaluation
 * protocol of the paper"), by the name of the test set in `reproduceImageNet`: `val` (ImageNet
 * val), `imagenet-c`, and the `--domain` names `stylized` (Stylized-ImageNet), `sketch`
 * (ImageNet-Sketch) and `instagram` (ImageNet-Instagram). Any other domain has no published
 * figure ("not in the doc").
 */
export const IMAGENET_PAPER: Readonly<Record<string, PaperFigure>> = {
  val: { metric: 'top-1', bn: 'clean', label: 'ImageNet val', standard: 0.761, advbn: 0.77 },
  'imagenet-c': { metric: 'mCE', bn: 'clean', label: 'ImageNet-C', standard: 0.767, advbn: 0.727 },
  instagram: { metric: 'top-1', bn: 'clean', label: 'ImageNet-Instagram', standard: 0.672, advbn: 0.695 },
  sketch: { metric: 'top-1', bn: 'adv', label: 'ImageNet-Sketch', standard: 0.241, advbn: 0.279 },
  stylized: { metric: 'top-1', bn: 'adv', label: 'Stylized-ImageNet', standard: 0.074, advbn: 0.119 },
};
