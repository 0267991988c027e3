//! The numeric options users set, each with its one default and its one range. The core's
//! validators check values against these rules; the binding hands the same table to TypeScript
//! (`optionRules()`), which reads its defaults, bounds and wording from it: the two sides cannot
//! drift. Bounds that depend on other settings (the cut on the model's stage count, warm-up
//! epochs on the epoch count) are checked where both are known, on top of these.

use crate::error::{Error, Result};

/// One numeric option: its default and its range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberRule {
    /// Unique key of the rule, `<entry>.<option>` (e.g. `fineTune.advbn.steps`; the SGD and
    /// AdamW weight decays are `fineTune.sgd.weightDecay` and `fineTune.adamw.weightDecay`).
    pub key: &'static str,
    /// The option's dotted name as users write it and errors name it, e.g. `advbn.steps`.
    pub name: &'static str,
    pub default: Option<f64>,
    pub min: Option<f64>,
    /// `min` itself is excluded (for example a learning rate > 0).
    pub min_exclusive: bool,
    pub max: Option<f64>,
    /// `max` itself is excluded (for example a momentum < 1).
    pub max_exclusive: bool,
    pub integer: bool,
}

impl NumberRule {
    const fn new(key: &'static str, name: &'static str) -> Self {
        Self { key, name, default: None, min: None, min_exclusive: false, max: None, max_exclusive: false, integer: false }
    }

    const fn default(mut self, value: f64) -> Self {
        self.default = Some(value);
        self
    }

    const fn integer(mut self) -> Self {
        self.integer = true;
        self
    }

    const fn at_least(mut self, min: f64) -> Self {
        self.min = Some(min);
        self
    }

    const fn above(mut self, min: f64) -> Self {
        self.min = Some(min);
        self.min_exclusive = true;
        self
    }

    const fn at_most(mut self, max: f64) -> Self {
        self.max = Some(max);
        self
    }

    const fn below(mut self, max: f64) -> Self {
        self.max = Some(max);
        self.max_exclusive = true;
        self
    }

    /// What a valid value is, in words (the same in Rust's and TypeScript's errors).
    pub fn requirement(&self) -> String {
        let kind = if self.integer { "an integer" } else { "a finite number" };
        let lo = |v: f64| if self.min_exclusive { format!("({v}") } else { format!("[{v}") };
        let hi = |v: f64| if self.max_exclusive { format!("{v})") } else { format!("{v}]") };
        match (self.min, self.max) {
            (Some(a), None) if a == 0.0 && self.min_exclusive => format!("a positive {}", if self.integer { "integer" } else { "finite number" }),
            (Some(a), Some(b)) if self.integer && !self.min_exclusive && !self.max_exclusive => format!("{kind} in {a}..={b}"),
            (Some(a), Some(b)) => format!("{kind} in {}, {}", lo(a), hi(b)),
            (Some(a), None) => format!("{kind} {} {a}", if self.min_exclusive { ">" } else { ">=" }),
            (None, Some(b)) => format!("{kind} {} {b}", if self.max_exclusive { "<" } else { "<=" }),
            (None, None) => kind.to_string(),
        }
    }

    /// Whether `value` satisfies the rule.
    pub fn accepts(&self, value: f64) -> bool {
        value.is_finite()
            && (!self.integer || value.fract() == 0.0)
            && self.min.is_none_or(|m| if self.min_exclusive { value > m } else { value >= m })
            && self.max.is_none_or(|m| if self.max_exclusive { value < m } else { value <= m })
    }

    /// `value`, or an `InvalidOption` naming the option and the requirement.
    pub fn check(&self, value: f64) -> Result<f64> {
        self.check_as(self.name, value)
    }

    /// [`NumberRule::check`] for a rule shared by several options (a seed, a transform's size),
    /// the error naming `option`.
    pub fn check_as(&self, option: &str, value: f64) -> Result<f64> {
        if self.accepts(value) {
            Ok(value)
        } else {
            Err(Error::invalid_option(option, value, format!("must be {}", self.requirement())))
        }
    }

    /// The default, for rules that have one (a missing one is a bug in this table).
    pub fn default_value(&self) -> f64 {
        self.default.unwrap_or_else(|| panic!("option rule {} has no default", self.key))
    }
}

