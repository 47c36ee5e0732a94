//! A transformer block: attention and MLP joined to the residual stream in one of four
//! layouts.

use anyhow::Result;
use candle_core::Tensor;

use super::attention::{Attention, AttentionNames};
use super::mlp::{Mlp, MlpNames};
use super::norm::{Norm, NormSpec};
use super::vars::Vars;
use crate::ops::mask::Mask;
use crate::ops::rotary::RotaryTables;

/// How a block joins its branches to the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `h = x + attn(n₁(x))`, then `h + mlp(n₂(h))` (Llama, GPT-2).
    Sequential,
    /// `x + attn(n₁(x)) + mlp(n₁(x))`, one norm for both (Phi).
    Parallel,
    /// `x + attn(n₁(x)) + mlp(n₂(x))`, each branch with its own norm (GPT-NeoX, Pythia).
    ParallelTwoNorms,
    /// `h = x + p₁(attn(n₁(x)))`, then `h + p₂(mlp(n₂(h)))` (Gemma 2/3).
    Sandwich,
    /// `h = x + p₁(attn(x))`, then `h + p₂(mlp(h))` (OLMo 2).
    PostNorm,
}

/// Where a block's norms sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    /// Before attention.
    AttnIn,
    /// On attention's output.
    AttnOut,
    /// Before the MLP.
    MlpIn,
    /// On the MLP's output.
    MlpOut,
}

impl Layout {
    /// The norm sites this layout has.
    pub(crate) fn sites(self) -> &'static [Site] {
        match self {
            Self::Sequential => &[Site::AttnIn, Site::MlpIn],
            Self::Parallel => &[Site::AttnIn],
            Self::ParallelTwoNorms => &[Site::AttnIn, Site::MlpIn],
            Self::Sandwich => &[Site::AttnIn, Site::AttnOut, Site::MlpIn, Site::MlpOut],
            Self::PostNorm => &[Site::AttnOut, Site::MlpOut],
        }
    }

    /// Joins `attn` and `mlp` to `x`; `norm(site, t)` is the norm at `site` (the identity
    /// where the layout has none). With `want_mid`, also returns the residual stream after
    /// the attention branch is added and before the MLP's is (TransformerLens's
    /// `resid_mid`): for the parallel layouts `x + attn(…)`, computed apart so that the
    /// block's output is the same sum, bit for bit, as without it.
    pub(crate) fn join(
        self,
        x: &Tensor,
        norm: impl Fn(Site, &Tensor) -> Result<Tensor>,
        attn: impl Fn(&Tensor) -> Result<Tensor>,
        mlp: impl Fn(&Tensor) -> Result<Tensor>,
        want_mid: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let parallel = |a: Tensor, m: Tensor| -> Result<(Tensor, Option<Tensor>)> {
            let mid = match want_mid {
                true => Some((&a + x)?),
                false => None,
            };
            Ok((((a + m)? + x)?, mid))
        };
        if self == Self::Parallel {
            let h = norm(Site::AttnIn, x)?;
            return parallel(attn(&h)?, mlp(&h)?);
        }
        if self == Self::ParallelTwoNorms {
            let (a, m) = (norm(Site::AttnIn, x)?, norm(Site::MlpIn, x)?);
            return parallel(attn(&a)?, mlp(&m)?);
        }
        let h = (x + norm(Site::AttnOut, &attn(&norm(Site::AttnIn, x)?)?)?)?;
        let ff = norm(Site::MlpOut, &mlp(&norm(Site::MlpIn, &h)?)?)?;
        let mid = want_mid.then(|| h.clone());
        Ok(((h + ff)?, mid))
    }
}

/// Tensor names of one block, relative to it; a site the layout lacks is never read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockNames {
    /// Norm before attention.
    pub attn_norm: &'static str,
    /// Norm on attention's output.
    pub attn_post_norm: &'static str,
    /// Norm before the MLP.
    pub mlp_norm: &'static str,
    /// Norm on the MLP's output.
    pub mlp_post_norm: &'static str,
    /// The attention module.
    pub attn: &'static str,
    /// Its tensors.
    pub attn_names: AttentionNames,
    /// The MLP module.
    pub mlp: &'static str,
    /// Its tensors.
    pub mlp_names: MlpNames,
}

impl Default for BlockNames {
    /// Llama's: `input_layernorm` before `self_attn`, `post_attention_layernorm` before
    /// `mlp`, no norms on their outputs.
    fn default() -> Self {
        Self {
            attn_norm: "input_layernorm",
            attn_post_norm: "",
            mlp_norm: "post_attention_layernorm",
            mlp_post_norm: "",
            attn: "self_attn",
            attn_names: AttentionNames::default(),
            mlp: "mlp",
            mlp_names: MlpNames::default(),
        }
    }
}

