//! The work: load the model once, check what depends on its vocabulary, build the sinks,
//! run the lens on every prompt and hand each report to the sinks as soon as it is ready.

use std::io::{self, Write};
use std::sync::Arc;

use anyhow::{anyhow, Result};

use super::args::Args;
use super::resume::Resumed;
use super::sinks::Sinks;
use super::{report_error, usage, worded_top};
use crate::atomic;
use crate::compute::FastUse;
use crate::kernels::dot_bf16::Path;
use crate::lens::Lens;
use crate::output::RunContext;
use crate::prompts::Prompt;
use crate::report::Report;
use crate::session::{RunOptions, Session};
use crate::timing::Timing;

/// Loads the model once and runs every prompt; returns the exit code.
///
/// Each sink's errors follow its kind's policy ([`super::sinks::OnError`]): stdout's and
/// the summaries' end the run, and stdout closing early (`| head`) ends it quietly with
/// exit code 0, unless files are being written (`--out`, `--out-dir`): then the run goes on
/// without printing and writes every file. A heatmap's or the HTML report's error fails its
/// prompt. Exit code 1 when a prompt or a file failed.
pub(crate) fn run(mut args: Args) -> Result<i32> {
    let mut timing = Timing::start();
    let session = Session::load(&args.model, &args.load)?;
    if timing.on() {
        timing.loaded(session.compute().describe(), session.compute().fast_path());
    }
    let targets = check_vocabulary(&session, &args)?;
    if !args.quiet {
        warn_about_fast(&session);
    }
    if let Some(source) = &args.tuned_lens {
        let tuned: Arc<dyn Lens> = Arc::new(session.tuned_lens(source, &args.load.hub)?);
        match args.compare_lenses {
            true => args.run.also = vec![tuned],
            false => args.run.lens.lens = tuned,
        }
        timing.tuned_lens_loaded();
    }
    let context = RunContext {
        title: session.title().to_string(),
        provenance: session.provenance(&args.run),
        vocab_size: session.model().info().vocab_size,
        targets: targets.most(),
    };
    if let Some(path) = &args.provenance {
        atomic::write(path, &context.provenance.sidecar())?;
    }
    let out: Box<dyn Write> = match &args.output {
        Some(file) => Box::new(file.open()?),
        None => Box::new(io::BufWriter::new(io::stdout())),
    };
    let resumed = match args.output.as_mut().and_then(|o| o.resumed.take()) {
        Some(resumed) => {
            if resumed.dropped && !args.quiet {
                eprintln!(
                    "logitlens: note: --output {}: dropped what an interrupted run left unfinished at its end",
                    args.outputs.output.as_deref().unwrap_or(std::path::Path::new("")).display()
                );
            }
            resumed
        }
        None => Resumed::default(),
    };
    // Whether each prompt is finished already (--resume).
    let done = |i: usize| resumed.done.get(i).copied().unwrap_or(false);
    let total = (0..args.prompts.len()).filter(|&i| !done(i)).count();
    let mut sinks = Sinks::build(&args.outputs, args.run.lens.top_k, out);
    let progress = progress_bar(total, args.progress);
    sinks.begin(&context)?;
    sinks.resumed(&resumed.finished)?;
    let (mut failures, mut ran) = (0, 0);
    'run: for window in windows(&session, &args) {
        // A window is computed whole even when an interrupted run wrote part of it, so
        // that each prompt shares its forward passes with the same prompts as in a run
        // that was never interrupted, and gets the same bits.
        if window.clone().all(done) {
            continue;
        }
        let window: Vec<usize> = window.collect();
        let results = lens_window(&session, &args, &targets.per_prompt, &window, &mut timing);
        for (&index, result) in window.iter().zip(results) {
            if done(index) {
                continue;
            }
            ran += 1;
            progress.inc(1);
            let result = match result {
                Ok(reports) => sinks.write(&reports)?,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                failures += 1;
                let label = args.prompts[index].label();
                progress.suspend(|| report_error(&e.context(label)));
                if args.fail_fast {
                    break 'run;
                }
            }
        }
    }
    progress.finish_and_clear();
    let unwritten = sinks.finish()?;
    if failures > 0 && total > 1 {
        let not_run = match total - ran {
            0 => String::new(),
            n => format!("; {n} not run (--fail-fast)"),
        };
        eprintln!("logitlens: {failures} of {total} prompts failed{not_run}");
    }
    timing.finish();
    Ok(if failures > 0 || unwritten { 1 } else { 0 })
}

