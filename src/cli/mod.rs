//! The command line, the ripgrep way: flag definitions ([`flags`]), then resolved
//! arguments that own their values (`args`), including the outputs asked for, unbuilt;
//! then the work (`run`), which loads the model, builds the sinks of [`crate::output`]
//! from what it learnt (`sinks`) and feeds each report to them.
//!
//! Exit codes: 0 when every prompt succeeded, 1 when any failed (the others are still
//! processed and written), 2 for usage errors. A closed stdout (`| head`) ends quietly.

use std::io::{self, IsTerminal};

use clap::{CommandFactory, FromArgMatches};

use crate::error::{one_line, Words};

pub(crate) mod args;
/// Public only for tests/cli.rs, which checks the README's option table against it.
#[doc(hidden)]
pub mod flags;
pub(crate) mod resume;
pub(crate) mod run;
pub(crate) mod sinks;

use args::Args;
use flags::Flags;

/// A usage error: exit code 2.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A usage error with this message.
fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

/// The library's typed errors ([`crate::error::Error`]) in the command line's words: each
/// names the flag that makes the choice.
const FLAGS: Words = Words {
    device: "--device",
    tokenizer: "pass the model's tokenizer.json with --tokenizer",
    model: "--model takes",
    one_gguf: "pass one of them with --model",
    tuned_lens: "--tuned-lens",
    tuned_lens_hub: " (or pass --tuned-lens hub)",
    tuned_lens_dir: "pass --tuned-lens DIR",
    no_prompt: "no prompt given; pass --prompt TEXT or --prompts FILE",
    prompt_text: "; pass some text with --prompt",
    read_as: |format, label, them| {
        format!("pass --prompts-format {format} to read {them} as {label}, or --prompts-format text to run the lines as they are")
    },
    jsonl: "use --prompts-format jsonl",
    sublayers_tuned: "--sublayers needs a translator for resid_mid, and a tuned lens has none",
    sublayers: "--sublayers",
    target: "--target",
    target_hint: "; give a text with at least one token, or --target-id N",
    bos: "drop --bos",
    summary: "--summary",
    metric_rank: "--metric rank",
    metric_target: "--metric target",
    add_target: "add --target TEXT or --target-id N",
    positions: "--positions",
    other_window: "use --positions A..B or --last N",
    dtype: "--dtype",
    allow_nonfinite: "pass --allow-nonfinite to write such cells as null",
};

