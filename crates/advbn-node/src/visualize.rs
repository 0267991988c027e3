//! `visualizeFeatures`: the decoder picture of AdvBN-perturbed features, as PNG bytes.

use advbn_core::data::corruptions::encode_png;
use advbn_core::visualize::{visualize, VisualizeConfig};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::batch::{NativeBatch, SharedBatch};
use crate::errors::{task, Outcome, Typed, Work};
use crate::executor;
use crate::model::{with_model, NativeModel, SharedModel};

#[napi(object)]
pub struct VisualizeOptions {
    pub cut: u32,
    pub steps: u32,
    pub batch_size: u32,
    pub lr: f64,
    pub tv_weight: f64,
    pub strengths: Vec<f64>,
    pub rows: u32,
    pub seed: u32,
}

#[napi(object)]
pub struct VisualizeResult {
    /** The picture as PNG: rows of input, reconstruction, decoded perturbed features per strength. */
    pub png: Buffer,
    /** Decoder training loss per step. */
    pub losses: Vec<f64>,
}

pub struct VisualizeTask {
    model: SharedModel,
    device: String,
    batch: SharedBatch,
    config: VisualizeConfig,
}

impl Work for VisualizeTask {
    type Output = (Vec<u8>, Vec<f64>);
    type JsValue = VisualizeResult;

    fn compute(&mut self) -> Outcome<Self::Output> {
        let (model, batch, config) = (self.model.clone(), self.batch.clone(), self.config.clone());
        executor::run_for(&self.device, move || {
            let (images, labels) = batch.tensors()?;
            let (picture, losses) = with_model(&model, |m| Ok(visualize(m, &images, &labels, &config)?))?;
            Ok((encode_png(&picture)?, losses))
        })
    }

    fn resolve(&mut self, _env: Env, (png, losses): Self::Output) -> Result<VisualizeResult> {
        Ok(VisualizeResult { png: png.into(), losses })
    }
}

/// Trains a decoder that inverts `model`'s encoder at the cut on `batch` (images in [0, 1]) and
/// renders AdvBN-perturbed features at increasing strength.
#[napi(ts_return_type = "Promise<VisualizeResult>")]
pub fn visualize_features(model: &NativeModel, batch: &NativeBatch, options: VisualizeOptions) -> AsyncTask<Typed<VisualizeTask>> {
    task(VisualizeTask {
        model: model.inner.clone(),
        device: model.device(),
        batch: batch.shared(),
        config: VisualizeConfig {
            cut: options.cut as usize,
            steps: options.steps as usize,
            batch_size: options.batch_size as usize,
            lr: options.lr,
            tv_weight: options.tv_weight,
            strengths: options.strengths,
            rows: options.rows as usize,
            seed: options.seed as u64,
        },
    })
}