pub const EPOCHS: NumberRule = NumberRule::new("fineTune.epochs", "epochs").default(20.0).integer().at_least(1.0).at_most(100_000.0);
pub const BATCH_SIZE: NumberRule = NumberRule::new("fineTune.batchSize", "batchSize").default(64.0).integer().at_least(1.0).at_most(65_536.0);
pub const LR: NumberRule = NumberRule::new("fineTune.lr", "lr").default(1e-3).above(0.0);
pub const SGD_MOMENTUM: NumberRule = NumberRule::new("fineTune.sgd.momentum", "optimizer.momentum").default(0.9).at_least(0.0).below(1.0);
pub const SGD_WEIGHT_DECAY: NumberRule = NumberRule::new("fineTune.sgd.weightDecay", "optimizer.weightDecay").default(1e-4).at_least(0.0);
pub const ADAMW_BETA1: NumberRule = NumberRule::new("fineTune.adamw.beta1", "optimizer.beta1").default(0.9).at_least(0.0).below(1.0);
pub const ADAMW_BETA2: NumberRule = NumberRule::new("fineTune.adamw.beta2", "optimizer.beta2").default(0.999).at_least(0.0).below(1.0);
pub const ADAMW_EPS: NumberRule = NumberRule::new("fineTune.adamw.eps", "optimizer.eps").default(1e-8).above(0.0);
pub const ADAMW_WEIGHT_DECAY: NumberRule = NumberRule::new("fineTune.adamw.weightDecay", "optimizer.weightDecay").default(1e-2).at_least(0.0);
pub const SCHEDULE_GAMMA: NumberRule = NumberRule::new("fineTune.schedule.gamma", "schedule.gamma").default(0.1).above(0.0);
pub const SCHEDULE_MIN_LR: NumberRule = NumberRule::new("fineTune.schedule.minLr", "schedule.minLr").default(0.0).at_least(0.0);
/// At most the run's epoch count too (checked with it).
pub const SCHEDULE_WARMUP_EPOCHS: NumberRule = NumberRule::new("fineTune.schedule.warmupEpochs", "schedule.warmupEpochs").default(0.0).at_least(0.0);
pub const ADVBN_STEPS: NumberRule = NumberRule::new("fineTune.advbn.steps", "advbn.steps").default(6.0).integer().at_least(0.0).at_most(1000.0);
pub const ADVBN_STEP_SIZE: NumberRule = NumberRule::new("fineTune.advbn.stepSize", "advbn.stepSize").default(0.2).at_least(0.0);
pub const ADVBN_EPSILON: NumberRule = NumberRule::new("fineTune.advbn.epsilon", "advbn.epsilon").default(1.1).above(0.0);
/// A classifier needs two classes at least.
pub const NUM_CLASSES: NumberRule = NumberRule::new("model.numClasses", "numClasses").integer().at_least(2.0).at_most(100_000.0);
pub const IN_CHANNELS: NumberRule = NumberRule::new("model.inChannels", "inChannels").default(3.0).integer().at_least(1.0).at_most(64.0);
/// Of the form 6n + 2 too (checked by the architecture). 1202 is the deepest CIFAR ResNet of
/// He et al. (2016); deeper ones only exhaust memory.
pub const SMALL_RESNET_DEPTH: NumberRule = NumberRule::new("model.depth", "depth").default(20.0).integer().at_least(8.0).at_most(1202.0);
pub const SMALL_RESNET_WIDTH: NumberRule = NumberRule::new("model.width", "width").default(16.0).integer().at_least(1.0).at_most(512.0);

/// Largest image (width x height) a folder sample may declare: checked from the header before
/// decoding, so a small file declaring a huge image (an image bomb) costs nothing. The default
/// bounds a decoded sample near 0.5 GB (float RGB); the cap is the decoder's own.
pub const MAX_PIXELS: NumberRule = NumberRule::new("imageFolder.maxPixels", "maxPixels").default(40_000_000.0).integer().at_least(1.0).at_most(100_000_000.0);
/// Largest file a folder sample may be, in bytes (read with this limit: a device or a growing
/// file cannot exhaust memory).
pub const MAX_FILE_BYTES: NumberRule =
    NumberRule::new("imageFolder.maxFileBytes", "maxFileBytes").default(134_217_728.0).integer().at_least(1.0).at_most(4_294_967_296.0);

