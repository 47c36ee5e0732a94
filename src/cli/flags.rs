//! Flag definitions: what the command line accepts, as clap parses it. Nothing here is
//! checked beyond clap's own rules; `super::args` resolves it.

use std::path::PathBuf;

use candle_core::DType;
use clap::builder::PossibleValue;
use clap::{Parser, ValueEnum};

use crate::compute::DeviceSpec;
use crate::output::heatmap;
use crate::prompts::PromptsFormat;

/// What every layer of a causal language model predicts: the logit lens as a table, JSON,
/// JSONL, CSV or TSV, and an annotated entropy heatmap.
#[derive(Debug, Parser)]
#[command(
    name = "logitlens",
    version,
    about,
    max_term_width = 100,
    override_usage = USAGE
)]
pub struct Flags {
    /// Hugging Face Hub repo id (e.g. microsoft/phi-1_5), a local model directory, or a
    /// .gguf file (llama, qwen2, qwen3, gemma, gemma2, gemma3, gptneox or phi3 architecture).
    #[arg(long, short = 'm', value_name = "ID|DIR|GGUF")]
    pub model: String,

    /// Use this tokenizer.json instead of the model's own (for a .gguf model, instead of the
    /// tokenizer rebuilt from its metadata).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,

    /// Text to run through the model; repeat for several prompts. Combines with --prompts
    /// (these run first).
    #[arg(long, short = 'p', value_name = "TEXT")]
    pub prompt: Vec<String>,

    /// Read prompts from a file (`-` = stdin), laid out as --prompts-format says.
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,

    /// How the --prompts file is laid out: one prompt per line (text), one
    /// {"prompt": ..., "id": ...} object per line (jsonl), or an array of them (json).
    /// Default: jsonl for .jsonl/.ndjson, json for .json (jsonl if it starts with {), text
    /// otherwise and for stdin.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub prompts_format: Option<PromptsFormatArg>,

    /// Hub revision: a branch, tag or commit hash [default: main]. Hub ids only.
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,

    /// What to print on stdout.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Write the stdout format to this file instead of stdout, each prompt's results as soon
    /// as they are computed. An existing FILE is refused unless --resume.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// With --output FILE and -f jsonl: skip the prompts that already have a complete line
    /// in FILE (by id, else index), drop a torn last line, and append the rest.
    #[arg(long)]
    pub resume: bool,

    /// Write the run's provenance (tool version, model and its files, dtype, device, lens,
    /// tokenizer) to this JSON file; JSON and JSONL also carry it inline.
    #[arg(long, value_name = "FILE")]
    pub provenance: Option<PathBuf>,

    /// Show each cell's entropy (nats) in the table.
    #[arg(long)]
    pub entropy: bool,

    /// List each cell's K most likely tokens with their probabilities (ties: lower id
    /// first). Default: 5 in json/jsonl (0 turns it off), none in table/csv/tsv; the
    /// table shows them for the last position.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,

    /// Track this token's probability and rank in every cell; repeatable. TEXT is encoded
    /// on its own, without special tokens; when it makes several tokens the first is
    /// tracked (a note on stderr says so). A JSONL prompt may add its own "target".
    #[arg(long, value_name = "TEXT")]
    pub target: Vec<String>,

    /// Track the token with this id; repeatable.
    #[arg(long, value_name = "N")]
    pub target_id: Vec<u32>,

    /// Add a row per block for the residual stream after attention, before the MLP
    /// ("resid_mid"; the table labels it "3 attn").
    #[arg(long)]
    pub sublayers: bool,

    /// Apply a tuned lens (Belrose et al., 2023) instead of the logit lens: DIR holds
    /// config.json and params.pt as the tuned-lens package saves them; `hub` fetches the
    /// model's published lens, lens/<model id>/ in the Space --tuned-lens-repo (Hub model
    /// ids only; same cache, token and HF_HUB_OFFLINE rules as models). A directory named
    /// hub is ./hub.
    #[arg(long, value_name = "DIR|hub")]
    pub tuned_lens: Option<String>,

    /// The Hugging Face Space `--tuned-lens hub` reads, as the package's TUNED_LENS_REPO_ID
    /// [default: AlignmentResearch/tuned-lens].
    #[arg(long, value_name = "REPO")]
    pub tuned_lens_repo: Option<String>,

    /// Run the logit lens and the --tuned-lens over the same forward pass: one report per
    /// prompt and lens ("lens": "logit", then "tuned"), and both sets of per-layer rows in
    /// the --summary.
    #[arg(long)]
    pub compare_lenses: bool,

    /// Write per-layer aggregates over all prompts and positions (mean entropy, KL,
    /// next-token cross-entropy, top-1 accuracy, agreement with the output, target
    /// probability and rank) to this .json or .csv file.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,

    /// Draw the per-layer summary curves over all prompts (mean entropy, KL, next-token
    /// cross-entropy, top-1 accuracy, agreement with the output; target probability when
    /// targets are tracked) to this .png or .svg file. Needs several prompts.
    #[arg(long, value_name = "FILE")]
    pub summary_plot: Option<PathBuf>,

