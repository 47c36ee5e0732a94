//! Reductions over one row of logits, for the lens's per-cell statistics: the softmax sums
//! (argmax, `Σ e^(z−m)`, `Σ e^(z−m)(z−m)`), a reference row's probabilities, KL against
//! it, strict-excess counts (ranks) and per-block maxima (the top-k's filter).
//!
//! Every sum runs in f64, with [`exp_f64`], a polynomial `exp` within a few f64 ulp of
//! `f64::exp` that the compiler vectorises (the libm call does not). Each function is written
//! once over slices with [`LANES`] partial sums and compiled per vector extension by
//! `widest!`, like [`super::elementwise`]; tests/kernels.rs compares the baseline with the
//! widest path on whole lens runs.

/// Partial sums per row: one AVX-512 register of f64.
const LANES: usize = 8;

/// Elements per block of [`block_maxima`].
pub const BLOCK: usize = 16;

/// `eˣ` for `x ≤ 0` in f64, within a few ulp of `f64::exp` (`x = k·ln 2 + r`, `|r| ≤ ln 2 / 2`,
/// Taylor to `r¹³`, `2ᵏ` from the exponent bits). Below −708 it returns about 3e-308
/// instead of a denormal or 0, which no sum of these terms notices.
#[inline(always)]
pub fn exp_f64(x: f64) -> f64 {
    // 1.5·2^52: adding it rounds to an integer, kept in the low bits of the mantissa.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    // fdlibm's split of ln 2: the high part has zero low bits, so k·LN2_HI is exact.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let x = x.clamp(-708.0, 0.0);
    let shifted = x * std::f64::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let mut p = 1.0 / 6_227_020_800.0;
    for c in [
        479_001_600.0,
        39_916_800.0,
        3_628_800.0,
        362_880.0,
        40_320.0,
        5_040.0,
        720.0,
        120.0,
        24.0,
        6.0,
        2.0,
        1.0,
        1.0,
    ] {
        p = p * r + 1.0 / c;
    }
    let k = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i64;
    p * f64::from_bits(((k + 1023) as u64) << 52)
}

widest!(
    /// The softmax sums of a row: `(argmax, m, s, t)` with the argmax the lowest id among
    /// the maxima (0 for an empty row), `m` the max, `s = Σ e^(z−m)` and `t = Σ e^(z−m)(z−m)`,
    /// each `z − m` taken in f32 and widened, the sums in f64. A NaN or an infinity in the
    /// row makes `s` or `t` NaN.
    pub fn softmax_sums(logits: &[f32]) -> (usize, f32, f64, f64) => softmax_sums_plain
);

/// `d` at least −708 (where [`exp_f64`] stops), but NaN for −∞ (`d − d`), so that a −∞
/// logit makes `t` NaN as in the tensor form's `0·(−∞)`: a row holding one is found
/// non-finite. Every finite `d` is unchanged.
#[inline(always)]
#[allow(clippy::eq_op)] // `d − d`: 0 or NaN, the test itself
fn clamped(d: f64) -> f64 {
    d.max(-708.0) + (d - d)
}

