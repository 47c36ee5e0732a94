//! Outputs: one module per format, each a self-contained [`Sink`] fed the same [`Report`]s.
//! A sink learns what the loaded model is ([`RunContext`]) in [`Sink::begin`].

pub(crate) mod delimited;
pub mod heatmap;
pub(crate) mod images;
pub(crate) mod json;
pub(crate) mod jsonl;
pub(crate) mod report;
pub(crate) mod stats;
pub(crate) mod summary;
pub(crate) mod summary_plot;
pub(crate) mod table;

use anyhow::Result;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::provenance::Provenance;
// The report's types, for the modules below (outside, they are `crate::report`'s).
use crate::report::{Prediction, Report};
pub use stats::{Stat, Value, STATS};

impl Prediction {
    /// The value of `stat` in this cell ([`Value::NonFinite`] for every statistic of a
    /// non-finite cell).
    pub fn value(&self, stat: Stat) -> Value<'_> {
        match self.nonfinite {
            true => Value::NonFinite,
            false => stat.value(&self.stat, &self.token, &self.exact),
        }
    }
}

/// A cell's JSON: one object holding every statistic of [`STATS`], in order, leaving out
/// absent ones (`bytes` of a token whose text is exact), then `topk` (when asked for) and
/// `targets`. A non-finite cell has every statistic, `topk` and `targets` null, then
/// `"nonfinite": true`.
impl Serialize for Prediction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for d in &STATS {
            let value = self.value(d.stat);
            if value != Value::Absent {
                map.serialize_entry(d.key, &value)?;
            }
        }
        if self.nonfinite {
            map.serialize_entry("topk", &None::<()>)?;
            map.serialize_entry("targets", &None::<()>)?;
            map.serialize_entry("nonfinite", &true)?;
            return map.end();
        }
        if !self.topk.is_empty() {
            map.serialize_entry("topk", &self.topk)?;
        }
        map.serialize_entry("targets", &self.targets)?;
        map.end()
    }
}

/// What every sink learns once the model is loaded, before the first report.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The model as a person knows it, for titles ([`crate::Session::title`]).
    pub title: String,
    /// Where the run's reports come from (the summary's, JSON's, `--provenance`).
    pub provenance: Provenance,
    /// The model's vocabulary: how many rows its head has.
    pub vocab_size: usize,
    /// The most tokens any prompt tracks (CSV/TSV target columns).
    pub targets: usize,
}

/// Where reports go: begun once before the first report, given each report as soon as it
/// is ready, finished once after the last.
pub trait Sink {
    /// Takes what the run is about and writes what comes before any report (a header).
    fn begin(&mut self, _ctx: &RunContext) -> Result<()> {
        Ok(())
    }

    /// Checks, before anything of a prompt is written anywhere, that `report` can be
    /// written here as asked (a heatmap's `--positions` inside the prompt).
    fn check(&self, _report: &Report) -> Result<()> {
        Ok(())
    }

    /// Takes one prompt's report.
    fn report(&mut self, report: &Report) -> Result<()>;

    /// Takes a report an earlier run finished (`--resume`), before the first new one: the
    /// summaries add it; the others have it written already. (Only the command line
    /// resumes, so the report's type is the crate's own.)
    #[allow(private_interfaces)]
    fn resumed(&mut self, _finished: &jsonl::Finished) -> Result<()> {
        Ok(())
    }

    /// Writes what comes after all reports and flushes.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::lens::{LogitLens, Site, TargetStat, TokenStat};
    use crate::report::{InputToken, Layer, Target, TopToken};

    /// The JSON shape: issue 14's keys in their order, then issue 15's additions
    /// (`first_layer`, `settled_layer`, each token's exact `text`, `bytes` only when not
    /// UTF-8, `display`, and `provenance` when known), then issue 8's (`lens`, `top_k`,
    /// `targets`, each row's `site`, each cell's `kl`, `next_logprob`, `next_rank` —
    /// null at the last position —, `topk` when asked for and `targets`).
    #[test]
    fn json_shape() {
        let cell = |id, text: &[u8], display: &str, next: Option<(f32, u32)>| Prediction {
            token: display.into(),
            exact: crate::tokens::exact_text(text),
            stat: TokenStat {
                id,
                prob: 0.1,
                entropy: 2.5,
                kl: 0.25,
                next_logprob: next.map(|n| n.0),
                next_rank: next.map(|n| n.1),
            },
            topk: vec![TopToken {
                id,
                token: display.into(),
                prob: 0.1,
            }],
            targets: vec![TargetStat {
                prob: 0.5,
                logprob: -0.75,
                rank: 2,
            }],
            nonfinite: false,
        };
        let report = Report {
            model: "m".into(),
            prompt: "p".into(),
            prompt_index: 1,
            prompt_id: None,
            lens: Arc::new(LogitLens { final_norm: false }),
            lens_kind: "logit",
            first_layer: Some(0),
            settled_layer: Some(0),
            top_k: 1,
            tokens: vec![InputToken {
                id: 5,
                text: "p".into(),
                bytes: None,
                display: "p".into(),
            }],
            targets: vec![Target {
                id: 9,
                token: " q".into(),
                first_layer: None,
                settled_layer: None,
            }],
            layers: vec![Layer {
                layer: 0,
                site: Site::Embed,
                positions: vec![
                    cell(9, b" q", " q", Some((-1.5, 3))),
                    cell(7, b"\xE2", "\\xE2", None),
                ],
            }],
            provenance: None,
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"model":"m","prompt":"p","prompt_index":1,"prompt_id":null,"final_norm":false,"lens":"logit","first_layer":0,"settled_layer":0,"top_k":1,"tokens":[{"id":5,"text":"p","display":"p"}],"targets":[{"id":9,"token":" q","first_layer":null,"settled_layer":null}],"layers":[{"layer":0,"site":"embed","positions":[{"id":9,"token":" q","text":" q","prob":0.1,"entropy":2.5,"kl":0.25,"next_logprob":-1.5,"next_rank":3,"topk":[{"id":9,"token":" q","prob":0.1}],"targets":[{"prob":0.5,"logprob":-0.75,"rank":2}]},{"id":7,"token":"\\xE2","text":"�","bytes":"e2","prob":0.1,"entropy":2.5,"kl":0.25,"next_logprob":null,"next_rank":null,"topk":[{"id":7,"token":"\\xE2","prob":0.1}],"targets":[{"prob":0.5,"logprob":-0.75,"rank":2}]}]}]}"#
        );
    }
}
