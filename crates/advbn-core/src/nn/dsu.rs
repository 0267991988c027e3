//! DSU, Domain Shifts with Uncertainty (Li et al., ICLR 2022), as the reference code
//! (lixiaotong97/DSU): in training, with probability p per batch, each instance's per-channel
//! mean and std over (H, W) are resampled with Gaussian noise scaled by how much that statistic
//! varies across the batch:
//!   mu'    = mu    + eps_mu    * sqrt(var_over_batch(mu)    + 1e-6),  eps_mu    ~ N(0, 1)
//!   sigma' = sigma + eps_sigma * sqrt(var_over_batch(sigma) + 1e-6),  eps_sigma ~ N(0, 1)
//!   y = (x - mu) / sigma * sigma' + mu'
//! with one eps per instance and channel and unbiased variances throughout. Unlike MixStyle,
//! the reference keeps the statistics in the graph (not detached). Identity in eval.
//!
//! As in `mixstyle`, `draw_noise` makes the random choices and `resample_stats` applies them.

use candle_core::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::mixstyle::{instance_stats, INSTANCE_EPS};
use crate::error::{check_option, Error, Result};

/// DSU settings; the default is the reference's p = 0.5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DsuConfig {
    /// Probability that a training batch is perturbed at all.
    pub p: f64,
}

impl Default for DsuConfig {
    fn default() -> Self {
        Self { p: 0.5 }
    }
}

impl DsuConfig {
    pub fn validate(&self) -> Result<()> {
        check_option("dsu.p", self.p, (0.0..=1.0).contains(&self.p), "must be a probability in [0, 1]")
    }
}

/// The standard-normal draws of one perturbed batch, row-major [N, C] each.
#[derive(Debug, Clone, PartialEq)]
pub struct DsuDraw {
    pub eps_mu: Vec<f64>,
    pub eps_sigma: Vec<f64>,
}

/// Flips the batch coin and, if it lands on "perturb", draws the noise of the means (first)
/// and of the stds (second), in the reference's order. `None`: the batch passes unchanged.
pub fn draw_noise(cfg: &DsuConfig, batch: usize, channels: usize, rng: &mut ChaCha8Rng) -> Result<Option<DsuDraw>> {
    if batch < 2 {
        // The spread over the batch is undefined for one instance (the reference gets NaN).
        // Checked before the coin so that the error does not come and go.
        return Err(Error::invalid_data(format!("DSU needs a batch of at least 2 instances, got {batch}")));
    }
    if rng.gen::<f64>() >= cfg.p {
        return Ok(None);
    }
    let mut normal = |count: usize| -> Vec<f64> { (0..count).map(|_| rng.sample(StandardNormal)).collect() };
    let eps_mu = normal(batch * channels);
    let eps_sigma = normal(batch * channels);
    Ok(Some(DsuDraw { eps_mu, eps_sigma }))
}

/// Applies one draw to `x` [N, C, H, W].
pub fn resample_stats(x: &Tensor, draw: &DsuDraw) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    if n < 2 || draw.eps_mu.len() != n * c || draw.eps_sigma.len() != n * c {
        return Err(Error::invalid_data(format!(
            "DSU draw of {} / {} values does not fit a batch of {n} x {c} channels (needs N >= 2)",
            draw.eps_mu.len(),
            draw.eps_sigma.len()
        )));
    }
    let (mu, sigma) = instance_stats(x)?;
    let noise = |eps: &[f64]| Tensor::from_vec(eps.to_vec(), (n, c, 1, 1), x.device())?.to_dtype(x.dtype());
    let resample = |stat: &Tensor, eps: &[f64]| -> Result<Tensor> {
        let spread = (stat.var_keepdim(0)? + INSTANCE_EPS)?.sqrt()?;
        Ok(stat.add(&noise(eps)?.broadcast_mul(&spread)?)?)
    };
    let mu_new = resample(&mu, &draw.eps_mu)?;
    let sigma_new = resample(&sigma, &draw.eps_sigma)?;
    Ok(x.broadcast_sub(&mu)?.broadcast_div(&sigma)?.broadcast_mul(&sigma_new)?.broadcast_add(&mu_new)?)
}

/// DSU as a layer: identity when `train` is false or the batch coin says so.
pub fn dsu(x: &Tensor, cfg: &DsuConfig, train: bool, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if !train {
        return Ok(x.clone());
    }
    let (n, c, _, _) = x.dims4()?;
    match draw_noise(cfg, n, c, rng)? {
        Some(draw) => resample_stats(x, &draw),
        None => Ok(x.clone()),
    }
}
