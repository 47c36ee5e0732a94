//! Where a result came from, in every machine-readable output: the tool and its version,
//! the `--model` argument and what it resolved to (the Hub commit, or local file names and
//! sizes), the architecture, the dtype, `--bos`, the lens and the tokenizer's source. A
//! result file then says how to reproduce it.

use std::path::Path;

use serde::Serialize;

/// One run's provenance (the same for every prompt of the run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// Always "logitlens".
    pub tool: &'static str,
    /// The tool's version (Cargo's package version).
    pub version: &'static str,
    /// The `--model` argument as given.
    pub model: String,
    /// What the model argument resolved to.
    pub source: Source,
    /// config.json's `model_type`, or the GGUF `general.architecture`.
    pub architecture: String,
    /// The compute dtype: "f32", "f16" or "bf16".
    pub dtype: String,
    /// Where it was computed: "cpu", "cuda:0", … ("cpu (generic path)" when the device path
    /// was forced on the CPU).
    pub device: String,
    /// `--fast`: `{"requested": true, "used": true, "path": "bf16 head, amx-bf16"}` where
    /// the bf16 head ran, `{"requested": true, "used": false, "why": …}` where the head stayed
    /// exact (no faster bf16 path on this CPU); null without it.
    pub fast: Option<crate::compute::FastUse>,
    /// Whether `--bos` prepended the BOS token.
    pub bos: bool,
    /// The lens's name ([`crate::lens::Lens::name`]): "logit lens" (rows 0..L-1 through the
    /// final norm) or "logit lens without final norm" (`--no-final-norm`).
    pub lens: String,
    /// Where the tokenizer came from: "model" (the model's tokenizer.json), "gguf" (rebuilt
    /// from the GGUF metadata), or the `--tokenizer` file.
    pub tokenizer: TokenizerSource,
}

/// What a `--model` argument resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// A Hub repo: the id, the `--revision` asked for and the commit it resolved to (the
    /// snapshot the files were read from; null when the cache layout does not show it).
    Hub {
        repo: String,
        revision: String,
        commit: Option<String>,
    },
    /// A local model directory: its weight files.
    Local { weights: Vec<FileId> },
    /// A GGUF file.
    Gguf { file: FileId },
}

/// A local file by name and size, enough to tell two versions apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileId {
    /// The file name (no directory).
    pub name: String,
    /// Its size in bytes (0 when it cannot be read).
    pub bytes: u64,
}

impl FileId {
    /// Name and size of `path`.
    pub fn of(path: &Path) -> Self {
        Self {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        }
    }
}

/// Where the tokenizer came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TokenizerSource {
    /// The model's own tokenizer.json.
    Model,
    /// Rebuilt from the GGUF file's `tokenizer.ggml.*` metadata.
    Gguf,
    /// A `--tokenizer` file: its path as given, and its size.
    File { path: String, bytes: u64 },
}

impl TokenizerSource {
    /// `--tokenizer` when given, else `own` (the model's tokenizer).
    pub fn of(tokenizer: Option<&Path>, own: TokenizerSource) -> Self {
        match tokenizer {
            Some(path) => Self::File {
                path: path.display().to_string(),
                bytes: FileId::of(path).bytes,
            },
            None => own,
        }
    }
}

impl Source {
    /// A safetensors model: a Hub repo when `model` is not an existing path (its commit
    /// read from the snapshot directory the config was found in), else a local directory.
    pub fn of_files(
        model: &str,
        revision: &str,
        config: &Path,
        weights: &[impl AsRef<Path>],
    ) -> Self {
        if Path::new(model).exists() {
            return Self::Local {
                weights: weights.iter().map(|w| FileId::of(w.as_ref())).collect(),
            };
        }
        Self::Hub {
            repo: model.to_string(),
            revision: revision.to_string(),
            commit: snapshot_commit(config),
        }
    }

