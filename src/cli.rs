//! The command line: flag definitions, then validated arguments, then the work, then the
//! printers.
//!
//! Exit codes: 0 when every prompt succeeded, 1 when any failed (the others are still
//! processed and written), 2 for usage errors. A closed stdout (`| head`) ends quietly.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Result;
use candle_core::DType;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::atomic;
use crate::lens::LensOptions;
use crate::output::{self, delimited::Delimited, heatmap, Report};
use crate::prompts::{self, Prompt};
use crate::session::{LoadOptions, RunOptions, Session};
use crate::source::HubSettings;
use crate::tokens::one_line;

/// What every layer of a causal language model predicts: the logit lens as a table, JSON,
/// JSONL, CSV or TSV, and an annotated entropy heatmap.
#[derive(Debug, Parser)]
#[command(name = "logitlens", version, about, max_term_width = 100)]
pub struct Args {
    /// Hugging Face Hub repo id (e.g. microsoft/phi-1_5), a local model directory, or a
    /// llama-architecture .gguf file.
    #[arg(long, short = 'm', value_name = "ID|DIR|GGUF")]
    pub model: String,

    /// Use this tokenizer.json instead of the model's own (for a .gguf model, instead of the
    /// tokenizer rebuilt from its metadata).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,

    /// Text to run through the model; repeat for several prompts.
    #[arg(long, short = 'p', value_name = "TEXT")]
    pub prompt: Vec<String>,

    /// Read prompts from a file, one per line (`-` = stdin); a .jsonl file holds
    /// {"prompt": ..., "id": ...} objects.
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,

    /// Hub revision: a branch, tag or commit hash.
    #[arg(long, default_value = "main", value_name = "REV")]
    pub revision: String,

    /// What to print on stdout.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Show each cell's entropy (nats) in the table.
    #[arg(long)]
    pub entropy: bool,

    /// Write the heatmap of a single prompt to this file (.png or .svg).
    #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "out_dir")]
    pub out: Option<PathBuf>,

    /// Write one heatmap per prompt into this directory, named by prompt id or index.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Image format for --out-dir.
    #[arg(long, value_enum, default_value_t = ImageKind::Png)]
    pub image_format: ImageKind,

    /// Draw every N-th layer in the heatmap (the output layer is always drawn).
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

    /// Stop at the first prompt that fails.
    #[arg(long)]
    pub fail_fast: bool,

