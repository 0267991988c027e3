//! Layers: BatchNorm with explicit modes, the dual (clean/adv) BN pair, the AdvBN op.

pub mod advbn;
pub mod batch_norm;
pub mod dual_bn;
pub mod layers;
pub mod mode;

pub use advbn::advbn;
pub use batch_norm::{batch_norm, BatchNorm};
pub use dual_bn::{DualBatchNorm, ADV_BN_PREFIX};
pub use mode::{BnBranch, BnMode, ForwardMode};
