//! The command line, the ripgrep way: flag definitions ([`flags`]), then resolved
//! arguments that own their values ([`args`]), including the outputs asked for, unbuilt;
//! then the work ([`run`]), which loads the model, builds the sinks of [`crate::output`]
//! from what it learnt ([`sinks`]) and feeds each report to them.
//!
//! Exit codes: 0 when every prompt succeeded, 1 when any failed (the others are still
//! processed and written), 2 for usage errors. A closed stdout (`| head`) ends quietly.

use std::io::{self, IsTerminal};

use clap::{CommandFactory, FromArgMatches};

use crate::error::one_line;

pub mod args;
pub mod flags;
pub mod run;
pub mod sinks;

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

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
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
    eprintln!("logitlens: error: {}", one_line(&format!("{e:#}")));
}

/// Whether the error comes from a closed stdout.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == io::ErrorKind::BrokenPipe))
    })
}