#[inline(always)]
fn softmax_sums_plain(logits: &[f32]) -> (usize, f32, f64, f64) {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = logits.chunks_exact(16);
    for c in &mut chunks {
        for (m, &z) in lanes.iter_mut().zip(c) {
            *m = m.max(z);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let id = logits.iter().position(|&z| z == max).unwrap_or(0);
    let (mut s, mut t) = ([0f64; LANES], [0f64; LANES]);
    let mut chunks = logits.chunks_exact(LANES);
    for c in &mut chunks {
        for ((s, t), &z) in s.iter_mut().zip(&mut t).zip(c) {
            let d = clamped((z - max) as f64);
            let e = exp_f64(d);
            *s += e;
            *t += e * d;
        }
    }
    let (mut s_tail, mut t_tail) = (0f64, 0f64);
    for &z in chunks.remainder() {
        let d = clamped((z - max) as f64);
        let e = exp_f64(d);
        s_tail += e;
        t_tail += e * d;
    }
    (
        id,
        max,
        s.iter().sum::<f64>() + s_tail,
        t.iter().sum::<f64>() + t_tail,
    )
}

widest!(
    /// `out[v] = e^(z_v − shift)` in f64.
    pub fn exp_shifted(logits: &[f32], shift: f64, out: &mut [f64]) -> () => exp_shifted_plain
);

#[inline(always)]
fn exp_shifted_plain(logits: &[f32], shift: f64, out: &mut [f64]) {
    for (o, &z) in out.iter_mut().zip(logits) {
        *o = exp_f64(z as f64 - shift);
    }
}

widest!(
    /// `Σ p_v · ((o_v − lse_o) − (z_v − lse))` in f64: KL(p ‖ softmax(z)) where `p` is
    /// `softmax(o)` and `lse_o`, `lse` the two rows' log-sum-exps. A row equal to `o` with
    /// the same log-sum-exp gives exactly 0.
    pub fn kl_sum(logits: &[f32], lse: f64, output: &[f32], p: &[f64], lse_out: f64) -> f64
        => kl_sum_plain
);

#[inline(always)]
fn kl_sum_plain(logits: &[f32], lse: f64, output: &[f32], p: &[f64], lse_out: f64) -> f64 {
    let mut acc = [0f64; LANES];
    let n = logits.len().min(output.len()).min(p.len());
    let (z, o, p) = (&logits[..n], &output[..n], &p[..n]);
    let body = n - n % LANES;
    for ((z, o), p) in z[..body]
        .chunks_exact(LANES)
        .zip(o[..body].chunks_exact(LANES))
        .zip(p[..body].chunks_exact(LANES))
    {
        for i in 0..LANES {
            acc[i] += p[i] * ((o[i] as f64 - lse_out) - (z[i] as f64 - lse));
        }
    }
    let mut tail = 0f64;
    for i in body..n {
        tail += p[i] * ((o[i] as f64 - lse_out) - (z[i] as f64 - lse));
    }
    acc.iter().sum::<f64>() + tail
}

widest!(
    /// How many values are strictly greater than `level` (a rank, counted from 0).
    pub fn count_above(logits: &[f32], level: f32) -> u32 => count_above_plain
);

#[inline(always)]
fn count_above_plain(logits: &[f32], level: f32) -> u32 {
    let mut lanes = [0u32; 16];
    let mut chunks = logits.chunks_exact(16);
    for c in &mut chunks {
        for (n, &z) in lanes.iter_mut().zip(c) {
            *n += u32::from(z > level);
        }
    }
    let tail = chunks.remainder().iter().filter(|&&z| z > level).count() as u32;
    lanes.iter().sum::<u32>() + tail
}

widest!(
    /// `out[b]` = the max of block `b` (`BLOCK` values; the last block may be shorter).
    pub fn block_maxima(logits: &[f32], out: &mut [f32]) -> () => block_maxima_plain
);

#[inline(always)]
fn block_maxima_plain(logits: &[f32], out: &mut [f32]) {
    for (m, block) in out.iter_mut().zip(logits.chunks(BLOCK)) {
        *m = block.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f64_is_within_a_few_ulp_of_exp() {
        let mut worst = 0f64;
        let mut x = -708.0f64;
        while x <= 0.0 {
            let (got, want) = (exp_f64(x), x.exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.000_713_7;
        }
        assert!(worst < 1e-15, "relative error {worst:e}");
        assert_eq!(exp_f64(0.0), 1.0);
        assert!(exp_f64(-1e9) > 0.0 && exp_f64(-1e9) < 1e-307);
        assert!(exp_f64(f64::NEG_INFINITY) < 1e-307);
    }

    fn row(seed: usize, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 7919 % 4001) as f32 / 400.0 - 5.0) * 1.7)
            .collect()
    }

    #[test]
    fn row_reductions_match_their_definitions() {
        for n in [1, 7, 8, 17, 1000, 50_257] {
            let (z, o) = (row(3, n), row(11, n));
            let (id, max, s, t) = softmax_sums(&z);
            let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max, m);
            assert_eq!(id, z.iter().position(|&v| v == m).unwrap(), "lowest id");
            let want_s: f64 = z.iter().map(|&v| ((v - m) as f64).exp()).sum();
            let want_t: f64 = z
                .iter()
                .map(|&v| ((v - m) as f64).exp() * (v - m) as f64)
                .sum();
            assert!((s - want_s).abs() <= 1e-13 * want_s, "{s} vs {want_s}");
            assert!(
                (t - want_t).abs() <= 1e-13 * want_t.abs().max(1.0),
                "{t} vs {want_t}"
            );

            let lse = m as f64 + s.ln();
            let (_, mo, so, _) = softmax_sums(&o);
            let lse_o = mo as f64 + so.ln();
            let mut p = vec![0f64; n];
            exp_shifted(&o, lse_o, &mut p);
            for (pv, &ov) in p.iter().zip(&o) {
                assert!((pv - (ov as f64 - lse_o).exp()).abs() <= 1e-15 * pv.max(1e-300) * 8.0);
            }
            let kl = kl_sum(&z, lse, &o, &p, lse_o);
            let want: f64 = p
                .iter()
                .zip(&o)
                .zip(&z)
                .map(|((pv, &ov), &zv)| pv * ((ov as f64 - lse_o) - (zv as f64 - lse)))
                .sum();
            assert!(
                (kl - want).abs() <= 1e-12 * want.abs().max(1.0),
                "{kl} vs {want}"
            );
            assert_eq!(
                kl_sum(&o, lse_o, &o, &p, lse_o),
                0.0,
                "a row against itself"
            );

            let level = z[n / 2];
            let above = z.iter().filter(|&&v| v > level).count() as u32;
            assert_eq!(count_above(&z, level), above);

            let mut maxima = vec![0f32; n.div_ceil(BLOCK)];
            block_maxima(&z, &mut maxima);
            for (b, block) in z.chunks(BLOCK).enumerate() {
                assert_eq!(
                    maxima[b],
                    block.iter().cloned().fold(f32::NEG_INFINITY, f32::max)
                );
            }
        }
    }

    #[test]
    fn an_empty_row_has_no_mass() {
        assert_eq!(softmax_sums(&[]), (0, f32::NEG_INFINITY, 0.0, 0.0));
        assert_eq!(count_above(&[], 0.0), 0);
    }
}