/// Decoding threads of a data source's loader; 0 is one per core.
pub const LOADER_THREADS: NumberRule = NumberRule::new("source.threads", "threads").default(0.0).integer().at_least(0.0).at_most(1024.0);
/// Batches a loader prepares ahead.
pub const LOADER_PREFETCH: NumberRule = NumberRule::new("source.prefetch", "prefetch").default(2.0).integer().at_least(1.0).at_most(1024.0);
pub const VISUALIZE_STEPS: NumberRule = NumberRule::new("visualize.steps", "steps").default(300.0).integer().at_least(1.0).at_most(100_000.0);
pub const VISUALIZE_BATCH_SIZE: NumberRule = NumberRule::new("visualize.batchSize", "batchSize").default(32.0).integer().at_least(1.0).at_most(65_536.0);
pub const VISUALIZE_LR: NumberRule = NumberRule::new("visualize.lr", "lr").default(2e-3).above(0.0);
pub const VISUALIZE_TV_WEIGHT: NumberRule = NumberRule::new("visualize.tvWeight", "tvWeight").default(1e-3).at_least(0.0);
/// At most the images given too (checked with them).
pub const VISUALIZE_ROWS: NumberRule = NumberRule::new("visualize.rows", "rows").default(6.0).integer().at_least(1.0).at_most(1024.0);

/// Every seed (fine-tuning, models, loaders, corruptions, digits, visualisation): what crosses
/// into Rust as an exact integer of every RNG used.
pub const SEED: NumberRule = NumberRule::new("seed", "seed").default(0.0).integer().at_least(0.0).at_most(4_294_967_295.0);
/// A transform's output side (`size`, `height`, `width`), in pixels.
pub const TRANSFORM_SIDE: NumberRule = NumberRule::new("transform.side", "size").integer().at_least(1.0).at_most(16_384.0);
/// `horizontalFlip`'s probability (torchvision's default).
pub const TRANSFORM_FLIP_P: NumberRule = NumberRule::new("transform.p", "p").default(0.5).at_least(0.0).at_most(1.0);

/// Samples per forward pass of `evaluate`, `predict` and `evaluateRobustness`: the loop runs in
/// TypeScript (one native call per batch), the rule lives here with the others.
pub const EVAL_BATCH_SIZE: NumberRule = NumberRule::new("evaluate.batchSize", "batchSize").default(256.0).integer().at_least(1.0).at_most(65_536.0);

/// Each of a step schedule's milestones: a whole epoch from which the rate is multiplied
/// (strictly increasing too, checked with the list).
pub const SCHEDULE_MILESTONE: NumberRule = NumberRule::new("fineTune.schedule.milestones", "schedule.milestones").integer().at_least(1.0).at_most(100_000.0);

/// `colorJitter`'s brightness, contrast and saturation strengths (a factor in [1 - x, 1 + x]).
pub const TRANSFORM_JITTER: NumberRule = NumberRule::new("transform.jitter", "brightness").default(0.0).at_least(0.0).at_most(10.0);
/// `colorJitter`'s hue strength: a shift of at most half a turn, as torchvision allows.
pub const TRANSFORM_HUE: NumberRule = NumberRule::new("transform.hue", "hue").default(0.0).at_least(0.0).at_most(0.5);
/// `randomRotation`'s largest angle, in degrees.
pub const TRANSFORM_DEGREES: NumberRule = NumberRule::new("transform.degrees", "degrees").at_least(0.0).at_most(180.0);

