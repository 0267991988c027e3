//! Optimisers with PyTorch's update rules: SGD (momentum, dampening-free, Nesterov, coupled weight
//! decay) and AdamW (decoupled weight decay). Each keeps its state per parameter.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::error::{check_option, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerConfig {
    Sgd { momentum: f64, weight_decay: f64, nesterov: bool },
    AdamW { beta1: f64, beta2: f64, eps: f64, weight_decay: f64 },
}

impl OptimizerConfig {
    pub fn validate(&self) -> Result<()> {
        match *self {
            OptimizerConfig::Sgd { momentum, weight_decay, nesterov } => {
                check_option("optimizer.momentum", momentum, (0.0..1.0).contains(&momentum), "must be in [0, 1)")?;
                check_option("optimizer.weightDecay", weight_decay, weight_decay >= 0.0, "must be >= 0")?;
                if nesterov && momentum <= 0.0 {
                    return Err(crate::Error::invalid_option("optimizer.nesterov", true, "Nesterov needs momentum > 0"));
                }
                Ok(())
            }
            OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay } => {
                check_option("optimizer.beta1", beta1, (0.0..1.0).contains(&beta1), "must be in [0, 1)")?;
                check_option("optimizer.beta2", beta2, (0.0..1.0).contains(&beta2), "must be in [0, 1)")?;
                check_option("optimizer.eps", eps, eps > 0.0, "must be > 0")?;
                check_option("optimizer.weightDecay", weight_decay, weight_decay >= 0.0, "must be >= 0")
            }
        }
    }
}

pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<Var>,
    /// SGD: momentum buffers. AdamW: first moments.
    first: Vec<Option<Tensor>>,
    /// AdamW: second moments.
    second: Vec<Option<Tensor>>,
    steps: u64,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig, params: Vec<Var>) -> Result<Self> {
        config.validate()?;
        let n = params.len();
        Ok(Self { config, params, first: vec![None; n], second: vec![None; n], steps: 0 })
    }

    pub fn params(&self) -> &[Var] {
        &self.params
    }

    /// Applies one update with learning rate `lr`. Parameters without a gradient are skipped
    /// (e.g. the adversarial BNs in an ERM step), as PyTorch skips `grad is None`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        for (i, var) in self.params.iter().enumerate() {
            let Some(grad) = grads.get(var.as_tensor()) else { continue };
            let p = var.as_tensor().detach();
            match self.config {
                OptimizerConfig::Sgd { momentum, weight_decay, nesterov } => {
                    let mut g = if weight_decay > 0.0 { (grad + p.affine(weight_decay, 0.0)?)? } else { grad.clone() };
                    if momentum > 0.0 {
                        let buf = match &self.first[i] {
                            Some(buf) => (buf.affine(momentum, 0.0)? + &g)?,
                            None => g.copy()?,
                        };
                        g = if nesterov { (g + buf.affine(momentum, 0.0)?)? } else { buf.clone() };
                        self.first[i] = Some(buf);
                    }
                    var.set(&(p - g.affine(lr, 0.0)?)?)?;
                }
                OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay } => {
                    let m = match &self.first[i] {
                        Some(m) => (m.affine(beta1, 0.0)? + grad.affine(1.0 - beta1, 0.0)?)?,
                        None => grad.affine(1.0 - beta1, 0.0)?,
                    };
                    let v = match &self.second[i] {
                        Some(v) => (v.affine(beta2, 0.0)? + grad.sqr()?.affine(1.0 - beta2, 0.0)?)?,
                        None => grad.sqr()?.affine(1.0 - beta2, 0.0)?,
                    };
                    let m_hat = m.affine(1.0 / (1.0 - beta1.powi(t)), 0.0)?;
                    let v_hat = v.affine(1.0 / (1.0 - beta2.powi(t)), 0.0)?;
                    let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
                    let decayed = p.affine(1.0 - lr * weight_decay, 0.0)?;
                    var.set(&(decayed - update.affine(lr, 0.0)?)?)?;
                    self.first[i] = Some(m);
                    self.second[i] = Some(v);
                }
            }
        }
        Ok(())
    }
}
