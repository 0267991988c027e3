//! Training checkpoints: model (weights and BN statistics, both branches), optimiser state and
//! the caller's metadata (position in the run, schedule, RNG, history as JSON) in ONE
//! safetensors file written atomically, so a crash leaves either the old or the new file.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::Trainer;
use crate::error::{Error, Result};
use crate::models::ResNet;

const FORMAT: &str = "advbn-checkpoint-v1";
const META: &str = "__meta__";

/// Writes `model`, `trainer`'s optimiser state and `meta` (JSON text) to `path`.
pub fn save_checkpoint(path: &Path, model: &ResNet, trainer: &Trainer, meta: &str) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in model.state_dict()? {
        tensors.insert(format!("model/{name}"), t);
    }
    for (name, t) in trainer.optimizer().state() {
        tensors.insert(format!("optim/{name}"), t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?);
    }
    let header = format!("{{\"format\":\"{FORMAT}\",\"optimizerSteps\":{},\"meta\":{meta}}}", trainer.optimizer().steps());
    let bytes = header.into_bytes();
    let len = bytes.len();
    tensors.insert(META.to_string(), Tensor::from_vec(bytes, len, &Device::Cpu)?);
    crate::io::write_atomically(path, |tmp| Ok(candle_core::safetensors::save(&tensors, tmp)?))
}

/// What `load_checkpoint` read besides the tensors it restored.
pub struct CheckpointInfo {
    /// The JSON the caller saved.
    pub meta: String,
    pub optimizer_steps: u64,
}

/// Restores `model` and `trainer` from `path` and returns the caller's metadata.
pub fn load_checkpoint(path: &Path, model: &mut ResNet, trainer: &mut Trainer) -> Result<CheckpointInfo> {
    let shown = path.display();
    let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::invalid_data(format!("checkpoint {shown} is unreadable (truncated or not a checkpoint): {e}")))?;
    let header = tensors.remove(META).ok_or_else(|| Error::invalid_data(format!("checkpoint {shown} has no metadata: not an advbn checkpoint")))?;
    let header = String::from_utf8(header.to_vec1::<u8>()?).map_err(|_| Error::invalid_data(format!("checkpoint {shown}: metadata is not UTF-8")))?;
    let (steps, meta) = parse_header(&header).ok_or_else(|| Error::invalid_data(format!("checkpoint {shown}: unrecognised metadata")))?;
    let mut weights = HashMap::new();
    let mut optim = Vec::new();
    for (name, t) in tensors {
        if let Some(n) = name.strip_prefix("model/") {
            weights.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix("optim/") {
            optim.push((n.to_string(), t));
        } else {
            return Err(Error::invalid_data(format!("checkpoint {shown}: unexpected entry {name}")));
        }
    }
    model.load_state_map(weights, &shown.to_string(), false)?;
    trainer.optimizer_mut().load_state(steps, &optim).map_err(|e| Error::invalid_data(format!("checkpoint {shown} does not match this training run: {e}")))?;
    Ok(CheckpointInfo { meta, optimizer_steps: steps })
}

/// Splits `{"format":"...","optimizerSteps":N,"meta":<json>}` without a JSON dependency:
/// the layout is fixed by `save_checkpoint`.
fn parse_header(header: &str) -> Option<(u64, String)> {
    let rest = header.strip_prefix(&format!("{{\"format\":\"{FORMAT}\",\"optimizerSteps\":"))?;
    let (steps, rest) = rest.split_once(",\"meta\":")?;
    let meta = rest.strip_suffix('}')?;
    Some((steps.parse().ok()?, meta.to_string()))
}
