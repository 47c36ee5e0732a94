//! Resolved arguments: the flags checked and turned into the values the run needs, before
//! any expensive work. Nothing of clap's [`Flags`] is carried past [`Args::resolve`].

use std::path::PathBuf;

use anyhow::Result;
use candle_core::DType;

use super::flags::{Dtype, Flags, Format, ImageKind};
use super::resume::OutputFile;
use super::sinks::{Files, Outputs};
use super::{usage, worded_top};
use crate::atomic;
use crate::compute::DeviceSpec;
use crate::lens::{LensOptions, LogitLens};
use crate::loading::source;
use crate::output::heatmap::{HeatmapOptions, ImageFormat, Metric, Window};
use crate::output::images::{self, Target};
use crate::output::report;
use crate::output::summary::SummaryFile;
use crate::output::summary_plot::SummaryPlot;
use crate::output::Stat;
use crate::prompts::{self, Prompt};
use crate::session::{LoadOptions, RunOptions, TunedLensSource};

/// Everything a run needs, owned and checked.
#[derive(Debug)]
pub(crate) struct Args {
    /// The model to load: a Hub repo id, a directory or a .gguf file.
    pub model: String,
    /// How to load it.
    pub load: LoadOptions,
    /// How to run the lens on each prompt.
    pub run: RunOptions,
    /// The prompts, in order.
    pub prompts: Vec<Prompt>,
    /// What is written where: stdout, files, summaries (built once the model is loaded).
    pub outputs: Outputs,
    /// The tuned lens to load once the model is loaded (its shapes are checked then).
    pub tuned_lens: Option<TunedLensSource>,
    /// Run the logit lens and the tuned lens over the same forward pass.
    pub compare_lenses: bool,
    /// `--target` texts, resolved against the tokenizer once the model is loaded.
    pub target_texts: Vec<String>,
    /// `--target-id` ids, checked against the vocabulary once the model is loaded.
    pub target_ids: Vec<u32>,
    /// Stop at the first prompt that fails.
    pub fail_fast: bool,
    /// Show progress on stderr (a terminal, and not --quiet).
    pub progress: bool,
    /// Print nothing on stderr but errors.
    pub quiet: bool,
    /// `--output FILE`, and what an earlier run left in it (`--resume`).
    pub output: Option<OutputFile>,
    /// `--provenance FILE`.
    pub provenance: Option<PathBuf>,
}

impl Args {
    /// Checks `flags` and resolves them; a usage error (exit code 2) when they do not fit.
    pub(crate) fn resolve(flags: Flags, stderr_tty: bool) -> Result<Self> {
        if flags.layer_step == 0 {
            return Err(usage("--layer-step must be at least 1"));
        }
        check_flags_apply(&flags)?;
        if let Some(revision) = &flags.revision {
            if source::is_local(&flags.model) {
                return Err(usage(format!(
                    "--revision {revision} applies to Hub repo ids, but {} is a local directory or file; drop --revision",
                    flags.model
                )));
            }
        }
        let format = flags.prompts_format.map(Into::into);
        let prompts = prompts::collect_as(&flags.prompt, flags.prompts.as_deref(), format)
            .map_err(|e| {
                let no_input = flags.prompt.is_empty() && flags.prompts.is_none();
                let wrong_format = matches!(
                    e.downcast_ref::<crate::error::Error>(),
                    Some(crate::error::Error::JsonReadAsText { .. })
                );
                match no_input || wrong_format {
                    true => usage(worded_top(&e)),
                    false => e,
                }
            })?;
        let tuned_lens = tuned_lens(&flags)?;
        let single_json = flags.prompts.is_none() && flags.prompt.len() == 1;
        let files = match wants_report(&flags) {
            true => html_report(&flags, &prompts)?.map(Files::Report),
            false => images(&flags, &prompts)?,
        };
        let summary_plot = summary_plot(&flags, prompts.len())?;
        if flags.resume && matches!(files, Some(Files::Report(Target::File(_)))) {
            return Err(usage(
                "--resume adds the prompts not yet run, and --out FILE.html holds the report of every prompt of one run; drop --out, or write the report in a run without --resume",
            ));
        }
        let lenses = if flags.compare_lenses { 2 } else { 1 };
        let output = OutputFile::check(
            flags.output.as_deref(),
            flags.resume,
            flags.format == Format::Jsonl,
            &prompts,
            lenses,
        )?;
        if let Some(path) = &flags.provenance {
            atomic::check_can_create(path).map_err(|e| usage(format!("--provenance: {e}")))?;
        }
        let progress = stderr_tty && !flags.quiet;
        let device = flags.device.open().map_err(|e| usage(worded_top(&e)))?;
        let mut load = LoadOptions {
            revision: flags.revision.unwrap_or_else(|| "main".to_string()),
            dtype: flags.dtype.into(),
            tokenizer: flags.tokenizer,
            device,
            generic: flags.generic_path,
            fast: flags.fast,
            ..LoadOptions::default()
        };
        load.hub.progress = progress;
        let mut lens = LensOptions::new(LogitLens {
            final_norm: !flags.no_final_norm,
        });
        lens.top_k = match files {
            Some(Files::Report(_)) => report_top_k(flags.top_k)?,
            _ => top_k(flags.top_k, flags.format)?,
        };
        lens.sublayers = flags.sublayers;
        let run = RunOptions {
            bos: flags.bos,
            lens,
            also: Vec::new(),
            allow_nonfinite: flags.allow_nonfinite,
        };
        let summary = match &flags.summary {
            Some(path) => Some((
                path.clone(),
                SummaryFile::check(path).map_err(|e| usage(worded_top(&e)))?,
            )),
            None => None,
        };
        let table_stats = match flags.entropy {
            true => vec![Stat::Entropy],
            false => vec![],
        };
        let outputs = Outputs {
            format: flags.format,
            table_stats,
            layer_step: flags.layer_step,
            single_json,
            many: prompts.len() > 1,
            // Under --compare-lenses each prompt's two reports share one image or page.
            lenses,
            nonfinite: flags.allow_nonfinite,
            files,
            summary,
            summary_plot,
            warn: !flags.quiet,
            output: flags.output.clone(),
        };
        Ok(Self {
            model: flags.model,
            load,
            run,
            prompts,
            outputs,
            tuned_lens,
            compare_lenses: flags.compare_lenses,
            target_texts: flags.target,
            target_ids: flags.target_id,
            fail_fast: flags.fail_fast,
            progress,
            quiet: flags.quiet,
            output,
            provenance: flags.provenance,
        })
    }
}

