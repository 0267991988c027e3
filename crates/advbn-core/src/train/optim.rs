//! Optimisers with PyTorch's update rules: SGD (momentum, dampening-free, Nesterov, coupled weight
//! decay) and AdamW (decoupled weight decay). Each keeps its state per parameter and updates it
//! and the parameter in place with fused ops (`crate::ops::optim`; CUDA kernels on the GPU).

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::error::Result;
use crate::ops::optim::{AdamWMoments, AdamWParam, SgdMomentum, SgdParam};
use crate::options;

#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerConfig {
    Sgd { momentum: f64, weight_decay: f64, nesterov: bool },
    AdamW { beta1: f64, beta2: f64, eps: f64, weight_decay: f64 },
}

impl OptimizerConfig {
    pub fn validate(&self) -> Result<()> {
        match *self {
            OptimizerConfig::Sgd { momentum, weight_decay, nesterov } => {
                options::SGD_MOMENTUM.check(momentum)?;
                options::SGD_WEIGHT_DECAY.check(weight_decay)?;
                if nesterov && momentum <= 0.0 {
                    return Err(crate::Error::invalid_option("optimizer.nesterov", true, "Nesterov needs momentum > 0"));
                }
                Ok(())
            }
            OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay } => {
                options::ADAMW_BETA1.check(beta1)?;
                options::ADAMW_BETA2.check(beta2)?;
                options::ADAMW_EPS.check(eps)?;
                options::ADAMW_WEIGHT_DECAY.check(weight_decay).map(|_| ())
            }
        }
    }
}

pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<Var>,
    /// Per parameter: SGD's momentum buffer (the parameter's shape), or AdamW's first and
    /// second moments packed as [2, numel] (m, then v). The fused ops update these in place, so
    /// each owns its storage: it never shares it with a gradient, a parameter, a tensor passed
    /// to `load_state` or one handed out by `state`.
    state: Vec<Option<Tensor>>,
    steps: u64,
}

/// The address of `t`'s storage: tensors made by `clone`/`detach`/views share it.
fn storage_id(t: &Tensor) -> usize {
    let (storage, _) = t.storage_and_layout();
    &*storage as *const candle_core::Storage as usize
}

impl Optimizer {
    pub fn new(config: OptimizerConfig, params: Vec<Var>) -> Result<Self> {
        config.validate()?;
        let n = params.len();
        Ok(Self { config, params, state: vec![None; n], steps: 0 })
    }

    pub fn params(&self) -> &[Var] {
        &self.params
    }

