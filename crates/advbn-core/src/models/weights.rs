//! Weights in and out with torchvision/timm names. Loading reads safetensors or PyTorch
//! pickles (`.pth`, read without executing code by `io::pth`) and reports every missing, unexpected or
//! mis-shaped tensor in one error. Saving writes the clean branch under the standard names and
//! the adversarial BNs under `adv.` (PyTorch: `load_state_dict(sd, strict=False)`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::ResNet;
use crate::error::{Error, Result};
use crate::nn::ADV_BN_PREFIX;

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub loaded: usize,
    /// Tensors kept at their fresh initialisation (the classifier when the class count differs).
    pub reinitialized: Vec<String>,
    /// File entries deliberately not used (e.g. BN `num_batches_tracked` counters).
    pub ignored: Vec<String>,
}

/// Every tensor of a weights file (`.safetensors`, or a PyTorch pickle `.pth`/`.pt`/`.bin`/`.ckpt`
/// read without running code) by name, `module.` prefixes stripped, on the CPU.
pub fn read_weights(path: &Path) -> Result<HashMap<String, Tensor>> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| Error::invalid_data(format!("weights file {shown}: {e}")))?;
    if metadata.len() == 0 {
        return Err(Error::invalid_data(format!("weights file {shown} is empty")));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let tensors = match ext.as_str() {
        "safetensors" => candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| Error::invalid_data(format!("weights file {shown} is not valid safetensors: {e}")))?,
        "pth" | "pt" | "bin" | "ckpt" => crate::io::pth::read(path)?,
        _ => return Err(Error::invalid_option("weights", format!("{shown:?}"), "expected a .safetensors or .pth/.pt file")),
    };
    // Checkpoints saved from DataParallel prefix every name with `module.`.
    Ok(tensors.into_iter().map(|(k, v)| (k.strip_prefix("module.").map(str::to_string).unwrap_or(k), v)).collect())
}

/// The class count of the classifier in `file` (the rows of `fc.weight`), for building a model
/// that fits a weights file; `origin` names the file in errors.
pub fn classifier_classes(file: &HashMap<String, Tensor>, origin: &str) -> Result<usize> {
    match file.get("fc.weight").map(|t| t.dims().to_vec()) {
        Some(dims) if dims.len() == 2 => Ok(dims[0]),
        Some(dims) => Err(Error::invalid_data(format!("{origin}: fc.weight has shape {dims:?}, not [classes, features]"))),
        None => Err(Error::invalid_data(format!("{origin} has no classifier (fc.weight) to take the class count from: give numClasses"))),
    }
}

impl ResNet {
    /// Loads weights by name. With `allow_new_head`, a classifier of another class count is
    /// left freshly initialised and reported instead of failing.
    pub fn load_weights(&mut self, path: &Path, allow_new_head: bool) -> Result<LoadReport> {
        let file = read_weights(path)?;
        self.load_state_map(file, &format!("weights file {}", path.display()), allow_new_head)
    }

    /// Loads named tensors (from a file described by `origin` in errors).
    pub fn load_state_map(&mut self, mut file: HashMap<String, Tensor>, origin: &str, allow_new_head: bool) -> Result<LoadReport> {
        let mut report = LoadReport::default();
        file.retain(|name, _| {
            let counter = name.ends_with("num_batches_tracked");
            if counter {
                report.ignored.push(name.clone());
            }
            !counter
        });
        // The file's adversarial BNs (our own saves) need the branch to exist in the model.
        let adv_cut =
            file.keys().filter_map(|n| n.strip_prefix(&format!("{ADV_BN_PREFIX}.layer"))).filter_map(|r| r.split('.').next()?.parse::<usize>().ok()).min();
        // Stages are numbered from 1 (`adv.layer1...`); a number outside the model's stages only
        // names tensors that will be reported as unexpected below.
        if let Some(first_stage) = adv_cut.filter(|s| (1..=self.num_stages()).contains(s)) {
            self.ensure_adv_bn(first_stage - 1)?;
        }
        let params = self.params().all();
        let (mut missing, mut mis_shaped) = (Vec::new(), Vec::new());
        let mut pending = Vec::new();
        for (name, var) in &params {
            match file.remove(name) {
                None => missing.push(name.clone()),
                Some(t) if t.dims() != var.dims() => {
                    if allow_new_head && name.starts_with("fc.") {
                        report.reinitialized.push(name.clone());
                    } else {
                        mis_shaped.push(format!("{name}: file {:?}, model {:?}", t.dims(), var.dims()));
                    }
                }
                Some(t) => pending.push((name, var.clone(), t)),
            }
        }
        let mut unexpected: Vec<String> = file.into_keys().collect();
        unexpected.sort();
        missing.retain(|n| !n.starts_with(&format!("{ADV_BN_PREFIX}.")));
        if !(missing.is_empty() && unexpected.is_empty() && mis_shaped.is_empty()) {
            let mut problems = Vec::new();
            if !missing.is_empty() {
                problems.push(format!("missing ({}): {}", missing.len(), missing.join(", ")));
            }
            if !unexpected.is_empty() {
                problems.push(format!("unexpected ({}): {}", unexpected.len(), unexpected.join(", ")));
            }
            if !mis_shaped.is_empty() {
                problems.push(format!("mis-shaped ({}): {}", mis_shaped.len(), mis_shaped.join("; ")));
            }
            return Err(Error::invalid_data(format!("{origin} does not fit {}: {}", self.config().arch.name(), problems.join(" | "))));
        }
        // Every dtype checked before any weight changes: a refused file leaves the model as it was.
        let not_float: Vec<String> = pending
            .iter()
            .filter(|(_, _, t)| !matches!(t.dtype(), DType::F32 | DType::F64 | DType::F16 | DType::BF16))
            .map(|(name, _, t)| format!("{name} ({:?})", t.dtype()))
            .collect();
        if !not_float.is_empty() {
            return Err(Error::invalid_data(format!(
                "{origin}: weights must be floating point; {} tensor(s) are not: {}",
                not_float.len(),
                not_float.join(", ")
            )));
        }
        let dtype = self.params().dtype();
        let device = self.device().clone();
        for (_, var, t) in pending {
            var.set(&t.to_dtype(dtype)?.to_device(&device)?)?;
            report.loaded += 1;
        }
        Ok(report)
    }

    /// Every tensor by name as float32 on the CPU (clean branch standard, adversarial `adv.`).
    pub fn state_dict(&self) -> Result<BTreeMap<String, Tensor>> {
        self.params().all().into_iter().map(|(name, var)| Ok((name, var.as_tensor().to_dtype(DType::F32)?.to_device(&Device::Cpu)?))).collect()
    }

    /// Writes the weights as safetensors, atomically (temp file, fsync, rename).
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        let tensors: HashMap<String, Tensor> = self.state_dict()?.into_iter().collect();
        crate::io::write_atomically(path, |tmp| Ok(candle_core::safetensors::save(&tensors, tmp)?))
    }
}