/// The top-k K: as given, else 5 for JSON/JSONL and none for the others. `--top-k 0`
/// turns JSON's default off; for the others it asks for what is already the default, which
/// is refused rather than silently accepted. K above the vocabulary is checked once the
/// model is loaded.
fn top_k(given: Option<usize>, format: Format) -> Result<usize> {
    let json = matches!(format, Format::Json | Format::Jsonl);
    match given {
        Some(0) if !json => Err(usage(format!(
            "--top-k 0 lists no tokens, which --format {} already does by default; leave --top-k out, or give K of 1 or more",
            format_name(format)
        ))),
        Some(k) => Ok(k),
        None if json => Ok(DEFAULT_TOP_K),
        None => Ok(0),
    }
}

/// The top-k K of a run with an HTML report: as given, else [`report::DEFAULT_TOP_K`] for
/// the whole run (stdout included, so that the page holds exactly what `--format json`
/// prints). The report's tooltips list the top-k, so `--top-k 0` is refused.
fn report_top_k(given: Option<usize>) -> Result<usize> {
    match given {
        Some(0) => Err(usage(
            "--top-k 0 leaves the HTML report's tooltips without their top-k tokens; leave --top-k out (the report lists 10) or give K of 1 or more",
        )),
        Some(k) => Ok(k),
        None => Ok(report::DEFAULT_TOP_K.max(DEFAULT_TOP_K)),
    }
}

/// The K of JSON and JSONL without `--top-k`.
pub(crate) const DEFAULT_TOP_K: usize = 5;

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Table => "table",
        Format::Json => "json",
        Format::Jsonl => "jsonl",
        Format::Tsv => "tsv",
        Format::Csv => "csv",
    }
}

/// `--tuned-lens`, checked against the flags it cannot go with; a directory's files are
/// looked for now, before the model loads (a missing one is an error, exit code 1).
fn tuned_lens(flags: &Flags) -> Result<Option<TunedLensSource>> {
    let Some(given) = &flags.tuned_lens else {
        if flags.compare_lenses {
            return Err(usage(
                "--compare-lenses compares the logit lens with a tuned lens; add --tuned-lens DIR|hub",
            ));
        }
        if flags.tuned_lens_repo.is_some() {
            return Err(usage("--tuned-lens-repo names where --tuned-lens hub looks, and --tuned-lens was not given; add --tuned-lens hub"));
        }
        return Ok(None);
    };
    if flags.sublayers {
        return Err(usage(
            "--sublayers needs a translator for resid_mid, and a tuned lens has none; drop --sublayers, or --tuned-lens",
        ));
    }
    if flags.no_final_norm && !flags.compare_lenses {
        return Err(usage(
            "--no-final-norm applies to the logit lens, and a tuned lens always ends in the final norm; drop it, or add --compare-lenses",
        ));
    }
    if given != "hub" {
        if flags.tuned_lens_repo.is_some() {
            return Err(usage(format!("--tuned-lens-repo names where --tuned-lens hub looks, but --tuned-lens is the directory {given}; drop --tuned-lens-repo")));
        }
        let files = crate::loading::tuned_lens::local(std::path::Path::new(given))?;
        return Ok(Some(TunedLensSource::Files(files)));
    }
    if source::is_local(&flags.model) {
        return Err(usage(format!(
            "--tuned-lens hub finds the lens by the model's Hub id, but {} is a local path; pass --tuned-lens DIR",
            flags.model
        )));
    }
    let repo = flags
        .tuned_lens_repo
        .clone()
        .unwrap_or_else(|| crate::loading::tuned_lens::DEFAULT_REPO.to_string());
    Ok(Some(TunedLensSource::Hub { repo }))
}

