//! `--output FILE` and `--resume`: the stdout format written to a file as the run goes, and a
//! JSONL file an interrupted run left taken up where it stopped.
//!
//! A JSONL file holds one whole line per report, each appended in one write (an interrupt
//! waits for it: [`crate::atomic::Appender`]); only SIGKILL or a full disk can leave a torn
//! last line. `--resume` trusts a line when it ends in a newline, reads as a report and
//! belongs to one of the run's prompts (by id, else index, with the same text); it drops a
//! torn last line and the lines of a prompt whose reports are not all there (the last one,
//! under `--compare-lenses`), skips the prompts the file holds, and appends the others.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};

use super::usage;
use crate::atomic::{self, Appender};
use crate::output::jsonl::Finished;
use crate::prompts::{label, Prompt};

/// Where `--output` writes, and what an earlier run left there (`--resume`).
#[derive(Debug)]
pub(crate) struct OutputFile {
    pub path: PathBuf,
    /// The prompts already in the file: `None` for a new file.
    pub resumed: Option<Resumed>,
    /// Whether the file is JSONL (which `--resume` can go on with).
    jsonl: bool,
}

/// What a `--resume`d file holds.
#[derive(Debug, Default)]
pub(crate) struct Resumed {
    /// How many of the file's bytes hold whole reports; the rest is dropped.
    pub keep: u64,
    /// Whether bytes are dropped.
    pub dropped: bool,
    /// Whether each prompt of the run is in the file already.
    pub done: Vec<bool>,
    /// The reports the file holds, in order (for the summaries).
    pub finished: Vec<Finished>,
}

impl OutputFile {
    /// Checks `--output FILE` and `--resume` against each other and the format: a new
    /// FILE must not exist yet; `--resume` reads what FILE holds (`lenses` reports per
    /// prompt). Usage errors but for a file that cannot be read as an earlier run's output.
    pub(crate) fn check(
        path: Option<&Path>,
        resume: bool,
        jsonl: bool,
        prompts: &[Prompt],
        lenses: usize,
    ) -> Result<Option<Self>> {
        let Some(path) = path else {
            if resume {
                return Err(usage(
                    "--resume goes on with an --output FILE that an interrupted run left; add --output FILE",
                ));
            }
            return Ok(None);
        };
        atomic::check_can_create(path).map_err(|e| usage(format!("--output: {e}")))?;
        let shown = path.display();
        if resume && !jsonl {
            return Err(usage(format!(
                "--resume reads the finished prompts of a JSONL file, one line each; add -f jsonl (and give --output {shown} a JSONL run's file)"
            )));
        }
        let exists = path.exists();
        if exists && !resume {
            return Err(usage(format!(
                "--output {shown} exists; add --resume to go on with it (-f jsonl), or remove it, or choose another file"
            )));
        }
        let resumed = match resume && exists {
            true => Some(scan(path, prompts, lenses)?),
            false => resume.then(|| Resumed {
                done: vec![false; prompts.len()],
                ..Resumed::default()
            }),
        };
        Ok(Some(Self {
            path: path.to_path_buf(),
            resumed,
            jsonl,
        }))
    }

    /// Opens the file for the run: a new one (refused if it appeared meanwhile), or the
    /// resumed one cut to its whole reports, to append to.
    pub(crate) fn open(&self) -> Result<Appender> {
        let shown = self.path.display();
        let cannot = |e: std::io::Error| anyhow!("cannot write --output {shown}: {e}");
        let file = match &self.resumed {
            None => OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.path)
                .map_err(cannot)?,
            Some(resumed) => {
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&self.path)
                    .map_err(cannot)?;
                file.set_len(resumed.keep).map_err(cannot)?;
                file
            }
        };
        let note = match self.jsonl {
            true => format!(
                "; {shown} keeps every prompt finished: run again with --resume to add the rest"
            ),
            false => format!("; {shown} holds the prompts finished so far"),
        };
        atomic::on_interrupt_keep(note);
        Ok(Appender::new(file))
    }
}

