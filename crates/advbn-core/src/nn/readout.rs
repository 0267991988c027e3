//! Numbers read off tensors, the one definition each for training, attack, evaluation and
//! visualisation: a rank-0 tensor (a loss) as f64, and the top-1 hits of a batch of logits.

use candle_core::{DType, Tensor};

/// A rank-0 tensor as f64.
pub(crate) fn scalar(t: &Tensor) -> candle_core::Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// Number of rows whose arg-max equals the label.
pub fn count_correct(logits: &Tensor, labels: &Tensor) -> candle_core::Result<usize> {
    let predicted = logits.argmax(1)?;
    let hits = predicted.eq(&labels.to_dtype(predicted.dtype())?)?;
    Ok(hits.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()? as usize)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn reads_losses_and_counts_hits() {
        let loss = Tensor::new(0.25f32, &Device::Cpu).unwrap();
        assert_eq!(scalar(&loss).unwrap(), 0.25);
        let logits = Tensor::new(&[[0.1f32, 0.9], [0.8, 0.2], [0.3, 0.7]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[1u32, 1, 1], &Device::Cpu).unwrap();
        assert_eq!(count_correct(&logits, &labels).unwrap(), 2);
    }
}
