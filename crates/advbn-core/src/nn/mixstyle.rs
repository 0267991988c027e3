//! MixStyle (Zhou et al., ICLR 2021), as the reference code (KaiyangZhou/mixstyle-release):
//! in training, with probability p per batch, each instance's per-channel style (mean and
//! std over H, W) is mixed with another instance's:
//!   mu' = lambda * mu + (1 - lambda) * mu[perm],  sigma' likewise,  lambda ~ Beta(alpha, alpha)
//!   y = (x - mu) / sigma * sigma' + mu'
//! The statistics are detached (only the normalised content carries a gradient). Identity in
//! eval. Unlike AdvBN's batch statistics, these are per instance.
//!
//! Randomness is split from the arithmetic: `draw_mix` makes every random choice, `mix_styles`
//! applies one draw, so tests can pin lambda and the permutation.

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};

use crate::error::{check_option, Error, Result};

/// Added to the variance inside the square root (the reference's eps, shared by DSU).
pub const INSTANCE_EPS: f64 = 1e-6;

/// Whom each instance takes its partner style from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixPartner {
    /// A random permutation of the whole batch (the reference's "random").
    Random,
    /// The batch is two domains of equal size, first half then second half: each instance is
    /// mixed with a shuffled instance of the other half (the reference's "crossdomain").
    CrossDomain,
}

impl MixPartner {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "random" => Ok(MixPartner::Random),
            "crossdomain" => Ok(MixPartner::CrossDomain),
            other => Err(Error::invalid_option("mixstyle.mix", format!("{other:?}"), "expected \"random\" or \"crossdomain\"")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MixPartner::Random => "random",
            MixPartner::CrossDomain => "crossdomain",
        }
    }
}

/// MixStyle settings; defaults are the reference's (p 0.5, alpha 0.1, random partners).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixStyleConfig {
    /// Probability that a training batch is mixed at all.
    pub p: f64,
    /// Both parameters of the Beta distribution of lambda.
    pub alpha: f64,
    pub mix: MixPartner,
}

impl Default for MixStyleConfig {
    fn default() -> Self {
        Self { p: 0.5, alpha: 0.1, mix: MixPartner::Random }
    }
}

impl MixStyleConfig {
    pub fn validate(&self) -> Result<()> {
        check_option("mixstyle.p", self.p, (0.0..=1.0).contains(&self.p), "must be a probability in [0, 1]")?;
        check_option("mixstyle.alpha", self.alpha, self.alpha > 0.0, "must be a finite number > 0")
    }
}

/// The random choices of one mixed batch.
#[derive(Debug, Clone, PartialEq)]
pub struct MixDraw {
    /// Weight of each instance's own style, one per instance.
    pub lambda: Vec<f64>,
    /// Instance `i` takes its partner style from instance `perm[i]`.
    pub perm: Vec<usize>,
}

/// Per-instance mean and std over (H, W), each [N, C, 1, 1]: std = sqrt(unbiased var + eps),
/// as the references compute it with `x.var(dim=[2, 3])`.
pub fn instance_stats(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let (n, c, h, w) = x.dims4()?;
    if h * w < 2 {
        return Err(Error::invalid_data(format!("per-instance statistics need feature maps of at least 2 positions, got {h}x{w}")));
    }
    let flat = x.reshape((n, c, h * w))?;
    let mu = flat.mean_keepdim(2)?.reshape((n, c, 1, 1))?;
    let sigma = (flat.var_keepdim(2)? + INSTANCE_EPS)?.sqrt()?.reshape((n, c, 1, 1))?;
    Ok((mu, sigma))
}

/// Flips the batch coin and, if it lands on "mix", draws lambda (first) and the partners
/// (second), in the reference's order. `None`: this batch passes through unchanged.
pub fn draw_mix(cfg: &MixStyleConfig, batch: usize, rng: &mut ChaCha8Rng) -> Result<Option<MixDraw>> {
    if cfg.mix == MixPartner::CrossDomain && batch % 2 == 1 {
        // Checked before the coin so that a bad batch fails every time, not every other time.
        return Err(Error::invalid_data(format!("crossdomain MixStyle needs an even batch (two domains of equal size), got {batch}")));
    }
    if rng.gen::<f64>() >= cfg.p {
        return Ok(None);
    }
    let beta = Beta::new(cfg.alpha, cfg.alpha).map_err(|e| Error::invalid_option("mixstyle.alpha", cfg.alpha, e.to_string()))?;
    let lambda = (0..batch).map(|_| beta.sample(rng)).collect();
    let perm = match cfg.mix {
        MixPartner::Random => {
            let mut perm: Vec<usize> = (0..batch).collect();
            perm.shuffle(rng);
            perm
        }
        MixPartner::CrossDomain => {
            let half = batch / 2;
            let mut from_second: Vec<usize> = (half..batch).collect();
            let mut from_first: Vec<usize> = (0..half).collect();
            from_second.shuffle(rng);
            from_first.shuffle(rng);
            from_second.into_iter().chain(from_first).collect()
        }
    };
    Ok(Some(MixDraw { lambda, perm }))
}

/// Applies one draw to `x` [N, C, H, W].
pub fn mix_styles(x: &Tensor, draw: &MixDraw) -> Result<Tensor> {
    let n = x.dim(0)?;
    if draw.lambda.len() != n || draw.perm.len() != n || draw.perm.iter().any(|&i| i >= n) {
        return Err(Error::invalid_data(format!(
            "MixStyle draw for {} / {} instances (partners up to {:?}) does not fit a batch of {n}",
            draw.lambda.len(),
            draw.perm.len(),
            draw.perm.iter().max()
        )));
    }
    let (mu, sigma) = instance_stats(&x.detach())?;
    let normed = x.broadcast_sub(&mu)?.broadcast_div(&sigma)?;
    let perm = Tensor::from_vec(draw.perm.iter().map(|&i| i as u32).collect::<Vec<_>>(), n, x.device())?;
    let lambda = Tensor::from_vec(draw.lambda.clone(), (n, 1, 1, 1), x.device())?.to_dtype(x.dtype())?;
    let rest = lambda.affine(-1.0, 1.0)?;
    // The reference's form, so that lambda = 1 gives back each instance's own style exactly.
    let mix = |own: &Tensor| own.broadcast_mul(&lambda)?.add(&own.index_select(&perm, 0)?.broadcast_mul(&rest)?);
    Ok(normed.broadcast_mul(&mix(&sigma)?)?.broadcast_add(&mix(&mu)?)?)
}

/// MixStyle as a layer: identity when `train` is false or the batch coin says so.
pub fn mixstyle(x: &Tensor, cfg: &MixStyleConfig, train: bool, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if !train {
        return Ok(x.clone());
    }
    match draw_mix(cfg, x.dim(0)?, rng)? {
        Some(draw) => mix_styles(x, &draw),
        None => Ok(x.clone()),
    }
}