    /// A GGUF file.
    pub fn of_gguf(path: &Path) -> Self {
        Self::Gguf {
            file: FileId::of(path),
        }
    }
}

/// The commit of a Hugging Face cache snapshot holding `file`: `…/snapshots/<commit>/file`.
pub(crate) fn snapshot_commit(file: &Path) -> Option<String> {
    let snapshot = file.parent()?;
    let is_snapshots = snapshot.parent()?.file_name()? == "snapshots";
    let commit = snapshot.file_name()?.to_str()?;
    (is_snapshots && !commit.is_empty()).then(|| commit.to_string())
}

impl Provenance {
    /// The provenance of a run: `version` is this build's.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: &str,
        source: Source,
        architecture: &str,
        dtype: &str,
        compute: &crate::compute::Compute,
        bos: bool,
        lens: &str,
        tokenizer: TokenizerSource,
    ) -> Self {
        Self {
            tool: "logitlens",
            version: env!("CARGO_PKG_VERSION"),
            model: model.to_string(),
            source,
            architecture: architecture.to_string(),
            dtype: dtype.to_string(),
            device: compute.describe(),
            fast: compute.fast_use(),
            bos,
            lens: lens.to_string(),
            tokenizer,
        }
    }

    /// The `--provenance` sidecar file's bytes: this object as JSON (as JSON and JSONL
    /// outputs carry it inline), pretty-printed, with a final newline.
    pub fn sidecar(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_commit_comes_from_the_snapshot_directory() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let config = Path::new("/cache/hub/models--org--m/snapshots")
            .join(c)
            .join("config.json");
        assert_eq!(snapshot_commit(&config).as_deref(), Some(c));
        assert_eq!(snapshot_commit(Path::new("/models/phi/config.json")), None);
        let source = Source::of_files(
            "org/absent-here",
            "main",
            &config,
            &[config.with_file_name("model.safetensors")],
        );
        assert_eq!(
            source,
            Source::Hub {
                repo: "org/absent-here".into(),
                revision: "main".into(),
                commit: Some(c.into())
            }
        );
    }

    #[test]
    fn local_files_are_named_with_their_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("model.safetensors");
        std::fs::write(&w, vec![0u8; 1234]).unwrap();
        let model = dir.path().to_str().unwrap();
        let source = Source::of_files(model, "main", &dir.path().join("config.json"), &[&w]);
        assert_eq!(
            source,
            Source::Local {
                weights: vec![FileId {
                    name: "model.safetensors".into(),
                    bytes: 1234
                }]
            }
        );
        let tok = TokenizerSource::of(Some(&w), TokenizerSource::Model);
        assert_eq!(
            tok,
            TokenizerSource::File {
                path: w.display().to_string(),
                bytes: 1234
            }
        );
        assert_eq!(
            TokenizerSource::of(None, TokenizerSource::Gguf),
            TokenizerSource::Gguf
        );
    }

    #[test]
    fn serializes_every_field() {
        let p = Provenance::new(
            "m.gguf",
            Source::Gguf {
                file: FileId {
                    name: "m.gguf".into(),
                    bytes: 7,
                },
            },
            "llama",
            "f32",
            &crate::compute::Compute::cpu(),
            true,
            "raw",
            TokenizerSource::Gguf,
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["tool"], "logitlens");
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(json["source"]["kind"], "gguf");
        assert_eq!(json["source"]["file"]["bytes"], 7);
        assert_eq!(json["tokenizer"]["kind"], "gguf");
        assert_eq!(json["bos"], true);
        assert_eq!(json["device"], "cpu");
        assert_eq!(json["fast"], serde_json::Value::Null);
        assert_eq!(json["lens"], "raw");
        let sidecar = p.sidecar();
        assert!(sidecar.ends_with(b"}\n"));
        let back: serde_json::Value = serde_json::from_slice(&sidecar).unwrap();
        assert_eq!(back, json);
    }
}
