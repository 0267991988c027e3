//! How a forward pass treats BatchNorm: which branch (clean or adversarial) and which statistics.

/// Statistics a BatchNorm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnMode {
    /// Batch statistics, and the running statistics are updated (training).
    Train,
    /// Running statistics, nothing is written (inference, and AdvBN's attack steps).
    Eval,
}

/// Which BatchNorm of a dual pair a forward pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnBranch {
    Clean,
    Adv,
}

impl BnBranch {
    pub fn name(self) -> &'static str {
        match self {
            BnBranch::Clean => "clean",
            BnBranch::Adv => "adv",
        }
    }
}

/// Passed down every `forward` so that no layer keeps hidden train/eval state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardMode {
    pub bn: BnMode,
    pub branch: BnBranch,
    /// The layers' weights are constants for this pass: no weight gradient is computed (AdvBN's
    /// attack only needs gradients w.r.t. the perturbation; PyTorch's autograd.grad skips them).
    pub frozen_weights: bool,
}

impl ForwardMode {
    pub const EVAL_CLEAN: ForwardMode = ForwardMode { bn: BnMode::Eval, branch: BnBranch::Clean, frozen_weights: false };
    pub const TRAIN_CLEAN: ForwardMode = ForwardMode { bn: BnMode::Train, branch: BnBranch::Clean, frozen_weights: false };

    pub const fn new(bn: BnMode, branch: BnBranch) -> Self {
        Self { bn, branch, frozen_weights: false }
    }

    /// The same mode with the weights held constant (see `frozen_weights`).
    pub const fn with_frozen_weights(self) -> Self {
        Self { bn: self.bn, branch: self.branch, frozen_weights: true }
    }

    /// `w` as this pass uses it: detached when the weights are frozen.
    pub fn weight(&self, w: &candle_core::Tensor) -> candle_core::Tensor {
        if self.frozen_weights {
            w.detach()
        } else {
            w.clone()
        }
    }
}
