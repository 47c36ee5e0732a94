//! Additive attention masks: causal, and causal within a sliding window, per layer.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

/// A lower-triangular additive mask: 0 on and below the diagonal, −∞ above.
pub fn causal_mask(seq_len: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..seq_len)
        .flat_map(|i| (0..seq_len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(mask, (seq_len, seq_len), device)?.to_dtype(dtype)?)
}

/// [`causal_mask`] plus transformers' `sliding_window_overlay`: query i sees keys j with
/// `i - window < j <= i`.
pub fn sliding_mask(seq_len: usize, window: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let band: Vec<f32> = (0..seq_len)
        .flat_map(|i| {
            (0..seq_len).map(move |j| {
                if i >= j + window {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    let band = Tensor::from_vec(band, (seq_len, seq_len), dev)?.to_dtype(dtype)?;
    Ok(causal_mask(seq_len, dtype, dev)?.broadcast_add(&band)?)
}

/// The mask of each layer, given its sliding window (`None`: full causal attention). Each
/// distinct mask is built once; a window at least as long as the input is the causal mask.
pub fn layer_masks(
    windows: &[Option<usize>],
    seq_len: usize,
    dtype: DType,
    dev: &Device,
) -> Result<Vec<Tensor>> {
    let full = causal_mask(seq_len, dtype, dev)?;
    let mut built: Vec<(usize, Tensor)> = Vec::new();
    windows
        .iter()
        .map(|w| match w {
            Some(w) if *w < seq_len => {
                if let Some((_, m)) = built.iter().find(|(b, _)| b == w) {
                    return Ok(m.clone());
                }
                let m = sliding_mask(seq_len, *w, dtype, dev)?;
                built.push((*w, m.clone()));
                Ok(m)
            }
            _ => Ok(full.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(m: &Tensor) -> Vec<Vec<u8>> {
        let m: Vec<Vec<f32>> = m.to_vec2().unwrap();
        m.iter()
            .map(|r| r.iter().map(|&v| (v == 0.0) as u8).collect())
            .collect()
    }

    #[test]
    fn sliding_mask_keeps_the_last_window_keys() {
        let m = sliding_mask(4, 2, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            seen(&m),
            [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
        );
    }

    #[test]
    fn each_layer_gets_its_own_window() {
        let masks = layer_masks(&[None, Some(2), Some(9)], 3, DType::F32, &Device::Cpu).unwrap();
        let causal = [[1, 0, 0], [1, 1, 0], [1, 1, 1]];
        assert_eq!(seen(&masks[0]), causal);
        assert_eq!(seen(&masks[1]), [[1, 0, 0], [1, 1, 0], [0, 1, 1]]);
        assert_eq!(seen(&masks[2]), causal);
    }
}
