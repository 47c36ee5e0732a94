//! Rotary position embeddings: the inverse frequencies transformers computes (default,
//! linear and llama3 scaling, explicit per-frequency divisors), and the cos/sin tables
//! ([`RotaryTables`], the compute seam's rotary operation) that rotate the first `dim`
//! channels of each head (all of them, or a fraction as in Phi).

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device};
use serde::Deserialize;

pub(crate) use crate::ops::rotary::RotaryTables;

/// RoPE settings as transformers 4 (`rope_theta`, `rope_scaling`) or 5 (`rope_parameters`)
/// writes them.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Rope {
    /// The base.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// transformers 4's scaling object.
    #[serde(default)]
    pub rope_scaling: Option<RopeParams>,
    /// transformers 5's parameters object.
    #[serde(default)]
    pub rope_parameters: Option<RopeParams>,
}

/// One `rope_scaling` / `rope_parameters` object.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RopeParams {
    /// "default", "linear" or "llama3".
    #[serde(default)]
    pub rope_type: Option<String>,
    /// The key older configs use instead of `rope_type`.
    #[serde(default, rename = "type")]
    pub legacy_type: Option<String>,
    /// A base that wins over the top-level one.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Scaling factor.
    #[serde(default)]
    pub factor: Option<f64>,
    /// llama3's low-frequency factor.
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    /// llama3's high-frequency factor.
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    /// llama3's original context length.
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
    /// The fraction of each head that rotates (transformers 5 keeps it here).
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    /// LongRoPE's per-frequency divisors up to the original context.
    #[serde(default)]
    pub short_factor: Option<Vec<f64>>,
    /// LongRoPE's per-frequency divisors beyond it.
    #[serde(default)]
    pub long_factor: Option<Vec<f64>>,
    /// LongRoPE's factor on cos and sin, when given.
    #[serde(default)]
    pub attention_factor: Option<f64>,
}

/// The rope types [`Rope::inv_freq`] implements.
const ROPE_TYPES: &str = "default, linear, llama3";

impl Rope {
    /// The parameters object in force (`rope_scaling` wins over `rope_parameters`, as in
    /// transformers), empty when there is none.
    fn params(&self) -> RopeParams {
        let p = self.rope_scaling.as_ref().or(self.rope_parameters.as_ref());
        p.cloned().unwrap_or_default()
    }

    /// The base: the parameters' own, else the top-level `rope_theta`, else 10000.
    fn theta(&self, p: &RopeParams) -> Result<f32> {
        let theta = p.rope_theta.or(self.rope_theta).unwrap_or(10_000.0);
        match (theta as f32).is_finite() && theta > 0.0 {
            true => Ok(theta as f32),
            false => {
                bail!("config.json: rope_theta is {theta}; it must be a positive finite number")
            }
        }
    }

    /// `partial_rotary_factor` from the parameters object, if there.
    pub(crate) fn partial_factor(&self) -> Option<f64> {
        self.params().partial_rotary_factor
    }

    /// The rope type (`rope_type`, or the older `type`), if the parameters name one.
    pub(crate) fn kind(&self) -> Option<String> {
        let p = self.params();
        p.rope_type.or(p.legacy_type)
    }

    /// The inverse frequencies transformers computes (`ROPE_INIT_FUNCTIONS` in
    /// modeling_rope_utils.py) for `dim` rotary channels, in f32 and in the same order of
    /// operations. As there, `rope_scaling` wins over `rope_parameters`, and a theta inside
    /// them over the top-level `rope_theta`.
    pub(crate) fn inv_freq(&self, dim: usize, max_positions: usize) -> Result<Vec<f32>> {
        let p = self.params();
        let theta = self.theta(&p)?;
        let plain = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / theta.powf(i as f32 / dim as f32));
        match self.kind().as_deref().unwrap_or("default") {
            "default" => Ok(plain.collect()),
            "linear" => {
                let factor = p.need(p.factor, "factor")? as f32;
                Ok(plain.map(|f| f / factor).collect())
            }
            "llama3" => p.llama3(plain, max_positions),
            other => bail!(
                "config.json: rope_type \"{other}\" is not supported; supported: {ROPE_TYPES}"
            ),
        }
    }
}

impl RopeParams {
    /// A scaling parameter the rope type needs, which must be a positive finite number.
    fn need(&self, v: Option<f64>, name: &str) -> Result<f64> {
        match v {
            None => bail!("config.json: rope scaling needs \"{name}\""),
            Some(v) if !((v as f32).is_finite() && v > 0.0) => {
                bail!("config.json: rope scaling's {name} is {v}; it must be a positive finite number")
            }
            Some(v) => Ok(v),
        }
    }

