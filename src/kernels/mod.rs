//! `y = x·Wᵀ` with f32 activations and half-precision (f16/bf16) weights read in place.
//!
//! Checkpoints ship in f16. Converting a whole weight matrix to f32 before a matmul writes and
//! re-reads twice the bytes and, for short prompts, costs more than the matmul itself. Here
//! each thread converts a few rows of W at a time into a cache-sized f32 buffer and multiplies
//! them at once, so the result is the same f32 product while W is only ever read as f16.
//!
//! # Which path each CPU takes
//!
//! | work | x86-64 with AVX-512F (+F16C) | x86-64 with AVX2+FMA only | aarch64, other x86-64 |
//! |---|---|---|---|
//! | `x·Wᵀ`, at most 24 rows of `x` | the `avx512` kernel: W widened in registers | blocked: W rows widened into a buffer, then `gemm` | blocked |
//! | `x·Wᵀ`, more rows | blocked | blocked | blocked |
//! | `gemm`'s own microkernel (blocked path, attention, candle's matmuls) | AVX-512F (the `x86-v4` feature, detected at run time) | AVX2+FMA | NEON on aarch64, scalar elsewhere |
//! | attention ([`attention`]) | `gemm` products, AVX-512 softmax | `gemm`, AVX2 softmax | `gemm`, baseline softmax |
//! | softmax, bias + activation ([`elementwise`]), per-row statistics ([`rows`]) | AVX-512F build | AVX2+FMA build | the target's baseline (SSE2, NEON) |
//! | `--fast` head ([`dot_bf16`]) | AMX tiles where present (AMX-BF16, Linux), else AVX512-BF16 `vdpbf16ps`, else the bf16 products widened to f32 + `gemm` | bf16 widened to f32 + `gemm` | the same |
//!
//! Widening goes through the `half` crate (F16C on x86-64 where present, NEON's fp16
//! conversions on aarch64, scalar otherwise). On Zen 4, 512-bit operations run as two
//! 256-bit halves, so AVX2 and AVX-512 peak alike there and the AVX-512 kernels win by fewer
//! instructions; on Intel Xeons with two 512-bit FMA units, `gemm`'s AVX-512 microkernel
//! raised the linear kernel from about 175 to 300–325 GFLOP/s on 2 cores.
//! `LOGITLENS_KERNELS=baseline` forces the last column for this crate's own kernels
//! (tests/kernels.rs compares it with the widest path; tests/fast.rs forces each `--fast`
//! path, `LOGITLENS_KERNELS=no-amx` skipping AMX).

/// Defines `$vis fn $name(args) -> $ret` that runs `$body` (an `#[inline(always)]` function
/// of the same arguments, written over slices in a form the compiler vectorises) compiled
/// for the widest vector extension detected at run time: AVX-512F, AVX2+FMA, or the
/// target's baseline (always under `LOGITLENS_KERNELS=baseline`).
macro_rules! widest {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty => $body:ident) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::kernels::elementwise::force_baseline;
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if !force_baseline() && is_x86_feature_detected!("avx512f") {
                    // SAFETY: the feature was just detected.
                    return unsafe { avx512($($arg),*) };
                }
                if !force_baseline()
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                {
                    // SAFETY: the features were just detected.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub mod attention;
pub mod dot_bf16;
pub mod elementwise;
pub mod rows;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

/// Half floats that convert to f32 in bulk.
pub trait Half: Copy + Send + Sync + 'static {
    /// The 16-bit layout, for the vector kernel.
    const BITS: Option<HalfBits>;
    /// Converts `src` into `dst` (same length).
    fn widen(src: &[Self], dst: &mut [f32]);
}

/// Which 16-bit float a slice of `u16` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfBits {
    F16,
    Bf16,
}

