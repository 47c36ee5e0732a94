//! `y = x·Wᵀ` with bf16 inputs and f32 accumulation: the products of `--fast`.
//!
//! Both operands are rounded to bf16 (round to nearest, ties to even) and every product is
//! accumulated in f32. A bf16 × bf16 product is exact in f32 (8 + 8 significant bits), so
//! the only differences between the paths below are the order of the f32 sums: each path
//! computes the same numbers up to f32 rounding, and `--fast` means the same thing on every
//! CPU. What it costs against the exact f32 lens is measured, not assumed (README,
//! "The fast mode").
//!
//! # Which path each CPU takes
//!
//! | CPU | path |
//! |---|---|
//! | x86-64 with AMX-BF16 (Intel Sapphire Rapids and later) and the kernel's permission | [`Path::Amx`]: 16×16 tiles, `tdpbf16ps` |
//! | x86-64 with AVX512-BF16 (Zen 4 and later, Cooper Lake, Sapphire Rapids without AMX) | [`Path::Avx512Bf16`]: `vdpbf16ps` |
//! | anything else (AVX2-only x86-64, aarch64) | [`Path::F32`]: the bf16 values widened to f32 and multiplied by `gemm` (same products, no faster than exact mode) |
//!
//! `--fast` takes the bf16 head only on [`Path::Amx`], the one path faster than the exact
//! f32 head ([`Path::for_fast`]); elsewhere the head stays exact.
//! `LOGITLENS_KERNELS=baseline` forces [`Path::F32`] (as it forces the baseline of this
//! crate's other kernels) and `LOGITLENS_KERNELS=no-amx` stops at [`Path::Avx512Bf16`],
//! both under `--fast` even where they are not faster;
//! tests/kernels.rs runs every path this CPU has against an f64 reference.
//!
//! W is packed once ([`Packed`]) in the layout both dot-product instructions read: for each
//! block of 16 output columns, for each pair of input channels, the 16 columns' two values
//! side by side (64 bytes, one AMX tile row or one AVX-512 register).

use rayon::prelude::*;

use super::{gemm_into, HalfBits, OutPtr};

/// Output columns per block of the packed layout.
const COLS: usize = 16;
/// Columns and rows every product is padded to: the AMX kernel's 2×2 tiles of 16.
const STEP: usize = 32;
/// Input channels per AMX tile (32 bf16 = 64 bytes per tile row).
const DEPTH: usize = 32;
/// Output columns per rayon task: 256 columns of a 2048-wide W are 1 MiB of bf16.
const TASK_COLS: usize = 256;

/// How the bf16 products are computed on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Intel AMX tiles (`tdpbf16ps`).
    Amx,
    /// AVX512-BF16 (`vdpbf16ps`).
    Avx512Bf16,
    /// The same bf16 values widened to f32, multiplied by `gemm`.
    F32,
}

impl Path {
    /// The name provenance and timings print.
    pub fn name(self) -> &'static str {
        match self {
            Path::Amx => "amx-bf16",
            Path::Avx512Bf16 => "avx512-bf16",
            Path::F32 => "f32 (no bf16 instructions on this CPU)",
        }
    }

    /// This CPU's fastest path, unless `LOGITLENS_KERNELS` forces a slower one.
    pub fn detect() -> Path {
        static PATH: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
        *PATH.get_or_init(|| {
            let forced = std::env::var("LOGITLENS_KERNELS").unwrap_or_default();
            let paths = Path::available();
            match forced.as_str() {
                "baseline" => Path::F32,
                "no-amx" => paths
                    .into_iter()
                    .find(|&p| p != Path::Amx)
                    .unwrap_or(Path::F32),
                _ => paths[0],
            }
        })
    }

    /// The path `--fast`'s bf16 head takes, where it is faster than the exact f32 head; or
    /// why the head stays exact. Only AMX-BF16 tiles beat the f32 kernels (README, "The
    /// fast mode": AVX512-BF16 measured no faster than f32 FMA, and the widened f32 path is
    /// slower), so without them `--fast` runs exact, unless `LOGITLENS_KERNELS` forces a
    /// bf16 path (`no-amx`, `baseline`: how the tests run every path's bf16 products).
    pub fn for_fast() -> std::result::Result<Path, &'static str> {
        let path = Path::detect();
        let forced = matches!(
            std::env::var("LOGITLENS_KERNELS").as_deref(),
            Ok("no-amx" | "baseline")
        );
        match path {
            _ if forced => Ok(path),
            Path::Amx => Ok(path),
            Path::Avx512Bf16 => Err("this CPU has no AMX-BF16, and its AVX512-BF16 products are no faster than the exact f32 head"),
            Path::F32 => Err("this CPU has no bf16 instructions (AMX-BF16), so the bf16 head would be slower than the exact f32 head"),
        }
    }

    /// Every path this CPU can run, fastest first ([`Path::F32`] always last).
    pub fn available() -> Vec<Path> {
        let mut paths = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if amx::available() {
                paths.push(Path::Amx);
            }
            if dp::available() {
                paths.push(Path::Avx512Bf16);
            }
        }
        paths.push(Path::F32);
        paths
    }
}

