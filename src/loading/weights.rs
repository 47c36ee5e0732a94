//! Memory-mapped safetensors weights, converted to the compute dtype only when a tensor is
//! asked for, and quickly (SIMD f16 → f32 across all cores).
//!
//! Models build one block at a time from this store and drop it after use, so a run never
//! holds the whole checkpoint converted. A dry-run view checks every name and shape against
//! config.json at load time without reading any weight.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Result};
use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::{Dtype as StDtype, SafeTensors};

use super::store::{Matrix, Strategy, WeightSource};
use crate::error::one_line;

/// Where one tensor lies in which file.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    dtype: StDtype,
    shape: Vec<usize>,
    /// Position in [`Weights::names`].
    index: usize,
    start: usize,
    end: usize,
}

/// All tensors of a checkpoint (one file or shards), memory-mapped.
pub struct Weights {
    maps: Vec<Mmap>,
    files: Vec<std::fs::File>,
    entries: HashMap<String, Entry>,
    /// Tensor names by [`Entry::index`], for [`Mapped`] handles.
    names: Vec<String>,
    /// Set to stop the background prefault (see [`Weights::prefault_in_background`]).
    prefault_stop: std::sync::atomic::AtomicBool,
}

impl Weights {
    /// Maps each file and indexes its tensors. Truncated or corrupt files fail here.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let (mut maps, mut files) = (Vec::new(), Vec::new());
        let mut entries = HashMap::new();
        for (file, path) in paths.iter().enumerate() {
            let (map, handle) = map_file(path)?;
            index_file(&map, file, path, &mut entries)?;
            maps.push(map);
            files.push(handle);
        }
        let mut names = vec![String::new(); entries.len()];
        for (i, (name, e)) in entries.iter_mut().enumerate() {
            e.index = i;
            names[i] = name.clone();
        }
        Ok(Self {
            maps,
            files,
            entries,
            names,
            prefault_stop: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The stored shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The stored dtype of the largest tensor: what the checkpoint "is".
    pub fn stored_dtype(&self) -> Option<StDtype> {
        self.entries
            .values()
            .max_by_key(|e| e.end - e.start)
            .map(|e| e.dtype)
    }

    /// Loads `name` converted to `dtype`.
    pub fn load(&self, name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let e = self.entries.get(name).ok_or_else(|| {
            candle_core::Error::Msg(format!("tensor {name} is missing from the weights"))
        })?;
        // Half weights are read as stored when they are wanted in their own dtype, and off
        // the CPU, where they travel as stored (half the bytes) and the device converts them.
        let t = match (e.dtype, dtype) {
            (StDtype::F16, want) if want == DType::F16 || !device.is_cpu() => {
                Tensor::from_vec(self.read_half::<f16>(e)?, e.shape.as_slice(), device)?
                    .to_dtype(dtype)?
            }
            (StDtype::BF16, want) if want == DType::BF16 || !device.is_cpu() => {
                Tensor::from_vec(self.read_half::<bf16>(e)?, e.shape.as_slice(), device)?
                    .to_dtype(dtype)?
            }
            _ => self.load_entry(e, &self.maps[e.file][e.start..e.end], dtype, device)?,
        };
        self.release(e);
        Ok(t)
    }

    /// A stored half-precision tensor read as it is with `pread`, in parallel: the kernel
    /// copies from the page cache, which is cheaper than faulting in a mapping and copying.
    fn read_half<H: bytemuck::Pod + Send + Sync>(&self, e: &Entry) -> candle_core::Result<Vec<H>> {
        use std::os::unix::fs::FileExt;
        const PIECE: usize = 4 << 20;
        let mut out: Vec<H> = zeroed((e.end - e.start) / 2);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out);
        let file = &self.files[e.file];
        bytes
            .par_chunks_mut(PIECE)
            .enumerate()
            .try_for_each(|(i, piece)| file.read_exact_at(piece, (e.start + i * PIECE) as u64))
            .map_err(|err| candle_core::Error::Msg(format!("cannot read the weights: {err}")))?;
        Ok(out)
    }

    /// Drops the mapped pages of a tensor that has been copied out, so that the process
    /// holds each weight once (converted) rather than twice. The pages stay in the page
    /// cache; touching them again just maps them back.
    fn release(&self, e: &Entry) {
        const PAGE: usize = 4096;
        let start = e.start.div_ceil(PAGE) * PAGE;
        let end = e.end / PAGE * PAGE;
        if end > start {
            // SAFETY: the map is private and read-only; after MADV_DONTNEED a later read
            // sees the file's unchanged contents again, so no slice we hand out changes.
            let _ = unsafe {
                self.maps[e.file].unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }

    /// Converts raw bytes; f16/bf16 go through the fast f32 path first.
    fn load_entry(
        &self,
        e: &Entry,
        bytes: &[u8],
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let shape = e.shape.as_slice();
        match e.dtype {
            StDtype::F16 => Tensor::from_vec(f16_to_f32(bytes), shape, device)?.to_dtype(dtype),
            StDtype::BF16 => Tensor::from_vec(bf16_to_f32(bytes), shape, device)?.to_dtype(dtype),
            StDtype::F32 => Tensor::from_vec(le_f32(bytes), shape, device)?.to_dtype(dtype),
            other => Err(candle_core::Error::Msg(format!(
                "weights stored as {other:?} are not supported"
            ))),
        }
    }

    /// Touches the mapped files from a background thread so that the forward pass finds
    /// their pages mapped. It runs while the tokenizer loads (single-threaded, ~0.1 s for
    /// phi-1_5), when the second core is idle, and stops when the weights are dropped. Plain
    /// reads fault pages in under the kernel's per-VMA lock, so the loading thread's
    /// allocations are not held up (MADV_POPULATE_READ was: it slowed the tokenizer 3×).
    /// Only the tensors under `prefixes` are touched ("" is every tensor), so the parts of a
    /// checkpoint the model never uses (a multimodal checkpoint's vision tower) stay unread.
    pub fn prefault_in_background(self: &Arc<Self>, prefixes: &[&str]) {
        const STRIDE: usize = 64 << 10;
        const CHUNK: usize = 32 << 20;
        let under = |name: &str| {
            prefixes.iter().any(|p| {
                p.is_empty()
                    || name
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        };
        let mut ranges: Vec<(usize, usize, usize)> = (self.entries.iter())
            .filter(|(name, _)| under(name))
            .map(|(_, e)| (e.file, e.start, e.end))
            .collect();
        ranges.sort_unstable();
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("prefault".into())
            .spawn(move || {
                for (file, start, end) in ranges {
                    for offset in (start..end).step_by(CHUNK) {
                        let Some(w) = weak.upgrade() else { return };
                        if w.prefault_stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                        let map = &w.maps[file];
                        for at in (offset..(offset + CHUNK).min(end)).step_by(STRIDE) {
                            // SAFETY: `at` lies inside a tensor of the mapping, which `w`
                            // keeps alive.
                            unsafe { std::ptr::read_volatile(map.as_ptr().add(at)) };
                        }
                    }
                }
            });
        drop(spawned);
    }

    /// Stops the prefault and lets every mapped page go, once: long inputs need the memory
    /// for activations, and their matmuls map each weight only while they use it.
    pub fn release_prefaulted(&self) {
        use std::sync::atomic::Ordering;
        if self.prefault_stop.swap(true, Ordering::Relaxed) {
            return;
        }
        for map in &self.maps {
            // SAFETY: the whole private read-only mapping; later reads map the file's
            // unchanged pages back in.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    fn check_shape(&self, name: &str, want: &[usize]) -> Result<()> {
        match self.shape(name) {
            None => Err(anyhow!("tensor {name} is missing from the weights")),
            Some(have) if have != want => Err(anyhow!(
                "tensor {name} has shape {have:?} but config.json implies {want:?}"
            )),
            Some(_) => Ok(()),
        }
    }
}

fn map_file(path: &Path) -> Result<(Mmap, std::fs::File)> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow!("cannot open weights {}: {e}", path.display()))?;
    // SAFETY: read-only map; like every mmap user we rely on nobody truncating the file
    // while we run.
    let map = unsafe { Mmap::map(&file) }
        .map_err(|e| anyhow!("cannot map weights {}: {e}", path.display()))?;
    Ok((map, file))
}

fn index_file(
    map: &Mmap,
    file: usize,
    path: &Path,
    entries: &mut HashMap<String, Entry>,
) -> Result<()> {
    let st = SafeTensors::deserialize(map).map_err(|e| {
        anyhow!(
            "cannot read the weights {}: {}; the file is truncated or not safetensors, download it again",
            path.display(),
            one_line(&e.to_string())
        )
    })?;
    let base = map.as_ptr() as usize;
    for (name, view) in st.tensors() {
        let start = view.data().as_ptr() as usize - base;
        entries.insert(
            name,
            Entry {
                file,
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                index: 0,
                start,
                end: start + view.data().len(),
            },
        );
    }
    Ok(())
}

/// Elements converted per parallel task: large enough to amortise scheduling.
const CHUNK: usize = 1 << 16;

/// Little-endian f16 bytes → f32, with F16C where the CPU has it, on all cores.
pub(crate) fn f16_to_f32(bytes: &[u8]) -> Vec<f32> {
    use half::slice::HalfFloatSliceExt;
    let src = le_u16(bytes);
    let mut out = zeroed::<f32>(src.len());
    out.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| {
            let halves: &[f16] = bytemuck::cast_slice(s);
            halves.convert_to_f32_slice(o);
        });
    out
}

/// Little-endian bf16 bytes → f32 (a shift), on all cores.
pub(crate) fn bf16_to_f32(bytes: &[u8]) -> Vec<f32> {
    let src = le_u16(bytes);
    let mut out = zeroed::<f32>(src.len());
    out.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| {
            for (o, &b) in o.iter_mut().zip(s) {
                *o = f32::from_bits((b as u32) << 16);
            }
        });
    out
}

/// A zeroed buffer whose pages the kernel may back with 2 MiB huge pages.
///
/// Each block's weights land in fresh memory; with 4 KiB pages the page faults cost more
/// than the conversion itself (measured: 60 ms against 9 ms for 16.8M floats).
fn zeroed<T: bytemuck::Zeroable>(n: usize) -> Vec<T> {
    const HUGE: usize = 2 << 20;
    // alloc_zeroed: fresh pages, not yet touched, so the advice below still applies.
    let mut v: Vec<T> = bytemuck::allocation::zeroed_vec(n);
    let (ptr, len) = (v.as_mut_ptr() as usize, n * std::mem::size_of::<T>());
    let start = ptr.div_ceil(HUGE) * HUGE;
    let end = (ptr + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: advice on memory this Vec owns; MADV_HUGEPAGE changes no contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
    v
}

fn le_u16(bytes: &[u8]) -> std::borrow::Cow<'_, [u16]> {
    match bytemuck::try_cast_slice::<u8, u16>(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
    }
}

fn le_f32(bytes: &[u8]) -> Vec<f32> {
    match bytemuck::try_cast_slice::<u8, f32>(bytes) {
        Ok(s) => s.to_vec(),
        Err(_) => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

impl WeightSource for Arc<Weights> {
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        Weights::shape(self, name).map(<[usize]>::to_vec)
    }

    fn check(&self, name: &str, want: &[usize]) -> Result<()> {
        self.check_shape(name, want)
    }

    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        Ok(Weights::load(self, name, dtype, device)?)
    }

    /// Half-precision matrices stay mapped under [`Strategy::MappedHalf`].
    fn matrix(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
        strategy: Strategy,
    ) -> Result<Matrix> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| anyhow!("tensor {name} is missing from the weights"))?;
        let half = matches!(e.dtype, StDtype::F16 | StDtype::BF16);
        if half && strategy == Strategy::MappedHalf && dtype == DType::F32 {
            return Ok(Matrix::MappedHalf(Mapped {
                store: self.clone(),
                index: e.index,
            }));
        }
        Ok(Matrix::Dense(Weights::load(self, name, dtype, device)?))
    }
}

