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
    pub fn parse(name: &str) -> crate::Result<Self> {
        match name {
            "clean" => Ok(BnBranch::Clean),
            "adv" => Ok(BnBranch::Adv),
            other => Err(crate::Error::invalid_option("bn", format!("{other:?}"), "expected \"clean\" or \"adv\"")),
        }
    }

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
}

impl ForwardMode {
    pub const EVAL_CLEAN: ForwardMode = ForwardMode { bn: BnMode::Eval, branch: BnBranch::Clean };
    pub const TRAIN_CLEAN: ForwardMode = ForwardMode { bn: BnMode::Train, branch: BnBranch::Clean };

    pub fn new(bn: BnMode, branch: BnBranch) -> Self {
        Self { bn, branch }
    }
}
