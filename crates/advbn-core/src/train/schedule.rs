//! Learning-rate schedules, stateless in the position (epoch, step) the trainer passes in.

use crate::error::{check_option, Error, Result};
use crate::options;

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Constant,
    /// lr * gamma^(number of milestones reached); milestones in epochs.
    Step {
        milestones: Vec<f64>,
        gamma: f64,
    },
    /// Linear warm-up from 0, then half-cosine from lr to min_lr over the remaining epochs.
    Cosine {
        min_lr: f64,
        warmup_epochs: f64,
    },
}

impl Schedule {
    pub fn validate(&self, epochs: usize) -> Result<()> {
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Step { milestones, gamma } => {
                options::SCHEDULE_GAMMA.check(*gamma)?;
                for &m in milestones {
                    options::SCHEDULE_MILESTONE.check(m)?;
                }
                if milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(Error::invalid_option("schedule.milestones", format!("{milestones:?}"), "must be strictly increasing"));
                }
                Ok(())
            }
            Schedule::Cosine { min_lr, warmup_epochs } => {
                options::SCHEDULE_MIN_LR.check(*min_lr)?;
                options::SCHEDULE_WARMUP_EPOCHS.check(*warmup_epochs)?;
                check_option("schedule.warmupEpochs", *warmup_epochs, *warmup_epochs <= epochs as f64, &format!("must be at most the {epochs} epochs"))
            }
        }
    }

    /// Learning rate at fractional epoch `position` (epoch + step / steps_per_epoch).
    pub fn lr_at(&self, base_lr: f64, position: f64, epochs: usize) -> f64 {
        match self {
            Schedule::Constant => base_lr,
            Schedule::Step { milestones, gamma } => {
                // Milestones apply at epoch boundaries, as torch's MultiStepLR stepped per epoch.
                let epoch = position.floor();
                let passed = milestones.iter().filter(|&&m| epoch >= m).count();
                base_lr * gamma.powi(passed as i32)
            }
            Schedule::Cosine { min_lr, warmup_epochs } => {
                if position < *warmup_epochs {
                    return base_lr * position / warmup_epochs;
                }
                let span = (epochs as f64 - warmup_epochs).max(1e-12);
                let progress = ((position - warmup_epochs) / span).clamp(0.0, 1.0);
                min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}