impl Half for f16 {
    const BITS: Option<HalfBits> = Some(HalfBits::F16);
    fn widen(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

impl Half for bf16 {
    const BITS: Option<HalfBits> = Some(HalfBits::Bf16);
    fn widen(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

/// A raw pointer that rayon tasks share; each task writes its own columns.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// A method rather than `.0`, so closures capture the whole (Send) wrapper.
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

const LIMIT: usize = 24;

/// Rows of W converted per task: about 1 MiB of f32 (the buffer stays in L2), 4 MiB for
/// long inputs so that gemm's packing of `x` is amortised over more columns, but never so
/// many that a thread sits idle: at least 4 tasks per thread. (Measured on 225×2048×51200:
/// 160 GFLOP/s with 1 MiB blocks against 140 with 16 MiB.)
fn block_rows(m: usize, k: usize, n: usize) -> usize {
    let floats = if m < 1024 { 1 << 18 } else { 1 << 20 };
    let spread = n.div_ceil(4 * rayon::current_num_threads());
    (floats / k.max(1)).min(spread).clamp(16, n.max(16))
}

/// [`matmul`] over raw 16-bit values of either half format.
pub fn matmul_bits(x: &[f32], w: &[u16], bits: HalfBits, m: usize, k: usize, n: usize) -> Vec<f32> {
    match bits {
        HalfBits::F16 => matmul(x, bytemuck::cast_slice::<u16, f16>(w), m, k, n),
        HalfBits::Bf16 => matmul(x, bytemuck::cast_slice::<u16, bf16>(w), m, k, n),
    }
}

/// One row of half floats widened to f32.
pub fn widen_row(w: &[u16], bits: HalfBits) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    match bits {
        HalfBits::F16 => f16::widen(bytemuck::cast_slice(w), &mut out),
        HalfBits::Bf16 => bf16::widen(bytemuck::cast_slice(w), &mut out),
    }
    out
}

/// `x (m×k) · w (n×k)ᵀ → (m×n)`, row-major, in f32.
pub fn matmul<H: Half>(x: &[f32], w: &[H], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return out;
    }
    #[cfg(target_arch = "x86_64")]
    if m <= avx512::MAX_ROWS
        && H::BITS.is_some()
        && avx512::available()
        && !elementwise::force_baseline()
    {
        avx512::matmul(x, w, m, k, n, &mut out);
        return out;
    }
    let rows = block_rows(m, k, n);
    let dst = OutPtr(out.as_mut_ptr());
    let starts: Vec<usize> = (0..n).step_by(rows).collect();
    starts
        .into_par_iter()
        .for_each_init(Vec::new, |buf: &mut Vec<f32>, start| {
            let len = rows.min(n - start);
            buf.resize(len * k, 0.0);
            H::widen(&w[start * k..(start + len) * k], buf);
            // SAFETY: dst has m×n floats; this task writes only columns start..start+len of
            // every row, which no other task touches. lhs is m×k row-major; rhs(kk, j) =
            // buf[j·k + kk] is the transpose of the converted rows.
            unsafe {
                gemm_into(
                    (m, len, k),
                    (dst.get().add(start), n),
                    (x.as_ptr(), k),
                    (buf.as_ptr(), k as isize, 1),
                    1.0,
                )
            };
        });
    out
}

/// `dst ← beta · lhs · rhs`, single-threaded f32 `gemm` for `(m, n, k)`: `dst` and `lhs`
/// row-major with the given row strides, `rhs(kk, j)` at `rhs + j·cs + kk·rs`.
///
/// # Safety
/// Every element those strides reach must lie inside its allocation, and nothing else may
/// write the `m×n` elements of `dst` meanwhile.
pub(crate) unsafe fn gemm_into(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs): (*const f32, usize),
    (rhs, rhs_cs, rhs_rs): (*const f32, isize, isize),
    beta: f32,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs,
        1,
        lhs_rs as isize,
        rhs,
        rhs_cs,
        rhs_rs,
        0.0,
        beta,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// Short inputs (a few rows): each weight is converted in a register and used for every
/// row of `x` at once, so W is read once as f16 and never stored as f32 anywhere.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Half, HalfBits, OutPtr};
    use rayon::prelude::*;

    /// Most rows of `x` kept in registers: 2·12 accumulators of the 32 vector registers.
    pub(super) const MAX_M: usize = 12;

    /// Up to this many rows of `x` this kernel beats converting W and calling gemm.
    pub(super) const MAX_ROWS: usize = super::LIMIT;

    /// Weight rows per rayon task.
    const TASK_ROWS: usize = 64;

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("f16c")
    }

    pub(super) fn matmul<H: Half>(
        x: &[f32],
        w: &[H],
        m: usize,
        k: usize,
        n: usize,
        out: &mut [f32],
    ) {
        let bits = H::BITS.expect("checked by the caller");
        // SAFETY: H is f16 or bf16 (BITS is Some), both plain 16-bit values.
        let w: &[u16] = unsafe { std::slice::from_raw_parts(w.as_ptr().cast(), w.len()) };
        let dst = OutPtr(out.as_mut_ptr());
        (0..n).into_par_iter().step_by(TASK_ROWS).for_each(|start| {
            let end = (start + TASK_ROWS).min(n);
            // Groups of MAX_M rows of x pass over the same weight rows, which stay in L2.
            for g in (0..m).step_by(MAX_M) {
                let mg = MAX_M.min(m - g);
                // SAFETY: features checked in `available`; this task writes only columns
                // start..end of `out`, and every index stays inside x (m×k), w (n×k),
                // out (m×n): rows g..g+mg of x and of out.
                unsafe {
                    rows_dyn(
                        &x[g * k..],
                        w,
                        mg,
                        k,
                        n,
                        start..end,
                        bits,
                        dst.get().add(g * n),
                    )
                };
            }
        });
    }

