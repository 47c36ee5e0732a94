//! Where prompts come from: repeated `--prompt`, and a `--prompts` file (`-` = stdin) in one
//! of three formats:
//!
//! - `text`: one prompt per line; empty and whitespace-only lines are skipped;
//! - `jsonl`: one `{"prompt": "...", "id": "..."}` object per line (`id` optional), so
//!   prompts may hold newlines;
//! - `json`: one array of such objects.
//!
//! Without `--prompts-format`, the extension decides where it is unambiguous: `.jsonl` and
//! `.ndjson` are JSONL; `.json` is an array when the file starts with `[` and JSONL when it
//! starts with `{`; anything else (`.txt`, no extension, stdin) is text. A file read as
//! text whose non-empty lines are all JSON objects with a `"prompt"` key (or which is one
//! JSON array of them) is refused with a usage error naming `--prompts-format`: running
//! `{"prompt": ...}` lines as prompts is almost never meant, and
//! `--prompts-format text` runs them as they are when it is.
//!
//! A UTF-8 byte-order mark at the start of the file is dropped in every format. A file with
//! no prompt at all is an error that says so.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use crate::error::Error;

/// A prompt as a file gives it: its id, its text and the texts of its tracked targets.
pub(crate) type Parsed = (Option<String>, String, Vec<String>);

/// One prompt of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prompt {
    /// 0-based position in the run.
    pub index: usize,
    /// The JSONL/JSON `id`, when given.
    pub id: Option<String>,
    /// The text.
    pub text: String,
    /// Texts of tokens to track in this prompt (a JSONL/JSON `"target"`), besides the
    /// run's `--target`s.
    pub targets: Vec<String>,
}

impl Prompt {
    /// How messages and file names refer to this prompt: its id, else its index.
    pub(crate) fn label(&self) -> String {
        label(self.index, self.id.as_deref())
    }
}

/// How messages refer to the prompt at `index` with `id`: its id, else its index.
pub(crate) fn label(index: usize, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("prompt {id:?}"),
        None => format!("prompt {index}"),
    }
}

/// How a `--prompts` file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PromptsFormat {
    /// One prompt per line.
    Text,
    /// One JSON object per line.
    Jsonl,
    /// One JSON array of objects.
    Json,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    #[serde(deserialize_with = "some_text")]
    prompt: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
    /// A string or a list of strings.
    #[serde(default)]
    target: Option<serde_json::Value>,
}

/// What an item whose prompt has no text says (serde_json adds where it is).
const NO_TEXT: &str = "the prompt is empty";

/// A `"prompt"` with text in it: an empty or blank one is refused where the file holds it.
fn some_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim().is_empty() {
        true => Err(serde::de::Error::custom(NO_TEXT)),
        false => Ok(text),
    }
}

/// The message for an item of `name` at `line` whose prompt has no text, if `e` says so.
fn no_text(e: &serde_json::Error, name: &str, line: usize) -> Option<anyhow::Error> {
    (without_position(e) == NO_TEXT).then(|| {
        anyhow!("{name} line {line}: {NO_TEXT}; give it some text, or remove it from the file")
    })
}

impl Item {
    fn into_parsed(self) -> Result<Parsed> {
        let id = self.id.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
        let bad = |v: &serde_json::Value| {
            anyhow!("\"target\" must be a string or a list of strings, not {v}")
        };
        let targets = match self.target {
            None => Vec::new(),
            Some(serde_json::Value::String(s)) => vec![s],
            Some(serde_json::Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s),
                    other => Err(bad(&other)),
                })
                .collect::<Result<_>>()?,
            Some(other) => return Err(bad(&other)),
        };
        Ok((id, self.prompt, targets))
    }
}

/// Collects prompts from `--prompt` values and an optional `--prompts` file (`-` = stdin),
/// the file's format given (`None`: inferred, see the module docs). `--prompt` values come
/// first, then the file's prompts, numbered in that order.
pub(crate) fn collect_as(
    inline: &[String],
    file: Option<&Path>,
    format: Option<PromptsFormat>,
) -> Result<Vec<Prompt>> {
    let mut texts: Vec<Parsed> = inline
        .iter()
        .map(|p| (None, p.clone(), Vec::new()))
        .collect();
    if let Some(path) = file {
        let bytes = read_source(path)?;
        let name = match path == Path::new("-") {
            true => "stdin".to_string(),
            false => path.display().to_string(),
        };
        texts.extend(parse(&bytes, &name, path, format)?);
    }
    if texts.is_empty() {
        return Err(Error::NoPrompt.into());
    }
    Ok(texts
        .into_iter()
        .enumerate()
        .map(|(index, (id, text, targets))| Prompt {
            index,
            id,
            text,
            targets,
        })
        .collect())
}