    /// Write the heatmap of a single prompt to this file (.png or .svg), or the interactive
    /// report of every prompt (.html).
    #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "out_dir")]
    pub out: Option<PathBuf>,

    /// Write one heatmap (or HTML report) per prompt into this directory, named by prompt id
    /// or index.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Image format for --out-dir [default: png].
    #[arg(long, value_enum)]
    pub image_format: Option<ImageKind>,

    /// What colours the heatmap's cells (each is labelled with its argmax token) [default:
    /// entropy].
    #[arg(long, value_enum, value_name = "METRIC")]
    pub metric: Option<heatmap::Metric>,

    /// Fix the heatmap's colour scale to MIN..MAX in the --metric's units (e.g. 0..10 nats
    /// of entropy), so that figures can be compared. Default: one figure's own 0..max (0..1
    /// for probabilities); the figures of one --out-dir share the metric's whole range
    /// (0..ln(vocabulary size) for entropy).
    #[arg(long, value_name = "MIN..MAX", value_parser = color_range)]
    pub color_range: Option<ColorRange>,

    /// Draw only positions A to B-1 (0-based, as Python's [A:B]) in the heatmap; A.. runs to
    /// the end, ..B from the start.
    #[arg(long, value_name = "A..B", value_parser = positions, conflicts_with = "last")]
    pub positions: Option<heatmap::Window>,

    /// Draw only the last N positions in the heatmap.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,

    /// Show every N-th layer in the table and the heatmap (the output layer is always shown).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub layer_step: usize,

    /// Project raw hidden states (no final norm) for every layer but the output.
    #[arg(long)]
    pub no_final_norm: bool,

    /// Prepend the model's BOS token to each prompt.
    #[arg(long)]
    pub bos: bool,

    /// Compute dtype.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,

    /// Approximate lens head: bf16 products with f32 accumulation (AMX or AVX512-BF16
    /// where the CPU has them, otherwise the same products in f32). The forward pass stays
    /// f32; the measured error is in the README. CPU with f32 only.
    #[arg(long)]
    pub fast: bool,

    /// Where to compute: cpu, cuda, cuda:N, metal or metal:N. GPUs need a build with
    /// `--features cuda` (or `metal`); see docs/GPU.md.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: DeviceSpec,

    /// Run the generic device path on the CPU (what a GPU runs: every weight converted
    /// once, candle ops only, statistics reduced as tensors); for tests.
    #[arg(long, hide = true, env = "LOGITLENS_GENERIC_PATH", value_parser = clap::builder::FalseyValueParser::new())]
    pub generic_path: bool,

    /// Stop at the first prompt that fails.
    #[arg(long)]
    pub fail_fast: bool,

    /// Keep going when a row holds NaN or infinite values: write those cells as null with
    /// "nonfinite": true (a marked, empty cell elsewhere) instead of failing the prompt.
    #[arg(long)]
    pub allow_nonfinite: bool,

    /// Print nothing on stderr but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The usage line: --prompt and --prompts combine.
const USAGE: &str = "logitlens --model ID|DIR|GGUF [--prompt TEXT]... [--prompts FILE] [OPTIONS]";

/// `--color-range MIN..MAX`, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorRange(pub f32, pub f32);

fn color_range(text: &str) -> Result<ColorRange, String> {
    heatmap::parse_color_range(text)
        .map(|(min, max)| ColorRange(min, max))
        .map_err(|e| e.to_string())
}

fn positions(text: &str) -> Result<heatmap::Window, String> {
    heatmap::parse_positions(text).map_err(|e| super::worded_top(&e))
}

/// `--metric`'s values: [`heatmap::Metric`]'s names, each with its help.
impl ValueEnum for heatmap::Metric {
    fn value_variants<'a>() -> &'a [Self] {
        &heatmap::Metric::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()).help(self.help()))
    }
}

/// Prompt file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PromptsFormatArg {
    /// One prompt per line.
    Text,
    /// One {"prompt": ..., "id": ...} object per line.
    Jsonl,
    /// One JSON array of {"prompt": ..., "id": ...} objects.
    Json,
}

impl From<PromptsFormatArg> for PromptsFormat {
    fn from(f: PromptsFormatArg) -> Self {
        match f {
            PromptsFormatArg::Text => PromptsFormat::Text,
            PromptsFormatArg::Jsonl => PromptsFormat::Jsonl,
            PromptsFormatArg::Json => PromptsFormat::Json,
        }
    }
}

/// stdout formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns of argmax tokens, one line per layer.
    Table,
    /// One JSON document: an object for one --prompt, else an array.
    Json,
    /// One JSON object per prompt per line.
    Jsonl,
    /// One row per (prompt, layer, position), tab-separated.
    Tsv,
    /// One row per (prompt, layer, position), comma-separated.
    Csv,
}

/// Image formats for --out-dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageKind {
    Png,
    Svg,
    /// The interactive HTML report.
    Html,
}

/// Compute dtypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl From<Dtype> for DType {
    fn from(d: Dtype) -> Self {
        match d {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::Bf16 => DType::BF16,
        }
    }
}