    /// `_compute_llama3_parameters`: long wavelengths divided by `factor`, short ones kept,
    /// and a smooth blend between.
    fn llama3(&self, plain: impl Iterator<Item = f32>, max_pos: usize) -> Result<Vec<f32>> {
        let factor = self.need(self.factor, "factor")? as f32;
        let low = self.need(self.low_freq_factor, "low_freq_factor")? as f32;
        let high = self.need(self.high_freq_factor, "high_freq_factor")? as f32;
        if high <= low {
            bail!("config.json: rope scaling's high_freq_factor ({high}) must exceed low_freq_factor ({low})");
        }
        let old = match self.original_max_position_embeddings.unwrap_or(max_pos) {
            0 => bail!("config.json: rope scaling's original_max_position_embeddings is 0"),
            old => old as f32,
        };
        let (low_wavelen, high_wavelen) = (old / low, old / high);
        let scale = |f: f32| {
            let wavelen = 2.0 * std::f32::consts::PI / f;
            if wavelen > low_wavelen {
                f / factor
            } else if wavelen < high_wavelen {
                f
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            }
        };
        Ok(plain.map(scale).collect())
    }
}

impl Rope {
    /// `_compute_longrope_parameters` for `dim` rotary channels: the short-context
    /// frequencies, and the [`LongRope`] switch to the long ones. `original_max` is the
    /// top-level `original_max_position_embeddings`, which the parameters' own wins over.
    pub(crate) fn longrope(
        &self,
        dim: usize,
        max_positions: usize,
        original_max: Option<usize>,
    ) -> Result<(Vec<f32>, LongRope)> {
        let p = self.params();
        let theta = self.theta(&p)?;
        let original = p.original_max_position_embeddings.or(original_max);
        let original = original.ok_or_else(|| {
            anyhow!("config.json: longrope needs original_max_position_embeddings")
        })?;
        let factor = match p.factor {
            Some(f) => p.need(Some(f), "factor")?,
            None => max_positions as f64 / original as f64,
        };
        let attention_factor = match (p.attention_factor, factor <= 1.0) {
            (Some(a), _) => a,
            (None, true) => 1.0,
            (None, false) => (1.0 + factor.ln() / (original as f64).ln()).sqrt(),
        };
        let freqs = |name: &str, ext: &Option<Vec<f64>>| -> Result<Vec<f32>> {
            let ext = ext
                .as_ref()
                .ok_or_else(|| anyhow!("config.json: longrope needs \"{name}\""))?;
            if ext.len() != dim / 2 {
                bail!(
                    "config.json: longrope's {name} has {} entries for {} rotary frequencies",
                    ext.len(),
                    dim / 2
                );
            }
            let shape = |i: usize| i as f32 / dim as f32;
            Ok((0..dim)
                .step_by(2)
                .zip(ext)
                .map(|(i, &e)| 1.0 / (e as f32 * theta.powf(shape(i))))
                .collect())
        };
        let long = LongRope {
            original_max: original,
            long: freqs("long_factor", &p.long_factor)?,
            attention_factor: attention_factor as f32,
        };
        Ok((freqs("short_factor", &p.short_factor)?, long))
    }
}

/// LongRoPE (Phi-3 128k): inputs longer than `original_max` rotate with the `long`
/// frequencies instead, and cos and sin are multiplied by `attention_factor` at any length.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LongRope {
    /// The longest input that keeps the short frequencies.
    pub original_max: usize,
    /// The long-context frequencies, `dim / 2`.
    pub long: Vec<f32>,
    /// The factor on cos and sin.
    pub attention_factor: f32,
}

/// The rotating channels of a `head_dim`-channel head, `int(head_dim · fraction)` as
/// transformers computes them (its frequencies span these channels only); a fraction
/// outside (0, 1] is refused.
pub(crate) fn partial_dim(fraction: f64, head_dim: usize) -> Result<usize> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        bail!("config.json: partial_rotary_factor ({fraction}) must lie in (0, 1]");
    }
    Ok((fraction * head_dim as f64) as usize)
}

/// Divides each inverse frequency by its own divisor, as llama.cpp's `rope_freqs.weight`
/// (Llama 3.1-style scaling stored as a tensor) asks.
pub(crate) fn divide(inv_freq: &[f32], divisors: &[f32]) -> Result<Vec<f32>> {
    if inv_freq.len() != divisors.len() {
        bail!(
            "{} rotary frequency divisors for {} frequencies",
            divisors.len(),
            inv_freq.len()
        );
    }
    Ok(inv_freq.iter().zip(divisors).map(|(f, d)| f / d).collect())
}

/// Rotary settings of a whole model, resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RotarySpec {
    /// Channels of each head that rotate (the first `dim`); the rest pass through.
    pub dim: usize,
    /// Distinct inverse-frequency tables, `dim / 2` each.
    pub tables: Vec<Vec<f32>>,
    /// Per layer, the index of its table (models with a per-layer base have several).
    pub layer_table: Vec<usize>,
    /// LongRoPE's switch to other frequencies on long inputs (one table only).
    pub longrope: Option<LongRope>,
}

impl RotarySpec {
    /// One table for all `layers`.
    pub(crate) fn uniform(dim: usize, inv_freq: Vec<f32>, layers: usize) -> Self {
        Self {
            dim,
            tables: vec![inv_freq],
            layer_table: vec![0; layers],
            longrope: None,
        }
    }

