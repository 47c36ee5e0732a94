//! Every architecture this build runs, one row each: the `model_type` names, the config
//! translator, the tensor names and GGUF support. [`SUPPORTED`], the dispatch and the
//! errors that list what is supported are all derived from [`ARCHITECTURES`].

use anyhow::{bail, Result};

use super::components::Vars;
use super::decoder::{DecoderSpec, Names};
use super::gguf::{self, GgufSupport};
use super::{gemma, gemma2, gemma3, gpt2, gpt_neox, llama, olmo2, phi, phi3, qwen2};
use crate::loading::gguf::GgufFile;

/// One architecture.
pub(crate) struct Architecture {
    /// config.json `model_type`s it serves.
    pub model_types: &'static [&'static str],
    /// config.json → resolved spec.
    pub spec: fn(serde_json::Value) -> Result<DecoderSpec>,
    /// Its tensor names (a checkpoint's spelling may depend on which tensors it holds).
    pub names: fn(&Vars) -> Names,
    /// GGUF support, if any.
    pub gguf: Option<GgufSupport>,
}

/// The registry.
pub(crate) const ARCHITECTURES: &[Architecture] = &[
    Architecture {
        model_types: &["phi"],
        spec: phi::spec,
        names: phi::names,
        gguf: None,
    },
    Architecture {
        model_types: &["llama", "mistral"],
        spec: llama::spec,
        names: llama::names,
        gguf: Some(GgufSupport {
            architecture: "llama",
            names: gguf::LLAMA_NAMES,
            config: gguf::llama_config,
            stored: gguf::as_checkpoint,
        }),
    },
    Architecture {
        model_types: &["qwen2"],
        spec: qwen2::spec,
        names: llama::names,
        gguf: Some(GgufSupport {
            architecture: "qwen2",
            names: gguf::QWEN_NAMES,
            config: gguf::qwen_config,
            stored: gguf::as_checkpoint,
        }),
    },
    Architecture {
        model_types: &["gpt2"],
        spec: gpt2::spec,
        names: gpt2::names,
        gguf: None,
    },
    Architecture {
        model_types: &["qwen3"],
        spec: qwen2::spec,
        names: llama::names,
        gguf: Some(GgufSupport {
            architecture: "qwen3",
            names: gguf::QWEN_NAMES,
            config: gguf::qwen_config,
            stored: gguf::as_checkpoint,
        }),
    },
    Architecture {
        model_types: &["olmo2"],
        spec: olmo2::spec,
        names: olmo2::names,
        gguf: None,
    },
    Architecture {
        model_types: &["gemma"],
        spec: gemma::spec,
        names: llama::names,
        gguf: Some(GgufSupport {
            architecture: "gemma",
            names: gguf::QWEN_NAMES,
            config: gguf::gemma_config,
            stored: gguf::gemma_norms_hold_the_one,
        }),
    },
    Architecture {
        model_types: &["gemma2"],
        spec: gemma2::spec,
        names: gemma2::names,
        gguf: Some(GgufSupport {
            architecture: "gemma2",
            names: gguf::GEMMA2_NAMES,
            config: gguf::gemma_config,
            stored: gguf::gemma_norms_hold_the_one,
        }),
    },
    Architecture {
        model_types: &["gemma3_text", "gemma3"],
        spec: gemma3::spec,
        names: gemma3::names,
        gguf: Some(GgufSupport {
            architecture: "gemma3",
            names: gguf::GEMMA2_NAMES,
            config: gguf::gemma_config,
            stored: gguf::gemma_norms_hold_the_one,
        }),
    },
    Architecture {
        model_types: &["gpt_neox"],
        spec: gpt_neox::spec,
        names: gpt_neox::names,
        gguf: Some(GgufSupport {
            architecture: "gptneox",
            names: gguf::GPTNEOX_NAMES,
            config: gguf::gptneox_config,
            stored: gguf::gptneox_qkv_in_blocks,
        }),
    },
    Architecture {
        model_types: &["phi3"],
        spec: phi3::spec,
        names: llama::names,
        gguf: Some(GgufSupport {
            architecture: "phi3",
            names: gguf::PHI3_NAMES,
            config: gguf::phi3_config,
            stored: gguf::as_checkpoint,
        }),
    },
];

