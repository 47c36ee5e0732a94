//! The library's front door: load a model once, then run the lens on any number of prompts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::{DType, Device};

use crate::compute::Compute;
use crate::error::Error;

use crate::lens::{
    lens_rows_batch, lens_rows_multi, logit_lens, Lens, LensOptions, Row, Timings, TokenStat,
    Translator, TunedLens,
};
use crate::loading::gguf::GgufFile;
use crate::loading::source::{self, HubSettings, ModelSource};
use crate::loading::tuned_lens::{self, LensFiles};
use crate::models::{self, LensModel, ModelFiles};
use crate::provenance::{Provenance, Source, TokenizerSource};
use crate::report::Report;
use crate::tokens::{self, Vocab};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Hub revision (branch, tag or commit); ignored for local directories.
    pub revision: String,
    /// Compute dtype. In f32, f16/bf16 checkpoint weights are read in place; otherwise
    /// weights are converted to it.
    pub dtype: DType,
    /// Hub access; defaults to the standard environment variables.
    pub hub: HubSettings,
    /// A tokenizer.json to use instead of the model's own (for GGUF: instead of the one
    /// rebuilt from its metadata).
    pub tokenizer: Option<PathBuf>,
    /// Where to compute (open one with [`crate::compute::DeviceSpec::open`]). The weight
    /// strategy (mapped half-precision weights or converted ones) follows from it, `dtype`
    /// and `generic`.
    pub device: Device,
    /// Run the generic device path even on the CPU (see [`crate::compute`]): what a GPU
    /// runs, checked on the CPU.
    pub generic: bool,
    /// `--fast`: the lens head's products in bf16 with f32 accumulation (CPU kernels only;
    /// see [`crate::kernels::dot_bf16`]).
    pub fast: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            revision: "main".into(),
            dtype: DType::F32,
            hub: HubSettings::from_env(),
            tokenizer: None,
            device: Device::Cpu,
            generic: false,
            fast: false,
        }
    }
}

/// How to run the lens on one prompt.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Prepend the model's BOS token.
    pub bos: bool,
    /// The lens and the projection's settings.
    pub lens: LensOptions,
    /// More lenses read off the same forward pass, each making a report of its own after
    /// `lens.lens`'s (`--compare-lenses`).
    pub also: Vec<Arc<dyn Lens>>,
    /// Keep a prompt whose rows hold NaN or infinite values, those cells marked
    /// non-finite, rather than failing it with [`Error::NonFinite`].
    pub allow_nonfinite: bool,
}

/// Where a tuned lens comes from.
#[derive(Debug, Clone)]
pub enum TunedLensSource {
    /// A directory's config.json and params.pt.
    Files(LensFiles),
    /// The model's lens published in this Hugging Face Space (`lens/<model id>/`).
    Hub { repo: String },
}

/// A loaded model and its tokenizer.
pub struct Session {
    name: String,
    /// The model as a person knows it ([`Session::title`]).
    title: String,
    model: Box<dyn LensModel>,
    vocab: Vocab,
    /// What was loaded, for each report's provenance (`bos` and `lens` are set per run).
    provenance: Provenance,
    /// Where the model computes.
    compute: Compute,
}

impl Session {
    /// Loads `model`: a local directory, a Hub repo id or a .gguf file.
    pub fn load(model: &str, opts: &LoadOptions) -> Result<Self> {
        let compute = Compute::new(opts.device.clone(), opts.generic).with_fast(opts.fast);
        let mut session = match source::resolve(model, &opts.revision, &opts.hub)? {
            ModelSource::Safetensors(mut files) => {
                if let Some(tokenizer) = &opts.tokenizer {
                    files.tokenizer = tokenizer.clone();
                }
                Self::open_files(model, &files, opts.dtype, &compute)?
            }
            ModelSource::Gguf(path) => Self::open_gguf(
                model,
                &path,
                opts.tokenizer.as_deref(),
                opts.dtype,
                &compute,
            )?,
        };
        let p = &mut session.provenance;
        if let Source::Hub { revision, .. } = &mut p.source {
            revision.clone_from(&opts.revision);
        }
        p.tokenizer = TokenizerSource::of(opts.tokenizer.as_deref(), p.tokenizer.clone());
        Ok(session)
    }

