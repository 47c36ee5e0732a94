//! Attention masks: which keys each query sees, as one contiguous span per query (causal,
//! causal within a sliding window, and each prompt of a packed batch within its own
//! segment). The attention operation's kernel reads the spans ([`Mask::spans`]); its
//! tensor form reads the additive `(T, T)` mask built from the same spans
//! ([`Mask::additive`]).

use std::sync::{Arc, OnceLock};

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use crate::kernels::attention::Span;

/// The keys each query position attends to, `lo..hi` per position.
#[derive(Debug, Clone)]
pub(crate) struct Mask {
    spans: Arc<[Span]>,
    /// The packed prompts' lengths, in order.
    segments: Arc<[usize]>,
    dtype: DType,
    device: Device,
    /// The additive form, built the first time the dense path asks for it.
    dense: Arc<OnceLock<Tensor>>,
}

impl Mask {
    /// Prompts of `segments` tokens each, packed one after the other: each position sees
    /// the positions of its own prompt up to itself, and within `window` (transformers'
    /// sliding window: query i sees keys j with `i - window < j <= i`) when given.
    pub(crate) fn packed(
        segments: &[usize],
        window: Option<usize>,
        dtype: DType,
        dev: &Device,
    ) -> Self {
        let mut spans = Vec::with_capacity(segments.iter().sum());
        let mut start = 0u32;
        for &len in segments {
            for i in start..start + len as u32 {
                let lo = match window {
                    Some(w) => start.max((i + 1).saturating_sub(w as u32)),
                    None => start,
                };
                spans.push((lo, i + 1));
            }
            start += len as u32;
        }
        Self {
            spans: spans.into(),
            segments: segments.into(),
            dtype,
            device: dev.clone(),
            dense: Arc::new(OnceLock::new()),
        }
    }

    /// One prompt of `seq_len` tokens, plain causal attention (the tests' mask).
    #[cfg(test)]
    pub fn causal(seq_len: usize, dtype: DType, dev: &Device) -> Self {
        Self::packed(&[seq_len], None, dtype, dev)
    }

    /// One span per position.
    pub(crate) fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// The packed prompts' lengths, in order.
    pub(crate) fn segments(&self) -> &[usize] {
        &self.segments
    }

    /// The additive `(T, T)` mask: 0 where a query sees a key, −∞ elsewhere.
    pub(crate) fn additive(&self) -> Result<Tensor> {
        if let Some(t) = self.dense.get() {
            return Ok(t.clone());
        }
        let n = self.spans.len();
        let mask: Vec<f32> = self
            .spans
            .iter()
            .flat_map(|&(lo, hi)| {
                (0..n as u32).map(move |j| match (lo..hi).contains(&j) {
                    true => 0.0,
                    false => f32::NEG_INFINITY,
                })
            })
            .collect();
        let t = Tensor::from_vec(mask, (n, n), &self.device)?.to_dtype(self.dtype)?;
        Ok(self.dense.get_or_init(|| t).clone())
    }
}

/// The mask of each layer, given its sliding window (`None`: full causal attention), for
/// prompts of `segments` tokens packed into one sequence. Each distinct mask is built once;
/// a window at least as long as the longest prompt is the causal mask.
pub(crate) fn layer_masks(
    windows: &[Option<usize>],
    segments: &[usize],
    dtype: DType,
    dev: &Device,
) -> Vec<Mask> {
    let longest = segments.iter().copied().max().unwrap_or(0);
    let full = Mask::packed(segments, None, dtype, dev);
    let mut built: Vec<(usize, Mask)> = Vec::new();
    windows
        .iter()
        .map(|w| match w {
            Some(w) if *w < longest => {
                if let Some((_, m)) = built.iter().find(|(b, _)| b == w) {
                    return m.clone();
                }
                let m = Mask::packed(segments, Some(*w), dtype, dev);
                built.push((*w, m.clone()));
                m
            }
            _ => full.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(m: &Mask) -> Vec<Vec<u8>> {
        let m: Vec<Vec<f32>> = m.additive().unwrap().to_vec2().unwrap();
        m.iter()
            .map(|r| r.iter().map(|&v| (v == 0.0) as u8).collect())
            .collect()
    }

    #[test]
    fn sliding_mask_keeps_the_last_window_keys() {
        let m = Mask::packed(&[4], Some(2), DType::F32, &Device::Cpu);
        assert_eq!(
            seen(&m),
            [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
        );
    }

    #[test]
    fn each_layer_gets_its_own_window() {
        let masks = layer_masks(&[None, Some(2), Some(9)], &[3], DType::F32, &Device::Cpu);
        let causal = [[1, 0, 0], [1, 1, 0], [1, 1, 1]];
        assert_eq!(seen(&masks[0]), causal);
        assert_eq!(seen(&masks[1]), [[1, 0, 0], [1, 1, 0], [0, 1, 1]]);
        assert_eq!(seen(&masks[2]), causal);
    }

    /// Packed prompts see only their own segment, windowed within it.
    #[test]
    fn packed_prompts_see_only_themselves() {
        let m = Mask::packed(&[2, 3], Some(2), DType::F32, &Device::Cpu);
        assert_eq!(m.spans(), [(0, 1), (0, 2), (2, 3), (2, 4), (3, 5)]);
        assert_eq!(
            seen(&m),
            [
                [1, 0, 0, 0, 0],
                [1, 1, 0, 0, 0],
                [0, 0, 1, 0, 0],
                [0, 0, 1, 1, 0],
                [0, 0, 0, 1, 1]
            ]
        );
    }
}
