//! Element-wise f32 kernels: softmax, and the MLP activations fused into the linear layer's
//! output pass (GELU with the tanh approximation, SiLU).
//!
//! Each is written once as plain Rust over slices, in a form the compiler vectorises, and
//! compiled three times: for AVX-512F, for AVX2+FMA, and for the target's baseline (SSE2 on
//! x86-64, NEON on aarch64, scalar elsewhere). `widest!` (kernels/mod.rs) picks the widest
//! one the CPU has at run time, so every CPU gets a correct path and Zen 4 / Skylake-X the
//! widest.
//! All of them share [`exp_approx`], a polynomial `exp` within 2 ulp of `f32::exp`.

/// `LOGITLENS_KERNELS=baseline` makes every kernel take the path a CPU without AVX2 or
/// AVX-512 takes (for tests and comparisons); read once.
pub fn force_baseline() -> bool {
    static FORCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCE.get_or_init(|| std::env::var("LOGITLENS_KERNELS").is_ok_and(|v| v == "baseline"))
}

widest!(
    /// `x ← softmax(x)`, as candle computes it (max, `exp(x - max)`, sum, divide).
    pub fn softmax(x: &mut [f32]) -> () => softmax_plain
);

widest!(
    /// Whether every value of `x` is finite: `v − v` is 0 for a finite `v` and NaN for NaN
    /// and ±∞, and a NaN stays in a sum (sixteen independent ones, so it vectorises).
    pub fn all_finite(x: &[f32]) -> bool => all_finite_plain
);

#[inline(always)]
#[allow(clippy::eq_op)] // `v − v`: 0 or NaN, the test itself
fn all_finite_plain(x: &[f32]) -> bool {
    let mut lanes = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in lanes.iter_mut().zip(c) {
            *a += v - v;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&v| v - v).sum();
    lanes.iter().sum::<f32>() + tail == 0.0
}

widest!(
    /// `x ← act(x + bias)` over rows of `bias.len()` values (no bias when it is empty).
    pub fn bias_act(x: &mut [f32], bias: &[f32], act: Option<Act>) -> () => bias_act_plain
);

/// An activation [`bias_act`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, written `x / (1 + e^(−2u))`
    /// (transformers' `gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// `x / (1 + e^(−x))`.
    Silu,
}

/// Lanes of the partial max and sum, so that both reductions vectorise.
const LANES: usize = 16;

#[inline(always)]
fn softmax_plain(x: &mut [f32]) {
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (m, &v) in max.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let max = max.iter().fold(tail, |a, &b| a.max(b));
    let mut sum = [0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, v) in sum.iter_mut().zip(c) {
            *v = exp_approx(*v - max);
            *s += *v;
        }
    }
    let mut total = 0f32;
    for v in chunks.into_remainder() {
        *v = exp_approx(*v - max);
        total += *v;
    }
    let total = sum.iter().sum::<f32>() + total;
    x.iter_mut().for_each(|v| *v /= total);
}

#[inline(always)]
fn bias_act_plain(x: &mut [f32], bias: &[f32], act: Option<Act>) {
    let width = if bias.is_empty() { x.len() } else { bias.len() };
    for row in x.chunks_mut(width.max(1)) {
        if !bias.is_empty() {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
        match act {
            Some(Act::GeluTanh) => row.iter_mut().for_each(|v| {
                let u = 0.797_884_6 * *v * (1.0 + 0.044_715 * *v * *v);
                *v /= 1.0 + exp_approx(-2.0 * u);
            }),
            Some(Act::Silu) => row.iter_mut().for_each(|v| *v /= 1.0 + exp_approx(-*v)),
            None => {}
        }
    }
}

/// `eˣ` for `x ≤ 88`, within 2 ulp of `f32::exp` (Cephes' `expf`: `x = n·ln 2 + r`, a
/// degree-7 polynomial in `r`, `2ⁿ` from the exponent bits). Below −87.3 it returns
/// about 1e-38 instead of a denormal or 0, which no softmax sum notices.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    let x = x.clamp(-87.33, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 % 2003) as f32 / 1001.0 - 1.0) * 6.0)
            .collect()
    }

    #[test]
    fn exp_approx_is_within_two_ulp_of_exp() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp_approx(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
        assert!(exp_approx(-1e4) < 1e-37 && exp_approx(f32::NEG_INFINITY) < 1e-37);
    }

    /// The widest path and the baseline compute the same softmax.
    #[test]
    fn every_path_computes_the_same_softmax() {
        let x: Vec<f32> = values(1000);
        let mut plain = x.clone();
        softmax_plain(&mut plain);
        let mut best = x;
        softmax(&mut best);
        let worst = super::super::max_abs_diff(&plain, &best);
        assert!(worst < 1e-7, "{worst}");
        assert!((plain.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn activations_match_their_definitions() {
        let x = values(1000);
        let bias: Vec<f32> = (0..10).map(|i| i as f32 * 0.1).collect();
        for act in [Act::GeluTanh, Act::Silu] {
            let mut got = x.clone();
            bias_act(&mut got, &bias, Some(act));
            for (i, (g, v)) in got.iter().zip(&x).enumerate() {
                let v = (v + bias[i % 10]) as f64;
                let want = match act {
                    Act::GeluTanh => {
                        0.5 * v
                            * (1.0
                                + ((2.0 / std::f64::consts::PI).sqrt()
                                    * (v + 0.044715 * v * v * v))
                                    .tanh())
                    }
                    Act::Silu => v / (1.0 + (-v).exp()),
                };
                assert!(
                    (*g as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{act:?}({v}) = {g}, want {want}"
                );
            }
        }
    }
}
