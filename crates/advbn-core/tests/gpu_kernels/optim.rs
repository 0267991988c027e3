//! The fused optimiser updates (SGD plain / momentum / Nesterov with and without weight decay,
//! AdamW): several steps on the GPU against the same steps on the CPU in the same dtype,
//! parameters and state. In-place ops have no fresh output to poison: instead every element of
//! every updated parameter must change at every step and stay finite.

use advbn_core::train::{Optimizer, OptimizerConfig};
use candle_core::{DType, Device, Tensor, Var};

use crate::{assert_close, gpu, random, to_cpu_f64};

const STEPS: usize = 4;

fn configs() -> Vec<OptimizerConfig> {
    vec![
        OptimizerConfig::Sgd { momentum: 0.0, weight_decay: 0.0, nesterov: false },
        OptimizerConfig::Sgd { momentum: 0.0, weight_decay: 5e-2, nesterov: false },
        OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 0.0, nesterov: false },
        OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 5e-2, nesterov: false },
        OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 5e-2, nesterov: true },
        OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
        OptimizerConfig::AdamW { beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.1 },
    ]
}

/// 16-byte multiples, one large enough that the grid-stride loops go round more than once, odd
/// sizes (scalar tails; bf16 moments whose v half is unaligned), and last the parameter that
/// gets no gradient.
const SHAPES: [&[usize]; 6] = [&[64, 3, 7, 7], &[1000], &[4096, 1024], &[513, 257], &[5], &[7]];

struct Problem {
    init: Vec<Tensor>,
    /// Gradient of parameter j: c_j + k_j * p_j (positive: every element moves every step).
    coeffs: Vec<(Tensor, Tensor)>,
}

fn problem(seed: u64) -> Problem {
    let init = SHAPES.iter().enumerate().map(|(j, s)| random(s, seed + j as u64, -1.0, 1.0)).collect();
    let coeffs = SHAPES.iter().enumerate().map(|(j, s)| (random(s, seed + 100 + j as u64, 0.5, 1.5), random(s, seed + 200 + j as u64, 0.0, 0.2))).collect();
    Problem { init, coeffs }
}

fn loss(params: &[Var], coeffs: &[(Tensor, Tensor)]) -> Tensor {
    let mut total: Option<Tensor> = None;
    for (p, (c, k)) in params.iter().zip(coeffs) {
        let p = p.as_tensor();
        let term = ((p * c).unwrap() + ((p.sqr().unwrap() * k).unwrap() * 0.5).unwrap()).unwrap().sum_all().unwrap();
        let term = term.to_dtype(DType::F32).unwrap();
        total = Some(match total {
            Some(t) => (t + term).unwrap(),
            None => term,
        });
    }
    total.unwrap()
}

/// Runs the steps on `device` in `dtype`; the last parameter gets no gradient. Returns the
/// optimiser and the parameters (checked to move and stay finite at every step on the GPU).
fn train(config: &OptimizerConfig, problem: &Problem, device: &Device, dtype: DType, check_moves: bool) -> (Optimizer, Vec<Var>) {
    let to = |t: &Tensor| t.to_device(device).unwrap().to_dtype(dtype).unwrap();
    let params: Vec<Var> = problem.init.iter().map(|t| Var::from_tensor(&to(t)).unwrap()).collect();
    let coeffs: Vec<(Tensor, Tensor)> = problem.coeffs.iter().map(|(c, k)| (to(c), to(k))).collect();
    let trained = params.len() - 1;
    let mut opt = Optimizer::new(config.clone(), params.clone()).unwrap();
    for step in 0..STEPS {
        let before: Vec<Tensor> = params.iter().map(|p| to_cpu_f64(p.as_tensor())).collect();
        let grads = loss(&params[..trained], &coeffs[..trained]).backward().unwrap();
        opt.step(&grads, 0.05).unwrap();
        if !check_moves {
            continue;
        }
        for (j, (p, b)) in params.iter().zip(&before).enumerate() {
            let after = to_cpu_f64(p.as_tensor()).flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let b = b.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            assert!(after.iter().all(|v| v.is_finite()), "{config:?} {dtype:?} step {step} param {j}: non-finite");
            let unchanged = after.iter().zip(&b).filter(|(a, b)| a == b).count();
            if j < trained {
                assert_eq!(unchanged, 0, "{config:?} {dtype:?} step {step} param {j}: {unchanged} elements not updated");
            } else {
                assert_eq!(unchanged, after.len(), "{config:?} {dtype:?}: a parameter without gradient moved");
            }
        }
    }
    (opt, params)
}

