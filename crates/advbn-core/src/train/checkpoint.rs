//! Training checkpoints: model (weights and BN statistics, both branches), optimiser state, the
//! position in the run, the settings a resume must match and the caller's own record (its
//! history, as JSON) in ONE safetensors file written atomically, so a crash leaves either the
//! old or the new file.
//!
//! The format is owned here. Its header (the `__meta__` entry, JSON) is
//! `{"format":"advbn-checkpoint","version":2,"optimizerSteps":N,"position":{"epoch":E,"nextBatch":B},
//! "settings":{...},"tensors":{"names":[...],"crc32":C},"record":<caller JSON>}`. Loading checks,
//! in this order and before anything is restored: the format and version; that the file holds
//! exactly the tensors the header lists and that their CRC-32 matches (a deleted tensor or a
//! flipped bit is refused, not resumed from); that every setting equals this run's (the error
//! names the first that differs); that the position lies inside this run.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Map, Value};

use super::{OptimizerConfig, Schedule, TrainConfig, Trainer};
use crate::error::{Error, Result};
use crate::models::ResNet;
use crate::nn::{DsuConfig, MixStyleConfig};
use crate::train::Method;

const FORMAT: &str = "advbn-checkpoint";
const VERSION: u64 = 2;
const HEADER: &str = "__meta__";

/// Where a run stands: the next step to train is batch `next_batch` of epoch `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunPosition {
    pub epoch: usize,
    pub next_batch: usize,
}

/// What the caller adds to a checkpoint.
pub struct CheckpointRecord<'a> {
    pub position: RunPosition,
    /// Settings outside the trainer that a resume must match too (for example the batch size,
    /// the shuffle, the data augmentation), as a JSON object; compared before the trainer's.
    pub settings: &'a str,
    /// The caller's own state (history, partial sums), JSON; stored and handed back verbatim.
    pub record: &'a str,
}

/// What `load_checkpoint` read besides the tensors it restored.
#[derive(Debug)]
pub struct CheckpointInfo {
    pub position: RunPosition,
    /// The caller's record, as saved.
    pub record: String,
    pub optimizer_steps: u64,
}

/// Writes `model`, `trainer`'s optimiser state and `what` to `path`.
pub fn save_checkpoint(path: &Path, model: &ResNet, trainer: &Trainer, what: &CheckpointRecord) -> Result<()> {
    let shown = path.display();
    let settings = all_settings(trainer.config(), what.settings).map_err(|e| Error::invalid_data(format!("checkpoint {shown}: {e}")))?;
    let record: Value = serde_json::from_str(what.record).map_err(|e| Error::invalid_data(format!("checkpoint {shown}: the record is not JSON: {e}")))?;
    let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
    for (name, t) in model.state_dict()? {
        tensors.insert(format!("model/{name}"), t);
    }
    for (name, t) in trainer.optimizer().state() {
        tensors.insert(format!("optim/{name}"), t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?);
    }
    let header = json!({
        "format": FORMAT,
        "version": VERSION,
        "optimizerSteps": trainer.optimizer().steps(),
        "position": { "epoch": what.position.epoch, "nextBatch": what.position.next_batch },
        "settings": settings,
        "tensors": { "names": tensors.keys().collect::<Vec<_>>(), "crc32": checksum(&tensors)? },
        "record": record,
    });
    let bytes = header.to_string().into_bytes();
    let len = bytes.len();
    let mut all: HashMap<String, Tensor> = tensors.into_iter().collect();
    all.insert(HEADER.to_string(), Tensor::from_vec(bytes, len, &Device::Cpu)?);
    crate::io::write_atomically(path, |tmp| Ok(candle_core::safetensors::save(&all, tmp)?))
}

