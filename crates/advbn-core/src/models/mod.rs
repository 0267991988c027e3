//! Models: ResNet-18/34/50 (torchvision layout) and CIFAR-style small ResNets, all from the same blocks.

pub mod backprop;
pub mod blocks;
pub mod config;
pub mod resnet;
pub mod weights;

pub use config::{Arch, ModelConfig};
pub use resnet::ResNet;
pub use weights::LoadReport;