/// `x` rounded to bf16, to nearest with ties to even (NaN stays NaN).
pub fn round(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let lsb = (bits >> 16) & 1;
    (bits.wrapping_add(0x7fff + lsb) >> 16) as u16
}

/// A bf16 value as f32 (exact).
pub fn widen(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// An `(n, k)` matrix W rounded to bf16 and packed for [`Packed::matmul`].
pub struct Packed {
    n: usize,
    k: usize,
    /// `k` padded to a multiple of [`DEPTH`].
    kp: usize,
    /// `n` padded to a multiple of [`STEP`].
    np: usize,
    /// `[np / 16][kp / 2][16][2]` bf16 values; padding is zero.
    data: Vec<u16>,
}

impl Packed {
    /// Packs an `(n, k)` row-major f32 matrix.
    pub fn from_f32(w: &[f32], n: usize, k: usize) -> Self {
        Self::pack(n, k, |row, dst| {
            for (d, &v) in dst.iter_mut().zip(&w[row * k..(row + 1) * k]) {
                *d = round(v);
            }
        })
    }

    /// Packs an `(n, k)` row-major matrix of 16-bit floats (f16 values are rounded to
    /// bf16; bf16 values are kept as they are).
    pub fn from_bits(w: &[u16], bits: HalfBits, n: usize, k: usize) -> Self {
        Self::pack(n, k, |row, dst| {
            let src = &w[row * k..(row + 1) * k];
            match bits {
                HalfBits::Bf16 => dst.copy_from_slice(src),
                HalfBits::F16 => {
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = round(half::f16::from_bits(v).to_f32());
                    }
                }
            }
        })
    }

    /// Builds the layout, one block of 16 rows of W per rayon task; `row(i, dst)` writes
    /// row `i` of W as bf16 into `dst` (`k` values).
    fn pack(n: usize, k: usize, row: impl Fn(usize, &mut [u16]) + Sync) -> Self {
        let kp = k.div_ceil(DEPTH).max(1) * DEPTH;
        let np = n.div_ceil(STEP).max(1) * STEP;
        let mut data = vec![0u16; np * kp];
        data.par_chunks_mut(COLS * kp).enumerate().for_each_init(
            || vec![0u16; k],
            |buf, (block, dst)| {
                for c in 0..COLS {
                    let i = block * COLS + c;
                    if i >= n {
                        break;
                    }
                    row(i, buf);
                    for (kk, &v) in buf.iter().enumerate() {
                        dst[(kk / 2) * 2 * COLS + c * 2 + kk % 2] = v;
                    }
                }
            },
        );
        Self { n, k, kp, np, data }
    }

    /// Rows of W.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Columns of W.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// W's element `(i, kk)` as stored (bf16 bits).
    pub fn get(&self, i: usize, kk: usize) -> u16 {
        let block = i / COLS;
        self.data[block * COLS * self.kp + (kk / 2) * 2 * COLS + (i % COLS) * 2 + kk % 2]
    }

    /// `x (m×k) · Wᵀ → (m×n)`, row-major, on this CPU's [`Path`].
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        self.matmul_on(Path::detect(), x, m)
    }

    /// [`Packed::matmul`] on a given path (one this CPU has: see [`Path::available`]).
    pub fn matmul_on(&self, path: Path, x: &[f32], m: usize) -> Vec<f32> {
        assert_eq!(x.len(), m * self.k, "x must be m × k");
        let mut out = vec![0f32; m * self.n];
        if m == 0 || self.n == 0 {
            return out;
        }
        let mp = m.div_ceil(STEP) * STEP;
        let (k, kp) = (self.k, self.kp);
        // x rounded to bf16, padded with zero rows and channels.
        let mut xb = vec![0u16; mp * kp];
        xb.par_chunks_mut(kp)
            .zip(x.par_chunks(k))
            .for_each(|(dst, src)| {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = round(v);
                }
            });
        let dst = OutPtr(out.as_mut_ptr());
        let starts: Vec<usize> = (0..self.np).step_by(TASK_COLS).collect();
        match path {
            Path::F32 => {
                let xf: Vec<f32> = xb.par_iter().map(|&b| widen(b)).collect();
                starts.into_par_iter().for_each(|c0| {
                    let cols = TASK_COLS.min(self.np - c0);
                    self.task_f32(&xf, m, c0, cols, dst)
                });
            }
            #[cfg(target_arch = "x86_64")]
            Path::Amx => {
                assert!(amx::available(), "AMX path on a CPU without it");
                starts.into_par_iter().for_each(|c0| {
                    let cols = TASK_COLS.min(self.np - c0);
                    // SAFETY: AMX is available (checked); the task writes only its columns.
                    unsafe { amx::task(self, &xb, m, mp, c0, cols, dst) }
                });
            }
            #[cfg(target_arch = "x86_64")]
            Path::Avx512Bf16 => {
                assert!(dp::available(), "AVX512-BF16 path on a CPU without it");
                starts.into_par_iter().for_each(|c0| {
                    let cols = TASK_COLS.min(self.np - c0);
                    // SAFETY: AVX512-BF16 is available (checked); the task writes only its
                    // columns.
                    unsafe { dp::task(self, &xb, m, mp, c0, cols, dst) }
                });
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("only Path::F32 is available off x86-64"),
        }
        out
    }

    /// Columns `c0..c0+cols` of the product on [`Path::F32`]: the packed columns widened
    /// into an f32 buffer, then one `gemm` call.
    fn task_f32(&self, xf: &[f32], m: usize, c0: usize, cols: usize, dst: OutPtr) {
        let kp = self.kp;
        let valid = cols.min(self.n.saturating_sub(c0));
        if valid == 0 {
            return;
        }
        let mut buf = vec![0f32; valid * kp];
        for (j, col) in buf.chunks_mut(kp).enumerate() {
            for (kk, v) in col.iter_mut().enumerate().take(self.k) {
                *v = widen(self.get(c0 + j, kk));
            }
        }
        // SAFETY: dst has m×n floats and this task writes only columns c0..c0+valid; xf
        // holds at least m rows of kp floats; rhs(kk, j) = buf[j·kp + kk].
        unsafe {
            gemm_into(
                (m, valid, kp),
                (dst.get().add(c0), self.n),
                (xf.as_ptr(), kp),
                (buf.as_ptr(), kp as isize, 1),
                1.0,
            )
        }
    }

    /// Copies a `32 × 32` f32 block computed at rows `r0..`, columns `c0..` into the output,
    /// leaving out the padding.
    fn store(&self, block: &[f32; STEP * STEP], m: usize, r0: usize, c0: usize, dst: OutPtr) {
        let rows = STEP.min(m.saturating_sub(r0));
        let cols = STEP.min(self.n.saturating_sub(c0));
        for r in 0..rows {
            // SAFETY: row r0 + r < m and columns c0..c0+cols < n lie inside the m×n output;
            // only the task owning columns c0.. writes them.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    block[r * STEP..].as_ptr(),
                    dst.get().add((r0 + r) * self.n + c0),
                    cols,
                )
            }
        }
    }
}