/// Parses a prompts file's bytes; `path` only serves to infer the format.
pub(crate) fn parse(
    bytes: &[u8],
    name: &str,
    path: &Path,
    format: Option<PromptsFormat>,
) -> Result<Vec<Parsed>> {
    let bytes = strip_bom(bytes);
    let chosen = format.unwrap_or_else(|| infer(path, bytes));
    let prompts = match chosen {
        PromptsFormat::Text => {
            if format.is_none() {
                refuse_json_as_text(bytes, name)?;
            }
            parse_lines(bytes, name)?
        }
        PromptsFormat::Jsonl => parse_jsonl(bytes, name)?,
        PromptsFormat::Json => parse_json(bytes, name)?,
    };
    if prompts.is_empty() {
        let what = match chosen {
            PromptsFormat::Text => "no non-blank line",
            PromptsFormat::Jsonl => "no JSON line",
            PromptsFormat::Json => "an empty array",
        };
        bail!("no prompts: {name} is empty ({what}); add prompts to it, or check the path");
    }
    Ok(prompts)
}

/// The format a file's extension (and, for `.json`, its first character) implies.
pub(crate) fn infer(path: &Path, bytes: &[u8]) -> PromptsFormat {
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
    match ext.as_deref() {
        Some("jsonl" | "ndjson") => PromptsFormat::Jsonl,
        Some("json") => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => PromptsFormat::Jsonl,
            _ => PromptsFormat::Json,
        },
        _ => PromptsFormat::Text,
    }
}

/// Drops a leading UTF-8 byte-order mark.
pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Refuses a file read as text (by inference) that is really JSONL or a JSON array of
/// prompt objects.
fn refuse_json_as_text(bytes: &[u8], name: &str) -> Result<()> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(());
    };
    let is_item = |v: &serde_json::Value| v.get("prompt").is_some_and(|p| p.is_string());
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let all_objects = !lines.is_empty()
        && lines.iter().all(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object() && is_item(&v))
        });
    if all_objects {
        return Err(Error::JsonReadAsText {
            problem: format!("{name} is read as plain text (one prompt per line), but every line is a JSON object with a \"prompt\" key"),
            format: "jsonl",
            label: "JSONL",
            them: "them",
        }
        .into());
    }
    let array = serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| {
        v.as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(is_item))
    });
    if array {
        return Err(Error::JsonReadAsText {
            problem: format!("{name} is read as plain text (one prompt per line), but it is a JSON array of prompt objects"),
            format: "json",
            label: "JSON",
            them: "it",
        }
        .into());
    }
    Ok(())
}

fn read_source(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read prompts from stdin")?;
    } else {
        bytes = std::fs::read(path).map_err(|e| {
            anyhow!(
                "cannot read prompts file {}: {e}; check the path",
                path.display()
            )
        })?;
    }
    Ok(bytes)
}

/// The file's lines with their 1-based numbers, each checked to be UTF-8.
fn lines<'a>(bytes: &'a [u8], name: &'a str) -> impl Iterator<Item = Result<(usize, &'a str)>> {
    strip_bom(bytes)
        .split(|&b| b == b'\n')
        .enumerate()
        .map(move |(n, line)| {
            std::str::from_utf8(line).map(|l| (n + 1, l)).map_err(|_| {
                anyhow!(
                    "{name} line {}: not valid UTF-8; save the file as UTF-8",
                    n + 1
                )
            })
        })
}

/// One prompt per line; empty and whitespace-only lines are skipped.
pub(crate) fn parse_lines(bytes: &[u8], name: &str) -> Result<Vec<Parsed>> {
    let mut out = Vec::new();
    for line in lines(bytes, name) {
        let (_, line) = line?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !line.trim().is_empty() {
            out.push((None, line.to_string(), Vec::new()));
        }
    }
    Ok(out)
}

/// One JSON object per line; blank lines are skipped.
pub(crate) fn parse_jsonl(bytes: &[u8], name: &str) -> Result<Vec<Parsed>> {
    let mut out = Vec::new();
    for line in lines(bytes, name) {
        let (n, line) = line?;
        if line.trim().is_empty() {
            continue;
        }
        let item: Item = serde_json::from_str(line).map_err(|e| {
            if let Some(empty) = no_text(&e, name, n) {
                return empty;
            }
            anyhow!(
                "{name} line {n}, column {}: {}; each line must be an object like {{\"prompt\": \"...\", \"id\": \"...\"}}",
                e.column(),
                without_position(&e)
            )
        })?;
        out.push(
            item.into_parsed()
                .map_err(|e| anyhow!("{name} line {n}: {e}"))?,
        );
    }
    Ok(out)
}

