//! Error text: how a message is put on the one line that stderr reports get, and the
//! library's typed errors about a caller's choices, worded neutrally here and with flags by
//! the CLI. Below every other module, so the library and the CLI word errors the same way.

/// Collapses a multi-line message onto one line, for single-line stderr reports, and drops
/// the backtraces that some errors carry in their text (candle's, when `RUST_BACKTRACE` is
/// set): its frame lines (`  12: symbol`) and location lines (`  at src/x.rs:3:5`) go, text
/// around them stays.
pub fn one_line(s: &str) -> String {
    s.lines()
        .enumerate()
        .filter(|&(n, line)| n == 0 || !is_backtrace_line(line))
        .flat_map(|(_, line)| line.split_whitespace())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line of a printed backtrace: an indented frame (`   3: name`), an indented location
/// (`at file:line:column`) or a backtrace header.
fn is_backtrace_line(line: &str) -> bool {
    let trimmed = line.trim_start();
    let indented = trimmed.len() < line.len();
    let frame = trimmed
        .split_once(':')
        .is_some_and(|(index, _)| is_number(index));
    let location = trimmed.strip_prefix("at ").is_some_and(|place| {
        let mut parts = place.trim_end().rsplitn(3, ':');
        parts.next().is_some_and(is_number) && parts.next().is_some_and(is_number)
    });
    (indented && (frame || location)) || trimmed.eq_ignore_ascii_case("stack backtrace:")
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A library error about one of the choices a caller made (the device, the model, the
/// tokenizer, the tuned lens, the prompts, the sublayer sites): the facts, worded neutrally
/// by `Display`. A front end words it for its own options (the CLI names its flags), so the
/// library never names a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A device that this build or this machine cannot open, and why.
    Device { device: String, reason: String },
    /// A GGUF file whose tokenizer logitlens cannot rebuild: `problem` says why; the way
    /// out is the model's own tokenizer.json.
    GgufTokenizer { problem: String },
    /// A model path that is no model (`problem`: "is a file but not a model", "does not
    /// exist"); a model is one of [`MODEL_KINDS`].
    NotAModel {
        model: String,
        problem: &'static str,
    },
    /// A directory with no config.json and several GGUF files, by name.
    SeveralGguf { dir: String, names: Vec<String> },
    /// A tuned lens path that is not a directory; `layout` says what one holds.
    TunedLensNotDir { dir: String, layout: &'static str },
    /// A published tuned lens that is not in the cache while the Hub is offline.
    TunedLensNotCached { problem: String },
    /// A published tuned lens that cannot be fetched (often: none is published).
    TunedLensNotFetched { problem: String },
    /// No prompt at all.
    NoPrompt,
    /// An empty prompt (`empty`) or one that encodes to no tokens.
    EmptyPrompt { empty: bool },
    /// A prompts file read as plain text that holds JSON prompts: `format` ("jsonl",
    /// "json") is how to read it, `label` ("JSONL", "JSON") its name, `them` the pronoun.
    JsonReadAsText {
        problem: String,
        format: &'static str,
        label: &'static str,
        them: &'static str,
    },
    /// A prompts file read as one JSON array that is not one.
    NotAJsonArray { problem: String },
    /// The sublayer sites asked of a tuned lens, which has no resid_mid translator.
    SublayersTuned,
    /// Prompts packed into one forward pass that differ in sublayer sites.
    SublayersDisagree,
    /// A target text that encodes to no tokens.
    EmptyTarget { text: String },
    /// A BOS token asked of a model that has none; `problem` says where it looked.
    NoBos { problem: &'static str },
    /// A summary file named with an extension other than .json or .csv.
    SummaryFormat { path: String },
    /// A summary file that cannot be created: `problem` says why.
    SummaryPath { problem: String },
    /// A colour range for the rank metric that starts below rank 1.
    RankRange,
    /// The target metric asked of a report that tracks no target.
    NoTargetToColour,
    /// A window of positions (`window`, as `A..B`) outside a prompt of `len` tokens.
    PositionsOutside { window: String, len: usize },
    /// A range of positions (`text`, as given) that is empty or reversed; `how` says how
    /// to write one.
    PositionsEmpty { text: String, how: &'static str },
    /// Positions `requested` (first and last) too many for one image, of which the last
    /// `shown_len` (first and last: `shown`) are drawn. A warning, not a failure.
    PositionsDoNotFit {
        requested: (usize, usize),
        shown: (usize, usize),
        shown_len: usize,
    },
    /// A prompt's first value that is not finite (NaN or ±∞): in the row of `layer` at
    /// `site` ("embed", "resid_mid", "resid_post"), at `position`, whose input token reads
    /// `token`. `half` is the compute dtype when it is f16 or bf16 (whose overflow is then
    /// the likely cause).
    NonFinite {
        layer: usize,
        site: &'static str,
        position: usize,
        token: String,
        half: Option<String>,
    },
}

/// What a model path may be, for messages.
pub const MODEL_KINDS: &str = "a Hub repo id (e.g. microsoft/phi-1_5), a model directory (config.json, tokenizer.json, *.safetensors) or a .gguf file";

/// The pieces of an [`Error`]'s text that name a choice: the CLI fills them with its flags,
/// `Display` with neutral words.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    /// What names the device, before its name.
    pub device: &'static str,
    /// How to give a tokenizer.json instead of the GGUF's.
    pub tokenizer: &'static str,
    /// What introduces the kinds of model path ([`MODEL_KINDS`]).
    pub model: &'static str,
    /// How to pick one of several GGUF files.
    pub one_gguf: &'static str,
    /// What names a tuned lens path, before it.
    pub tuned_lens: &'static str,
    /// After a tuned lens path that is no directory: the other way (with its own lead).
    pub tuned_lens_hub: &'static str,
    /// How to use a local tuned lens directory.
    pub tuned_lens_dir: &'static str,
    /// The whole no-prompt message.
    pub no_prompt: &'static str,
    /// After an empty prompt: how to give text (with its own lead).
    pub prompt_text: &'static str,
    /// How to read a prompts file as `format` (named `label`; `them`: the file's pronoun).
    pub read_as: fn(format: &str, label: &str, them: &str) -> String,
    /// How to read a prompts file as JSONL.
    pub jsonl: &'static str,
    /// The whole message for sublayer sites asked of a tuned lens.
    pub sublayers_tuned: &'static str,
    /// What names the sublayer sites.
    pub sublayers: &'static str,
    /// What names a target text, before it.
    pub target: &'static str,
    /// After a target of no tokens: what to give instead (with its own lead).
    pub target_hint: &'static str,
    /// How to run without a BOS token.
    pub bos: &'static str,
    /// What names the summary file.
    pub summary: &'static str,
    /// What names the rank metric.
    pub metric_rank: &'static str,
    /// What names the target metric.
    pub metric_target: &'static str,
    /// How to track a target.
    pub add_target: &'static str,
    /// What names a window of positions.
    pub positions: &'static str,
    /// How to pick another window of positions.
    pub other_window: &'static str,
    /// What names the compute dtype, before a dtype.
    pub dtype: &'static str,
    /// How to keep non-finite cells (written as null) rather than fail the prompt.
    pub allow_nonfinite: &'static str,
}

/// The library's own words: no flag named.
pub const NEUTRAL: Words = Words {
    device: "device",
    tokenizer: "load the model's tokenizer.json instead",
    model: "a model is",
    one_gguf: "load one of them by its path",
    tuned_lens: "tuned lens",
    tuned_lens_hub: "",
    tuned_lens_dir: "load a lens directory",
    no_prompt: "no prompt given",
    prompt_text: "",
    read_as: |_, label, them| {
        format!("read {them} as {label}, or as text to run the lines as they are")
    },
    jsonl: "read it as JSONL",
    sublayers_tuned: "the resid_mid site needs a translator, and a tuned lens has none",
    sublayers: "the sublayer sites",
    target: "target",
    target_hint: "",
    bos: "run without a BOS token",
    summary: "summary",
    metric_rank: "the rank metric",
    metric_target: "the target metric",
    add_target: "track a target token",
    positions: "positions",
    other_window: "pick a narrower window of positions",
    dtype: "the compute dtype",
    allow_nonfinite: "allow non-finite values to keep the prompt with such cells null",
};

impl Error {
    /// This error's text with `words` for the choices it names.
    pub fn worded(&self, w: &Words) -> String {
        match self {
            Error::Device { device, reason } => format!("{} {device}: {reason}", w.device),
            Error::GgufTokenizer { problem } => format!("{problem}; {}", w.tokenizer),
            Error::NotAModel { model, problem } => {
                format!("{model} {problem}; {} {MODEL_KINDS}", w.model)
            }
            Error::SeveralGguf { dir, names } => format!(
                "{dir} has no config.json and several .gguf files ({}); {}",
                names.join(", "),
                w.one_gguf
            ),
            Error::TunedLensNotDir { dir, layout } => {
                format!(
                    "{} {dir} is not a directory; {layout}{}",
                    w.tuned_lens, w.tuned_lens_hub
                )
            }
            Error::TunedLensNotCached { problem } => format!(
                "{problem}; fetch it once with network access, or {}",
                w.tuned_lens_dir
            ),
            Error::TunedLensNotFetched { problem } => format!(
                "{problem}: train one with the tuned-lens package and {}",
                w.tuned_lens_dir
            ),
            Error::NoPrompt => w.no_prompt.to_string(),
            Error::EmptyPrompt { empty } => {
                let what = match empty {
                    true => "the prompt is empty",
                    false => "the prompt encodes to no tokens",
                };
                format!("{what}{}", w.prompt_text)
            }
            Error::JsonReadAsText {
                problem,
                format,
                label,
                them,
            } => format!("{problem}; {}", (w.read_as)(format, label, them)),
            Error::NotAJsonArray { problem } => {
                format!("{problem} (for one object per line {})", w.jsonl)
            }
            Error::SublayersTuned => w.sublayers_tuned.to_string(),
            Error::SublayersDisagree => format!(
                "prompts packed into one forward pass must agree on {}",
                w.sublayers
            ),
            Error::EmptyTarget { text } => {
                format!(
                    "{} {text:?} encodes to no tokens{}",
                    w.target, w.target_hint
                )
            }
            Error::NoBos { problem } => format!("{problem}; {}", w.bos),
            Error::SummaryFormat { path } => format!(
                "{} {path}: the summary is written as .json or .csv; name the file so",
                w.summary
            ),
            Error::SummaryPath { problem } => format!("{}: {problem}", w.summary),
            Error::RankRange => format!(
                "{} takes a range of ranks from 1 up (a log scale), e.g. 1..1000",
                w.metric_rank
            ),
            Error::NoTargetToColour => format!(
                "{} colours by the first target's probability, and there is no target; {}",
                w.metric_target, w.add_target
            ),
            Error::PositionsOutside { window, len } => format!(
                "{} {window} is outside the prompt's {len} tokens (positions 0..{len}); \
                 give a range within them",
                w.positions
            ),
            Error::PositionsEmpty { text, how } => {
                format!("{} {text} is empty or reversed; {how}", w.positions)
            }
            Error::PositionsDoNotFit {
                requested: (a, b),
                shown: (c, d),
                shown_len,
            } => format!(
                "positions {a}–{b} do not fit in one image; the heatmap shows the last \
                 {shown_len} ({c}–{d}); {} for another window",
                w.other_window
            ),
            Error::NonFinite {
                layer,
                site,
                position,
                token,
                half,
            } => {
                let row = match (*layer, *site) {
                    (0, _) => "layer 0 (the embeddings)".to_string(),
                    (l, "resid_mid") => format!("layer {l} (resid_mid)"),
                    (l, _) => format!("layer {l}"),
                };
                let cause = match (half, layer) {
                    (Some(half), _) => format!(
                        "likely an overflow of {half} under {} {half}; try {} f32",
                        w.dtype, w.dtype
                    ),
                    (None, 0) => "likely NaN or inf in the model's embedding weights".to_string(),
                    (None, l) => format!(
                        "likely NaN or inf in the weights of block {l}, or a config value \
                         that breaks the forward pass (rope_theta, a norm epsilon)"
                    ),
                };
                format!(
                    "non-finite values (NaN or inf) at {row}, position {position} ({token:?}): \
                     {cause}; or {}",
                    w.allow_nonfinite
                )
            }
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.worded(&NEUTRAL))
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_drops_backtraces() {
        let bt = std::backtrace::Backtrace::force_capture().to_string();
        assert!(bt.lines().count() > 2, "{bt}");
        let candle = candle_core::Error::WithBacktrace {
            inner: Box::new(candle_core::Error::Msg("unexpected end of file".into())),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let rendered = candle.to_string();
        assert!(
            rendered.len() > 200,
            "candle prints the backtrace: {rendered}"
        );
        let chained = anyhow::Error::from(candle).context("cannot read model.gguf");
        assert_eq!(
            one_line(&format!("{chained:#}")),
            "cannot read model.gguf: unexpected end of file"
        );
        let embedded = format!("cannot load x: {rendered}\n; check the file");
        assert_eq!(
            one_line(&embedded),
            "cannot load x: unexpected end of file ; check the file"
        );
        assert_eq!(one_line("a\n  b\tc  "), "a b c");
        assert_eq!(one_line("3: first line stays"), "3: first line stays");
    }
}
