//! `LOGITLENS_TIMING`: where a run's time went, on stderr.
//!
//! The variable is read once, when the run starts:
//!
//! - unset or empty: nothing is printed;
//! - `json`: one line of JSON at the end of the run (schema below);
//! - anything else (`1`): text lines as the run goes, `timing: load 0.120s on cpu` once
//!   after loading (`, --fast: PATH` appended under `--fast`), `timing: load with tuned lens
//!   0.250s` (seconds since the start) when `--tuned-lens` was loaded, and
//!   `timing: tokens 9 forward 0.800s lens 0.300s` for each prompt computed.
//!
//! The JSON line (one object, keys in this order; seconds as numbers, to the microsecond):
//!
//! ```text
//! {"timing":1,"device":"cpu","fast":null,"load_s":0.12,"tuned_lens_s":null,
//!  "prompts":[{"index":0,"tokens":9,"forward_s":0.8,"lens_s":0.3}],
//!  "tokens":9,"forward_s":0.8,"lens_s":0.3,"total_s":1.25}
//! ```
//!
//! - `timing`: the schema's version (1); a parser finds the line by its start, `{"timing":`.
//! - `device`: where the model ran, as `--device` names it (`cpu (generic path)` for the
//!   GPU's code path on the CPU); `fast`: `--fast`'s head and kernel path, or null.
//! - `load_s`: loading the model (files, tokenizer, checks); `tuned_lens_s`: loading
//!   `--tuned-lens` after it, or null.
//! - `prompts`: one entry per prompt computed, in order: `index` (0-based, in the run),
//!   `tokens` (positions, BOS included), `forward_s` (the forward pass, final norms
//!   included), `lens_s` (head projections and statistics). Prompts packed into one forward
//!   pass share its time in proportion to their tokens. A prompt that failed before its
//!   computation (a target that is not a token) has no entry.
//! - `tokens`, `forward_s`, `lens_s`: the sums over `prompts`.
//! - `total_s`: the whole run, from before loading to the end of writing every output.

use std::time::{Duration, Instant};

use serde_json::Value;

/// What `LOGITLENS_TIMING` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Unset or empty: no timings.
    Off,
    /// Any other value: today's `timing:` text lines, as the run goes.
    Text,
    /// `json`: one JSON line at the end of the run.
    Json,
}

impl Mode {
    /// The mode a value of `LOGITLENS_TIMING` selects.
    pub(crate) fn parse(value: Option<&std::ffi::OsStr>) -> Self {
        match value {
            None => Mode::Off,
            Some(v) if v.is_empty() => Mode::Off,
            Some(v) if v == "json" => Mode::Json,
            Some(_) => Mode::Text,
        }
    }

    /// The mode of this process's `LOGITLENS_TIMING`.
    pub(crate) fn from_env() -> Self {
        Self::parse(std::env::var_os("LOGITLENS_TIMING").as_deref())
    }
}

/// One prompt's share of the run.
#[derive(Debug, Clone, Copy)]
struct PromptTime {
    index: usize,
    tokens: usize,
    forward: Duration,
    lens: Duration,
}

/// The clock of one run: started before loading, told of each stage, printed as the mode
/// asks.
#[derive(Debug)]
pub(crate) struct Timing {
    mode: Mode,
    started: Instant,
    device: String,
    fast: Option<String>,
    load: Duration,
    tuned_lens: Option<Duration>,
    prompts: Vec<PromptTime>,
}

impl Timing {
    /// Starts the clock, in the mode of `LOGITLENS_TIMING`.
    pub(crate) fn start() -> Self {
        Self::with_mode(Mode::from_env())
    }