    /// Print nothing on stderr but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
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

/// A usage error: exit code 2.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

/// Where each prompt's heatmap goes.
enum Images {
    None,
    One(PathBuf, heatmap::ImageFormat),
    Dir(PathBuf, heatmap::ImageFormat),
}

/// Arguments checked before any expensive work.
struct Plan {
    args: Args,
    prompts: Vec<Prompt>,
    images: Images,
    /// JSON as one object rather than an array.
    single_json: bool,
}

fn validate(args: Args) -> Result<Plan> {
    if args.layer_step == 0 {
        return Err(usage("--layer-step must be at least 1"));
    }
    let prompts = prompts::collect(&args.prompt, args.prompts.as_deref()).map_err(|e| {
        match args.prompt.is_empty() && args.prompts.is_none() {
            true => usage(e.to_string()),
            false => e,
        }
    })?;
    let images = match (&args.out, &args.out_dir) {
        (Some(_), _) if prompts.len() > 1 => {
            return Err(usage(format!(
            "--out takes one prompt but {} were given; use --out-dir DIR for one image per prompt",
            prompts.len()
        )))
        }
        (Some(path), _) => {
            atomic::check_writable(path).map_err(|e| usage(e.to_string()))?;
            let format = heatmap::ImageFormat::from_path(path).map_err(|e| usage(e.to_string()))?;
            Images::One(path.clone(), format)
        }
        (None, Some(dir)) => {
            if !dir.is_dir() {
                return Err(usage(format!(
                    "--out-dir {} is not a directory; create it first (mkdir -p {})",
                    dir.display(),
                    dir.display()
                )));
            }
            let format = match args.image_format {
                ImageKind::Png => heatmap::ImageFormat::Png,
                ImageKind::Svg => heatmap::ImageFormat::Svg,
            };
            check_unique_names(&prompts)?;
            Images::Dir(dir.clone(), format)
        }
        (None, None) => Images::None,
    };
    let single_json = args.prompts.is_none() && args.prompt.len() == 1;
    Ok(Plan {
        args,
        prompts,
        images,
        single_json,
    })
}

/// The file stem of a prompt's image: its id made file-safe, else its zero-padded index.
pub fn image_stem(prompt: &Prompt, total: usize) -> String {
    match &prompt.id {
        Some(id) => id
            .chars()
            .map(|c| match c.is_ascii_alphanumeric() || "-_.".contains(c) {
                true => c,
                false => '_',
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string(),
        None => format!(
            "{:0width$}",
            prompt.index,
            width = total.saturating_sub(1).to_string().len().max(3)
        ),
    }
}

fn check_unique_names(prompts: &[Prompt]) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for p in prompts {
        let stem = image_stem(p, prompts.len());
        if stem.is_empty() {
            return Err(usage(format!(
                "{} has an id that makes no file name; give it letters or digits",
                p.label()
            )));
        }
        if let Some(other) = seen.insert(stem.clone(), p.label()) {
            return Err(usage(format!(
                "{other} and {} would both be written to {stem}; give them distinct ids",
                p.label()
            )));
        }
    }
    Ok(())
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let mut command = Args::command();
    if no_color {
        command = command.color(clap::ColorChoice::Never);
    }
    let args = match command
        .try_get_matches()
        .and_then(|m| Args::from_arg_matches(&m))
    {
        Ok(a) => a,
        Err(e) if e.use_stderr() => {
            eprintln!("logitlens: {}", clap_one_line(&e));
            return 2;
        }
        Err(e) => {
            let _ = e.print();
            return 0;
        }
    };
    match validate(args).and_then(run) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            report_error(&e);
            if e.downcast_ref::<Usage>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

/// clap's multi-line usage error as one line.
fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:")
        })
        .collect();
    format!("{}; see --help", parts.join(" "))
}

fn report_error(e: &anyhow::Error) {
    eprintln!("logitlens: error: {}", one_line(&format!("{e:#}")));
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == io::ErrorKind::BrokenPipe))
    })
}

/// Loads the model once and runs every prompt; returns the exit code.
fn run(plan: Plan) -> Result<i32> {
    let args = &plan.args;
    let tty = io::stderr().is_terminal() && !args.quiet;
    let mut hub = HubSettings::from_env();
    hub.progress = tty;
    let load = LoadOptions {
        revision: args.revision.clone(),
        dtype: args.dtype.into(),
        hub,
        tokenizer: args.tokenizer.clone(),
        device: candle_core::Device::Cpu,
    };
    let started = std::time::Instant::now();
    let session = Session::load(&args.model, &load)?;
    let timing = std::env::var_os("LOGITLENS_TIMING").is_some_and(|v| !v.is_empty());
    if timing {
        eprintln!("timing: load {:.3}s", started.elapsed().as_secs_f64());
    }
    let opts = RunOptions {
        bos: args.bos,
        lens: LensOptions {
            final_norm: !args.no_final_norm,
            ..LensOptions::default()
        },
    };
    let progress = progress_bar(plan.prompts.len(), tty);
    let mut printer = Printer::new(args, plan.prompts.len(), plan.single_json)?;
    let mut failures = 0;
    for prompt in &plan.prompts {
        let result = process(&session, prompt, opts, &plan, &mut printer, timing);
        progress.inc(1);
        match result {
            Ok(()) => {}
            Err(e) if is_broken_pipe(&e) => return Err(e),
            Err(e) => {
                failures += 1;
                progress.suspend(|| report_error(&e.context(prompt.label())));
                if args.fail_fast {
                    break;
                }
            }
        }
    }
    progress.finish_and_clear();
    printer.finish()?;
    if failures > 0 && plan.prompts.len() > 1 {
        eprintln!(
            "logitlens: {failures} of {} prompts failed",
            plan.prompts.len()
        );
    }
    Ok(if failures > 0 { 1 } else { 0 })
}