/// Mixture-of-experts `model_type`s, refused by name: the lens runs dense blocks only.
/// Any other unsupported `model_type` with "moe" in it is taken as one too.
const MIXTURE_OF_EXPERTS: &[&str] = &[
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "olmoe",
    "flex_olmo",
    "deepseek_v2",
    "deepseek_v3",
    "dbrx",
    "jamba",
    "jetmoe",
    "granitemoe",
    "granitemoeshared",
    "phimoe",
    "gpt_oss",
    "minimax",
    "dots1",
    "llama4",
    "llama4_text",
    "qwen3_next",
];

/// Whether `model_type` names a mixture-of-experts architecture.
pub(crate) fn is_mixture_of_experts(model_type: &str) -> bool {
    MIXTURE_OF_EXPERTS.contains(&model_type) || model_type.to_ascii_lowercase().contains("moe")
}

const fn count_model_types() -> usize {
    let (mut n, mut i) = (0, 0);
    while i < ARCHITECTURES.len() {
        n += ARCHITECTURES[i].model_types.len();
        i += 1;
    }
    n
}

const MODEL_TYPES: [&str; count_model_types()] = {
    let mut out = [""; count_model_types()];
    let (mut i, mut k) = (0, 0);
    while i < ARCHITECTURES.len() {
        let names = ARCHITECTURES[i].model_types;
        let mut j = 0;
        while j < names.len() {
            out[k] = names[j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    out
};

/// Architectures this build can run, as config.json spells them.
pub const SUPPORTED: &[&str] = &MODEL_TYPES;

/// The row serving `model_type`.
pub(crate) fn for_model_type(model_type: &str) -> Option<&'static Architecture> {
    ARCHITECTURES
        .iter()
        .find(|a| a.model_types.contains(&model_type))
}

/// GGUF architectures (`general.architecture`) this build can run.
pub(crate) fn gguf_architectures() -> Vec<&'static str> {
    ARCHITECTURES
        .iter()
        .filter_map(|a| Some(a.gguf.as_ref()?.architecture))
        .collect()
}

/// The row running `file`'s architecture; else a one-line refusal that lists what runs.
pub(crate) fn for_gguf(file: &GgufFile) -> Result<(&'static Architecture, &'static GgufSupport)> {
    let arch = file.architecture()?;
    // llama.cpp stores Mixtral as "llama" with experts; its MoE architectures all count them.
    let experts = file
        .opt_usize(&format!("{arch}.expert_count"))?
        .unwrap_or(0);
    if experts > 0 || is_mixture_of_experts(&arch) {
        bail!(
            "{} is a GGUF model of architecture \"{arch}\" with {experts} experts, a mixture-of-experts model, which logitlens does not support; supported GGUF architectures: {}",
            file.path().display(),
            gguf_architectures().join(", ")
        );
    }
    let found = ARCHITECTURES.iter().find_map(|a| {
        let g = a.gguf.as_ref()?;
        (g.architecture == arch).then_some((a, g))
    });
    match found {
        Some(row) => Ok(row),
        None => bail!(
            "{} is a GGUF model of architecture \"{arch}\"; supported GGUF architectures: {}",
            file.path().display(),
            gguf_architectures().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_lists_every_row_in_order() {
        assert_eq!(
            SUPPORTED,
            [
                "phi",
                "llama",
                "mistral",
                "qwen2",
                "gpt2",
                "qwen3",
                "olmo2",
                "gemma",
                "gemma2",
                "gemma3_text",
                "gemma3",
                "gpt_neox",
                "phi3"
            ]
        );
        assert_eq!(
            gguf_architectures(),
            ["llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gptneox", "phi3"]
        );
        assert!(for_model_type("mistral").is_some_and(|a| a.model_types[0] == "llama"));
        assert!(for_model_type("bert").is_none());
    }

    #[test]
    fn mixture_of_experts_types_are_recognised() {
        for t in [
            "mixtral",
            "qwen3_moe",
            "qwen2_moe",
            "olmoe",
            "deepseek_v3",
            "ernie4_5_moe",
        ] {
            assert!(is_mixture_of_experts(t), "{t}");
        }
        for t in SUPPORTED.iter().chain(&["bert", "t5"]) {
            assert!(!is_mixture_of_experts(t), "{t}");
        }
    }

    /// A GGUF header with `general.architecture` and `{arch}.expert_count`, no tensors.
    fn gguf_header(arch: &str, experts: u32) -> tempfile::NamedTempFile {
        use crate::loading::gguf::testing::{header, Meta};
        let key = format!("{arch}.expert_count");
        header(&[
            ("general.architecture", Meta::Str(arch)),
            (&key, Meta::U32(experts)),
        ])
    }

    /// Mixtral in GGUF is "llama" with experts: refused as a mixture of experts, in one line,
    /// as is an architecture llama.cpp names as one.
    #[test]
    fn mixture_of_experts_gguf_is_refused_by_name() {
        for (arch, experts) in [("llama", 8), ("qwen3moe", 128)] {
            let tmp = gguf_header(arch, experts);
            let file = GgufFile::open(tmp.path()).unwrap();
            let msg = format!("{:#}", for_gguf(&file).err().unwrap());
            assert!(!msg.contains('\n'), "{msg}");
            let parts = [
                &format!("\"{arch}\""),
                "mixture-of-experts",
                "supported GGUF",
            ];
            for part in parts {
                assert!(msg.contains(part), "{msg}: lacks {part}");
            }
        }
        let dense = GgufFile::open(gguf_header("llama", 0).path()).unwrap();
        assert!(for_gguf(&dense).is_ok());
    }

    /// README.md's "Supported models" table has a row for every model_type and every GGUF
    /// architecture, and no row for one the registry lacks.
    #[test]
    fn readme_table_matches_the_registry() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let table = readme
            .split("## Supported models")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README.md has a \"## Supported models\" section");
        let first_cells: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
            .skip(1)
            .filter_map(|l| l.split('|').nth(1).map(str::trim))
            .collect();
        let hf: Vec<&str> = first_cells
            .iter()
            .filter_map(|c| c.strip_prefix('`')?.strip_suffix('`'))
            .collect();
        assert_eq!(hf, SUPPORTED, "README table rows vs registry model_types");
        let gguf: Vec<&str> = first_cells
            .iter()
            .filter_map(|c| {
                c.strip_prefix("GGUF, `general.architecture = ")?
                    .strip_suffix('`')
            })
            .collect();
        assert_eq!(gguf, gguf_architectures(), "README GGUF rows vs registry");
        assert_eq!(first_cells.len(), hf.len() + gguf.len(), "{first_cells:?}");
    }

    fn read(relative: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The property test feeds arbitrary configs to every model_type, and every row has a
    /// fixture the parity tests run against transformers.
    #[test]
    fn test_lists_cover_every_row() {
        let properties = read("tests/properties.rs");
        let line = properties
            .lines()
            .find(|l| l.contains("fn arbitrary_config_json_never_panics"))
            .expect("tests/properties.rs has the arbitrary-config property");
        for name in SUPPORTED {
            assert!(
                line.contains(&format!("Just(\"{name}\")")),
                "properties: no {name}"
            );
        }
        // (directory name, model_type) of every fixture.
        let fixtures = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
            .unwrap()
            .filter_map(|e| {
                let e = e.ok()?;
                let t = std::fs::read_to_string(e.path().join("config.json")).ok()?;
                let v: serde_json::Value = serde_json::from_str(&t).ok()?;
                let name = e.file_name().to_string_lossy().into_owned();
                Some((name, v["model_type"].as_str()?.to_string()))
            })
            .collect::<Vec<_>>();
        let parity = read("tests/parity.rs");
        for arch in ARCHITECTURES {
            let tested = fixtures.iter().any(|(name, model_type)| {
                arch.model_types.contains(&model_type.as_str())
                    && parity.contains(&format!("\"{name}\""))
            });
            assert!(tested, "parity: no fixture for {:?}", arch.model_types);
        }
    }
}