/// An ImageNet-C corruption's severity (the `corrupt` transform, `corruptFiles`, `advbn corrupt`).
pub const CORRUPTION_SEVERITY: NumberRule = NumberRule::new("transform.severity", "severity").integer().at_least(1.0).at_most(5.0);
/// `grayscale`'s output channels (2 is refused on top of the range: gray is 1 or 3 channels).
pub const GRAYSCALE_CHANNELS: NumberRule = NumberRule::new("transform.channels", "channels").default(1.0).integer().at_least(1.0).at_most(3.0);
/// `imageFolder`'s image channels (1 or 3, as for `grayscale`): the conversion every file goes through.
pub const FOLDER_CHANNELS: NumberRule = NumberRule::new("imageFolder.channels", "channels").default(3.0).integer().at_least(1.0).at_most(3.0);
/// The epoch of one pass of `batches()`: with the seed it picks the order and the random draws.
pub const BATCHES_EPOCH: NumberRule = NumberRule::new("batches.epoch", "epoch").default(0.0).integer().at_least(0.0).at_most(4_294_967_295.0);
/// `fromArrays`'s class count (a dataset may have one class; a model needs two).
pub const DATASET_CLASSES: NumberRule = NumberRule::new("fromArrays.numClasses", "numClasses").integer().at_least(1.0).at_most(100_000.0);
/// Images `visualizeAdversarialFeatures` trains its decoder on (the first ones of the data).
pub const VISUALIZE_IMAGES: NumberRule = NumberRule::new("visualize.images", "images").default(256.0).integer().at_least(1.0).at_most(65_536.0);
/// Each attack strength (epsilon) the picture shows a column for.
pub const VISUALIZE_STRENGTH: NumberRule = NumberRule::new("visualize.strengths", "strengths").above(0.0).at_most(100.0);
/// `reproduce`'s seed count (its default depends on the preset) and epoch override.
pub const REPRODUCE_SEEDS: NumberRule = NumberRule::new("reproduce.seeds", "seeds").integer().at_least(1.0).at_most(100.0);
pub const REPRODUCE_EPOCHS: NumberRule = NumberRule::new("reproduce.epochs", "epochs").integer().at_least(1.0).at_most(100_000.0);
/// Digits drawn per split (`limit`) and per exported domain (`perDomain`); fewer are there
/// anyway when the split is smaller.
pub const DIGITS_LIMIT: NumberRule = NumberRule::new("digits.limit", "limit").integer().at_least(1.0).at_most(1_000_000.0);
pub const DIGITS_PER_DOMAIN: NumberRule = NumberRule::new("digits.perDomain", "perDomain").integer().at_least(1.0).at_most(1_000_000.0);

/// Every rule, for the binding's `optionRules()`.
pub const ALL: &[NumberRule] = &[
    EPOCHS,
    BATCH_SIZE,
    LR,
    SGD_MOMENTUM,
    SGD_WEIGHT_DECAY,
    ADAMW_BETA1,
    ADAMW_BETA2,
    ADAMW_EPS,
    ADAMW_WEIGHT_DECAY,
    SCHEDULE_GAMMA,
    SCHEDULE_MIN_LR,
    SCHEDULE_WARMUP_EPOCHS,
    ADVBN_STEPS,
    ADVBN_STEP_SIZE,
    ADVBN_EPSILON,
    NUM_CLASSES,
    IN_CHANNELS,
    SMALL_RESNET_DEPTH,
    SMALL_RESNET_WIDTH,
    MAX_PIXELS,
    MAX_FILE_BYTES,
    LOADER_THREADS,
    LOADER_PREFETCH,
    VISUALIZE_STEPS,
    VISUALIZE_BATCH_SIZE,
    VISUALIZE_LR,
    VISUALIZE_TV_WEIGHT,
    VISUALIZE_ROWS,
    SEED,
    TRANSFORM_SIDE,
    TRANSFORM_FLIP_P,
    EVAL_BATCH_SIZE,
    SCHEDULE_MILESTONE,
    TRANSFORM_JITTER,
    TRANSFORM_HUE,
    TRANSFORM_DEGREES,
    CORRUPTION_SEVERITY,
    GRAYSCALE_CHANNELS,
    FOLDER_CHANNELS,
    BATCHES_EPOCH,
    DATASET_CLASSES,
    VISUALIZE_IMAGES,
    VISUALIZE_STRENGTH,
    REPRODUCE_SEEDS,
    REPRODUCE_EPOCHS,
    DIGITS_LIMIT,
    DIGITS_PER_DOMAIN,
];
