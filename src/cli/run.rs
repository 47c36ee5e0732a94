//! The work: load the model once, run the lens on every prompt, and hand each report to
//! the stdout printer and the images as soon as it is ready.

use std::io;

use anyhow::Result;

use super::args::Args;
use super::{is_broken_pipe, report_error};
use crate::output::{Report, Sink};
use crate::prompts::Prompt;
use crate::session::Session;

/// Loads the model once and runs every prompt; returns the exit code.
pub fn run(mut args: Args) -> Result<i32> {
    let started = std::time::Instant::now();
    let session = Session::load(&args.model, &args.load)?;
    let timing = std::env::var_os("LOGITLENS_TIMING").is_some_and(|v| !v.is_empty());
    if timing {
        eprintln!("timing: load {:.3}s", started.elapsed().as_secs_f64());
    }
    let total = args.prompts.len();
    let progress = progress_bar(total, args.progress);
    let mut printer = args.printer(io::BufWriter::new(io::stdout()));
    printer.begin()?;
    let mut images = args.images.take();
    let mut failures = 0;
    for prompt in &args.prompts {
        let result = lens(&session, prompt, &args, timing).and_then(|report| {
            printer.report(&report)?;
            match &mut images {
                Some(images) => images.report(&report),
                None => Ok(()),
            }
        });
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
    if failures > 0 && total > 1 {
        eprintln!("logitlens: {failures} of {total} prompts failed");
    }
    Ok(if failures > 0 { 1 } else { 0 })
}

/// One prompt's report, with its place in the run.
fn lens(session: &Session, prompt: &Prompt, args: &Args, timing: bool) -> Result<Report> {
    let (mut report, t) = session.run_timed(&prompt.text, &args.run)?;
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
    Ok(report)
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