    /// Loads a GGUF file on the CPU; its tokenizer comes from `tokenizer` when given, else
    /// from the file's metadata. Block matrices stay quantized in memory and are dequantized
    /// per block, for exact parity with transformers (see `crate::loading::gguf_weights`).
    pub fn from_gguf(
        name: &str,
        path: &Path,
        tokenizer: Option<&Path>,
        dtype: DType,
    ) -> Result<Self> {
        Self::open_gguf(name, path, tokenizer, dtype, &Compute::cpu())
    }

    /// Loads from files already resolved, on the CPU.
    pub fn from_files(name: &str, files: &ModelFiles, dtype: DType) -> Result<Self> {
        Self::open_files(name, files, dtype, &Compute::cpu())
    }

    fn open_gguf(
        name: &str,
        path: &Path,
        tokenizer: Option<&Path>,
        dtype: DType,
        compute: &Compute,
    ) -> Result<Self> {
        let mut file = GgufFile::open(path)?;
        models::registry::for_gguf(&file)?;
        let vocab = match tokenizer {
            Some(p) => Vocab::from_file(p)?,
            None => Vocab::new(crate::loading::gguf_tokenizer::from_gguf(&file)?),
        };
        let model = models::load_gguf(&mut file, dtype, compute)?;
        let general = file.opt_string("general.name").ok().flatten();
        let title = gguf_title(
            &display_name(&path.display().to_string()),
            general.as_deref(),
        );
        let provenance = Provenance::new(
            name,
            Source::of_gguf(path),
            &model.info().model_type,
            dtype.as_str(),
            compute,
            false,
            "",
            TokenizerSource::of(tokenizer, TokenizerSource::Gguf),
        );
        Ok(Self {
            name: name.to_string(),
            title,
            model,
            vocab,
            provenance,
            compute: compute.clone(),
        })
    }

    fn open_files(name: &str, files: &ModelFiles, dtype: DType, compute: &Compute) -> Result<Self> {
        // The model first: its weights start faulting in while the tokenizer loads.
        let model = models::load(files, dtype, compute)?;
        let vocab = Vocab::from_file(&files.tokenizer)?;
        let provenance = Provenance::new(
            name,
            Source::of_files(name, "main", &files.config, &files.weights),
            &model.info().model_type,
            dtype.as_str(),
            compute,
            false,
            "",
            TokenizerSource::Model,
        );
        Ok(Self {
            name: name.to_string(),
            title: display_name(name),
            model,
            vocab,
            provenance,
            compute: compute.clone(),
        })
    }

    /// The model as a person knows it, for titles (the heatmap's and the HTML report's): the
    /// Hub id, a GGUF file's name followed by its `general.name` ([`gguf_title`]), or the
    /// directory's name; never a whole path.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// Where the model computes.
    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    /// The model.
    pub fn model(&self) -> &dyn LensModel {
        self.model.as_ref()
    }

    /// The tokenizer.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Where a report of this session with `opts` comes from.
    pub fn provenance(&self, opts: &RunOptions) -> Provenance {
        self.provenance_of(opts, opts.lens.lens.as_ref())
    }

    fn provenance_of(&self, opts: &RunOptions, lens: &dyn Lens) -> Provenance {
        Provenance {
            bos: opts.bos,
            lens: lens.name().to_string(),
            ..self.provenance.clone()
        }
    }

    /// Loads the tuned lens of `source` for this model (`hub` settles where a published
    /// lens is fetched from), checking its d_model and layers against the model's.
    pub fn tuned_lens(&self, source: &TunedLensSource, hub: &HubSettings) -> Result<TunedLens> {
        let (files, origin) = match source {
            TunedLensSource::Files(files) => (files.clone(), parent(&files.config)),
            TunedLensSource::Hub { repo } => (
                tuned_lens::hub(&self.name, repo, hub)?,
                format!("{repo}/{}", tuned_lens::hub_folder(&self.name)),
            ),
        };
        let info = self.model.info();
        let mut translators: Vec<Translator> =
            tuned_lens::load(&files, info.hidden_size, info.num_layers)?
                .into_iter()
                .map(Translator::from)
                .collect();
        if self.compute.backend() == crate::compute::Backend::Tensors {
            // The tensor backend multiplies f32 translators on the model's device.
            for t in &mut translators {
                *t = t.to(DType::F32, self.compute.device())?;
            }
        }
        let lens = TunedLens::new(translators)?;
        Ok(lens.with_name(format!("tuned lens {origin}")))
    }