    #[inline]
    #[target_feature(enable = "avx512f,f16c")]
    unsafe fn widen16(p: *const u16, bits: HalfBits) -> __m512 {
        let raw = _mm256_loadu_si256(p.cast());
        match bits {
            HalfBits::F16 => _mm512_cvtph_ps(raw),
            HalfBits::Bf16 => {
                _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16))
            }
        }
    }

    fn widen1(b: u16, bits: HalfBits) -> f32 {
        match bits {
            HalfBits::F16 => half::f16::from_bits(b).to_f32(),
            HalfBits::Bf16 => half::bf16::from_bits(b).to_f32(),
        }
    }

    /// Calls [`rows`] with the row count as a constant, so accumulators live in registers.
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows_dyn(
        x: &[f32],
        w: &[u16],
        m: usize,
        k: usize,
        n: usize,
        js: std::ops::Range<usize>,
        bits: HalfBits,
        out: *mut f32,
    ) {
        macro_rules! dispatch {
            ($($m:literal)*) => {
                match m {
                    $($m => rows::<$m>(x, w, k, n, js, bits, out),)*
                    _ => unreachable!("m is at most MAX_M"),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12)
    }

    /// Output columns `js` for `M` rows of `x`: two weight rows at a time share each load of
    /// `x`, with 2·M accumulators in registers.
    #[target_feature(enable = "avx512f,f16c")]
    unsafe fn rows<const M: usize>(
        x: &[f32],
        w: &[u16],
        k: usize,
        n: usize,
        js: std::ops::Range<usize>,
        bits: HalfBits,
        out: *mut f32,
    ) {
        let full = k / 16 * 16;
        let mut j = js.start;
        while j < js.end {
            let pair = j + 1 < js.end;
            let w0 = w.as_ptr().add(j * k);
            let w1 = if pair { w0.add(k) } else { w0 };
            let mut a0 = [_mm512_setzero_ps(); M];
            let mut a1 = [_mm512_setzero_ps(); M];
            let mut kk = 0;
            while kk < full {
                let v0 = widen16(w0.add(kk), bits);
                let v1 = widen16(w1.add(kk), bits);
                for i in 0..M {
                    let xv = _mm512_loadu_ps(x.as_ptr().add(i * k + kk));
                    a0[i] = _mm512_fmadd_ps(xv, v0, a0[i]);
                    a1[i] = _mm512_fmadd_ps(xv, v1, a1[i]);
                }
                kk += 16;
            }
            finish(&a0, x, w0, k, full, bits, out.add(j), n);
            if pair {
                finish(&a1, x, w1, k, full, bits, out.add(j + 1), n);
            }
            j += 1 + pair as usize;
        }
    }

    /// Sums each accumulator's lanes, adds the tail past the last full 16, and stores one
    /// output column (stride `n`).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,f16c")]
    unsafe fn finish(
        acc: &[__m512],
        x: &[f32],
        wj: *const u16,
        k: usize,
        full: usize,
        bits: HalfBits,
        out: *mut f32,
        n: usize,
    ) {
        for (i, a) in acc.iter().enumerate() {
            let mut s = _mm512_reduce_add_ps(*a);
            for t in full..k {
                s += x[i * k + t] * widen1(*wj.add(t), bits);
            }
            *out.add(i * n) = s;
        }
    }
}

/// The largest `|a - b|` over two slices, for the kernels' tests.
#[cfg(test)]
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|kk| x[i * k + kk] as f64 * w[j * k + kk] as f64)
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn matches_f32_matmul_of_converted_weights() {
        for (m, k, n) in [
            (1, 8, 3),
            (9, 64, 100),
            (12, 40, 7),
            (16, 37, 70),
            (17, 48, 9),
            (130, 40, 37),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let w16: Vec<f16> = (0..n * k)
                .map(|i| f16::from_f32(((i * 5 % 11) as f32 - 5.0) / 3.0))
                .collect();
            let w32: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
            let got = matmul(&x, &w16, m, k, n);
            let want = reference(&x, &w32, m, k, n);
            let worst = max_abs_diff(&got, &want);
            assert!(worst < 1e-4, "{m}x{k}x{n}: {worst}");
            let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
            let wb32: Vec<f32> = wb.iter().map(|v| v.to_f32()).collect();
            let got = matmul(&x, &wb, m, k, n);
            let want = reference(&x, &wb32, m, k, n);
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4));
        }
    }
}
