//! `y = x·Wᵀ` with f32 activations and half-precision (f16/bf16) weights.
//!
//! Checkpoints ship in f16. Converting a whole weight matrix to f32 before a matmul writes and
//! re-reads twice the bytes and, for short prompts, costs more than the matmul itself. Here
//! each thread converts a few rows of W at a time into a cache-sized f32 buffer and multiplies
//! them at once, so the result is the same f32 product while W is only ever read as f16.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

/// The op: lhs `(.., K)` f32, rhs `(N, K)` f16 or bf16 → `(.., N)` f32.
pub struct HalfWeightMatmul;

impl CustomOp2 for HalfWeightMatmul {
    fn name(&self) -> &'static str {
        "half-weight-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = match s1 {
            CpuStorage::F32(v) => contiguous(v, l1)?,
            _ => candle_core::bail!("half-weight-matmul: activations must be f32"),
        };
        let (n, k) = l2.shape().dims2()?;
        let dims = l1.shape().dims();
        if dims.last() != Some(&k) {
            candle_core::bail!(
                "half-weight-matmul: shapes {:?} and {:?} do not fit",
                dims,
                l2.shape()
            );
        }
        let m = l1.shape().elem_count() / k.max(1);
        let out = match s2 {
            CpuStorage::F16(w) => matmul(x, contiguous(w, l2)?, m, k, n),
            CpuStorage::BF16(w) => matmul(x, contiguous(w, l2)?, m, k, n),
            _ => candle_core::bail!("half-weight-matmul: weights must be f16 or bf16"),
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("checked above") = n;
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

fn contiguous<'a, T>(v: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("half-weight-matmul: operands must be contiguous"),
    }
}

/// Half floats that convert to f32 in bulk.
pub trait Half: Copy + Send + Sync {
    /// Converts `src` into `dst` (same length).
    fn widen(src: &[Self], dst: &mut [f32]);
}

impl Half for f16 {
    fn widen(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

impl Half for bf16 {
    fn widen(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

/// A raw pointer that rayon tasks share; each task writes its own columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Rows of W converted per task: about 1 MiB of f32 for short inputs (the buffer stays in
/// L2), more for long ones so that gemm's packing of `x` is amortised over more columns.
fn block_rows(m: usize, k: usize, n: usize) -> usize {
    let floats = if m < 128 { 1 << 18 } else { 1 << 22 };
    (floats / k.max(1)).clamp(16, n.max(16))
}

/// `x (m×k) · w (n×k)ᵀ → (m×n)`, row-major, in f32.
pub fn matmul<H: Half>(x: &[f32], w: &[H], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    if m == 0 || n == 0 {
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
            let dst = dst;
            // SAFETY: dst has m×n floats; this task writes only columns start..start+len of
            // every row, which no other task touches. lhs is m×k row-major; rhs(kk, j) =
            // buf[j·k + kk] is the transpose of the converted rows.
            unsafe {
                gemm::gemm(
                    m,
                    len,
                    k,
                    dst.0.add(start),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    buf.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            };
        });
    out
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
        for (m, k, n) in [(1, 8, 3), (9, 64, 100), (130, 40, 37)] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let w16: Vec<f16> = (0..n * k)
                .map(|i| f16::from_f32(((i * 5 % 11) as f32 - 5.0) / 3.0))
                .collect();
            let w32: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
            let got = matmul(&x, &w16, m, k, n);
            let want = reference(&x, &w32, m, k, n);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "{m}x{k}x{n}: {worst}");
            let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
            let wb32: Vec<f32> = wb.iter().map(|v| v.to_f32()).collect();
            let got = matmul(&x, &wb, m, k, n);
            let want = reference(&x, &wb32, m, k, n);
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4));
        }
    }
}