/// Refuses flags that would be accepted and ignored.
fn check_flags_apply(flags: &Flags) -> Result<()> {
    if flags.prompts_format.is_some() && flags.prompts.is_none() {
        return Err(usage(
            "--prompts-format describes a --prompts file, and none was given; add --prompts FILE",
        ));
    }
    if flags.image_format.is_some() && flags.out_dir.is_none() {
        return Err(usage(
            "--image-format applies to --out-dir; with --out the file's extension (.png, .svg or .html) decides",
        ));
    }
    let image_flags = [
        ("--color-range", flags.color_range.is_some()),
        ("--metric", flags.metric.is_some()),
        ("--positions", flags.positions.is_some()),
        ("--last", flags.last.is_some()),
    ];
    for (flag, given) in image_flags {
        if given && flags.out.is_none() && flags.out_dir.is_none() {
            return Err(usage(format!(
                "{flag} applies to heatmaps, and none was asked for; add --out FILE or --out-dir DIR"
            )));
        }
    }
    let images = flags.out.is_some() || flags.out_dir.is_some();
    if flags.layer_step != 1 && flags.format != Format::Table && !images {
        return Err(usage(format!(
            "--layer-step thins the table and PNG/SVG heatmaps, and --format {} writes every layer; \
             drop --layer-step (and filter rows by their layer), or add --out FILE",
            format_name(flags.format)
        )));
    }
    if flags.last == Some(0) {
        return Err(usage("--last must be at least 1"));
    }
    if flags.fast {
        if flags.dtype != Dtype::F32 {
            return Err(usage(format!(
                "--fast rounds the head's f32 products to bf16 and applies to --dtype f32 only; drop --dtype {} or --fast",
                DType::from(flags.dtype).as_str()
            )));
        }
        if flags.device != DeviceSpec::Cpu || flags.generic_path {
            return Err(usage(format!(
                "--fast is a CPU mode (AMX / AVX512-BF16 kernels) and does not apply to --device {}{}; drop --fast",
                flags.device,
                if flags.generic_path {
                    " (generic path)"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(())
}

/// Where each prompt's heatmap goes, checked: one prompt for `--out`, an existing
/// directory and distinct file names for `--out-dir`.
fn images(flags: &Flags, prompts: &[Prompt]) -> Result<Option<Files>> {
    let (target, format) = match (&flags.out, &flags.out_dir) {
        (Some(_), _) if prompts.len() > 1 => {
            return Err(usage(format!(
            "--out takes one prompt but {} were given; use --out-dir DIR for one image per prompt, or --out FILE.html for one report of them all",
            prompts.len()
        )))
        }
        (Some(path), _) => {
            atomic::check_can_create(path).map_err(|e| usage(e.to_string()))?;
            let format = ImageFormat::from_path(path)
                .map_err(|e| usage(format!("{e}, or a .html report")))?;
            (Target::File(path.clone()), format)
        }
        (None, Some(dir)) => {
            check_out_dir(dir)?;
            let format = match flags.image_format.unwrap_or(ImageKind::Png) {
                ImageKind::Svg => ImageFormat::Svg,
                // Html goes to html_report (wants_report), never here.
                ImageKind::Png | ImageKind::Html => ImageFormat::Png,
            };
            check_unique_names(prompts, format.extension())?;
            let target = Target::Dir {
                dir: dir.clone(),
                total: prompts.len(),
            };
            (target, format)
        }
        (None, None) => return Ok(None),
    };
    let metric = flags.metric.unwrap_or_default();
    let no_target = flags.target.is_empty()
        && flags.target_id.is_empty()
        && prompts.iter().all(|p| p.targets.is_empty());
    if metric == Metric::Target && no_target {
        return Err(usage(
            "--metric target colours cells by the first target's probability, and no target was given; add --target TEXT or --target-id N",
        ));
    }
    let color_range = flags.color_range.map(|r| (r.0, r.1));
    if let Some(range) = color_range {
        metric
            .check_range(range)
            .map_err(|e| usage(format!("--color-range: {}", worded_top(&e))))?;
    }
    let window = match (flags.positions, flags.last) {
        (Some(window), _) => window,
        (None, Some(n)) => Window::Last(n),
        (None, None) => Window::All,
    };
    let options = HeatmapOptions {
        layer_step: flags.layer_step,
        color_range,
        metric,
        window,
        ..HeatmapOptions::default()
    };
    Ok(Some(Files::Images {
        target,
        format,
        options,
    }))
}

/// The `--summary-plot` file and its format, checked: several prompts, a .png or .svg file
/// that can be created.
fn summary_plot(flags: &Flags, prompts: usize) -> Result<Option<(PathBuf, ImageFormat)>> {
    let Some(path) = &flags.summary_plot else {
        return Ok(None);
    };
    if prompts < 2 {
        return Err(usage(format!(
            "--summary-plot draws per-layer curves over a batch, and {prompts} prompt was given; \
             give several (--prompts FILE, or --prompt more than once), or use --out for one prompt's heatmap"
        )));
    }
    SummaryPlot::check(path)
        .map(|format| Some((path.clone(), format)))
        .map_err(|e| usage(format!("--summary-plot: {e}")))
}

/// Whether the output asked for is the HTML report: `--out` a `.html` file, or `--out-dir`
/// with `--image-format html`.
fn wants_report(flags: &Flags) -> bool {
    match (&flags.out, &flags.out_dir) {
        (Some(path), _) => report::is_html(path),
        (None, Some(_)) => flags.image_format == Some(ImageKind::Html),
        (None, None) => false,
    }
}

/// Where the HTML report goes, checked: one file holding every prompt for `--out`, or one
/// file per prompt with distinct names in an existing `--out-dir`. The heatmap's drawing
/// options do not apply to it.
fn html_report(flags: &Flags, prompts: &[Prompt]) -> Result<Option<Target>> {
    if flags.color_range.is_some() {
        return Err(usage(
            "--color-range applies to PNG/SVG heatmaps; the HTML report scales each metric to its data, with a colour bar",
        ));
    }
    if flags.layer_step != 1 {
        return Err(usage(
            "--layer-step applies to the table and PNG/SVG heatmaps; the HTML report shows every row",
        ));
    }
    let drawing = [
        ("--metric", flags.metric.is_some(), "has a metric selector"),
        (
            "--positions",
            flags.positions.is_some(),
            "shows every position",
        ),
        ("--last", flags.last.is_some(), "shows every position"),
    ];
    if let Some((flag, _, why)) = drawing.into_iter().find(|d| d.1) {
        return Err(usage(format!(
            "{flag} applies to PNG/SVG heatmaps; the HTML report {why}"
        )));
    }
    let target = match (&flags.out, &flags.out_dir) {
        (Some(path), _) => {
            atomic::check_can_create(path).map_err(|e| usage(e.to_string()))?;
            Target::File(path.clone())
        }
        (None, Some(dir)) => {
            check_out_dir(dir)?;
            check_unique_names(prompts, report::EXTENSION)?;
            Target::Dir {
                dir: dir.clone(),
                total: prompts.len(),
            }
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(target))
}

/// Checks that `--out-dir` is a directory where files can be created.
fn check_out_dir(dir: &std::path::Path) -> Result<()> {
    if !dir.is_dir() {
        let hint = match report::is_html(dir) {
            true => format!(
                "; for one report holding every prompt, use --out {}",
                dir.display()
            ),
            false => String::new(),
        };
        return Err(usage(format!(
            "--out-dir {} is not a directory; create it first (mkdir -p {}){hint}",
            dir.display(),
            dir.display()
        )));
    }
    atomic::probe_dir(dir).map_err(|e| usage(format!("--out-dir: {e}")))
}

/// Checks that every prompt's file in an `--out-dir` gets a name of its own.
fn check_unique_names(prompts: &[Prompt], extension: &str) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for p in prompts {
        let stem = images::stem(p.id.as_deref(), p.index, prompts.len());
        if stem.is_empty() {
            return Err(usage(format!(
                "{} has an id that makes no file name; give it letters or digits",
                p.label()
            )));
        }
        if let Some(other) = seen.insert(stem.clone(), p.label()) {
            return Err(usage(format!(
                "{other} and {} would both be written to {stem}.{extension}; give them distinct ids",
                p.label()
            )));
        }
    }
    Ok(())
}
