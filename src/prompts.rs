//! Where prompts come from: repeated `--prompt`, a text file with one prompt per line, or a
//! JSONL file of `{"prompt": ..., "id": ...}` objects (so prompts may hold newlines).

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// One prompt of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// 0-based position in the run.
    pub index: usize,
    /// The JSONL `id`, when given.
    pub id: Option<String>,
    /// The text.
    pub text: String,
}

impl Prompt {
    /// How messages and file names refer to this prompt: its id, else its index.
    pub fn label(&self) -> String {
        match &self.id {
            Some(id) => format!("prompt {id:?}"),
            None => format!("prompt {}", self.index),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlLine {
    prompt: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// Collects prompts from `--prompt` values and an optional `--prompts` file (`-` = stdin).
pub fn collect(inline: &[String], file: Option<&Path>) -> Result<Vec<Prompt>> {
    let mut texts: Vec<(Option<String>, String)> =
        inline.iter().map(|p| (None, p.clone())).collect();
    if let Some(path) = file {
        let bytes = read_source(path)?;
        let name = path.display().to_string();
        let parsed = match is_jsonl(path) {
            true => parse_jsonl(&bytes, &name)?,
            false => parse_lines(&bytes, &name)?,
        };
        texts.extend(parsed);
    }
    if texts.is_empty() {
        bail!("no prompt given; pass --prompt TEXT or --prompts FILE");
    }
    Ok(texts
        .into_iter()
        .enumerate()
        .map(|(index, (id, text))| Prompt { index, id, text })
        .collect())
}

fn is_jsonl(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"))
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

/// One prompt per line; empty and whitespace-only lines are skipped.
pub fn parse_lines(bytes: &[u8], name: &str) -> Result<Vec<(Option<String>, String)>> {
    let mut out = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = std::str::from_utf8(line).map_err(|_| {
            anyhow!(
                "{name} line {}: not valid UTF-8; save the file as UTF-8",
                n + 1
            )
        })?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !line.trim().is_empty() {
            out.push((None, line.to_string()));
        }
    }
    Ok(out)
}

/// One JSON object per line; blank lines are skipped.
pub fn parse_jsonl(bytes: &[u8], name: &str) -> Result<Vec<(Option<String>, String)>> {
    let mut out = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let at = || format!("{name} line {}", n + 1);
        let line = std::str::from_utf8(line)
            .map_err(|_| anyhow!("{}: not valid UTF-8; save the file as UTF-8", at()))?;
        if line.trim().is_empty() {
            continue;
        }
        let item: JsonlLine = serde_json::from_str(line).map_err(|e| {
            anyhow!("{}: {e}; each line must be an object like {{\"prompt\": \"...\", \"id\": \"...\"}}", at())
        })?;
        let id = item.id.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
        out.push((id, item.prompt));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_blanks_and_name_bad_utf8() {
        let got = parse_lines(b"one\n\n  \r\ntwo\r\n", "p.txt").unwrap();
        assert_eq!(got, vec![(None, "one".into()), (None, "two".into())]);
        let err = parse_lines(b"ok\nbad \xff\n", "p.txt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.txt line 2"), "{err}");
    }

    #[test]
    fn jsonl_keeps_newlines_and_ids() {
        let text = b"{\"prompt\": \"a\\nb\", \"id\": \"x1\"}\n\n{\"prompt\": \"c\", \"id\": 7}\n{\"prompt\": \"d\"}\n";
        let got = parse_jsonl(text, "p.jsonl").unwrap();
        assert_eq!(got[0], (Some("x1".into()), "a\nb".into()));
        assert_eq!(got[1], (Some("7".into()), "c".into()));
        assert_eq!(got[2], (None, "d".into()));
        let err = parse_jsonl(b"{\"prompt\": \"a\"}\n{oops}\n", "p.jsonl")
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.jsonl line 2"), "{err}");
    }
}