    /// Number of updates applied so far (AdamW's bias correction depends on it).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The per-parameter state as named tensors (`first.<i>`: SGD momentum buffers or AdamW
    /// first moments; `second.<i>`: AdamW second moments), each shaped like its parameter, for
    /// checkpoints. They are copies: later steps do not change them.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut first = Vec::new();
        let mut second = Vec::new();
        for (i, (state, param)) in self.state.iter().zip(&self.params).enumerate() {
            let Some(state) = state else { continue };
            let copy = |t: Tensor| t.reshape(param.dims()).and_then(|t| t.force_contiguous()).expect("optimizer state matches its parameter");
            match self.config {
                OptimizerConfig::Sgd { .. } => first.push((format!("first.{i}"), copy(state.clone()))),
                OptimizerConfig::AdamW { .. } => {
                    let moment = |k| state.get(k).expect("packed moments are [2, numel]");
                    first.push((format!("first.{i}"), copy(moment(0))));
                    second.push((format!("second.{i}"), copy(moment(1))));
                }
            }
        }
        first.extend(second);
        first
    }

    /// Restores what `state` and `steps` returned. Shapes must match the parameters. The
    /// optimiser keeps its own copies (it updates them in place).
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
            let tensor = tensor.detach().to_dtype(param.dtype())?.to_device(param.device())?;
            match kind {
                "first" => first[index] = Some(tensor),
                "second" if matches!(self.config, OptimizerConfig::AdamW { .. }) => second[index] = Some(tensor),
                "second" => candle_core::bail!("optimizer state {name}: SGD keeps no second moments"),
                _ => candle_core::bail!("bad optimizer state name {name}"),
            }
        }
        let mut restored = Vec::with_capacity(self.params.len());
        for ((m, v), param) in first.into_iter().zip(second).zip(&self.params) {
            restored.push(match self.config {
                // force_contiguous always copies: the buffer owns its storage.
                OptimizerConfig::Sgd { .. } => m.map(|m| m.force_contiguous()).transpose()?,
                OptimizerConfig::AdamW { .. } if m.is_none() && v.is_none() => None,
                OptimizerConfig::AdamW { .. } => {
                    // A missing moment restarts from zero (the first step's update rule).
                    let flat = |t: Option<Tensor>| match t {
                        Some(t) => t.flatten_all(),
                        None => Tensor::zeros(param.elem_count(), param.dtype(), param.device()),
                    };
                    Some(Tensor::stack(&[flat(m)?, flat(v)?], 0)?)
                }
            });
        }
        self.state = restored;
        self.steps = steps;
        Ok(())
    }

    /// Applies one update with learning rate `lr`. Parameters without a gradient are skipped
    /// (e.g. the adversarial BNs in an ERM step), as PyTorch skips `grad is None`.
    ///
    /// Fused in-place ops (`crate::ops::optim`) update the parameter and its state: one pass
    /// over a parameter for SGD without momentum, two for SGD with momentum and for AdamW.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        self.steps += 1;
        for (i, var) in self.params.iter().enumerate() {
            let p = var.as_tensor();
            let Some(grad) = grads.get(p) else { continue };
            // Candle leaves the gradients of leaf variables attached to the forward graph: a
            // momentum buffer built from them would keep every step's activations alive. The
            // state is made with `zeros` and only ever updated in place, never from `grad`.
            let grad = grad.detach();
            if grad.dims() != p.dims() {
                candle_core::bail!("gradient of parameter {i}: shape {:?}, parameter {:?}", grad.dims(), p.dims());
            }
            // The ops read contiguous gradients and must not read the storage they write.
            let grad = if !grad.is_contiguous() || storage_id(&grad) == storage_id(p) { grad.force_contiguous()? } else { grad };
            let first = self.state[i].is_none();
            match self.config {
                OptimizerConfig::Sgd { momentum, weight_decay, nesterov } => {
                    let update = SgdParam { lr, weight_decay, momentum, nesterov };
                    if momentum > 0.0 {
                        let buf = match &self.state[i] {
                            Some(buf) => buf.clone(),
                            None => p.zeros_like()?,
                        };
                        buf.inplace_op3(&grad, p, &SgdMomentum { momentum, weight_decay, first })?;
                        p.inplace_op3(&grad, &buf, &update)?;
                        self.state[i] = Some(buf);
                    } else {
                        p.inplace_op2(&grad, &update)?;
                    }
                }
                OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay } => {
                    let moments = match &self.state[i] {
                        Some(mv) => mv.clone(),
                        None => Tensor::zeros((2, p.elem_count()), p.dtype(), p.device())?,
                    };
                    moments.inplace_op2(&grad, &AdamWMoments { beta1, beta2, first })?;
                    p.inplace_op2(&moments, &AdamWParam::new(lr, weight_decay, eps, beta1, beta2, self.steps))?;
                    self.state[i] = Some(moments);
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

    /// The composite Candle formulas the fused ops replaced (one state tensor per moment,
    /// rebuilt every step), kept as the reference.
    struct Composite {
        config: OptimizerConfig,
        first: Vec<Option<Tensor>>,
        second: Vec<Option<Tensor>>,
        steps: i32,
    }

    impl Composite {
        fn step(&mut self, params: &[Var], grads: &GradStore, lr: f64) {
            self.steps += 1;
            let t = self.steps;
            for (i, var) in params.iter().enumerate() {
                let Some(grad) = grads.get(var.as_tensor()) else { continue };
                let grad = &grad.detach();
                let p = var.as_tensor().detach();
                match self.config {
                    OptimizerConfig::Sgd { momentum, weight_decay, nesterov } => {
                        let mut g = if weight_decay > 0.0 { (grad + p.affine(weight_decay, 0.0).unwrap()).unwrap() } else { grad.clone() };
                        if momentum > 0.0 {
                            let buf = match &self.first[i] {
                                Some(buf) => (buf.affine(momentum, 0.0).unwrap() + &g).unwrap(),
                                None => g.copy().unwrap(),
                            };
                            g = if nesterov { (g + buf.affine(momentum, 0.0).unwrap()).unwrap() } else { buf.clone() };
                            self.first[i] = Some(buf);
                        }
                        var.set(&(p - g.affine(lr, 0.0).unwrap()).unwrap()).unwrap();
                    }
                    OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay } => {
                        let m = match &self.first[i] {
                            Some(m) => (m.affine(beta1, 0.0).unwrap() + grad.affine(1.0 - beta1, 0.0).unwrap()).unwrap(),
                            None => grad.affine(1.0 - beta1, 0.0).unwrap(),
                        };
                        let v = match &self.second[i] {
                            Some(v) => (v.affine(beta2, 0.0).unwrap() + grad.sqr().unwrap().affine(1.0 - beta2, 0.0).unwrap()).unwrap(),
                            None => grad.sqr().unwrap().affine(1.0 - beta2, 0.0).unwrap(),
                        };
                        let m_hat = m.affine(1.0 / (1.0 - beta1.powi(t)), 0.0).unwrap();
                        let v_hat = v.affine(1.0 / (1.0 - beta2.powi(t)), 0.0).unwrap();
                        let update = (m_hat / (v_hat.sqrt().unwrap() + eps).unwrap()).unwrap();
                        let decayed = p.affine(1.0 - lr * weight_decay, 0.0).unwrap();
                        var.set(&(decayed - update.affine(lr, 0.0).unwrap()).unwrap()).unwrap();
                        self.first[i] = Some(m);
                        self.second[i] = Some(v);
                    }
                }
            }
        }
    }

    fn random_f32(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| rng.gen_range(lo..hi)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn configs() -> Vec<OptimizerConfig> {
        vec![
            OptimizerConfig::Sgd { momentum: 0.0, weight_decay: 0.0, nesterov: false },
            OptimizerConfig::Sgd { momentum: 0.0, weight_decay: 1e-2, nesterov: false },
            OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 0.0, nesterov: false },
            OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 5e-2, nesterov: false },
            OptimizerConfig::Sgd { momentum: 0.8, weight_decay: 5e-2, nesterov: true },
            OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
            OptimizerConfig::AdamW { beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.1 },
        ]
    }

    /// Loss whose gradient depends on the parameters (c + p * k) and leaves the last one out.
    fn loss(params: &[Var], coeffs: &[(Tensor, Tensor)]) -> Tensor {
        let mut total = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu).unwrap();
        for (p, (c, k)) in params.iter().zip(coeffs) {
            let p = p.as_tensor();
            let term = ((p * c).unwrap() + (p.sqr().unwrap() * k).unwrap() * 0.5).unwrap().sum_all().unwrap();
            total = (total + term).unwrap();
        }
        total
    }

    #[test]
    fn fused_updates_match_the_composite_formulas() {
        let shapes: [&[usize]; 4] = [&[16, 3, 3, 3], &[37], &[5, 7], &[11]];
        for (ci, config) in configs().into_iter().enumerate() {
            let init: Vec<Tensor> = shapes.iter().enumerate().map(|(j, s)| random_f32(s, 10 * ci as u64 + j as u64, -1.0, 1.0)).collect();
            let coeffs: Vec<(Tensor, Tensor)> =
                shapes.iter().enumerate().map(|(j, s)| (random_f32(s, 100 + j as u64, -1.0, 1.0), random_f32(s, 200 + j as u64, 0.0, 2.0))).collect();
            let fused: Vec<Var> = init.iter().map(|t| Var::from_tensor(&t.copy().unwrap()).unwrap()).collect();
            let reference: Vec<Var> = init.iter().map(|t| Var::from_tensor(&t.copy().unwrap()).unwrap()).collect();
            let mut opt = Optimizer::new(config.clone(), fused.clone()).unwrap();
            let n = reference.len();
            let mut composite = Composite { config: config.clone(), first: vec![None; n], second: vec![None; n], steps: 0 };
            // The last parameter gets no gradient: both must leave it alone.
            let (with_grad, with_coeffs) = (n - 1, &coeffs[..n - 1]);
            for step in 0..6 {
                let lr = 0.05 / (1 + step) as f64;
                let grads = loss(&fused[..with_grad], with_coeffs).backward().unwrap();
                let before: Vec<Vec<f32>> =
                    (0..with_grad).map(|j| grads.get(fused[j].as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap()).collect();
                opt.step(&grads, lr).unwrap();
                for (j, b) in before.iter().enumerate() {
                    let after: Vec<f32> = grads.get(fused[j].as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                    assert_eq!(&after, b, "the step changed a gradient");
                }
                composite.step(&reference, &loss(&reference[..with_grad], with_coeffs).backward().unwrap(), lr);
                let state = opt.state();
                for (j, (f, r)) in fused.iter().zip(&reference).enumerate() {
                    let mut pairs = vec![(format!("param {j}"), f.as_tensor().clone(), r.as_tensor().clone())];
                    for (kind, moments) in [("first", &composite.first), ("second", &composite.second)] {
                        let name = format!("{kind}.{j}");
                        let got = state.iter().find(|(n, _)| *n == name).map(|(_, t)| t.clone());
                        match (got, &moments[j]) {
                            (Some(g), Some(r)) => pairs.push((name, g, r.clone())),
                            (None, None) => {}
                            (g, r) => panic!("{config:?}: {name} present in fused {} / composite {}", g.is_some(), r.is_some()),
                        }
                    }
                    for (name, got, want) in pairs {
                        assert_eq!(got.dims(), want.dims(), "{name}");
                        let (got, want): (Vec<f32>, Vec<f32>) = (got.flatten_all().unwrap().to_vec1().unwrap(), want.flatten_all().unwrap().to_vec1().unwrap());
                        for (a, b) in got.iter().zip(&want) {
                            assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{config:?} step {step} {name}: {a} vs {b}");
                        }
                    }
                }
                let untouched: Vec<f32> = fused[n - 1].as_tensor().flatten_all().unwrap().to_vec1().unwrap();
                assert_eq!(untouched, init[n - 1].flatten_all().unwrap().to_vec1::<f32>().unwrap(), "a parameter without gradient moved");
            }
        }
    }

    #[test]
    fn state_is_a_snapshot_and_load_state_copies() {
        for config in configs().into_iter().filter(|c| !matches!(c, OptimizerConfig::Sgd { momentum, .. } if *momentum == 0.0)) {
            let p = Var::from_tensor(&random_f32(&[3, 4], 7, -1.0, 1.0)).unwrap();
            let c = (random_f32(&[3, 4], 8, -1.0, 1.0), random_f32(&[3, 4], 9, 0.0, 1.0));
            let mut opt = Optimizer::new(config.clone(), vec![p.clone()]).unwrap();
            opt.step(&loss(std::slice::from_ref(&p), std::slice::from_ref(&c)).backward().unwrap(), 0.1).unwrap();
            let saved = opt.state();
            let values =
                |state: &[(String, Tensor)]| state.iter().map(|(n, t)| (n.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect::<Vec<_>>();
            let saved_values = values(&saved);
            let saved_p = p.as_tensor().copy().unwrap();
            // A second optimiser resumes from the snapshot; both take the same two steps.
            let q = Var::from_tensor(&saved_p.copy().unwrap()).unwrap();
            let mut resumed = Optimizer::new(config.clone(), vec![q.clone()]).unwrap();
            resumed.load_state(opt.steps(), &saved).unwrap();
            for _ in 0..2 {
                opt.step(&loss(std::slice::from_ref(&p), std::slice::from_ref(&c)).backward().unwrap(), 0.1).unwrap();
                resumed.step(&loss(std::slice::from_ref(&q), std::slice::from_ref(&c)).backward().unwrap(), 0.1).unwrap();
            }
            assert_eq!(values(&saved), saved_values, "{config:?}: later steps changed tensors from state() / given to load_state()");
            assert_eq!(values(&opt.state()), values(&resumed.state()), "{config:?}: resumed state differs");
            let (a, b): (Vec<f32>, Vec<f32>) =
                (p.as_tensor().flatten_all().unwrap().to_vec1().unwrap(), q.as_tensor().flatten_all().unwrap().to_vec1().unwrap());
            assert_eq!(a, b, "{config:?}: resumed parameters differ");
        }
    }

    #[test]
    fn fused_ops_support_half_precision_on_the_cpu() {
        use candle_core::DType;
        for dtype in [DType::BF16, DType::F16] {
            for config in configs() {
                let init = random_f32(&[64], 3, -1.0, 1.0);
                let c = (random_f32(&[64], 4, 0.5, 1.5), random_f32(&[64], 5, 0.0, 0.2));
                let reference = Var::from_tensor(&init.copy().unwrap()).unwrap();
                let half = Var::from_tensor(&init.to_dtype(dtype).unwrap()).unwrap();
                let mut opt_ref = Optimizer::new(config.clone(), vec![reference.clone()]).unwrap();
                let mut opt_half = Optimizer::new(config.clone(), vec![half.clone()]).unwrap();
                for _ in 0..3 {
                    opt_ref.step(&loss(std::slice::from_ref(&reference), std::slice::from_ref(&c)).backward().unwrap(), 0.05).unwrap();
                    let p = half.as_tensor();
                    let (cc, kk) = (c.0.to_dtype(dtype).unwrap(), c.1.to_dtype(dtype).unwrap());
                    let l = ((p * &cc).unwrap() + (p.sqr().unwrap() * &kk).unwrap() * 0.5).unwrap().sum_all().unwrap();
                    opt_half.step(&l.backward().unwrap(), 0.05).unwrap();
                }
                let want: Vec<f32> = reference.as_tensor().to_vec1().unwrap();
                let got: Vec<f32> = half.as_tensor().to_dtype(DType::F32).unwrap().to_vec1().unwrap();
                let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(err < 2e-2, "{dtype:?} {config:?}: max abs error {err}");
                assert!(opt_half.state().iter().all(|(_, t)| t.dtype() == dtype), "state keeps the parameter dtype");
            }
        }
    }
}