/// A half-precision weight left in the mapped file rather than copied into a tensor.
///
/// Layers that hold one read the f16/bf16 bytes straight from the page cache.
#[derive(Clone)]
pub struct Mapped {
    store: Arc<Weights>,
    index: usize,
}

impl Mapped {
    fn entry(&self) -> &Entry {
        &self.store.entries[&self.store.names[self.index]]
    }

    /// The stored shape.
    pub fn shape(&self) -> &[usize] {
        &self.entry().shape
    }

    /// Which half format the bytes hold.
    pub fn bits(&self) -> crate::kernels::HalfBits {
        match self.entry().dtype {
            StDtype::BF16 => crate::kernels::HalfBits::Bf16,
            _ => crate::kernels::HalfBits::F16,
        }
    }

    /// The raw 16-bit values (borrowed from the map when aligned).
    pub fn halves(&self) -> std::borrow::Cow<'_, [u16]> {
        let e = self.entry();
        le_u16(&self.store.maps[e.file][e.start..e.end])
    }

    /// Stops the background prefault and drops every mapped page of the checkpoint, once.
    pub fn release_prefaulted(&self) {
        self.store.release_prefaulted();
    }

    /// Drops this tensor's pages from the process (they stay in the page cache).
    pub fn release(&self) {
        self.store.release(self.entry());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_is_exact() {
        let values: Vec<f16> = [
            -65504.0f32,
            -1.5,
            -0.0,
            0.0,
            1e-7,
            0.333,
            1.0,
            2048.5,
            65504.0,
        ]
        .iter()
        .map(|&v| f16::from_f32(v))
        .collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let got = f16_to_f32(&bytes);
        let want: Vec<f32> = values.iter().map(|v| v.to_f32()).collect();
        assert_eq!(got, want);
        let misaligned = [&[0u8][..], &bytes].concat();
        assert_eq!(f16_to_f32(&misaligned[1..]), want);
    }

    #[test]
    fn bf16_conversion_is_exact() {
        let values: Vec<bf16> = [-3.0e38f32, -1.5, 0.0, 0.1, 7.0]
            .iter()
            .map(|&v| bf16::from_f32(v))
            .collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let want: Vec<f32> = values.iter().map(|v| v.to_f32()).collect();
        assert_eq!(bf16_to_f32(&bytes), want);
    }
}
