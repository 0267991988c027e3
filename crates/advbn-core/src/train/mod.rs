//! Training: optimisers, learning-rate schedules, and the AdvBN / ERM step.

pub mod optim;
pub mod schedule;
pub mod trainer;

pub use optim::{Optimizer, OptimizerConfig};
pub use schedule::Schedule;
pub use trainer::{count_correct, Method, StepLogs, TrainConfig, Trainer};