    /// Refuses rotary settings the forward pass cannot use: a rotating dimension of 0, odd
    /// or wider than the head, a table of another length, or a frequency that is not
    /// positive and finite (`rope_theta` ≤ 0 or too large for f32, a scaling factor ≤ 0).
    pub(crate) fn check(&self, head_dim: usize, layers: usize) -> Result<()> {
        let dim = self.dim;
        if dim == 0 || !dim.is_multiple_of(2) || dim > head_dim {
            bail!("config.json: {dim} rotating channels per head of {head_dim}; rotary embeddings need an even number, at least 2 and at most the head size (partial_rotary_factor)");
        }
        if self.layer_table.len() != layers
            || self.layer_table.iter().any(|&t| t >= self.tables.len())
        {
            bail!("config.json: rotary tables do not cover the {layers} layers");
        }
        let long = self.longrope.iter().map(|l| &l.long);
        for table in self.tables.iter().chain(long) {
            if table.len() != dim / 2 {
                bail!(
                    "config.json: {} rotary frequencies for {dim} rotating channels",
                    table.len()
                );
            }
            if let Some(f) = table.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
                bail!("config.json: a rotary frequency is {f}; rope_theta and the rope scaling factors must be positive and finite");
            }
        }
        if let Some(l) = &self.longrope {
            let a = l.attention_factor;
            if l.original_max == 0 || !(a.is_finite() && a > 0.0) {
                bail!("config.json: longrope needs a positive original_max_position_embeddings ({}) and attention_factor ({a})", l.original_max);
            }
        }
        Ok(())
    }

    /// Whether prompts of `a` and `b` tokens rotate by the same tables (LongRoPE switches
    /// tables past its original context), so that they can share one packed pass.
    pub(crate) fn same_tables(&self, a: usize, b: usize) -> bool {
        match &self.longrope {
            Some(l) => (a > l.original_max) == (b > l.original_max),
            None => true,
        }
    }

    /// cos/sin tables for positions `0..seq_len`, one per distinct table (computed per
    /// pass, so a huge context length costs nothing).
    pub(crate) fn tables(
        &self,
        seq_len: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Vec<RotaryTables>> {
        let new = |f: &[f32], scale| RotaryTables::new(self.dim, f, scale, seq_len, dtype, dev);
        match &self.longrope {
            Some(l) if seq_len > l.original_max => Ok(vec![new(&l.long, l.attention_factor)?]),
            Some(l) => Ok(vec![new(&self.tables[0], l.attention_factor)?]),
            None => self.tables.iter().map(|f| new(f, 1.0)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(json: serde_json::Value) -> Rope {
        serde_json::from_value(json).unwrap()
    }

    /// llama-tiny's settings; the expected values are transformers' `inv_freq` (f32).
    #[test]
    fn llama3_inv_freq_matches_transformers() {
        let r = rope(serde_json::json!({"rope_theta": 10000.0, "rope_scaling": {
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 16}}));
        let want = [0.576_056_36f32, 0.0125, 0.00125, 0.000125];
        assert_eq!(r.inv_freq(8, 64).unwrap(), want);
    }

    /// Older configs spell the type `type`; a theta inside the parameters wins.
    #[test]
    fn linear_scaling_and_theta_precedence() {
        let r = rope(serde_json::json!({"rope_theta": 1.0,
            "rope_parameters": {"type": "linear", "factor": 2.0, "rope_theta": 10000.0}}));
        assert_eq!(r.inv_freq(4, 64).unwrap(), [0.5, 0.005]);
    }

    /// A base or scaling factor that is not a positive finite number (in f32, where the
    /// tables are computed) is refused by name, before any table is built.
    #[test]
    fn bad_bases_and_factors_are_refused_by_name() {
        for theta in [0.0, -1.0, 1e39] {
            let err = rope(serde_json::json!({"rope_theta": theta}))
                .inv_freq(4, 64)
                .unwrap_err();
            assert!(err.to_string().contains("rope_theta is"), "{err}");
        }
        let llama3 = |factor: f64, low: f64, high: f64| {
            rope(
                serde_json::json!({"rope_scaling": {"rope_type": "llama3", "factor": factor,
                "low_freq_factor": low, "high_freq_factor": high}}),
            )
            .inv_freq(4, 64)
        };
        assert!(llama3(8.0, 1.0, 4.0).is_ok());
        for (bad, want) in [
            (llama3(0.0, 1.0, 4.0), "factor is 0"),
            (llama3(8.0, -1.0, 4.0), "low_freq_factor is -1"),
            (llama3(8.0, 4.0, 4.0), "must exceed low_freq_factor"),
        ] {
            let err = bad.unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        assert!(partial_dim(0.0, 8).is_err() && partial_dim(1.5, 8).is_err());
        assert_eq!(partial_dim(1.0, 8).unwrap(), 8);
    }

    #[test]
    fn divisors_divide_each_frequency() {
        assert_eq!(divide(&[1.0, 0.5], &[2.0, 4.0]).unwrap(), [0.5, 0.125]);
        assert!(divide(&[1.0], &[1.0, 2.0]).is_err());
    }
}
