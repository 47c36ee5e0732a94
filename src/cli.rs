//! The command line: flag definitions, then validated arguments, then the work, then the
//! printers.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::DType;
use clap::{Parser, ValueEnum};

use crate::atomic;
use crate::lens::LensOptions;
use crate::output::{self, heatmap, Report};
use crate::session::{LoadOptions, RunOptions, Session};
use crate::source::HubSettings;

/// What every layer of a causal language model predicts: the logit lens as a table, JSON,
/// and an annotated entropy heatmap.
#[derive(Debug, Parser)]
#[command(name = "logitlens", version, about, max_term_width = 100)]
pub struct Args {
    /// Hugging Face Hub repo id (e.g. microsoft/phi-1_5) or a local model directory.
    #[arg(long, short = 'm', value_name = "ID|DIR")]
    pub model: String,

    /// The text to run through the model.
    #[arg(long, short = 'p', value_name = "TEXT")]
    pub prompt: String,

    /// Hub revision: a branch, tag or commit hash.
    #[arg(long, default_value = "main", value_name = "REV")]
    pub revision: String,

    /// Write the heatmap to this file (.png or .svg).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// What to print on stdout.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Show each cell's entropy (nats) in the table.
    #[arg(long)]
    pub entropy: bool,

    /// Project raw hidden states (no final norm) for every layer but the output.
    #[arg(long)]
    pub no_final_norm: bool,

    /// Prepend the model's BOS token to the prompt.
    #[arg(long)]
    pub bos: bool,

    /// Compute dtype.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,

    /// Draw every N-th layer in the heatmap (the output layer is always drawn).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub layer_step: usize,
}

/// stdout formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns of argmax tokens, one line per layer.
    Table,
    /// One JSON document.
    Json,
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

/// Arguments checked before any expensive work.
struct Plan {
    args: Args,
    image: Option<(PathBuf, heatmap::ImageFormat)>,
}

fn validate(args: Args) -> Result<Plan> {
    if args.prompt.trim().is_empty() {
        bail!("the prompt is empty; pass some text with --prompt");
    }
    if args.layer_step == 0 {
        bail!("--layer-step must be at least 1");
    }
    let image = match &args.out {
        None => None,
        Some(path) => {
            let format = heatmap::ImageFormat::from_path(path)?;
            atomic::check_writable(path)?;
            Some((path.clone(), format))
        }
    };
    Ok(Plan { args, image })
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match validate(args).and_then(run) {
        Ok(()) => 0,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("logitlens: error: {}", crate::tokens::one_line(&format!("{e:#}")));
            1
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

fn run(plan: Plan) -> Result<()> {
    let args = &plan.args;
    let mut hub = HubSettings::from_env();
    hub.progress = io::IsTerminal::is_terminal(&io::stderr());
    let load = LoadOptions {
        revision: args.revision.clone(),
        dtype: args.dtype.into(),
        hub,
    };
    let session = Session::load(&args.model, &load)?;
    let opts = RunOptions {
        bos: args.bos,
        lens: LensOptions {
            final_norm: !args.no_final_norm,
            ..LensOptions::default()
        },
    };
    let report = session.run(&args.prompt, opts)?;
    print(args, &report)?;
    if let Some((path, format)) = &plan.image {
        let opts = heatmap::HeatmapOptions {
            layer_step: args.layer_step,
            ..Default::default()
        };
        let bytes = heatmap::render(&report, &opts, *format)?;
        atomic::write(path, &bytes)?;
    }
    Ok(())
}

fn print(args: &Args, report: &Report) -> Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match args.format {
        Format::Table => output::table::write(&mut out, report, args.entropy)?,
        Format::Json => output::json::write(&mut out, std::slice::from_ref(report))?,
    }
    out.flush()?;
    Ok(())
}