/// Reads what an earlier run left in `path` (see the module docs).
fn scan(path: &Path, prompts: &[Prompt], lenses: usize) -> Result<Resumed> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read --output {shown}: {e}"))?;
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let text = std::str::from_utf8(&bytes[..whole])
        .map_err(|_| anyhow!("--output {shown} is not UTF-8, so not a JSONL output of logitlens; give another --output, or remove it"))?;
    let by_id: HashMap<&str, usize> = prompts
        .iter()
        .filter_map(|p| Some((p.id.as_deref()?, p.index)))
        .collect();
    let mut resumed = Resumed {
        keep: whole as u64,
        dropped: whole < bytes.len(),
        done: vec![false; prompts.len()],
        finished: Vec::new(),
    };
    // Per report: its prompt and where its line starts.
    let mut lines: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let at = start;
        start += line.len();
        let not_ours = |what: &str| {
            anyhow!("--output {shown} line {}: {what}; resume with the prompts that made it, or give another --output", n + 1)
        };
        let Some(finished) = Finished::parse(line.trim_end_matches('\n')) else {
            return Err(not_ours("not a report of logitlens's JSONL output"));
        };
        let index = match &finished.prompt_id {
            Some(id) => by_id.get(id.as_str()).copied(),
            None => prompts
                .get(finished.prompt_index)
                .filter(|p| p.id.is_none())
                .map(|p| p.index),
        };
        let name = label(finished.prompt_index, finished.prompt_id.as_deref());
        let Some(index) = index else {
            return Err(not_ours(&format!(
                "{name} is not one of this run's prompts"
            )));
        };
        if prompts[index].text != finished.prompt {
            return Err(not_ours(&format!("{name} has other text than this run's")));
        }
        lines.push((index, at));
        resumed.finished.push(finished);
    }
    // Reports per prompt; only the last prompt may lack some (an interrupt between them).
    let mut count = vec![0usize; prompts.len()];
    for &(index, _) in &lines {
        count[index] += 1;
    }
    if let Some(&(last, _)) = lines.last() {
        if count[last] < lenses {
            let first = lines.iter().position(|&(i, _)| i == last).expect("present");
            resumed.keep = lines[first].1 as u64;
            resumed.dropped = true;
            lines.truncate(first);
            resumed.finished.truncate(first);
            count[last] = 0;
        }
    }
    for (index, &n) in count.iter().enumerate() {
        if n != 0 && n != lenses {
            return Err(anyhow!(
                "--output {shown} holds {} {n} times, not {lenses}; give another --output, or remove it",
                prompts[index].label()
            ));
        }
        resumed.done[index] = n == lenses;
    }
    Ok(resumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(texts: &[(&str, Option<&str>)]) -> Vec<Prompt> {
        texts
            .iter()
            .enumerate()
            .map(|(index, (text, id))| Prompt {
                index,
                id: id.map(String::from),
                text: text.to_string(),
                targets: Vec::new(),
            })
            .collect()
    }

    /// A JSONL report line as logitlens writes it (the fields `--resume` reads).
    fn line(index: usize, id: Option<&str>, text: &str, lens: &str) -> String {
        let report = serde_json::json!({
            "model": "m", "prompt": text, "prompt_index": index, "prompt_id": id,
            "final_norm": true, "lens": lens, "tokens": [{"id": 1}],
            "layers": [{"layer": 0, "site": "embed", "positions": [
                {"id": 3, "prob": 0.5, "entropy": 1.0, "kl": 0.1, "next_logprob": null,
                 "next_rank": null, "targets": []}]}],
        });
        format!("{report}\n")
    }

    fn scanned(file: &str, run: &[Prompt], lenses: usize) -> Result<Resumed> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, file).unwrap();
        scan(&path, run, lenses)
    }

    #[test]
    fn whole_lines_count_and_a_torn_last_line_is_dropped() {
        let run = prompts(&[("a", Some("x")), ("b", Some("y")), ("c", Some("z"))]);
        let whole = line(0, Some("x"), "a", "logit") + &line(1, Some("y"), "b", "logit");
        let torn = line(2, Some("z"), "c", "logit");
        let file = whole.clone() + &torn[..torn.len() / 2];
        let r = scanned(&file, &run, 1).unwrap();
        assert_eq!(r.keep, whole.len() as u64);
        assert!(r.dropped);
        assert_eq!(r.done, [true, true, false]);
        assert_eq!(r.finished.len(), 2);
        // The same line whole: all three done, nothing dropped.
        let r = scanned(&(whole + &torn), &run, 1).unwrap();
        assert_eq!((r.done, r.dropped), (vec![true; 3], false));
    }

    #[test]
    fn prompts_without_ids_go_by_index_and_a_half_compared_prompt_is_dropped() {
        let run = prompts(&[("a", None), ("b", None)]);
        let first = line(0, None, "a", "logit") + &line(0, None, "a", "tuned");
        let file = first.clone() + &line(1, None, "b", "logit");
        let r = scanned(&file, &run, 2).unwrap();
        assert_eq!(r.keep, first.len() as u64);
        assert_eq!(r.done, [true, false]);
        assert_eq!(r.finished.len(), 2);
    }

    #[test]
    fn lines_of_other_prompts_are_refused() {
        let run = prompts(&[("a", Some("x"))]);
        let other = scanned(&line(0, Some("w"), "a", "logit"), &run, 1).unwrap_err();
        assert!(
            other
                .to_string()
                .contains("line 1: prompt \"w\" is not one of this run's prompts"),
            "{other}"
        );
        let changed = scanned(&line(0, Some("x"), "A", "logit"), &run, 1).unwrap_err();
        assert!(changed.to_string().contains("other text"), "{changed}");
        let twice = line(0, Some("x"), "a", "logit").repeat(2);
        let twice = scanned(&twice, &run, 1).unwrap_err();
        assert!(twice.to_string().contains("2 times"), "{twice}");
        let junk = scanned("{\"a\": 1}\n", &run, 1).unwrap_err();
        assert!(junk.to_string().contains("not a report"), "{junk}");
    }
}