/// Everything checked against the loaded model's vocabulary, in one place, right after
/// loading: a warning when the tokenizer can produce ids the model has no embedding row
/// for (unless `--quiet`), `--top-k` at most the vocabulary, and the targets resolved.
fn check_vocabulary(session: &Session, args: &Args) -> Result<Targets> {
    if !args.quiet {
        warn_about_vocabulary(session, args);
    }
    let vocab = session.model().info().vocab_size;
    if args.run.lens.top_k > vocab {
        return Err(usage(format!(
            "--top-k {} is more than the model's {vocab} tokens; give K of at most {vocab}",
            args.run.lens.top_k
        )));
    }
    Targets::resolve(session, args)
}

/// Warns, right after loading, when the tokenizer can produce ids the model has no
/// embedding row for (a `--tokenizer` of another model): such prompts would fail.
fn warn_about_vocabulary(session: &Session, args: &Args) {
    let (ids, rows) = (
        session.vocab().id_bound(),
        session.model().info().vocab_size,
    );
    if ids > rows {
        let which = match &args.load.tokenizer {
            Some(path) => format!("--tokenizer {}", path.display()),
            None => "the tokenizer".to_string(),
        };
        eprintln!(
            "logitlens: warning: {which} has ids up to {} but the model has {rows} embedding rows; prompts that use ids from {rows} on will fail (is it this model's tokenizer?)",
            ids - 1
        );
    }
}

/// `--fast` where the CPU has no faster bf16 path runs exact; forced onto the f32 path, it
/// computes the same products, no faster.
fn warn_about_fast(session: &Session) {
    match session.compute().fast_use() {
        Some(FastUse { why: Some(why), .. }) => eprintln!(
            "logitlens: note: --fast runs the exact f32 head here: {why} (provenance records it)"
        ),
        Some(FastUse { used: true, .. }) if Path::detect() == Path::F32 => eprintln!(
            "logitlens: note: --fast runs its bf16 products on f32 instructions here (LOGITLENS_KERNELS=baseline forced it): the same results, no faster than without --fast"
        ),
        _ => {}
    }
}

/// The tracked token ids of the run and of each prompt.
struct Targets {
    /// Per prompt: the run's targets, then the prompt's own, each id once; or why the
    /// prompt's own could not be resolved.
    per_prompt: Vec<Result<Vec<u32>>>,
}

impl Targets {
    /// Resolves `--target`, `--target-id` (usage errors when they name no token of the
    /// model) and each prompt's own targets (errors of that prompt).
    fn resolve(session: &Session, args: &Args) -> Result<Self> {
        let vocab = session.model().info().vocab_size;
        let mut run = Vec::new();
        for text in &args.target_texts {
            run.push(target_id(session, text, args.quiet).map_err(|e| usage(worded_top(&e)))?);
        }
        for &id in &args.target_ids {
            if id as usize >= vocab {
                return Err(usage(format!(
                    "--target-id {id} is outside the model's vocabulary of {vocab} tokens; give an id below {vocab}"
                )));
            }
            run.push(id);
        }
        let per_prompt = args
            .prompts
            .iter()
            .map(|p| {
                let mut ids = run.clone();
                for text in &p.targets {
                    ids.push(target_id(session, text, args.quiet)?);
                }
                let mut seen = std::collections::HashSet::new();
                ids.retain(|id| seen.insert(*id));
                Ok(ids)
            })
            .collect();
        Ok(Self { per_prompt })
    }

    /// The most targets any prompt tracks.
    fn most(&self) -> usize {
        self.per_prompt
            .iter()
            .filter_map(|r| r.as_ref().ok().map(Vec::len))
            .max()
            .unwrap_or(0)
    }
}

/// The id a target text tracks, with a note on stderr when the text is several tokens.
fn target_id(session: &Session, text: &str, quiet: bool) -> Result<u32> {
    let (id, count) = session.target_id(text)?;
    if count > 1 && !quiet {
        eprintln!(
            "logitlens: note: target {text:?} is {count} tokens; tracking the first, {:?} (id {id})",
            session.vocab().display(id)
        );
    }
    Ok(id)
}

