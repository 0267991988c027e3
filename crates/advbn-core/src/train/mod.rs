//! Training: optimisers, learning-rate schedules, and the AdvBN / ERM step.

pub mod checkpoint;
pub mod optim;
pub mod schedule;
pub mod trainer;

pub use checkpoint::{load_checkpoint, save_checkpoint, CheckpointInfo, CheckpointRecord, RunPosition};
pub use optim::{Optimizer, OptimizerConfig};
pub use schedule::Schedule;
pub use trainer::{Method, StepLogs, StylePerturbation, TrainConfig, Trainer};
