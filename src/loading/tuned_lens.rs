//! Tuned lenses on disk, as the tuned-lens package (0.2.0) saves and publishes them: a
//! directory holding `config.json` and `params.pt`, locally or under `lens/<model id>/` in
//! the Hugging Face Space `AlignmentResearch/tuned-lens`.
//!
//! `params.pt` is `torch.save` of a `ModuleList` of `nn.Linear(d_model, d_model)` state:
//! keys `"0.weight"`, `"0.bias"`, …, `"{L-1}.weight"`, `"{L-1}.bias"`, weights `[out, in]`
//! in f32 or f16. It is read with candle's PyTorch reader ([`candle_core::pickle`]), which
//! ignores the device a storage names, so lenses saved from a GPU load on the CPU.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::pickle::PthTensors;
use candle_core::{DType, Tensor};
use hf_hub::{Repo, RepoType};
use serde::Deserialize;

use super::source::{self, HubSettings, Missing};
use crate::error::{one_line, Error};

/// The Space the tuned-lens package reads published lenses from (its `TUNED_LENS_REPO_ID`).
pub const DEFAULT_REPO: &str = "AlignmentResearch/tuned-lens";

/// A tuned lens's two files.
#[derive(Debug, Clone)]
pub struct LensFiles {
    pub config: PathBuf,
    pub params: PathBuf,
}

/// The keys of config.json logitlens reads; the others (`base_model_name_or_path`,
/// `unembed_hash`, and the misspelt `unemebd_hash` of published files) are ignored.
#[derive(Debug, Deserialize)]
struct LensConfig {
    d_model: usize,
    num_hidden_layers: usize,
    #[serde(default = "yes")]
    bias: bool,
    #[serde(default = "linear")]
    lens_type: String,
}

fn yes() -> bool {
    true
}

fn linear() -> String {
    LENS_TYPE.to_string()
}

/// The one kind of lens the package defines.
const LENS_TYPE: &str = "linear_tuned_lens";

/// What a lens directory holds, for messages.
pub(crate) const LAYOUT: &str = "a tuned lens directory holds config.json and params.pt, as tuned-lens's TunedLens.save writes them";

/// The files of the lens in `dir`.
pub fn local(dir: &Path) -> Result<LensFiles> {
    if !dir.is_dir() {
        return Err(Error::TunedLensNotDir {
            dir: dir.display().to_string(),
            layout: LAYOUT,
        }
        .into());
    }
    let need = |name: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        match p.is_file() {
            true => Ok(p),
            false => bail!("{} has no {name}; {LAYOUT}", dir.display()),
        }
    };
    Ok(LensFiles {
        config: need("config.json")?,
        params: need("params.pt")?,
    })
}

/// Where the Space keeps the lens of `model_id`: `lens/<model id>/`. GPT-2's lenses sit
/// under its old bare names (`lens/gpt2/`), so `openai-community/gpt2*` maps there.
pub(crate) fn hub_folder(model_id: &str) -> String {
    let id = model_id
        .strip_prefix("openai-community/")
        .unwrap_or(model_id);
    format!("lens/{id}")
}

/// The lens of `model_id` published in the Space `repo` (revision main), fetched through
/// hf-hub by the rules models follow (cache, `HF_HUB_OFFLINE`, token).
pub fn hub(model_id: &str, repo: &str, hub: &HubSettings) -> Result<LensFiles> {
    let folder = hub_folder(model_id);
    let space = Repo::with_revision(repo.to_string(), RepoType::Space, "main".to_string());
    let get = |name: &str| -> Result<PathBuf> {
        source::repo_file(&space, hub, &format!("{folder}/{name}")).map_err(|miss| match miss {
            Missing::NotCached => Error::TunedLensNotCached {
                problem: format!(
                    "no tuned lens for {model_id} in the Hugging Face cache {} (Space {repo}, {folder}/{name}) and HF_HUB_OFFLINE is set",
                    hub.cache_dir.display()
                ),
            }
            .into(),
            Missing::NotFetched(why) => Error::TunedLensNotFetched {
                problem: format!(
                    "cannot fetch {folder}/{name} from the Space {repo}: {why}; the Space publishes lenses for some models only (GPT-2, Pythia, Llama, OPT, Vicuna among them)"
                ),
            }
            .into(),
            Missing::Client(e) => e,
        })
    };
    Ok(LensFiles {
        config: get("config.json")?,
        params: get("params.pt")?,
    })
}

/// One layer's translator parameters as stored: `W` is `[out, in]` = `[D, D]` as
/// `nn.Linear` stores it. Plain data: [`crate::lens::Translator`] is built from it and
/// applied by the tuned lens.
#[derive(Debug, Clone)]
pub struct LayerParams {
    /// `[D, D]`, f32, f16 or bf16 (half weights stay half and are widened as they are
    /// multiplied).
    pub weight: Tensor,
    /// `[D]`, when the lens has biases.
    pub bias: Option<Tensor>,
}