    /// Token ids for `prompt`, checked against the model's context length.
    pub fn encode(&self, prompt: &str, bos: bool) -> Result<Vec<u32>> {
        tokens::check_prompt(prompt)?;
        let mut ids = self.vocab.encode(prompt)?;
        if bos {
            let info = self.model.info();
            ids = tokens::with_bos(ids, tokens::find_bos(info.bos_token_id, &self.vocab)?);
        }
        let (n, max) = (ids.len(), self.model.info().max_positions);
        if ids.is_empty() {
            return Err(Error::EmptyPrompt { empty: false }.into());
        }
        if n > max {
            bail!("the prompt is {n} tokens but the model takes at most {max}; shorten the prompt");
        }
        if let Some(&bad) = ids
            .iter()
            .find(|&&id| id as usize >= self.model.info().vocab_size)
        {
            bail!("token id {bad} is outside the model's {} embedding rows; the tokenizer does not belong to this model", self.model.info().vocab_size);
        }
        Ok(ids)
    }

    /// The id a `--target TEXT` tracks: the first token of `text` encoded on its own
    /// (without special tokens), and how many tokens it encodes to.
    pub fn target_id(&self, text: &str) -> Result<(u32, usize)> {
        let ids = self.vocab.encode_plain(text)?;
        match ids.first() {
            Some(&id) => Ok((id, ids.len())),
            None => Err(Error::EmptyTarget {
                text: text.to_string(),
            }
            .into()),
        }
    }

    /// The lens's `[layer][position]` stats for given ids.
    pub fn lens_ids(&self, ids: &[u32], opts: LensOptions) -> Result<Vec<Vec<TokenStat>>> {
        logit_lens(self.model.as_ref(), ids, &opts)
    }

    /// Encodes, runs the lens and attaches token text.
    pub fn run(&self, prompt: &str, opts: &RunOptions) -> Result<Report> {
        Ok(self.run_timed(prompt, opts)?.0)
    }

    /// [`Session::run`], also reporting where the time went.
    pub fn run_timed(&self, prompt: &str, opts: &RunOptions) -> Result<(Report, Timings)> {
        let (mut reports, timings) = self.run_all(prompt, opts)?;
        Ok((reports.swap_remove(0), timings))
    }

    /// One report per lens (`opts.lens.lens`, then each of `opts.also`), all read off one
    /// forward pass, and where the time went.
    pub fn run_all(&self, prompt: &str, opts: &RunOptions) -> Result<(Vec<Report>, Timings)> {
        let ids = self.encode(prompt, opts.bos)?;
        let lenses: Vec<Arc<dyn Lens>> = std::iter::once(opts.lens.lens.clone())
            .chain(opts.also.iter().cloned())
            .collect();
        let (rows, timings) = lens_rows_multi(self.model.as_ref(), &ids, &lenses, &opts.lens)?;
        self.check_finite(opts, &ids, &rows)?;
        Ok((self.reports(prompt, opts, &ids, &lenses, &rows), timings))
    }

    /// Fails a prompt whose rows (of any lens) hold a non-finite cell, naming the first
    /// (the earliest row, then position), unless `opts` allows them.
    fn check_finite(&self, opts: &RunOptions, ids: &[u32], rows: &[Vec<Row>]) -> Result<()> {
        if opts.allow_nonfinite {
            return Ok(());
        }
        let first = rows
            .iter()
            .filter_map(|rows| {
                rows.iter().enumerate().find_map(|(r, row)| {
                    let p = row.cells.iter().position(|c| c.nonfinite)?;
                    Some((r, p, row))
                })
            })
            .min_by_key(|&(r, p, _)| (r, p));
        let Some((_, position, row)) = first else {
            return Ok(());
        };
        let dtype = &self.provenance.dtype;
        Err(Error::NonFinite {
            layer: row.layer,
            site: row.site.name(),
            position,
            token: self.vocab.display(ids[position]),
            half: (dtype != "f32").then(|| dtype.clone()),
        }
        .into())
    }

    /// One report per lens of `lenses`, from its rows.
    fn reports(
        &self,
        prompt: &str,
        opts: &RunOptions,
        ids: &[u32],
        lenses: &[Arc<dyn Lens>],
        rows: &[Vec<Row>],
    ) -> Vec<Report> {
        lenses
            .iter()
            .zip(rows)
            .map(|(lens, rows)| {
                let provenance = self.provenance_of(opts, lens.as_ref());
                let lens_opts = LensOptions {
                    lens: lens.clone(),
                    ..opts.lens.clone()
                };
                Report::new(&self.name, prompt, &lens_opts, ids, rows, &self.vocab)
                    .with_provenance(provenance)
            })
            .collect()
    }
}