/// The AMX path.
#[cfg(target_arch = "x86_64")]
mod amx {
    use std::arch::asm;

    use super::{OutPtr, Packed, COLS, DEPTH, STEP};

    /// CPUID says AMX-TILE and AMX-BF16, and Linux grants this process the tile data
    /// state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), once per process.
    pub(super) fn available() -> bool {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is read only where the
            // maximum leaf allows it. (`unsafe` for toolchains before CPUID became safe.)
            #[allow(unused_unsafe)]
            let cpuid = unsafe {
                let max = std::arch::x86_64::__cpuid(0).eax;
                if max < 7 {
                    return false;
                }
                std::arch::x86_64::__cpuid_count(7, 0)
            };
            let tile = cpuid.edx & (1 << 24) != 0;
            let bf16 = cpuid.edx & (1 << 22) != 0;
            tile && bf16 && request_permission()
        })
    }

    #[cfg(target_os = "linux")]
    fn request_permission() -> bool {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain system call with integer arguments.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn request_permission() -> bool {
        false
    }

    /// Palette 1, all eight tiles 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    impl Config {
        fn new() -> Self {
            let mut c = [0u8; 64];
            c[0] = 1;
            for t in 0..8 {
                c[16 + 2 * t] = 64;
                c[48 + t] = 16;
            }
            Self(c)
        }
    }

    /// Columns `c0..c0+cols` of the product: for each 32 columns (two packed blocks, the
    /// same 256 KiB panel of W for every row group), each 32 rows, 2×2 tiles of 16×16
    /// accumulated over the whole depth.
    ///
    /// # Safety
    /// AMX must be [`available`]; `xb` holds `mp` rows of `kp` bf16 values; the caller owns
    /// columns `c0..c0+cols` of `dst`.
    pub(super) unsafe fn task(
        w: &Packed,
        xb: &[u16],
        m: usize,
        mp: usize,
        c0: usize,
        cols: usize,
        dst: OutPtr,
    ) {
        let config = Config::new();
        asm!("ldtilecfg [{0}]", in(reg) config.0.as_ptr(), options(nostack, readonly));
        let kp = w.kp;
        let steps = kp / DEPTH;
        let mut block = [0f32; STEP * STEP];
        for c in (c0..c0 + cols).step_by(STEP) {
            if c >= w.n {
                break;
            }
            let b0 = w.data.as_ptr().add((c / COLS) * COLS * kp);
            let b1 = b0.add(COLS * kp);
            for r in (0..mp).step_by(STEP) {
                if r >= m {
                    break;
                }
                let a0 = xb.as_ptr().add(r * kp);
                let a1 = a0.add(16 * kp);
                let out = block.as_mut_ptr();
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "2:",
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {sb}*1]",
                    "tileloadd tmm7, [{b1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    "add {a0}, 64",
                    "add {a1}, 64",
                    "add {b0}, 1024",
                    "add {b1}, 1024",
                    "dec {n}",
                    "jnz 2b",
                    "tilestored [{c00} + {sc}*1], tmm0",
                    "tilestored [{c01} + {sc}*1], tmm1",
                    "tilestored [{c10} + {sc}*1], tmm2",
                    "tilestored [{c11} + {sc}*1], tmm3",
                    a0 = inout(reg) a0 => _,
                    a1 = inout(reg) a1 => _,
                    b0 = inout(reg) b0 => _,
                    b1 = inout(reg) b1 => _,
                    n = inout(reg) steps => _,
                    sa = in(reg) kp * 2,
                    sb = in(reg) 64usize,
                    sc = in(reg) STEP * 4,
                    c00 = in(reg) out,
                    c01 = in(reg) out.add(16),
                    c10 = in(reg) out.add(16 * STEP),
                    c11 = in(reg) out.add(16 * STEP + 16),
                    options(nostack),
                );
                w.store(&block, m, r, c, dst);
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}

