//! Layers: BatchNorm with explicit modes, the dual (clean/adv) BN pair, the AdvBN op.
//! Also the per-instance style perturbations AdvBN is compared against: MixStyle, DSU.

pub mod advbn;
pub mod batch_norm;
pub mod conv_bn;
pub mod dsu;
pub mod dual_bn;
pub mod layers;
pub mod mixstyle;
pub mod mode;
pub mod readout;

pub use advbn::advbn;
pub use batch_norm::{batch_norm, BatchNorm};
pub use conv_bn::conv_bn;
pub use dsu::{dsu, DsuConfig};
pub use dual_bn::{DualBatchNorm, ADV_BN_PREFIX};
pub use mixstyle::{mixstyle, MixPartner, MixStyleConfig};
pub use mode::{BnBranch, BnMode, ForwardMode};