/// The run's prompts cut into windows computed together: consecutive prompts, at most
/// [`WINDOW_PROMPTS`] and at most [`WINDOW_PASSES`] times the fixed cost of a forward pass
/// in work (at least one prompt), which share forward passes ([`Session::run_all_batch`]);
/// each prompt's reports are written as soon as its window is done. A pass reads (converts,
/// dequantizes) every weight once whatever its size, which costs about what
/// [`PASS_TOKENS`] tokens do, so a window of that much work loses about 1/`WINDOW_PASSES`
/// of its time to it, and no more work than that waits to be written. The windows depend
/// only on the prompts and the model, so a resumed run cuts them as the interrupted one did.
fn windows<'a>(
    session: &'a Session,
    args: &'a Args,
) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
    let info = session.model().info();
    let (layers, d, vocab) = (
        info.num_layers as f64,
        info.hidden_size as f64,
        info.vocab_size as f64,
    );
    let rows = match args.run.lens.sublayers {
        true => 2.0 * layers + 1.0,
        false => layers + 1.0,
    };
    let lenses = 1.0 + args.run.also.len() as f64;
    // Multiply-adds: a token through the blocks (about 12·D² a layer, one per weight) and
    // the embedding, and through the head over every row of every lens.
    let weights = 12.0 * layers * d * d + vocab * d;
    let per_token = weights + rows * lenses * vocab * d;
    let budget = WINDOW_PASSES * PASS_TOKENS * weights;
    let work = move |i: usize| {
        let tokens = session
            .encode(&args.prompts[i].text, args.run.bos)
            .map_or(1, |ids| ids.len());
        tokens as f64 * per_token
    };
    let mut first = 0;
    std::iter::from_fn(move || {
        if first == args.prompts.len() {
            return None;
        }
        let mut end = first + 1;
        let mut sum = work(first);
        while end < args.prompts.len() && end - first < WINDOW_PROMPTS {
            let more = work(end);
            if sum + more > budget {
                break;
            }
            sum += more;
            end += 1;
        }
        let window = first..end;
        first = end;
        Some(window)
    })
}

/// What a forward pass's fixed cost (every weight read once, converted from f16/bf16 or
/// dequantized) is worth in tokens: measured about 35 for Phi-1.5's f16 weights and 11
/// for SmolLM2's Q4_1 (one pass against one of several times as many tokens).
const PASS_TOKENS: f64 = 32.0;

/// A window's work, in fixed costs of a pass: that cost is then 2% of the window's time.
const WINDOW_PASSES: f64 = 50.0;

/// Computes the prompts `window` (indexes, consecutive in the run) together; each prompt's
/// reports (one per lens), in order, with its place in the run; `targets[i]` are the ids
/// prompt i tracks.
fn lens_window(
    session: &Session,
    args: &Args,
    targets: &[Result<Vec<u32>>],
    window: &[usize],
    timing: &mut Timing,
) -> Vec<Result<Vec<Report>>> {
    let prompts: Vec<&Prompt> = window.iter().map(|&i| &args.prompts[i]).collect();
    let targets: Vec<&Result<Vec<u32>>> = window.iter().map(|&i| &targets[i]).collect();
    let opts: Vec<Option<RunOptions>> = targets
        .iter()
        .map(|ids| {
            let mut opts = args.run.clone();
            opts.lens.targets = ids.as_ref().ok()?.clone();
            Some(opts)
        })
        .collect();
    let batch: Vec<(&str, &RunOptions)> = prompts
        .iter()
        .zip(&opts)
        .filter_map(|(p, o)| Some((p.text.as_str(), o.as_ref()?)))
        .collect();
    let mut computed = session.run_all_batch(&batch).into_iter();
    prompts
        .iter()
        .zip(targets)
        .map(|(prompt, ids)| {
            if let Err(e) = ids {
                return Err(anyhow!("{}", worded_top(e)));
            }
            let (mut reports, t) = computed.next().expect("one result per prompt run")?;
            timing.prompt(prompt.index, reports[0].tokens.len(), t.forward, t.lens);
            for report in &mut reports {
                report.prompt_index = prompt.index;
                report.prompt_id = prompt.id.clone();
            }
            Ok(reports)
        })
        .collect()
}

/// Most prompts computed before their reports are written.
const WINDOW_PROMPTS: usize = 64;

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
