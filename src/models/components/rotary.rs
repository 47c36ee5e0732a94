//! Rotary position embeddings: the inverse frequencies transformers computes (default,
//! linear and llama3 scaling, explicit per-frequency divisors), and the cos/sin tables that
//! rotate the first `dim` channels of each head (all of them, or a fraction as in Phi).

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor, D};
use serde::Deserialize;

/// RoPE settings as transformers 4 (`rope_theta`, `rope_scaling`) or 5 (`rope_parameters`)
/// writes them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Rope {
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
pub struct RopeParams {
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
    fn theta(&self, p: &RopeParams) -> f32 {
        p.rope_theta.or(self.rope_theta).unwrap_or(10_000.0) as f32
    }

    /// `partial_rotary_factor` from the parameters object, if there.
    pub fn partial_factor(&self) -> Option<f64> {
        self.params().partial_rotary_factor
    }

    /// The rope type (`rope_type`, or the older `type`), if the parameters name one.
    pub fn kind(&self) -> Option<String> {
        let p = self.params();
        p.rope_type.or(p.legacy_type)
    }

    /// The inverse frequencies transformers computes (`ROPE_INIT_FUNCTIONS` in
    /// modeling_rope_utils.py) for `dim` rotary channels, in f32 and in the same order of
    /// operations. As there, `rope_scaling` wins over `rope_parameters`, and a theta inside
    /// them over the top-level `rope_theta`.
    pub fn inv_freq(&self, dim: usize, max_positions: usize) -> Result<Vec<f32>> {
        let p = self.params();
        let theta = self.theta(&p);
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
    fn need(&self, v: Option<f64>, name: &str) -> Result<f64> {
        v.ok_or_else(|| anyhow!("config.json: rope scaling needs \"{name}\""))
    }

    /// `_compute_llama3_parameters`: long wavelengths divided by `factor`, short ones kept,
    /// and a smooth blend between.
    fn llama3(&self, plain: impl Iterator<Item = f32>, max_pos: usize) -> Result<Vec<f32>> {
        let factor = self.need(self.factor, "factor")? as f32;
        let low = self.need(self.low_freq_factor, "low_freq_factor")? as f32;
        let high = self.need(self.high_freq_factor, "high_freq_factor")? as f32;
        let old = self.original_max_position_embeddings.unwrap_or(max_pos) as f32;
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
    pub fn longrope(
        &self,
        dim: usize,
        max_positions: usize,
        original_max: Option<usize>,
    ) -> Result<(Vec<f32>, LongRope)> {
        let p = self.params();
        let theta = self.theta(&p);
        let original = p.original_max_position_embeddings.or(original_max);
        let original = original.ok_or_else(|| {
            anyhow!("config.json: longrope needs original_max_position_embeddings")
        })?;
        let factor = p.factor.unwrap_or(max_positions as f64 / original as f64);
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
pub struct LongRope {
    /// The longest input that keeps the short frequencies.
    pub original_max: usize,
    /// The long-context frequencies, `dim / 2`.
    pub long: Vec<f32>,
    /// The factor on cos and sin.
    pub attention_factor: f32,
}

/// The rotating channels of a `head_dim`-channel head, `int(head_dim · fraction)` as
/// transformers computes them (its frequencies span these channels only); a fraction
/// outside [0, 1] is refused.
pub fn partial_dim(fraction: f64, head_dim: usize) -> Result<usize> {
    if !(0.0..=1.0).contains(&fraction) {
        bail!("config.json: partial_rotary_factor ({fraction}) must lie in [0, 1]");
    }
    Ok((fraction * head_dim as f64) as usize)
}

/// Divides each inverse frequency by its own divisor, as llama.cpp's `rope_freqs.weight`
/// (Llama 3.1-style scaling stored as a tensor) asks.
pub fn divide(inv_freq: &[f32], divisors: &[f32]) -> Result<Vec<f32>> {
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
pub struct RotarySpec {
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
    pub fn uniform(dim: usize, inv_freq: Vec<f32>, layers: usize) -> Self {
        Self {
            dim,
            tables: vec![inv_freq],
            layer_table: vec![0; layers],
            longrope: None,
        }
    }

    /// Whether prompts of `a` and `b` tokens rotate by the same tables (LongRoPE switches
    /// tables past its original context), so that they can share one packed pass.
    pub fn same_tables(&self, a: usize, b: usize) -> bool {
        match &self.longrope {
            Some(l) => (a > l.original_max) == (b > l.original_max),
            None => true,
        }
    }

    /// cos/sin tables for positions `0..seq_len`, one per distinct table (computed per
    /// pass, so a huge context length costs nothing).
    pub fn tables(&self, seq_len: usize, dtype: DType, dev: &Device) -> Result<Vec<RotaryTables>> {
        let new = |f: &[f32], scale| RotaryTables::new(self.dim, f, scale, seq_len, dtype, dev);
        match &self.longrope {
            Some(l) if seq_len > l.original_max => Ok(vec![new(&l.long, l.attention_factor)?]),
            Some(l) => Ok(vec![new(&self.tables[0], l.attention_factor)?]),
            None => self.tables.iter().map(|f| new(f, 1.0)).collect(),
        }
    }
}

/// cos/sin for positions `0..T` over the first `dim` channels.
#[derive(Debug, Clone)]
pub struct RotaryTables {
    dim: usize,
    cos: Tensor,
    sin: Tensor,
}

impl RotaryTables {
    /// The tables' rows at `positions` (u32), for prompts packed into one sequence.
    pub fn at(&self, positions: &Tensor) -> Result<Self> {
        Ok(Self {
            dim: self.dim,
            cos: self.cos.index_select(positions, 0)?,
            sin: self.sin.index_select(positions, 0)?,
        })
    }

    fn new(
        dim: usize,
        inv_freq: &[f32],
        scale: f32,
        seq_len: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let inv_freq = Tensor::from_vec(inv_freq.to_vec(), (1, inv_freq.len()), dev)?;
        let pos = Tensor::arange(0u32, seq_len as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((seq_len, 1))?;
        let freqs = pos.broadcast_mul(&inv_freq)?;
        let (mut cos, mut sin) = (freqs.cos()?, freqs.sin()?);
        if scale != 1.0 {
            (cos, sin) = ((cos * scale as f64)?, (sin * scale as f64)?);
        }
        Ok(Self {
            dim,
            cos: cos.to_dtype(dtype)?,
            sin: sin.to_dtype(dtype)?,
        })
    }

    /// [`apply`](Self::apply) in place on f32 values laid out `(B, T, heads, head_dim)` (a
    /// projection's output, before any split into heads), with the same arithmetic as
    /// candle's `rope`, so the result is the same to the bit; the rest of each head passes
    /// through untouched.
    pub fn apply_in_place(&self, x: &mut [f32], heads: usize, head_dim: usize) -> Result<()> {
        use rayon::prelude::*;
        let half = self.dim / 2;
        if half == 0 || x.is_empty() {
            return Ok(());
        }
        let table = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
        };
        let (cos, sin) = (table(&self.cos)?, table(&self.sin)?);
        let t = cos.len() / half;
        let width = heads * head_dim;
        if t == 0 || !x.len().is_multiple_of(width * t) || self.dim > head_dim {
            bail!(
                "rotary tables for {t} positions do not fit {} values of {heads} heads × {head_dim}",
                x.len()
            );
        }
        x.par_chunks_mut(width).enumerate().for_each(|(row, xs)| {
            let at = (row % t) * half;
            let (c, s) = (&cos[at..at + half], &sin[at..at + half]);
            for head in xs.chunks_mut(head_dim) {
                let (a, b) = head[..2 * half].split_at_mut(half);
                for i in 0..half {
                    let (x1, x2) = (a[i], b[i]);
                    a[i] = x1 * c[i] - x2 * s[i];
                    b[i] = x1 * s[i] + x2 * c[i];
                }
            }
        });
        Ok(())
    }

    /// Rotates (rotate-half) the first `dim` channels of `(B, H, T, hd)`, passing the rest
    /// through.
    pub fn apply(&self, xs: &Tensor) -> Result<Tensor> {
        let head_dim = xs.dim(D::Minus1)?;
        if self.dim == 0 {
            return Ok(xs.clone());
        }
        if self.dim == head_dim {
            return Ok(candle_nn::rotary_emb::rope(
                &xs.contiguous()?,
                &self.cos,
                &self.sin,
            )?);
        }
        let rot = xs.narrow(D::Minus1, 0, self.dim)?.contiguous()?;
        let rot = candle_nn::rotary_emb::rope(&rot, &self.cos, &self.sin)?;
        let pass = xs.narrow(D::Minus1, self.dim, head_dim - self.dim)?;
        Ok(Tensor::cat(&[&rot, &pass], D::Minus1)?)
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

    #[test]
    fn divisors_divide_each_frequency() {
        assert_eq!(divide(&[1.0, 0.5], &[2.0, 4.0]).unwrap(), [0.5, 0.125]);
        assert!(divide(&[1.0], &[1.0, 2.0]).is_err());
    }

    /// Partial rotary: at position 1 with frequency 1, the rotated pair (x0, x1) = (1, 0)
    /// becomes (cos 1, sin 1); the third channel passes through.
    #[test]
    fn partial_rotation_passes_the_rest_through() {
        let spec = RotarySpec::uniform(2, vec![1.0], 1);
        let t = &spec.tables(2, DType::F32, &Device::Cpu).unwrap()[0];
        let xs = Tensor::new(&[[[[1f32, 0.0, 7.0], [1.0, 0.0, 7.0]]]], &Device::Cpu).unwrap();
        let got: Vec<f32> = t
            .apply(&xs)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (c, s) = (1f32.cos(), 1f32.sin());
        assert_eq!(got, [1.0, 0.0, 7.0, c, s, 7.0]);
    }

    /// The in-place rotation on `(B, T, H, hd)` values equals candle's `rope` on the
    /// `(B, H, T, hd)` view to the bit, for whole and partial rotary and two sequences.
    #[test]
    fn in_place_rotation_is_candles_rope_to_the_bit() {
        let (b, t, h, hd) = (2, 5, 3, 8);
        let x: Vec<f32> = (0..b * t * h * hd)
            .map(|i| ((i * 7919 % 211) as f32 - 105.0) / 37.0)
            .collect();
        for dim in [8, 4] {
            let spec = RotarySpec::uniform(dim, vec![1.0, 0.3, 0.01, 0.002][..dim / 2].to_vec(), 1);
            let table = &spec.tables(t, DType::F32, &Device::Cpu).unwrap()[0];
            let mut got = x.clone();
            table.apply_in_place(&mut got, h, hd).unwrap();
            let heads = Tensor::from_vec(x.clone(), (b, t, h, hd), &Device::Cpu)
                .unwrap()
                .transpose(1, 2)
                .unwrap();
            let want: Vec<f32> = table
                .apply(&heads)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(got, want, "rotary dim {dim}");
            assert_ne!(got, x, "rotary dim {dim} rotated nothing");
        }
    }
}