impl Session {
    /// [`Session::run_all`] for several prompts, each with its own options: the prompts
    /// that encode share forward passes ([`lens_rows_batch`]), and each result is what
    /// [`Session::run_all`] gives that prompt alone. Prompts whose options name other
    /// lenses or `sublayers` than the first's, or a batch that fails as a whole, run one by
    /// one, so that each gets its own result or error.
    pub fn run_all_batch(
        &self,
        prompts: &[(&str, &RunOptions)],
    ) -> Vec<Result<(Vec<Report>, Timings)>> {
        let lenses_of = |o: &RunOptions| -> Vec<Arc<dyn Lens>> {
            std::iter::once(o.lens.lens.clone())
                .chain(o.also.iter().cloned())
                .collect()
        };
        let Some(first) = prompts.first() else {
            return Vec::new();
        };
        let lenses = lenses_of(first.1);
        let alike = prompts.iter().all(|(_, o)| {
            let theirs = lenses_of(o);
            o.lens.sublayers == first.1.lens.sublayers
                && theirs.len() == lenses.len()
                && theirs.iter().zip(&lenses).all(|(a, b)| Arc::ptr_eq(a, b))
        });
        let alone = || prompts.iter().map(|(p, o)| self.run_all(p, o)).collect();
        if !alike {
            return alone();
        }
        let encoded: Vec<Result<Vec<u32>>> =
            prompts.iter().map(|(p, o)| self.encode(p, o.bos)).collect();
        let ok: Vec<(&[u32], &LensOptions)> = encoded
            .iter()
            .zip(prompts)
            .filter_map(|(e, (_, o))| e.as_ref().ok().map(|ids| (ids.as_slice(), &o.lens)))
            .collect();
        let Ok(computed) = lens_rows_batch(self.model.as_ref(), &ok, &lenses) else {
            return alone();
        };
        let mut computed = computed.into_iter();
        encoded
            .into_iter()
            .zip(prompts)
            .map(|(ids, (prompt, opts))| {
                let ids = ids?;
                let (rows, timings) = computed.next().expect("one result per encoded prompt");
                self.check_finite(opts, &ids, &rows)?;
                Ok((self.reports(prompt, opts, &ids, &lenses, &rows), timings))
            })
            .collect()
    }
}

/// The model as a person knows it, from a `--model` argument: a Hub id as it is, a local
/// directory or file by its name (never its whole path).
pub(crate) fn display_name(model: &str) -> String {
    let path = Path::new(model);
    if !path.exists() {
        return model.to_string();
    }
    let named = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    named(path)
        .or_else(|| path.canonicalize().ok().as_deref().and_then(named))
        .unwrap_or_else(|| model.to_string())
}

/// A GGUF model's title: its file name, then its `general.name` in parentheses when it has
/// one that says more ("SmolLM2-135M-Instruct.Q4_1.gguf (Smollm2 135M 8k Lc100K Mix1 Ep2)"),
/// so that the file a run read stays visible beside the name its converter gave it.
pub(crate) fn gguf_title(file: &str, general: Option<&str>) -> String {
    match general.map(str::trim) {
        Some(general) if !general.is_empty() && general != file => format!("{file} ({general})"),
        _ => file.to_string(),
    }
}

/// The directory a lens file sits in, for the lens's name.
fn parent(file: &Path) -> String {
    file.parent()
        .map_or_else(String::new, |d| d.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_never_paths() {
        assert_eq!(display_name("microsoft/phi-1_5"), "microsoft/phi-1_5");
        let dir = std::env::temp_dir().join("logitlens-display-name-test");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("SmolLM2.Q4_1.gguf");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(
            display_name(&file.display().to_string()),
            "SmolLM2.Q4_1.gguf"
        );
        assert_eq!(
            display_name(&format!("{}/", dir.display())),
            "logitlens-display-name-test"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            gguf_title("m.gguf", Some(" Smollm2 135M ")),
            "m.gguf (Smollm2 135M)"
        );
        assert_eq!(gguf_title("m.gguf", Some(" ")), "m.gguf");
        assert_eq!(gguf_title("m.gguf", None), "m.gguf");
        assert_eq!(
            display_name("."),
            display_name(&std::env::current_dir().unwrap().display().to_string())
        );
    }
}
