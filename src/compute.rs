//! Where the model computes: a candle device, and the [`Backend`] its operations run on.
//!
//! There is one model description per architecture and one decoder. It runs two ways, the
//! two [`Backend`]s, decided here once and passed to every operation of the compute seam
//! (`crate::ops`, and the lens's reduction `lens::reduce`):
//!
//! - **CPU kernels** ([`Backend::Kernels`], the default on the CPU): half-precision weights
//!   are multiplied in place from the mapped checkpoint ([`crate::kernels`]), attention runs
//!   by query blocks, blocks are built when the forward pass reaches them, and each logits
//!   row is reduced to its statistics on the host.
//! - **Generic** ([`Backend::Tensors`]: every other device, or the CPU when forced with
//!   `--generic-path` or `LOGITLENS_GENERIC_PATH=1`): every weight is converted to the
//!   compute dtype on the device once and stays there, every operation is a candle tensor
//!   op, and the statistics are reduced on the device chunk by chunk (see `lens::reduce`).
//!   Forcing it on the CPU is how `cargo test` proves the device path without a GPU.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use candle_core::{Device, DeviceLocation};

/// The device a person asks for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA GPU number N (`cuda` is `cuda:0`).
    Cuda(usize),
    /// Metal GPU number N (`metal` is `metal:0`).
    Metal(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (kind, index) = match text.split_once(':') {
            Some((kind, n)) => match n.parse::<usize>() {
                Ok(n) => (kind, n),
                Err(_) => {
                    return Err(format!(
                        "\"{n}\" is not a device number: write e.g. {kind}:0"
                    ))
                }
            },
            None => (text, 0),
        };
        match (kind, text.contains(':')) {
            ("cpu", false) => Ok(Self::Cpu),
            ("cuda", _) => Ok(Self::Cuda(index)),
            ("metal", _) => Ok(Self::Metal(index)),
            _ => Err(format!(
                "unknown device \"{text}\": use cpu, cuda, cuda:N, metal or metal:N"
            )),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

impl From<DeviceLocation> for DeviceSpec {
    fn from(location: DeviceLocation) -> Self {
        match location {
            DeviceLocation::Cpu => Self::Cpu,
            DeviceLocation::Cuda { gpu_id } => Self::Cuda(gpu_id),
            DeviceLocation::Metal { gpu_id } => Self::Metal(gpu_id),
        }
    }
}

impl DeviceSpec {
    /// Why this device cannot be opened, as a typed error.
    fn error(self, reason: String) -> anyhow::Error {
        crate::error::Error::Device {
            device: self.to_string(),
            reason,
        }
        .into()
    }

    /// Opens the device, or says in one line why it cannot: a build without the feature
    /// says how to build with it.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(self.error("this logitlens was built without CUDA; rebuild it with `cargo install --features cuda` (or scripts/build_cuda.sh, see docs/GPU.md)".to_string()));
                }
                // Exact mode: f32 products accumulate in f32 (no TF32), as on the CPU. It is
                // candle's default; said here so that nothing turns it on unnoticed.
                candle_core::cuda::set_gemm_reduced_precision_f32(false);
                Device::new_cuda(n).map_err(|e| {
                    self.error(format!(
                        "no usable CUDA device {n} ({}); check nvidia-smi and that the CUDA libraries are on LD_LIBRARY_PATH (docs/GPU.md)",
                        crate::error::one_line(&e.to_string())
                    ))
                })
            }
            Self::Metal(n) => {
                if !cfg!(feature = "metal") {
                    return Err(self.error("this logitlens was built without Metal; rebuild it with `cargo install --features metal` on macOS".to_string()));
                }
                Device::new_metal(n).map_err(|e| {
                    self.error(format!(
                        "no usable Metal device {n} ({})",
                        crate::error::one_line(&e.to_string())
                    ))
                })
            }
        }
    }
}

/// How the operations of the compute seam (`crate::ops`) run: each operation matches on
/// it, with both implementations side by side. Decided once per model ([`Compute::backend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// This crate's CPU kernels, on f32 values in host memory; an operation given another
    /// dtype takes its tensor implementation.
    Kernels,
    /// candle tensor ops on the model's device (the generic path).
    Tensors,
}