/// Refuses a lens of `d_model` and `layers` for a model of `hidden_size` and `num_layers`,
/// in one line naming both shapes.
pub(crate) fn check_fit(
    d_model: usize,
    layers: usize,
    hidden_size: usize,
    num_layers: usize,
) -> Result<()> {
    if (d_model, layers) != (hidden_size, num_layers) {
        bail!(
            "the tuned lens has d_model {d_model} and {layers} layers, but the model has hidden size {hidden_size} and {num_layers} layers; use the lens trained for this model"
        );
    }
    Ok(())
}

/// Reads the translators' parameters of the lens in `files` (layer 0 first) for a model of
/// `hidden_size` and `num_layers` blocks, checking that it fits before reading one.
pub fn load(files: &LensFiles, hidden_size: usize, num_layers: usize) -> Result<Vec<LayerParams>> {
    let config = read_config(&files.config)?;
    check_fit(
        config.d_model,
        config.num_hidden_layers,
        hidden_size,
        num_layers,
    )
    .with_context(|| format!("{}", files.config.display()))?;
    let params = &files.params;
    let unreadable = |e: candle_core::Error| {
        anyhow!(
            "{} is not a readable PyTorch checkpoint ({}); a tuned lens's params.pt is torch.save of its translators' state_dict: save or download it again",
            params.display(),
            one_line(&e.to_string())
        )
    };
    super::torch_zip::check(params)?;
    let pth = PthTensors::new(params, None).map_err(unreadable)?;
    if pth.tensor_infos().is_empty() {
        bail!(
            "{} holds no tensors; a tuned lens's params.pt is torch.save of its translators' state_dict",
            params.display()
        );
    }
    let d = config.d_model;
    let get = |key: String, shape: &[usize]| -> Result<Tensor> {
        let t = pth.get(&key).map_err(unreadable)?.ok_or_else(|| {
            anyhow!(
                "{} has no tensor \"{key}\"; a lens for {} layers has 0.weight to {}.weight{}; the file is incomplete or belongs to another lens",
                params.display(),
                config.num_hidden_layers,
                config.num_hidden_layers - 1,
                if config.bias { " and their biases" } else { "" }
            )
        })?;
        if t.dims() != shape {
            bail!(
                "{}: \"{key}\" has shape {:?}, but config.json's d_model {d} makes it {shape:?}",
                params.display(),
                t.dims()
            );
        }
        Ok(match t.dtype() {
            DType::F32 | DType::F16 | DType::BF16 => t,
            _ => t.to_dtype(DType::F32)?,
        })
    };
    let translators = (0..config.num_hidden_layers)
        .map(|i| {
            Ok(LayerParams {
                weight: get(format!("{i}.weight"), &[d, d])?,
                bias: match config.bias {
                    true => Some(get(format!("{i}.bias"), &[d])?),
                    false => None,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(translators)
}

fn read_config(path: &Path) -> Result<LensConfig> {
    let json = super::read_json(
        path,
        "a tuned lens's config.json is what TunedLens.save writes",
    )?;
    if let Some(kind) = json.get("lens_type").and_then(|v| v.as_str()) {
        if kind != LENS_TYPE {
            bail!(
                "{}: lens_type is \"{kind}\", but logitlens applies {LENS_TYPE} lenses only",
                path.display()
            );
        }
    }
    let config: LensConfig = serde_json::from_value(json).map_err(|e| {
        anyhow!(
            "{}: {e}; a tuned lens's config.json names d_model and num_hidden_layers",
            path.display()
        )
    })?;
    if config.num_hidden_layers == 0 || config.d_model == 0 {
        bail!(
            "{}: d_model and num_hidden_layers must be at least 1",
            path.display()
        );
    }
    debug_assert_eq!(config.lens_type, LENS_TYPE);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_lenses_sit_under_their_bare_names() {
        assert_eq!(hub_folder("gpt2-xl"), "lens/gpt2-xl");
        assert_eq!(hub_folder("openai-community/gpt2"), "lens/gpt2");
        assert_eq!(
            hub_folder("EleutherAI/pythia-160m-deduped"),
            "lens/EleutherAI/pythia-160m-deduped"
        );
    }

    #[test]
    fn configs_ignore_unknown_keys_and_refuse_other_lens_types() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"d_model": 8, "num_hidden_layers": 2, "unemebd_hash": "x", "base_model_name_or_path": "m"}"#).unwrap();
        let c = read_config(&path).unwrap();
        assert_eq!((c.d_model, c.num_hidden_layers, c.bias), (8, 2, true));
        std::fs::write(
            &path,
            r#"{"d_model": 8, "num_hidden_layers": 2, "lens_type": "logit_lens"}"#,
        )
        .unwrap();
        let msg = read_config(&path).unwrap_err().to_string();
        assert!(
            msg.ends_with(
                "lens_type is \"logit_lens\", but logitlens applies linear_tuned_lens lenses only"
            ),
            "{msg}"
        );
        std::fs::write(&path, r#"{"num_hidden_layers": 2}"#).unwrap();
        let msg = read_config(&path).unwrap_err().to_string();
        assert!(msg.contains("missing field `d_model`"), "{msg}");
    }
}