impl BlockNames {
    /// Llama's names with norms on the branch outputs as transformers names them (OLMo 2,
    /// Gemma 2 and 3): `post_attention_layernorm` and `post_feedforward_layernorm`.
    pub(crate) fn post_norms() -> Self {
        Self {
            attn_post_norm: "post_attention_layernorm",
            mlp_post_norm: "post_feedforward_layernorm",
            ..Self::default()
        }
    }

    fn norm(&self, site: Site) -> &'static str {
        match site {
            Site::AttnIn => self.attn_norm,
            Site::AttnOut => self.attn_post_norm,
            Site::MlpIn => self.mlp_norm,
            Site::MlpOut => self.mlp_post_norm,
        }
    }
}

/// One block, built when the forward pass reaches it.
pub(crate) struct Block {
    layout: Layout,
    norms: Vec<(Site, Norm)>,
    attn: Attention,
    mlp: Mlp,
}

impl Block {
    /// Loads the block's norms under `vb` around an already loaded attention and MLP.
    pub(crate) fn new(
        layout: Layout,
        norm: NormSpec,
        hidden: usize,
        names: &BlockNames,
        attn: Attention,
        mlp: Mlp,
        vb: &Vars,
    ) -> Result<Self> {
        let norms = layout
            .sites()
            .iter()
            .map(|&s| Ok((s, Norm::new(norm, hidden, &vb.pp(names.norm(s)))?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            layout,
            norms,
            attn,
            mlp,
        })
    }

    /// `(B, T, D)` → `(B, T, D)`, and with `want_mid` the residual after attention
    /// ([`Layout::join`]).
    pub(crate) fn forward(
        &self,
        xs: &Tensor,
        rotary: Option<&RotaryTables>,
        mask: &Mask,
        want_mid: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let norm = |site: Site, t: &Tensor| match self.norms.iter().find(|(s, _)| *s == site) {
            Some((_, n)) => n.forward(t),
            None => Ok(t.clone()),
        };
        self.layout.join(
            xs,
            norm,
            |h| self.attn.forward(h, rotary, mask),
            |h| self.mlp.forward(h),
            want_mid,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// attn(t) = 2t, mlp(t) = t + 1, and the norm at each site multiplies by its own factor
    /// (AttnIn 3, AttnOut 5, MlpIn 7, MlpOut 11), so each layout's formula is visible in
    /// the result for x = 1.
    fn run(layout: Layout) -> (f32, f32) {
        let x = Tensor::new(&[1f32], &Device::Cpu).unwrap();
        let factor = |s: Site| match s {
            Site::AttnIn => 3.0,
            Site::AttnOut => 5.0,
            Site::MlpIn => 7.0,
            Site::MlpOut => 11.0,
        };
        let norm = |s: Site, t: &Tensor| match layout.sites().contains(&s) {
            true => Ok((t * factor(s))?),
            false => Ok(t.clone()),
        };
        let (out, mid) = layout
            .join(&x, norm, |t| Ok((t * 2.0)?), |t| Ok((t + 1.0)?), true)
            .unwrap();
        let (plain, none) = layout
            .join(&x, norm, |t| Ok((t * 2.0)?), |t| Ok((t + 1.0)?), false)
            .unwrap();
        assert!(none.is_none());
        let value = |t: &Tensor| t.to_vec1::<f32>().unwrap()[0];
        assert_eq!(value(&out), value(&plain));
        (value(&out), value(&mid.unwrap()))
    }

    #[test]
    fn each_layout_joins_its_branches_as_documented() {
        // The second value is resid_mid: the stream after attention, before the MLP.
        // h = 1 + 2·3 = 7; 7 + (7·7 + 1) = 57.
        assert_eq!(run(Layout::Sequential), (57.0, 7.0));
        // n = 3; 2·3 + (3 + 1) + 1 = 11; mid 1 + 2·3 = 7.
        assert_eq!(run(Layout::Parallel), (11.0, 7.0));
        // 2·3 + (7 + 1) + 1 = 15; mid 1 + 2·3 = 7.
        assert_eq!(run(Layout::ParallelTwoNorms), (15.0, 7.0));
        // h = 1 + 5·(2·3) = 31; 31 + 11·(7·31 + 1) = 31 + 2398 = 2429.
        assert_eq!(run(Layout::Sandwich), (2429.0, 31.0));
        // h = 1 + 5·2 = 11; 11 + 11·(11 + 1) = 143.
        assert_eq!(run(Layout::PostNorm), (143.0, 11.0));
    }
}