/// The AVX512-BF16 path.
#[cfg(target_arch = "x86_64")]
mod dp {
    use std::arch::x86_64::*;

    use super::{OutPtr, Packed, COLS, STEP};

    /// Rows of `x` per register group: 8 rows × 2 blocks of 16 columns = 16 accumulators.
    const ROWS: usize = 8;

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }

    /// Columns `c0..c0+cols` of the product, 8 rows × 32 columns at a time: per pair of
    /// input channels, two loads of W and eight broadcasts of `x`.
    ///
    /// # Safety
    /// AVX512-BF16 must be [`available`]; as [`super::amx::task`].
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn task(
        w: &Packed,
        xb: &[u16],
        m: usize,
        mp: usize,
        c0: usize,
        cols: usize,
        dst: OutPtr,
    ) {
        let kp = w.kp;
        let pairs = kp / 2;
        let mut block = [0f32; STEP * STEP];
        for c in (c0..c0 + cols).step_by(STEP) {
            if c >= w.n {
                break;
            }
            let b0 = w.data.as_ptr().add((c / COLS) * COLS * kp);
            let b1 = b0.add(COLS * kp);
            for r in (0..mp).step_by(STEP) {
                if r >= m {
                    break;
                }
                for g in (0..STEP).step_by(ROWS) {
                    let x = xb.as_ptr().add((r + g) * kp) as *const i32;
                    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
                    for p in 0..pairs {
                        let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(
                            b0.add(p * 2 * COLS) as *const __m512i,
                        ));
                        let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(
                            b1.add(p * 2 * COLS) as *const __m512i,
                        ));
                        for (i, a) in acc.iter_mut().enumerate() {
                            let v: __m512bh = std::mem::transmute(_mm512_set1_epi32(
                                x.add(i * pairs + p).read_unaligned(),
                            ));
                            a[0] = _mm512_dpbf16_ps(a[0], v, w0);
                            a[1] = _mm512_dpbf16_ps(a[1], v, w1);
                        }
                    }
                    for (i, a) in acc.iter().enumerate() {
                        let row = block.as_mut_ptr().add((g + i) * STEP);
                        _mm512_storeu_ps(row, a[0]);
                        _mm512_storeu_ps(row.add(16), a[1]);
                    }
                }
                w.store(&block, m, r, c, dst);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round(1.0), 0x3f80);
        assert_eq!(round(-2.0), 0xc000);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(round(1.0 + 2f32.powi(-8)), 0x3f80);
        // 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6: to the even one.
        assert_eq!(round(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        // Just above halfway rounds up.
        assert_eq!(round(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 0x3f81);
        assert_eq!(widen(round(f32::INFINITY)), f32::INFINITY);
        assert!(widen(round(f32::NAN)).is_nan());
        assert_eq!(widen(round(f32::MAX)), f32::INFINITY);
        // 0.1 = 0x3dcccccd in f32: the 16 bits cut off (0xcccd) are above half, so it rounds up.
        assert_eq!(round(0.1), 0x3dcd);
    }

    #[test]
    fn packing_keeps_every_element() {
        let (n, k) = (37, 45);
        let w: Vec<f32> = (0..n * k).map(|i| i as f32 * 0.25 - 100.0).collect();
        let p = Packed::from_f32(&w, n, k);
        for i in 0..n {
            for kk in 0..k {
                assert_eq!(p.get(i, kk), round(w[i * k + kk]), "({i}, {kk})");
            }
        }
        let bits: Vec<u16> = w
            .iter()
            .map(|&v| half::f16::from_f32(v).to_bits())
            .collect();
        let q = Packed::from_bits(&bits, HalfBits::F16, n, k);
        assert_eq!(
            q.data, p.data,
            "f16 inputs exact in f16 round like their f32 values"
        );
    }

    /// Every path this CPU has, against f64 sums of the same bf16 products, over shapes
    /// that exercise the padding of rows, columns and depth.
    #[test]
    fn every_path_computes_the_bf16_products() {
        let mut seed = 0x2545f4914f6cdd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        for &(m, n, k) in &[
            (1, 1, 1),
            (9, 17, 70),
            (33, 100, 64),
            (70, 300, 129),
            (5, 33, 2048),
        ] {
            let x: Vec<f32> = (0..m * k).map(|_| next() * 3.0).collect();
            let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
            let packed = Packed::from_f32(&w, n, k);
            for path in Path::available() {
                let got = packed.matmul_on(path, &x, m);
                for i in 0..m {
                    for j in 0..n {
                        let (mut sum, mut size) = (0f64, 0f64);
                        for kk in 0..k {
                            let p = widen(round(x[i * k + kk])) as f64
                                * widen(round(w[j * k + kk])) as f64;
                            sum += p;
                            size += p.abs();
                        }
                        let err = (got[i * n + j] as f64 - sum).abs();
                        assert!(
                            err <= 1e-6 * size.max(1e-30) * (k as f64).sqrt().max(1.0),
                            "{path:?} ({m}, {n}, {k}) at ({i}, {j}): {} vs {sum}",
                            got[i * n + j]
                        );
                    }
                }
            }
        }
    }
}