impl Backend {
    /// Whether every weight is uploaded to the device once at load and kept there
    /// ([`Backend::Tensors`]), rather than read from the mapped file block by block when the
    /// forward pass reaches it ([`Backend::Kernels`]).
    pub fn resident_weights(self) -> bool {
        self == Backend::Tensors
    }
}

/// What `--fast` did (provenance's `fast`): asked for, and whether the bf16 head ran (on
/// `path`) or the head stayed exact (and `why`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FastUse {
    pub requested: bool,
    pub used: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A device and the way the model runs on it.
#[derive(Debug, Clone)]
pub struct Compute {
    device: Device,
    backend: Backend,
    fast: bool,
}

impl Compute {
    /// The CPU with its own kernels.
    pub fn cpu() -> Self {
        Self::new(Device::Cpu, false)
    }

    /// `device`; `generic` forces the generic path on the CPU (other devices always take it).
    pub fn new(device: Device, generic: bool) -> Self {
        let backend = match device.is_cpu() && !generic {
            true => Backend::Kernels,
            false => Backend::Tensors,
        };
        Self {
            device,
            backend,
            fast: false,
        }
    }

    /// The same, with `--fast`: the lens head's products in bf16 with f32 accumulation
    /// ([`crate::kernels::dot_bf16`]). It applies to the CPU kernels only.
    pub fn with_fast(mut self, fast: bool) -> Self {
        self.fast = fast;
        self
    }

    /// Whether the head runs in bf16: `--fast` on the CPU kernels, where the CPU has a bf16
    /// path faster than the exact head ([`crate::kernels::dot_bf16::Path::for_fast`]).
    pub fn fast(&self) -> bool {
        self.fast_choice().is_some_and(|c| c.is_ok())
    }

    /// `--fast` on the CPU kernels: the bf16 path the head takes, or why it stays exact;
    /// `None` without `--fast`.
    fn fast_choice(
        &self,
    ) -> Option<std::result::Result<crate::kernels::dot_bf16::Path, &'static str>> {
        (self.fast && self.backend == Backend::Kernels)
            .then(crate::kernels::dot_bf16::Path::for_fast)
    }

    /// What `--fast` does on this machine, for provenance and timings: the bf16 path the
    /// head takes, or that it runs exact and why; `None` without `--fast`.
    pub fn fast_use(&self) -> Option<FastUse> {
        self.fast_choice().map(|choice| match choice {
            Ok(path) => FastUse {
                requested: true,
                used: true,
                path: Some(format!("bf16 head, {}", path.name())),
                why: None,
            },
            Err(why) => FastUse {
                requested: true,
                used: false,
                path: None,
                why: Some(why.to_string()),
            },
        })
    }

    /// [`Compute::fast_use`] in a few words, for the timings: the bf16 path, or "exact f32
    /// head".
    pub fn fast_path(&self) -> Option<String> {
        self.fast_use()
            .map(|f| f.path.unwrap_or_else(|| "exact f32 head".to_string()))
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How the operations run: this crate's CPU kernels on the CPU unless the generic path
    /// is forced, tensor ops everywhere else.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The path's name, as provenance and timings report it: "cpu", "cpu (generic path)",
    /// "cuda:0", ….
    pub fn describe(&self) -> String {
        let name = DeviceSpec::from(self.device.location());
        match self.device.is_cpu() && self.backend == Backend::Tensors {
            true => format!("{name} (generic path)"),
            false => name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs_parse_and_print() {
        for (text, want) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
            ("metal", DeviceSpec::Metal(0)),
        ] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap(), want, "{text}");
        }
        assert_eq!(DeviceSpec::Cuda(0).to_string(), "cuda:0");
        for bad in ["gpu", "cuda:x", "cpu:1", "", "cuda:-1"] {
            let err = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(!err.contains('\n') && !err.is_empty(), "{bad}: {err}");
        }
    }

    #[test]
    fn the_kernels_backend_runs_only_on_the_cpu_unforced() {
        assert_eq!(Compute::cpu().backend(), Backend::Kernels);
        assert_eq!(Compute::new(Device::Cpu, true).backend(), Backend::Tensors);
        assert_eq!(Compute::cpu().describe(), "cpu");
        assert_eq!(
            Compute::new(Device::Cpu, true).describe(),
            "cpu (generic path)"
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build_it() {
        let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
        assert!(!err.contains('\n'));
    }
}