/// One prompt: lens, stdout, image.
fn process(
    session: &Session,
    prompt: &Prompt,
    opts: RunOptions,
    plan: &Plan,
    printer: &mut Printer,
    timing: bool,
) -> Result<()> {
    let (mut report, t) = session.run_timed(&prompt.text, opts)?;
    if timing {
        eprintln!(
            "timing: tokens {} forward {:.3}s lens {:.3}s",
            report.tokens.len(),
            t.forward.as_secs_f64(),
            t.lens.as_secs_f64()
        );
    }
    report.prompt_index = prompt.index;
    report.prompt_id = prompt.id.clone();
    printer.print(report.clone())?;
    let hopts = heatmap::HeatmapOptions {
        layer_step: plan.args.layer_step,
        ..Default::default()
    };
    let (path, format) = match &plan.images {
        Images::None => return Ok(()),
        Images::One(path, format) => (path.clone(), *format),
        Images::Dir(dir, format) => {
            let ext = match format {
                heatmap::ImageFormat::Png => "png",
                heatmap::ImageFormat::Svg => "svg",
            };
            (
                dir.join(format!("{}.{ext}", image_stem(prompt, plan.prompts.len()))),
                *format,
            )
        }
    };
    atomic::write(&path, &heatmap::render(&report, &hopts, format)?)
}

fn progress_bar(total: usize, tty: bool) -> indicatif::ProgressBar {
    if !tty || total < 2 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} prompts {elapsed}")
    {
        bar.set_style(style);
    }
    bar
}

/// Writes each report to stdout in the chosen format as soon as it is ready (JSON, one
/// document, waits for all).
struct Printer {
    format: Format,
    entropy: bool,
    many: bool,
    single_json: bool,
    out: io::BufWriter<io::Stdout>,
    table: Option<Delimited<io::BufWriter<io::Stdout>>>,
    json: Vec<Report>,
    printed: usize,
}

impl Printer {
    fn new(args: &Args, total: usize, single_json: bool) -> Result<Self> {
        let table = match args.format {
            Format::Csv => Some(Delimited::new(io::BufWriter::new(io::stdout()), b',')?),
            Format::Tsv => Some(Delimited::new(io::BufWriter::new(io::stdout()), b'\t')?),
            _ => None,
        };
        Ok(Self {
            format: args.format,
            entropy: args.entropy,
            many: total > 1,
            single_json,
            out: io::BufWriter::new(io::stdout()),
            table,
            json: Vec::new(),
            printed: 0,
        })
    }

    fn print(&mut self, report: Report) -> Result<()> {
        match self.format {
            Format::Table => {
                if self.many {
                    if self.printed > 0 {
                        writeln!(self.out)?;
                    }
                    writeln!(
                        self.out,
                        "# prompt {}: {}",
                        label_of(&report),
                        crate::tokens::printable(report.prompt.as_bytes())
                    )?;
                }
                output::table::write(&mut self.out, &report, self.entropy)?;
                self.out.flush()?;
            }
            Format::Json => self.json.push(report),
            Format::Jsonl => {
                output::jsonl::write(&mut self.out, &report)?;
                self.out.flush()?;
            }
            Format::Tsv | Format::Csv => {
                let table = self
                    .table
                    .as_mut()
                    .expect("delimited writer made for csv/tsv");
                table.write(&report)?;
                table.flush()?;
            }
        }
        self.printed += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.format == Format::Json {
            match (self.single_json, self.json.as_slice()) {
                (true, [one]) => output::json::write_one(&mut self.out, one)?,
                (true, []) => {}
                (_, all) => output::json::write_many(&mut self.out, all)?,
            }
        }
        self.out.flush()?;
        Ok(())
    }
}

fn label_of(report: &Report) -> String {
    match &report.prompt_id {
        Some(id) => id.clone(),
        None => report.prompt_index.to_string(),
    }
}