/// One error of a chain in the command line's words.
fn worded_one(e: &(dyn std::error::Error + 'static)) -> String {
    match e.downcast_ref::<crate::error::Error>() {
        Some(typed) => typed.worded(&FLAGS),
        None => e.to_string(),
    }
}

/// An error's outermost message (as `{e}` prints it) in the command line's words.
fn worded_top(e: &anyhow::Error) -> String {
    e.chain().next().map(worded_one).unwrap_or_default()
}

/// An error with its causes (as `{e:#}` prints it) in the command line's words.
fn worded(e: &anyhow::Error) -> String {
    e.chain().map(worded_one).collect::<Vec<_>>().join(": ")
}

/// Runs the command line; returns the process exit code. SIGINT and SIGTERM then remove the
/// temporaries being written and exit with 130 and 143.
pub fn main() -> i32 {
    if let Err(e) = crate::atomic::clean_up_on_signals() {
        eprintln!("logitlens: warning: {e:#}; an interrupt may leave a .logitlens-*.tmp file");
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let mut command = Flags::command();
    if no_color {
        command = command.color(clap::ColorChoice::Never);
    }
    let flags = match command
        .try_get_matches()
        .and_then(|m| Flags::from_arg_matches(&m))
    {
        Ok(f) => f,
        Err(e) if e.use_stderr() => {
            eprintln!("logitlens: {}", clap_one_line(&e));
            return 2;
        }
        Err(e) => {
            let _ = e.print();
            return 0;
        }
    };
    match Args::resolve(flags, io::stderr().is_terminal()).and_then(run::run) {
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
    let mut line = String::new();
    for part in parts {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    format!("{line}; see --help")
}

/// Prints an error on one line of stderr.
fn report_error(e: &anyhow::Error) {
    eprintln!("logitlens: error: {}", one_line(&worded(e)));
}

/// Whether the error comes from a closed stdout.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == io::ErrorKind::BrokenPipe))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// Every typed error, with the exact line the command line printed when the library
    /// still worded it (before the errors were typed).
    fn cases() -> Vec<(Error, &'static str)> {
        vec![
            (
                Error::Device { device: "cuda:1".into(), reason: "no usable CUDA device 1 (x)".into() },
                "--device cuda:1: no usable CUDA device 1 (x)",
            ),
            (
                Error::GgufTokenizer { problem: "m.gguf has a \"llama\" tokenizer".into() },
                "m.gguf has a \"llama\" tokenizer; pass the model's tokenizer.json with --tokenizer",
            ),
            (
                Error::NotAModel { model: "x.txt".into(), problem: "is a file but not a model" },
                "x.txt is a file but not a model; --model takes a Hub repo id (e.g. microsoft/phi-1_5), a model directory (config.json, tokenizer.json, *.safetensors) or a .gguf file",
            ),
            (
                Error::SeveralGguf { dir: "d".into(), names: vec!["a.gguf".into(), "b.gguf".into()] },
                "d has no config.json and several .gguf files (a.gguf, b.gguf); pass one of them with --model",
            ),
            (
                Error::TunedLensNotDir { dir: "l".into(), layout: crate::loading::tuned_lens::LAYOUT },
                "--tuned-lens l is not a directory; a tuned lens directory holds config.json and params.pt, as tuned-lens's TunedLens.save writes them (or pass --tuned-lens hub)",
            ),
            (
                Error::TunedLensNotCached { problem: "no tuned lens for m".into() },
                "no tuned lens for m; fetch it once with network access, or pass --tuned-lens DIR",
            ),
            (
                Error::TunedLensNotFetched { problem: "cannot fetch f".into() },
                "cannot fetch f: train one with the tuned-lens package and pass --tuned-lens DIR",
            ),
            (Error::NoPrompt, "no prompt given; pass --prompt TEXT or --prompts FILE"),
            (Error::EmptyPrompt { empty: true }, "the prompt is empty; pass some text with --prompt"),
            (
                Error::EmptyPrompt { empty: false },
                "the prompt encodes to no tokens; pass some text with --prompt",
            ),
            (
                Error::JsonReadAsText { problem: "p".into(), format: "jsonl", label: "JSONL", them: "them" },
                "p; pass --prompts-format jsonl to read them as JSONL, or --prompts-format text to run the lines as they are",
            ),
            (
                Error::JsonReadAsText { problem: "p".into(), format: "json", label: "JSON", them: "it" },
                "p; pass --prompts-format json to read it as JSON, or --prompts-format text to run the lines as they are",
            ),
            (
                Error::NotAJsonArray { problem: "p".into() },
                "p (for one object per line use --prompts-format jsonl)",
            ),
            (
                Error::SublayersTuned,
                "--sublayers needs a translator for resid_mid, and a tuned lens has none",
            ),
            (
                Error::SublayersDisagree,
                "prompts packed into one forward pass must agree on --sublayers",
            ),
            (
                Error::EmptyTarget { text: " ".into() },
                "--target \" \" encodes to no tokens; give a text with at least one token, or --target-id N",
            ),
            (Error::NoBos { problem: "no BOS" }, "no BOS; drop --bos"),
            (
                Error::SummaryFormat { path: "s.txt".into() },
                "--summary s.txt: the summary is written as .json or .csv; name the file so",
            ),
            (
                Error::SummaryPath { problem: "d/s.json: no directory d".into() },
                "--summary: d/s.json: no directory d",
            ),
            (
                Error::RankRange,
                "--metric rank takes a range of ranks from 1 up (a log scale), e.g. 1..1000",
            ),
            (
                Error::NoTargetToColour,
                "--metric target colours by the first target's probability, and there is no target; add --target TEXT or --target-id N",
            ),
            (
                Error::PositionsOutside { window: "2..10".into(), len: 9 },
                "--positions 2..10 is outside the prompt's 9 tokens (positions 0..9); give a range within them",
            ),
            (
                Error::PositionsDoNotFit { requested: (0, 99), shown: (60, 99), shown_len: 40 },
                "positions 0–99 do not fit in one image; the heatmap shows the last 40 (60–99); use --positions A..B or --last N for another window",
            ),
            (
                Error::NonFinite { layer: 3, site: "resid_post", position: 2, token: "▁fox".into(), half: None },
                "non-finite values (NaN or inf) at layer 3, position 2 (\"▁fox\"): likely NaN or inf in the weights of block 3, or a config value that breaks the forward pass (rope_theta, a norm epsilon); or pass --allow-nonfinite to write such cells as null",
            ),
            (
                Error::NonFinite { layer: 0, site: "embed", position: 0, token: "a".into(), half: Some("bf16".into()) },
                "non-finite values (NaN or inf) at layer 0 (the embeddings), position 0 (\"a\"): likely an overflow of bf16 under --dtype bf16; try --dtype f32; or pass --allow-nonfinite to write such cells as null",
            ),
            (
                Error::PositionsEmpty { text: "5..2".into(), how: "write A..B for positions A to B-1 (0-based), A.. or ..B, e.g. 0..10" },
                "--positions 5..2 is empty or reversed; write A..B for positions A to B-1 (0-based), A.. or ..B, e.g. 0..10",
            ),
        ]
    }

    /// The flags the library used to name in its messages.
    const FLAG_NAMES: [&str; 13] = [
        "--device",
        "--tokenizer",
        "--model",
        "--tuned-lens",
        "--prompt",
        "--sublayers",
        "--target",
        "--bos",
        "--prompts-format",
        "--summary",
        "--metric",
        "--positions",
        "--last",
    ];

    #[test]
    fn the_library_names_no_flag_and_the_command_line_words_each_error_as_before() {
        for (error, cli) in cases() {
            let neutral = error.to_string();
            assert!(
                FLAG_NAMES.iter().all(|f| !neutral.contains(f)),
                "the library names a flag: {neutral}"
            );
            assert_ne!(neutral, cli);
            assert_eq!(error.worded(&FLAGS), cli);
        }
    }

    #[test]
    fn typed_errors_keep_their_words_through_context() {
        let e = anyhow::Error::from(Error::SublayersTuned).context("prompt 2");
        assert_eq!(
            worded(&e),
            "prompt 2: --sublayers needs a translator for resid_mid, and a tuned lens has none"
        );
        assert_eq!(
            format!("{e:#}"),
            "prompt 2: the resid_mid site needs a translator, and a tuned lens has none"
        );
        assert_eq!(worded_top(&e), "prompt 2");
        let plain = anyhow::anyhow!("disk full").context("cannot write x");
        assert_eq!(worded(&plain), format!("{plain:#}"));
        let top = anyhow::Error::from(Error::NoPrompt);
        assert_eq!(
            worded_top(&top),
            "no prompt given; pass --prompt TEXT or --prompts FILE"
        );
    }
}
