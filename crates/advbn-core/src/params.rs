//! The parameter store: every weight and buffer of a model as a named `Var`, created through a
//! candle-nn `VarBuilder` and initialised from a seeded RNG so that a seed fixes the model
//! bit for bit on any device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

#[derive(Default)]
struct Inner {
    vars: Vec<(String, Var)>,
    index: HashMap<String, usize>,
    rng: Option<ChaCha8Rng>,
}

/// Named variables of one model. Cloning shares the store.
#[derive(Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
    dtype: DType,
    device: Device,
}

impl ParamStore {
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Self {
        let inner = Inner { rng: Some(ChaCha8Rng::seed_from_u64(seed)), ..Default::default() };
        Self { inner: Arc::new(Mutex::new(inner)), dtype, device: device.clone() }
    }

    /// A `VarBuilder` that creates (or returns existing) variables in this store.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), self.dtype, self.device.clone())
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-call; the vars stay valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// All variables in creation order.
    pub fn all(&self) -> Vec<(String, Var)> {
        self.lock().vars.clone()
    }

    pub fn var(&self, name: &str) -> Option<Var> {
        let inner = self.lock();
        inner.index.get(name).map(|&i| inner.vars[i].1.clone())
    }

    /// Variables whose name satisfies `keep`, in creation order.
    pub fn select(&self, keep: impl Fn(&str) -> bool) -> Vec<(String, Var)> {
        self.lock().vars.iter().filter(|(n, _)| keep(n)).cloned().collect()
    }

    /// Adds a variable holding a copy of `value` (used to clone BN branches).
    pub fn insert_copy(&self, name: &str, value: &Tensor) -> candle_core::Result<Tensor> {
        let var = Var::from_tensor(&value.copy()?)?;
        let tensor = var.as_tensor().clone();
        let mut inner = self.lock();
        if inner.index.contains_key(name) {
            candle_core::bail!("parameter {name} already exists");
        }
        let position = inner.vars.len();
        inner.index.insert(name.to_string(), position);
        inner.vars.push((name.to_string(), var));
        Ok(tensor)
    }

    /// Number of scalar parameters (buffers such as running statistics excluded).
    pub fn parameter_count(&self) -> usize {
        self.lock().vars.iter().filter(|(n, _)| !is_buffer(n)).map(|(_, v)| v.elem_count()).sum()
    }
}

/// Buffers are state, not trainable parameters (torchvision's BN running statistics).
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

fn sample_init(rng: &mut ChaCha8Rng, shape: &Shape, init: Init) -> candle_core::Result<Vec<f32>> {
    let n = shape.elem_count();
    Ok(match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Uniform { lo, up } => (0..n).map(|_| rng.gen_range(lo..up) as f32).collect(),
        Init::Randn { mean, stdev } => {
            let normal = Normal::new(mean, stdev).map_err(candle_core::Error::wrap)?;
            (0..n).map(|_| normal.sample(rng) as f32).collect()
        }
        Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                candle_nn::init::NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n).map(|_| rng.gen_range(-bound..bound) as f32).collect()
                }
                candle_nn::init::NormalOrUniform::Normal => {
                    let normal = Normal::new(0.0, std).map_err(candle_core::Error::wrap)?;
                    (0..n).map(|_| normal.sample(rng) as f32).collect()
                }
            }
        }
    })
}

impl SimpleBackend for ParamStore {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut inner = self.lock();
        if let Some(&i) = inner.index.get(name) {
            let var = &inner.vars[i].1;
            if var.shape() != &shape {
                candle_core::bail!("parameter {name}: expected shape {shape:?}, found {:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let rng = inner.rng.as_mut().expect("param store rng");
        let values = sample_init(rng, &shape, init)?;
        let tensor = Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        let position = inner.vars.len();
        inner.index.insert(name.to_string(), position);
        inner.vars.push((name.to_string(), var));
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        match self.var(name) {
            Some(var) => Ok(var.as_tensor().clone()),
            None => candle_core::bail!("parameter {name} not found"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.lock().index.contains_key(name)
    }
}
