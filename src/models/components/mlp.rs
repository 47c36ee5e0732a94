//! Feed-forward blocks: `fc2(act(fc1(x)))`, and the gated `down(act(gate(x)) · up(x))`
//! (SwiGLU with SiLU, GeGLU with GELU), with gate and up separate or fused.

use anyhow::Result;
use candle_core::{Module, Tensor};
use candle_nn::Activation;

use super::linear::{Linear, WeightLayout};
use super::vars::Vars;

/// The MLP's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MlpKind {
    /// `down(act(up(x)))` (GPT-2's `c_fc`/`c_proj`, Phi's `fc1`/`fc2`).
    Plain,
    /// `down(act(gate(x)) · up(x))`, gate and up as two projections.
    Gated,
    /// As [`MlpKind::Gated`], with one `gate_up` projection whose first half is the gate.
    GatedFused,
}

/// MLP settings shared by every layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MlpSpec {
    /// The shape.
    pub kind: MlpKind,
    /// The activation.
    pub act: Activation,
    /// Residual width.
    pub hidden: usize,
    /// Inner width.
    pub intermediate: usize,
    /// Biases on every projection.
    pub bias: bool,
}

/// Tensor names of one MLP, relative to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MlpNames {
    /// The up (or only input) projection.
    pub up: &'static str,
    /// The gate projection.
    pub gate: &'static str,
    /// The fused gate+up projection.
    pub gate_up: &'static str,
    /// The output projection.
    pub down: &'static str,
}

impl MlpNames {
    /// A [`MlpKind::Plain`] MLP's two projections; the gated ones keep Llama's names.
    pub(crate) fn plain(up: &'static str, down: &'static str) -> Self {
        Self {
            up,
            down,
            ..Self::default()
        }
    }
}

impl Default for MlpNames {
    /// Llama's: `up_proj`, `gate_proj`, fused `gate_up_proj`, `down_proj`.
    fn default() -> Self {
        Self {
            up: "up_proj",
            gate: "gate_proj",
            gate_up: "gate_up_proj",
            down: "down_proj",
        }
    }
}

enum Inputs {
    Plain(Linear),
    Gated { gate: Linear, up: Linear },
    Fused(Linear),
}

/// One layer's MLP.
pub(crate) struct Mlp {
    inputs: Inputs,
    down: Linear,
    act: Activation,
    intermediate: usize,
}

impl Mlp {
    /// Loads the projections under `vb`.
    pub(crate) fn new(
        spec: &MlpSpec,
        names: &MlpNames,
        layout: WeightLayout,
        vb: &Vars,
    ) -> Result<Self> {
        let (d, i) = (spec.hidden, spec.intermediate);
        let proj = |out: usize, name: &str| Linear::load(d, out, spec.bias, layout, &vb.pp(name));
        let inputs = match spec.kind {
            MlpKind::Plain => Inputs::Plain(proj(i, names.up)?),
            MlpKind::Gated => Inputs::Gated {
                gate: proj(i, names.gate)?,
                up: proj(i, names.up)?,
            },
            MlpKind::GatedFused => Inputs::Fused(proj(2 * i, names.gate_up)?),
        };
        Ok(Self {
            inputs,
            down: Linear::load(i, d, spec.bias, layout, &vb.pp(names.down))?,
            act: spec.act,
            intermediate: i,
        })
    }

    /// `(B, T, D)` → `(B, T, D)`.
    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let inner = match &self.inputs {
            Inputs::Plain(up) => up.forward_act(xs, Some(self.act))?,
            Inputs::Gated { gate, up } => {
                (gate.forward_act(xs, Some(self.act))? * xs.apply(up)?)?
            }
            Inputs::Fused(gate_up) => {
                let both = xs.apply(gate_up)?;
                let last = both.rank() - 1;
                let gate = both.narrow(last, 0, self.intermediate)?.apply(&self.act)?;
                (gate * both.narrow(last, self.intermediate, self.intermediate)?)?
            }
        };
        Ok(self.down.forward(&inner)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::components::testing::vars;

    /// GeGLU with a fused gate_up of one gate row (2) and one up row (3), down 1:
    /// x = 1 gives gelu_tanh(2) · 3.
    #[test]
    fn fused_geglu_gates_with_the_first_half() {
        let vb = vars(&[
            ("mlp.gate_up.weight", vec![2.0, 3.0], vec![2, 1]),
            ("mlp.down.weight", vec![1.0], vec![1, 1]),
        ]);
        let spec = MlpSpec {
            kind: MlpKind::GatedFused,
            act: Activation::GeluPytorchTanh,
            hidden: 1,
            intermediate: 1,
            bias: false,
        };
        let names = MlpNames {
            up: "up",
            gate: "gate",
            gate_up: "gate_up",
            down: "down",
        };
        let mlp = Mlp::new(&spec, &names, WeightLayout::OutIn, &vb.pp("mlp")).unwrap();
        let x = Tensor::new(&[[[1f32]]], vb.device()).unwrap();
        let got: Vec<f32> = mlp
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let g = 2f64;
        let gelu = 0.5
            * g
            * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (g + 0.044715 * g * g * g)).tanh());
        assert!(
            (got[0] as f64 - gelu * 3.0).abs() < 1e-4,
            "{got:?} vs {}",
            gelu * 3.0
        );
    }
}