/// One JSON array of `{"prompt": ..., "id": ...}` objects.
pub(crate) fn parse_json(bytes: &[u8], name: &str) -> Result<Vec<Parsed>> {
    let text = std::str::from_utf8(strip_bom(bytes))
        .map_err(|_| anyhow!("{name}: not valid UTF-8; save the file as UTF-8"))?;
    let items: Vec<Item> = serde_json::from_str(text).map_err(|e| {
        if let Some(empty) = no_text(&e, name, e.line()) {
            return empty;
        }
        Error::NotAJsonArray {
            problem: format!(
                "{name} line {}, column {}: {}; the file must be one JSON array of objects like [{{\"prompt\": \"...\", \"id\": \"...\"}}]",
                e.line(),
                e.column(),
                without_position(&e)
            ),
        }
        .into()
    })?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            item.into_parsed()
                .map_err(|e| anyhow!("{name} item {}: {e}", i + 1))
        })
        .collect()
}

/// serde_json's message without its own " at line L column C", which counts lines of the
/// parsed string, not of the file.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(Option<&str>, &str)]) -> Vec<Parsed> {
        items
            .iter()
            .map(|(id, p)| (id.map(String::from), p.to_string(), Vec::new()))
            .collect()
    }

    #[test]
    fn lines_skip_blanks_and_name_bad_utf8() {
        let got = parse_lines(b"one\n\n  \r\ntwo\r\n", "p.txt").unwrap();
        assert_eq!(got, pairs(&[(None, "one"), (None, "two")]));
        let err = parse_lines(b"ok\nbad \xff\n", "p.txt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.txt line 2"), "{err}");
    }

    #[test]
    fn jsonl_keeps_newlines_and_ids() {
        let text = b"{\"prompt\": \"a\\nb\", \"id\": \"x1\"}\n\n{\"prompt\": \"c\", \"id\": 7}\n{\"prompt\": \"d\"}\n";
        let got = parse_jsonl(text, "p.jsonl").unwrap();
        assert_eq!(
            got,
            pairs(&[(Some("x1"), "a\nb"), (Some("7"), "c"), (None, "d")])
        );
        let err = parse_jsonl(b"{\"prompt\": \"a\"}\n{oops}\n", "p.jsonl")
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.jsonl line 2"), "{err}");
    }

    #[test]
    fn targets_are_a_string_or_a_list_of_strings() {
        let text = b"{\"prompt\": \"a\", \"target\": \" Paris\"}\n{\"prompt\": \"b\", \"target\": [\"x\", \"y\"]}\n{\"prompt\": \"c\"}\n";
        let got = parse_jsonl(text, "p.jsonl").unwrap();
        let targets: Vec<&[String]> = got.iter().map(|p| p.2.as_slice()).collect();
        assert_eq!(
            targets,
            [&[" Paris".to_string()][..], &["x".into(), "y".into()], &[]]
        );
        for bad in ["5", "[\"x\", 2]", "{\"a\": 1}", "true"] {
            let line = format!("{{\"prompt\": \"a\"}}\n{{\"prompt\": \"b\", \"target\": {bad}}}\n");
            let err = parse_jsonl(line.as_bytes(), "p.jsonl")
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("p.jsonl line 2: \"target\" must be a string or a list of strings"),
                "{err}"
            );
        }
        let err = parse_json(b"[{\"prompt\": \"a\", \"target\": 1}]", "p.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.json item 1: \"target\" must be"),
            "{err}"
        );
    }

    #[test]
    fn jsonl_error_quotes_one_line_number() {
        let err = parse_jsonl(b"{\"prompt\": \"a\"}\n\n{\"prompt\": oops}\n", "p.jsonl")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.jsonl line 3, column 12: "), "{err}");
        assert!(
            !err.contains("line 1"),
            "serde's own line count is gone: {err}"
        );
        assert_eq!(
            err.matches("line").count(),
            2,
            "the hint says 'each line': {err}"
        );
    }

    #[test]
    fn json_array_with_ids_and_errors_at_file_positions() {
        let got = parse_json(
            b"[\n  {\"prompt\": \"a\\nb\", \"id\": \"x\"},\n  {\"prompt\": \"c\"}\n]\n",
            "p.json",
        )
        .unwrap();
        assert_eq!(got, pairs(&[(Some("x"), "a\nb"), (None, "c")]));
        let err = parse_json(
            b"[\n  {\"prompt\": \"a\"},\n  {\"text\": \"b\"}\n]",
            "p.json",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("p.json line 3, column "), "{err}");
        assert!(err.contains("unknown field `text`"), "{err}");
    }

    #[test]
    fn extension_decides_where_unambiguous() {
        let p = Path::new;
        assert_eq!(infer(p("a.jsonl"), b""), PromptsFormat::Jsonl);
        assert_eq!(infer(p("a.NDJSON"), b""), PromptsFormat::Jsonl);
        assert_eq!(infer(p("a.json"), b"  [{}]"), PromptsFormat::Json);
        assert_eq!(
            infer(p("a.json"), b"\n{\"prompt\": 1}"),
            PromptsFormat::Jsonl
        );
        assert_eq!(
            infer(p("a.txt"), b"{\"prompt\": \"x\"}"),
            PromptsFormat::Text
        );
        assert_eq!(infer(p("-"), b"[]"), PromptsFormat::Text);
    }

    #[test]
    fn jsonl_saved_as_json_is_read_as_jsonl() {
        let got = parse(
            b"{\"prompt\": \"a\", \"id\": \"x\"}\n{\"prompt\": \"b\"}\n",
            "p.json",
            Path::new("p.json"),
            None,
        )
        .unwrap();
        assert_eq!(got, pairs(&[(Some("x"), "a"), (None, "b")]));
    }

    #[test]
    fn json_lines_read_as_text_are_refused_unless_text_is_asked_for() {
        let jsonl = b"{\"prompt\": \"a\", \"id\": \"x\"}\n\n{\"prompt\": \"b\"}\n";
        for path in ["p.txt", "-", "prompts"] {
            let err = parse(jsonl, path, Path::new(path), None).unwrap_err();
            let typed = err.downcast_ref::<Error>();
            assert!(
                matches!(
                    typed,
                    Some(Error::JsonReadAsText {
                        format: "jsonl",
                        ..
                    })
                ),
                "{err}"
            );
            assert!(
                err.to_string()
                    .ends_with("; read them as JSONL, or as text to run the lines as they are"),
                "{err}"
            );
        }
        let err = parse(b"[{\"prompt\": \"a\"}]", "p.txt", Path::new("p.txt"), None).unwrap_err();
        assert!(err.to_string().contains("; read it as JSON,"), "{err}");
        let raw = parse(jsonl, "-", Path::new("-"), Some(PromptsFormat::Text)).unwrap();
        assert_eq!(raw[0].1, "{\"prompt\": \"a\", \"id\": \"x\"}");
        let read = parse(jsonl, "-", Path::new("-"), Some(PromptsFormat::Jsonl)).unwrap();
        assert_eq!(read, pairs(&[(Some("x"), "a"), (None, "b")]));
        // Some JSON among plain lines is text.
        let mixed = parse(
            b"{\"prompt\": \"a\"}\nplain words\n",
            "p.txt",
            Path::new("p.txt"),
            None,
        )
        .unwrap();
        assert_eq!(mixed.len(), 2);
        // Objects without a "prompt" key are not prompt files.
        let other = parse(b"{\"a\": 1}\n", "p.txt", Path::new("p.txt"), None).unwrap();
        assert_eq!(other[0].1, "{\"a\": 1}");
    }

    #[test]
    fn byte_order_mark_is_dropped_in_every_format() {
        let with_bom = |s: &str| [b"\xEF\xBB\xBF".as_slice(), s.as_bytes()].concat();
        let cases = [
            (with_bom("first\nsecond\n"), "p.txt"),
            (
                with_bom("{\"prompt\": \"first\"}\n{\"prompt\": \"second\"}\n"),
                "p.jsonl",
            ),
            (
                with_bom("[{\"prompt\": \"first\"}, {\"prompt\": \"second\"}]"),
                "p.json",
            ),
        ];
        for (bytes, name) in cases {
            let got = parse(&bytes, name, Path::new(name), None).unwrap();
            assert_eq!(got, pairs(&[(None, "first"), (None, "second")]), "{name}");
        }
        assert_eq!(parse_lines(&with_bom("x"), "p").unwrap()[0].1, "x");
    }

    #[test]
    fn an_empty_prompt_is_named_by_file_and_line() {
        let jsonl = b"{\"prompt\": \"a\"}\n\n{\"id\": \"b\", \"prompt\": \"  \"}\n";
        let err = parse_jsonl(jsonl, "p.jsonl").unwrap_err().to_string();
        assert_eq!(
            err,
            "p.jsonl line 3: the prompt is empty; give it some text, or remove it from the file"
        );
        let json = b"[\n  {\"prompt\": \"a\"},\n  {\"prompt\": \"\"}\n]";
        let err = parse_json(json, "p.json").unwrap_err().to_string();
        assert_eq!(
            err,
            "p.json line 3: the prompt is empty; give it some text, or remove it from the file"
        );
    }

    #[test]
    fn an_empty_file_says_so() {
        for (bytes, name) in [
            (b"".as_slice(), "p.txt"),
            (b"\n  \n\t\r\n", "p.txt"),
            (b"\xEF\xBB\xBF\n", "p.jsonl"),
            (b"[]", "p.json"),
        ] {
            let err = parse(bytes, name, Path::new(name), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{name} is empty")), "{err}");
        }
        let err = collect_as(&["a".into()], None, None)
            .map(|p| p.len())
            .unwrap();
        assert_eq!(err, 1);
    }
}