    /// Starts the clock in `mode`.
    pub(crate) fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            started: Instant::now(),
            device: String::new(),
            fast: None,
            load: Duration::ZERO,
            tuned_lens: None,
            prompts: Vec::new(),
        }
    }

    /// Whether anything is recorded at all.
    pub(crate) fn on(&self) -> bool {
        self.mode != Mode::Off
    }

    /// The model has loaded on `device` (`fast`: `--fast`'s path, if on).
    pub(crate) fn loaded(&mut self, device: String, fast: Option<String>) {
        self.load = self.started.elapsed();
        if self.mode == Mode::Text {
            eprintln!(
                "timing: load {:.3}s on {}{}",
                self.load.as_secs_f64(),
                device,
                fast.as_ref()
                    .map(|f| format!(", --fast: {f}"))
                    .unwrap_or_default()
            );
        }
        self.device = device;
        self.fast = fast;
    }

    /// The tuned lens has loaded, after the model.
    pub(crate) fn tuned_lens_loaded(&mut self) {
        let since_start = self.started.elapsed();
        self.tuned_lens = Some(since_start.saturating_sub(self.load));
        if self.mode == Mode::Text {
            eprintln!(
                "timing: load with tuned lens {:.3}s",
                since_start.as_secs_f64()
            );
        }
    }

    /// Prompt `index` (0-based) of `tokens` positions was computed.
    pub(crate) fn prompt(
        &mut self,
        index: usize,
        tokens: usize,
        forward: Duration,
        lens: Duration,
    ) {
        if self.mode == Mode::Text {
            eprintln!(
                "timing: tokens {} forward {:.3}s lens {:.3}s",
                tokens,
                forward.as_secs_f64(),
                lens.as_secs_f64()
            );
        }
        if self.mode == Mode::Json {
            self.prompts.push(PromptTime {
                index,
                tokens,
                forward,
                lens,
            });
        }
    }

    /// The run is over: prints the JSON line (in JSON mode).
    pub(crate) fn finish(&self) {
        if self.mode == Mode::Json {
            eprintln!("{}", self.json(self.started.elapsed()));
        }
    }

    /// The JSON line, for a run that took `total` (written by hand: the keys in schema order).
    fn json(&self, total: Duration) -> String {
        let prompts: Vec<String> = self
            .prompts
            .iter()
            .map(|p| {
                format!(
                    r#"{{"index":{},"tokens":{},"forward_s":{},"lens_s":{}}}"#,
                    p.index,
                    p.tokens,
                    seconds(p.forward),
                    seconds(p.lens)
                )
            })
            .collect();
        let text = |s: &str| Value::from(s).to_string();
        format!(
            r#"{{"timing":1,"device":{},"fast":{},"load_s":{},"tuned_lens_s":{},"prompts":[{}],"tokens":{},"forward_s":{},"lens_s":{},"total_s":{}}}"#,
            text(&self.device),
            self.fast.as_deref().map_or("null".into(), text),
            seconds(self.load),
            self.tuned_lens
                .map_or("null".into(), |d| seconds(d).to_string()),
            prompts.join(","),
            self.prompts.iter().map(|p| p.tokens).sum::<usize>(),
            seconds(self.prompts.iter().map(|p| p.forward).sum()),
            seconds(self.prompts.iter().map(|p| p.lens).sum()),
            seconds(total)
        )
    }
}

/// Seconds to the microsecond.
fn seconds(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn the_variable_selects_the_mode() {
        assert_eq!(Mode::parse(None), Mode::Off);
        assert_eq!(Mode::parse(Some(OsStr::new(""))), Mode::Off);
        assert_eq!(Mode::parse(Some(OsStr::new("json"))), Mode::Json);
        assert_eq!(Mode::parse(Some(OsStr::new("1"))), Mode::Text);
        assert_eq!(Mode::parse(Some(OsStr::new("JSON"))), Mode::Text);
    }

    #[test]
    fn the_json_line_sums_its_prompts() {
        let mut t = Timing::with_mode(Mode::Json);
        t.device = "cpu".into();
        t.load = Duration::from_micros(120_000);
        t.prompt(
            0,
            9,
            Duration::from_micros(800_000),
            Duration::from_micros(300_000),
        );
        t.prompt(
            2,
            5,
            Duration::from_micros(1_500),
            Duration::from_nanos(2_999),
        );
        let line = t.json(Duration::from_millis(1250));
        assert_eq!(
            line,
            r#"{"timing":1,"device":"cpu","fast":null,"load_s":0.12,"tuned_lens_s":null,"prompts":[{"index":0,"tokens":9,"forward_s":0.8,"lens_s":0.3},{"index":2,"tokens":5,"forward_s":0.0015,"lens_s":0.000002}],"tokens":14,"forward_s":0.8015,"lens_s":0.300002,"total_s":1.25}"#
        );
    }

    #[test]
    fn text_and_off_modes_keep_nothing_for_the_end() {
        for mode in [Mode::Off, Mode::Text] {
            let mut t = Timing::with_mode(mode);
            t.prompt(0, 9, Duration::from_secs(1), Duration::from_secs(1));
            assert!(t.prompts.is_empty());
        }
    }
}
