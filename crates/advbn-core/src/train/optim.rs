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

    /// Number of updates applied so far (AdamW's bias correction depends on it).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The per-parameter state as named tensors (`first.<i>`, `second.<i>`), for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let named = |kind: &str, moments: &[Option<Tensor>]| {
            moments.iter().enumerate().filter_map(|(i, m)| Some((format!("{kind}.{i}"), m.clone()?))).collect::<Vec<_>>()
        };
        let mut out = named("first", &self.first);
        out.extend(named("second", &self.second));
        out
    }

    /// Restores what `state` and `steps` returned. Shapes must match the parameters.
    pub fn load_state(&mut self, steps: u64, state: &[(String, Tensor)]) -> candle_core::Result<()> {
        let mut first = vec![None; self.params.len()];
        let mut second = vec![None; self.params.len()];
        for (name, tensor) in state {
            let (kind, index) = name.split_once('.').ok_or_else(|| candle_core::Error::Msg(format!("bad optimizer state name {name}")))?;
            let index: usize = index.parse().map_err(|_| candle_core::Error::Msg(format!("bad optimizer state name {name}")))?;
            let param = self.params.get(index).ok_or_else(|| candle_core::Error::Msg(format!("optimizer state {name} has no parameter")))?;
            if tensor.dims() != param.dims() {
                candle_core::bail!("optimizer state {name}: shape {:?}, parameter {:?}", tensor.dims(), param.dims());
            }
            let tensor = tensor.to_dtype(param.dtype())?.to_device(param.device())?;
            match kind {
                "first" => first[index] = Some(tensor),
                "second" => second[index] = Some(tensor),
                _ => candle_core::bail!("bad optimizer state name {name}"),
            }
        }
        self.first = first;
        self.second = second;
        self.steps = steps;
        Ok(())
    }

    /// Applies one update with learning rate `lr`. Parameters without a gradient are skipped
    /// (e.g. the adversarial BNs in an ERM step), as PyTorch skips `grad is None`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        for (i, var) in self.params.iter().enumerate() {
            let Some(grad) = grads.get(var.as_tensor()) else { continue };
            // Candle leaves the gradients of leaf variables attached to the forward graph: a
            // momentum buffer built from them would keep every step's activations alive.
            let grad = &grad.detach();
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Runs `steps` updates of a scalar parameter under the gradient of f(p) = p^2 / 2 (grad p).
    fn trajectory(config: OptimizerConfig, lr: f64, steps: usize) -> Vec<f64> {
        let p = Var::new(&[1.0f64], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(config, vec![p.clone()]).unwrap();
        (0..steps)
            .map(|_| {
                let loss = (p.as_tensor().sqr().unwrap() * 0.5).unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap(), lr).unwrap();
                p.as_tensor().to_vec1::<f64>().unwrap()[0]
            })
            .collect()
    }

    // Expected values from torch.optim on the same problem:
    //   p = torch.tensor([1.0], dtype=torch.float64, requires_grad=True); opt = torch.optim.SGD([p], ...)
    //   for _ in range(3): opt.zero_grad(); (p**2/2).sum().backward(); opt.step(); print(p.item())
    #[test]
    fn sgd_matches_pytorch() {
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        let plain = trajectory(OptimizerConfig::Sgd { momentum: 0.0, weight_decay: 0.0, nesterov: false }, 0.1, 3);
        assert!(close(&plain, &[0.9, 0.81, 0.729]), "{plain:?}");
        // momentum 0.9: buf1 = 1, p = 0.9; buf2 = 0.9 + 0.9 = 1.8, p = 0.72; buf3 = 1.62 + 0.72 = 2.34, p = 0.486
        let momentum = trajectory(OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 0.0, nesterov: false }, 0.1, 3);
        assert!(close(&momentum, &[0.9, 0.72, 0.486]), "{momentum:?}");
        // nesterov: g + 0.9 * buf: step1 1 + 0.9 = 1.9 -> 0.81; buf2 = 0.9 + 0.81 = 1.71, g = 0.81 + 1.539 = 2.349 -> 0.5751
        let nesterov = trajectory(OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 0.0, nesterov: true }, 0.1, 2);
        assert!(close(&nesterov, &[0.81, 0.5751]), "{nesterov:?}");
        // weight decay 0.5 couples into the gradient: g = p + 0.5 p = 1.5 -> 0.85
        let decay = trajectory(OptimizerConfig::Sgd { momentum: 0.0, weight_decay: 0.5, nesterov: false }, 0.1, 1);
        assert!(close(&decay, &[0.85]), "{decay:?}");
    }

    #[test]
    fn optimizer_state_never_holds_the_forward_graph() {
        // The gradient of a leaf that multiplies another tracked tensor comes back attached
        // to the graph; the momentum/moment buffers must not keep it (that leaked every step).
        let p = Var::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        let other = Var::new(&[3.0f64, 4.0], &Device::Cpu).unwrap();
        for config in [
            OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 1e-4, nesterov: false },
            OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 },
        ] {
            let mut opt = Optimizer::new(config, vec![p.clone()]).unwrap();
            let loss = (p.as_tensor() * (other.as_tensor() * 2.0).unwrap()).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap(), 0.1).unwrap();
            for (name, t) in opt.state() {
                assert!(!t.track_op(), "{name} keeps a backprop graph");
            }
        }
    }

    #[test]
    fn adamw_matches_pytorch() {
        // Step 1: m_hat = g, v_hat = g^2 -> update = lr * g / (|g| + eps) = lr (sign); decay first.
        let cfg = OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 };
        let p = trajectory(cfg, 0.01, 2);
        let p1 = 1.0 * (1.0 - 0.01 * 0.1) - 0.01 * 1.0 / (1.0 + 1e-8);
        assert!((p[0] - p1).abs() < 1e-12, "{p:?}");
        // Step 2 by hand with g2 = p1.
        let (m, v) = (0.9 * 0.1 + 0.1 * p1, 0.999 * 0.001 + 0.001 * p1 * p1);
        let (m_hat, v_hat) = (m / (1.0 - 0.81), v / (1.0 - 0.999f64.powi(2)));
        let p2 = p1 * (1.0 - 0.001) - 0.01 * m_hat / (v_hat.sqrt() + 1e-8);
        assert!((p[1] - p2).abs() < 1e-12, "{p:?} vs {p2}");
    }
}