/// Checks `path` against this run (`settings` as in [`CheckpointRecord`]) and restores `model`
/// and `trainer` from it; returns the position and the caller's record.
pub fn load_checkpoint(path: &Path, model: &mut ResNet, trainer: &mut Trainer, settings: &str) -> Result<CheckpointInfo> {
    let shown = path.display();
    let bad = |what: String| Error::invalid_data(format!("checkpoint {shown}: {what}"));
    let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::invalid_data(format!("checkpoint {shown} is unreadable (truncated or not a checkpoint): {e}")))?;
    let header = tensors.remove(HEADER).ok_or_else(|| Error::invalid_data(format!("checkpoint {shown} has no metadata: not an advbn checkpoint")))?;
    let header = String::from_utf8(header.to_vec1::<u8>()?).map_err(|_| bad("the metadata is not UTF-8".into()))?;
    let header: Value = serde_json::from_str(&header).map_err(|e| bad(format!("the metadata is not JSON ({e})")))?;
    let field = |name: &str| header.get(name).ok_or_else(|| bad(format!("the metadata has no `{name}`")));
    if header.get("format").and_then(Value::as_str) != Some(FORMAT) || header.get("version").and_then(Value::as_u64) != Some(VERSION) {
        let found = header.get("format").map_or_else(|| "an unknown format".to_string(), |f| format!("format {f}"));
        return Err(bad(format!(
            "{found}{} is not {FORMAT} version {VERSION} (written by another advbn version: start the run afresh)",
            header.get("version").map(|v| format!(" version {v}")).unwrap_or_default()
        )));
    }
    let tensors: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    verify_tensors(&tensors, field("tensors")?).map_err(bad)?;
    compare_settings(field("settings")?, &all_settings(trainer.config(), settings)?, &shown.to_string())?;
    let position = read_position(field("position")?, trainer.config()).map_err(bad)?;
    let steps = field("optimizerSteps")?.as_u64().ok_or_else(|| bad("`optimizerSteps` is not a whole number".into()))?;
    let record = field("record")?.to_string();

    let mut weights = HashMap::new();
    let mut optim = Vec::new();
    for (name, t) in tensors {
        if let Some(n) = name.strip_prefix("model/") {
            weights.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix("optim/") {
            optim.push((n.to_string(), t));
        } else {
            return Err(bad(format!("unexpected entry {name}")));
        }
    }
    model.load_state_map(weights, &shown.to_string(), false)?;
    trainer.optimizer_mut().load_state(steps, &optim).map_err(|e| bad(format!("does not match this training run: {e}")))?;
    Ok(CheckpointInfo { position, record, optimizer_steps: steps })
}

/// CRC-32 of every tensor in name order: its name, dtype, dims and little-endian data.
fn checksum(tensors: &BTreeMap<String, Tensor>) -> Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    for (name, t) in tensors {
        hasher.update(name.as_bytes());
        hasher.update(t.dtype().as_str().as_bytes());
        for &d in t.dims() {
            hasher.update(&(d as u64).to_le_bytes());
        }
        let flat = t.flatten_all()?;
        match t.dtype() {
            DType::U8 => hasher.update(&flat.to_vec1::<u8>()?),
            DType::F64 => flat.to_vec1::<f64>()?.iter().for_each(|v| hasher.update(&v.to_le_bytes())),
            _ => flat.to_dtype(DType::F32)?.to_vec1::<f32>()?.iter().for_each(|v| hasher.update(&v.to_le_bytes())),
        }
    }
    Ok(hasher.finalize())
}

fn verify_tensors(tensors: &BTreeMap<String, Tensor>, listed: &Value) -> std::result::Result<(), String> {
    let names: Vec<&str> = listed.get("names").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let missing: Vec<&str> = names.iter().copied().filter(|n| !tensors.contains_key(*n)).collect();
    let extra: Vec<&str> = tensors.keys().map(String::as_str).filter(|n| !names.contains(n)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        let list = |v: &[&str]| if v.len() > 5 { format!("{} and {} more", v[..5].join(", "), v.len() - 5) } else { v.join(", ") };
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("{} listed tensor(s) missing ({})", missing.len(), list(&missing)));
        }
        if !extra.is_empty() {
            parts.push(format!("{} unlisted tensor(s) present ({})", extra.len(), list(&extra)));
        }
        return Err(format!("damaged: {}", parts.join("; ")));
    }
    let expected = listed.get("crc32").and_then(Value::as_u64).ok_or("the metadata has no tensor checksum")?;
    let actual = checksum(tensors).map_err(|e| e.to_string())?;
    if u64::from(actual) != expected {
        return Err(format!("damaged: the tensors' CRC-32 is {actual:#010x}, the checkpoint recorded {expected:#010x} (a changed or corrupted value)"));
    }
    Ok(())
}

fn read_position(position: &Value, config: &TrainConfig) -> std::result::Result<RunPosition, String> {
    let whole = |name: &str| position.get(name).and_then(Value::as_u64).map(|v| v as usize).ok_or(format!("`position.{name}` is not a whole number"));
    let (epoch, next_batch) = (whole("epoch")?, whole("nextBatch")?);
    // At most one step past the last: epoch == epochs with batch 0 is a finished run.
    if epoch > config.epochs || next_batch > config.steps_per_epoch || (epoch == config.epochs && next_batch > 0) {
        return Err(format!("position epoch {epoch}, batch {next_batch} lies outside this run ({} epochs of {} steps)", config.epochs, config.steps_per_epoch));
    }
    Ok(RunPosition { epoch, next_batch })
}