fn outputs(opt: &Optimizer, params: &[Var]) -> (Vec<String>, Vec<Tensor>) {
    let mut names: Vec<String> = (0..params.len()).map(|j| format!("param {j}")).collect();
    let mut tensors: Vec<Tensor> = params.iter().map(|p| to_cpu_f64(p.as_tensor())).collect();
    for (name, t) in opt.state() {
        let values = to_cpu_f64(&t);
        assert!(values.flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().all(|v| v.is_finite()), "{name}: non-finite state");
        names.push(name);
        tensors.push(values);
    }
    (names, tensors)
}

#[test]
fn optimizer_kernels_match_cpu() {
    let Some(gpu) = gpu() else { return };
    for (ci, config) in configs().iter().enumerate() {
        let problem = problem(1000 * ci as u64);
        for (dtype, tol) in [(DType::F32, 1e-4), (DType::BF16, 1e-2)] {
            let (cpu_opt, cpu_params) = train(config, &problem, &Device::Cpu, dtype, false);
            let (gpu_opt, gpu_params) = train(config, &problem, &gpu, dtype, true);
            let (names, reference) = outputs(&cpu_opt, &cpu_params);
            let (gpu_names, got) = outputs(&gpu_opt, &gpu_params);
            assert_eq!(names, gpu_names, "{config:?} {dtype:?}: state entries differ");
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            assert_close(&format!("optimizer {config:?} {dtype:?}"), &names, &got, &reference, tol);
        }
    }
}

#[test]
fn optimizer_state_resumes_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    for (ci, config) in configs().iter().enumerate() {
        let problem = problem(7000 + ci as u64);
        let coeffs: Vec<(Tensor, Tensor)> = problem.coeffs.iter().map(|(c, k)| (c.to_device(&gpu).unwrap(), k.to_device(&gpu).unwrap())).collect();
        let (mut straight, params) = train(config, &problem, &gpu, DType::F32, false);
        let trained = params.len() - 1;
        // A copy of the parameters and the state (through the CPU, as checkpoints go) resumes.
        let copies: Vec<Var> =
            params.iter().map(|p| Var::from_tensor(&p.as_tensor().to_device(&Device::Cpu).unwrap().to_device(&gpu).unwrap()).unwrap()).collect();
        let saved: Vec<(String, Tensor)> = straight.state().into_iter().map(|(n, t)| (n, t.to_device(&Device::Cpu).unwrap())).collect();
        let mut resumed = Optimizer::new(config.clone(), copies.clone()).unwrap();
        resumed.load_state(straight.steps(), &saved).unwrap();
        for _ in 0..2 {
            straight.step(&loss(&params[..trained], &coeffs[..trained]).backward().unwrap(), 0.02).unwrap();
            resumed.step(&loss(&copies[..trained], &coeffs[..trained]).backward().unwrap(), 0.02).unwrap();
        }
        let ((names, a), (_, b)) = (outputs(&straight, &params), outputs(&resumed, &copies));
        for (name, (a, b)) in names.iter().zip(a.iter().zip(&b)) {
            let (a, b) = (a.flatten_all().unwrap().to_vec1::<f64>().unwrap(), b.flatten_all().unwrap().to_vec1::<f64>().unwrap());
            assert!(a == b, "{config:?}: {name} differs after resuming");
        }
    }
}