/// The caller's settings (a JSON object) and the trainer's, flat, by name.
fn all_settings(config: &TrainConfig, caller: &str) -> Result<Value> {
    let caller: Value = serde_json::from_str(caller).map_err(|e| Error::invalid_data(format!("the run settings are not JSON: {e}")))?;
    let Value::Object(mut all) = caller else {
        return Err(Error::invalid_data("the run settings must be a JSON object"));
    };
    for (name, value) in trainer_settings(config) {
        all.insert(name.to_string(), value);
    }
    Ok(Value::Object(all))
}

/// Every trainer setting that changes the run, under the option names users write.
fn trainer_settings(c: &TrainConfig) -> Vec<(&'static str, Value)> {
    let mut out = vec![("method", json!(c.method.name())), ("cut", json!(c.cut)), ("epochs", json!(c.epochs)), ("stepsPerEpoch", json!(c.steps_per_epoch))];
    out.push(("seed", json!(c.seed)));
    out.push(("lr", json!(c.lr)));
    match &c.optimizer {
        OptimizerConfig::Sgd { momentum, weight_decay, nesterov } => out.extend([
            ("optimizer.type", json!("sgd")),
            ("optimizer.momentum", json!(momentum)),
            ("optimizer.weightDecay", json!(weight_decay)),
            ("optimizer.nesterov", json!(nesterov)),
        ]),
        OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay } => out.extend([
            ("optimizer.type", json!("adamw")),
            ("optimizer.beta1", json!(beta1)),
            ("optimizer.beta2", json!(beta2)),
            ("optimizer.eps", json!(eps)),
            ("optimizer.weightDecay", json!(weight_decay)),
        ]),
    }
    match &c.schedule {
        Schedule::Constant => out.push(("schedule.type", json!("constant"))),
        Schedule::Step { milestones, gamma } => {
            out.extend([("schedule.type", json!("step")), ("schedule.milestones", json!(milestones)), ("schedule.gamma", json!(gamma))])
        }
        Schedule::Cosine { min_lr, warmup_epochs } => {
            out.extend([("schedule.type", json!("cosine")), ("schedule.minLr", json!(min_lr)), ("schedule.warmupEpochs", json!(warmup_epochs))])
        }
    }
    let a = &c.attack;
    out.extend([
        ("advbn.steps", json!(a.steps)),
        ("advbn.stepSize", json!(a.step_size)),
        ("advbn.epsilon", json!(a.epsilon)),
        ("advbn.reluClamp", json!(a.relu_clamp)),
    ]);
    let mixstyle = |m: &MixStyleConfig| [("mixstyle.p", json!(m.p)), ("mixstyle.alpha", json!(m.alpha)), ("mixstyle.mix", json!(format!("{:?}", m.mix)))];
    let dsu = |d: &DsuConfig| ("dsu.p", json!(d.p));
    match &c.method {
        Method::MixStyle(m) | Method::AdvBnMixStyle(m) => out.extend(mixstyle(m)),
        Method::Dsu(d) | Method::AdvBnDsu(d) => out.push(dsu(d)),
        Method::Erm | Method::AdvBn => {}
    }
    out
}

/// The first setting of this run that the checkpoint's differ in (or lack), as an
/// `InvalidOption` of `resume`. `epochs` may grow (a finished or running run is extended: the
/// epochs still to train follow the schedule of the new total), never shrink.
fn compare_settings(saved: &Value, this_run: &Value, shown: &str) -> Result<()> {
    let empty = Map::new();
    let saved = saved.as_object().unwrap_or(&empty);
    let this_run = this_run.as_object().unwrap_or(&empty);
    let show = |v: Option<&Value>| v.map_or_else(|| "(not set)".to_string(), Value::to_string);
    let differs = |name: &str, value: &Value| match (name, saved.get(name).and_then(Value::as_u64), value.as_u64()) {
        ("epochs", Some(before), Some(now)) => now < before,
        _ => saved.get(name) != Some(value),
    };
    let first =
        this_run.iter().find(|(name, value)| differs(name, value)).map(|(name, _)| name).or_else(|| saved.keys().find(|name| !this_run.contains_key(*name)));
    match first {
        None => Ok(()),
        Some(name) => {
            let why = if name == "epochs" { " (a run can be extended with more epochs, not shortened)" } else { "" };
            Err(Error::invalid_option(
                "resume",
                true,
                format!("cannot continue {shown}: it was made with {name}={}, this run has {name}={}{why}", show(saved.get(name)), show(this_run.get(name))),
            ))
        }
    }
}
