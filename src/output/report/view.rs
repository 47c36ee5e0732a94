//! What the page shows beside the document, computed here so that the page's scripts only
//! draw and handle interaction: the metrics ([`crate::output::stats::Colouring::all`]:
//! `--metric`'s, with every tracked token's probability and rank) with each prompt's colour
//! scale and ticks, the palette (viridis and the text colour on it, as the heatmap draws
//! them), every row's label and every token's glyphs (as the heatmap writes them), and the
//! per-row summary curves (`lens::summary`'s records, drawn with the `--summary-plot`
//! curves' labels, colours and axes).

use std::collections::BTreeMap;
use std::fmt::Write;

use plotters::style::RGBColor;
use serde::Serialize;

use crate::lens::summary::{Record, Summary};
use crate::lens::Site;
use crate::output::heatmap::{text_color, viridis, visible, Scale, HATCH, NO_VALUE};
use crate::output::stats::{Colouring, Extent, Read, ScaleKind};
use crate::output::summary::add_report;
use crate::output::summary_plot::{self, Axis};
use crate::output::Report;

/// Entries of the palette's colour table, for 0..=1.
const STEPS: usize = 256;

/// The page's text colour (style.css's), for the lenses' entries of a legend.
const PAGE_INK: &str = "#1d2330";

/// The page's view data.
#[derive(Debug, Serialize)]
pub struct View {
    palette: Palette,
    /// Every metric, in `--metric`'s order, with `target` as each tracked token's
    /// probability and rank ([`Colouring::all`]).
    metrics: Vec<MetricView>,
    /// One per prompt: its reports, one per lens.
    groups: Vec<Group>,
    /// One per report of the document, in order.
    reports: Vec<ReportView>,
    /// Each token text the grid draws, with the glyphs drawn for it where they differ
    /// (`[text, glyphs]` pairs).
    glyphs: Vec<(String, String)>,
    /// The per-row summary curves, for a batch or for compared lenses.
    summary: Option<SummaryView>,
}

/// How a report's own texts are drawn.
#[derive(Debug, Serialize)]
struct ReportView {
    /// The prompt's glyphs (a tab `→`, a newline `↵`), as the heatmap's subtitle has them.
    prompt: String,
    /// A long prompt's first [`PROMPT_SHOWN`] glyphs and `…`, shown until the reader opens
    /// the whole prompt (so the first screen shows the grid); `None` for a short one.
    prompt_head: Option<String>,
    /// Its rows' labels ("0 emb", "3 attn", "3", "L out").
    rows: Vec<String>,
}

/// Colours, as `#rrggbb`.
#[derive(Debug, Serialize)]
struct Palette {
    /// Viridis at `i / 255`.
    colours: Vec<String>,
    /// The text colour on each of `colours`.
    ink: Vec<String>,
    /// A cell whose metric has no value: its fill and its hatching.
    no_value: String,
    hatch: String,
    /// The line colours of the charts (the summary curves', in order).
    lines: Vec<String>,
}

/// A metric, as the page reads and names it.
#[derive(Debug, Serialize)]
struct MetricView {
    /// The `--metric` name, or a target's ([`Colouring::key`]).
    key: String,
    unit: &'static str,
    scale: ScaleKind,
    /// Where a cell of the document holds its value.
    read: ReadView,
}

/// Where a metric's value is in a cell of the document.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ReadView {
    /// `cell[key]`, negated when `negate`.
    Stat { key: &'static str, negate: bool },
    /// `cell.targets[target][key]`.
    Target { target: usize, key: &'static str },
}

/// A scale: its ends, whether it is logarithmic, and its ticks as `[value, label, at]`,
/// `at` the tick's place on the axis or colour bar, 0 to 1 ([`Scale::fraction`]).
#[derive(Debug, Serialize)]
struct ScaleView {
    min: f64,
    max: f64,
    log: bool,
    ticks: Vec<(f64, String, f64)>,
}

impl From<&Scale> for ScaleView {
    fn from(scale: &Scale) -> Self {
        let ticks = scale.ticks().into_iter().map(|v| (v, scale.label(v)));
        scale_view(scale, ticks)
    }
}

/// `scale`'s view with the ticks `ticks` (`(value, label)`).
fn scale_view(scale: &Scale, ticks: impl Iterator<Item = (f64, String)>) -> ScaleView {
    ScaleView {
        min: scale.min,
        max: scale.max,
        log: scale.log,
        ticks: ticks
            .map(|(v, label)| (v, label, scale.fraction(v)))
            .collect(),
    }
}

/// One prompt: its reports and their scales.
#[derive(Debug, Serialize)]
struct Group {
    /// Indices into the document's reports, one per lens, in the order shown.
    reports: Vec<usize>,
    /// The metrics its reports can be coloured by.
    metrics: Vec<GroupMetric>,
    /// The targets charts, when its reports track tokens.
    targets: Option<TargetCharts>,
}

/// Each tracked token's probability, and its rank, at the last position, by row: one
/// series per target and lens.
#[derive(Debug, Serialize)]
struct TargetCharts {
    prob: ChartView,
    rank: ChartView,
}

/// A metric's colour bar for one prompt.
#[derive(Debug, Serialize)]
struct GroupMetric {
    key: String,
    /// The colour bar's title, as the heatmap's.
    title: String,
    scale: ScaleView,
    /// What the legend calls a cell without a value, when some cell has none.
    missing: Option<&'static str>,
    /// Each cell's colour, per report of the group (in its order) and row: per position, two
    /// hex digits, the palette's entry at the cell's place on `scale`, or `..` where the cell
    /// has no value.
    cells: Vec<Vec<String>>,
}

/// The summary: one point per row, one series per curve and lens.
#[derive(Debug, Serialize)]
struct SummaryView {
    /// The rows' labels, in order.
    rows: Vec<String>,
    lenses: Vec<&'static str>,
    nats: ChartView,
    fractions: ChartView,
}

/// A line chart: x is the row, y on `scale`.
#[derive(Debug, Serialize)]
struct ChartView {
    /// The y axis's title.
    label: &'static str,
    scale: ScaleView,
    series: Vec<Series>,
    /// What the legend under the chart shows, in order.
    legend: Vec<LegendEntry>,
}

impl ChartView {
    /// The chart of `series` on `scale`, each series placed on it and the legend drawn up.
    fn new(
        label: &'static str,
        scale: &Scale,
        ticks: Option<Vec<(f64, String)>>,
        mut series: Vec<Series>,
    ) -> Self {
        for s in &mut series {
            s.at = s
                .values
                .iter()
                .map(|v| v.filter(|v| v.is_finite()).map(|v| scale.fraction(v)))
                .collect();
        }
        let scale = match ticks {
            Some(ticks) => scale_view(scale, ticks.into_iter()),
            None => scale.into(),
        };
        Self {
            label,
            scale,
            legend: legend(&series),
            series,
        }
    }
}

/// One curve of one lens.
#[derive(Debug, Serialize)]
struct Series {
    label: String,
    lens: &'static str,
    colour: String,
    dashed: bool,
    /// One per row; null where the row has no value.
    values: Vec<Option<f64>>,
    /// Each value's place on the chart's scale, 0 to 1; null where the line has a gap (no
    /// value, or not a finite one).
    at: Vec<Option<f64>>,
}

/// An entry of a chart's legend: a line in `colour`, dashed or not, and its label.
#[derive(Debug, Serialize)]
struct LegendEntry {
    label: String,
    colour: String,
    dashed: bool,
}

/// The legend of `series`: each series; or, when they come from several lenses, each label
/// once in its colour and then each lens's line style (solid for the first, dashed after).
fn legend(series: &[Series]) -> Vec<LegendEntry> {
    let mut lenses: Vec<&str> = Vec::new();
    for s in series {
        if !lenses.contains(&s.lens) {
            lenses.push(s.lens);
        }
    }
    let entry = |s: &Series, dashed| LegendEntry {
        label: s.label.clone(),
        colour: s.colour.clone(),
        dashed,
    };
    if lenses.len() < 2 {
        return series.iter().map(|s| entry(s, s.dashed)).collect();
    }
    let mut entries: Vec<LegendEntry> = Vec::new();
    for s in series {
        if !entries.iter().any(|e| e.label == s.label) {
            entries.push(entry(s, false));
        }
    }
    entries.extend(lenses.iter().enumerate().map(|(j, lens)| LegendEntry {
        label: format!("{lens} lens"),
        colour: PAGE_INK.to_string(),
        dashed: j > 0,
    }));
    entries
}

/// `#rrggbb`.
fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// The view of `reports`, the document's reports in order.
pub fn view(reports: &[Report]) -> View {
    let groups = groups(reports);
    let targets = reports.iter().map(|r| r.targets.len()).max().unwrap_or(0);
    let colourings = Colouring::all(targets);
    // What every metric's scales are sized to: its values on the page (Colouring::extent).
    let largest: Vec<Extent> = colourings
        .iter()
        .map(|c| extent(c, reports.iter()).0)
        .collect();
    let summary = match groups.len() > 1 || lenses(reports).len() > 1 {
        true => Some(summary(reports)),
        false => None,
    };
    View {
        palette: palette(),
        metrics: colourings.iter().map(metric_view).collect(),
        groups: groups
            .into_iter()
            .map(|members| group(reports, members, &colourings, &largest))
            .collect(),
        reports: reports
            .iter()
            .map(|r| {
                let prompt = visible(&r.prompt);
                ReportView {
                    prompt_head: head(&prompt),
                    prompt,
                    rows: row_labels(r),
                }
            })
            .collect(),
        glyphs: glyphs(reports),
        summary,
    }
}

/// How many of a prompt's glyphs the page shows before the reader asks for the rest.
pub const PROMPT_SHOWN: usize = 200;

/// `prompt`'s first [`PROMPT_SHOWN`] chars and `…` when it has more (by 20 or more, so that
/// opening it shows more than a few chars); `None` otherwise.
fn head(prompt: &str) -> Option<String> {
    let mut chars = prompt.chars();
    let head: String = chars.by_ref().take(PROMPT_SHOWN).collect();
    (chars.count() >= 20).then(|| format!("{head}…"))
}

fn palette() -> Palette {
    let colours: Vec<RGBColor> = (0..STEPS)
        .map(|i| viridis(i as f64 / (STEPS - 1) as f64))
        .collect();
    Palette {
        ink: colours.iter().map(|&c| hex(text_color(c))).collect(),
        colours: colours.into_iter().map(hex).collect(),
        no_value: hex(NO_VALUE),
        hatch: hex(HATCH),
        lines: summary_plot::CURVES.iter().map(|c| hex(c.colour)).collect(),
    }
}

fn metric_view(colouring: &Colouring) -> MetricView {
    MetricView {
        key: colouring.key(),
        unit: colouring.unit,
        scale: colouring.scale,
        read: match colouring.read {
            Read::Stat { stat, negate } => ReadView::Stat {
                key: stat.name(),
                negate,
            },
            Read::TargetProb(target) => ReadView::Target {
                target,
                key: "prob",
            },
            Read::TargetRank(target) => ReadView::Target {
                target,
                key: "rank",
            },
        },
    }
}

/// The lenses of `reports`, each once, in order of first appearance.
fn lenses(reports: &[Report]) -> Vec<&'static str> {
    let mut lenses = Vec::new();
    for r in reports {
        if !lenses.contains(&r.lens_kind) {
            lenses.push(r.lens_kind);
        }
    }
    lenses
}

/// The reports grouped by prompt: under `--compare-lenses` a prompt's reports come in a
/// row, one per lens, with the same `prompt_index`.
fn groups(reports: &[Report]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let joins = groups.last().is_some_and(|g| {
            let first = &reports[g[0]];
            first.prompt_index == r.prompt_index
                && g.iter().all(|&o| reports[o].lens_kind != r.lens_kind)
        });
        match joins {
            true => groups.last_mut().expect("checked").push(i),
            false => groups.push(vec![i]),
        }
    }
    groups
}

/// What `colouring`'s scale is sized to in `reports` ([`Colouring::extent`], as the heatmap's),
/// and whether some cell has no value.
fn extent<'a>(colouring: &Colouring, reports: impl Iterator<Item = &'a Report>) -> (Extent, bool) {
    let mut missing = false;
    let cells = reports
        .flat_map(|r| &r.layers)
        .flat_map(|l| {
            let embedding = l.site == Site::Embed;
            l.positions
                .iter()
                .map(move |p| (embedding, colouring.value(p)))
        })
        .inspect(|(_, v)| missing |= v.is_none());
    (colouring.extent(cells), missing)
}

/// The group of `members`, with those of `colourings` its reports track. Their colour
/// scales span `largest`, the page's largest value of each (so that every prompt's colours
/// compare), but a target's spans the group's own: target `i` may be another token in
/// another prompt.
fn group(
    reports: &[Report],
    members: Vec<usize>,
    colourings: &[Colouring],
    largest: &[Extent],
) -> Group {
    let first = &reports[members[0]];
    let own = || members.iter().map(|&i| &reports[i]);
    let metrics = colourings
        .iter()
        .zip(largest)
        .filter(|(c, _)| c.shows(first))
        .map(|(c, &page)| {
            let (mine, missing) = extent(c, own());
            let largest = if c.read.target().is_some() {
                mine
            } else {
                page
            };
            let scale = Scale::sized(c.scale, None, largest);
            GroupMetric {
                key: c.key(),
                title: c.title(first),
                cells: own().map(|r| cells(c, &scale, r)).collect(),
                scale: (&scale).into(),
                missing: missing.then_some(c.missing),
            }
        })
        .collect();
    let targets = (!first.targets.is_empty()).then(|| target_charts(own().collect()));
    Group {
        reports: members,
        metrics,
        targets,
    }
}

/// The palette's entry at `t`, 0 to 1: the nearest of its [`STEPS`].
fn entry(t: f64) -> usize {
    (t * (STEPS - 1) as f64).round() as usize
}

/// `report`'s cells coloured by `colouring` on `scale`, row by row ([`GroupMetric::cells`]).
fn cells(colouring: &Colouring, scale: &Scale, report: &Report) -> Vec<String> {
    let row = |positions: &[crate::report::Prediction]| {
        let mut codes = String::with_capacity(2 * positions.len());
        for p in positions {
            match colouring.value(p) {
                Some(v) => {
                    let _ = write!(codes, "{:02x}", entry(scale.fraction(v)));
                }
                None => codes.push_str(".."),
            }
        }
        codes
    };
    report.layers.iter().map(|l| row(&l.positions)).collect()
}

/// The targets charts of a prompt's `reports` (one per lens): each target of the first,
/// labelled with its glyphs and coloured by target, dashed after the first lens; the values
/// are each row's last position's.
fn target_charts(reports: Vec<&Report>) -> TargetCharts {
    let series = |read: fn(&crate::lens::TargetStat) -> f64| {
        let mut list = Vec::new();
        for (i, target) in reports[0].targets.iter().enumerate() {
            for (j, report) in reports.iter().enumerate() {
                let last = report.tokens.len().saturating_sub(1);
                let at = |l: &crate::report::Layer| {
                    l.positions
                        .get(last)
                        .and_then(|p| p.targets.get(i))
                        .map(read)
                };
                list.push(Series {
                    label: format!("“{}”", visible(&target.token)),
                    lens: report.lens_kind,
                    colour: hex(summary_plot::CURVES[i % summary_plot::CURVES.len()].colour),
                    dashed: j > 0,
                    values: report.layers.iter().map(at).collect(),
                    at: Vec::new(),
                });
            }
        }
        list
    };
    let ranks = series(|t| f64::from(t.rank));
    let rank = ranks
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0, |a: f64, &b| a.max(b));
    TargetCharts {
        prob: ChartView::new(
            "probability",
            &Scale::of(ScaleKind::Unit, None, 1.0),
            None,
            series(|t| f64::from(t.prob)),
        ),
        rank: ChartView::new(
            "rank (log scale)",
            &Scale::of(ScaleKind::Log, None, rank),
            None,
            ranks,
        ),
    }
}

/// The labels of `report`'s rows, as the table and the heatmap write them.
fn row_labels(report: &Report) -> Vec<String> {
    let last = report.layers.last().map_or(0, |l| l.layer);
    report.layers.iter().map(|l| l.label(last)).collect()
}

/// Every token text the page draws (input tokens, cells, targets) whose glyphs differ from
/// it.
fn glyphs(reports: &[Report]) -> Vec<(String, String)> {
    let mut all = BTreeMap::new();
    for r in reports {
        let cells = r.layers.iter().flat_map(|l| &l.positions).map(|p| &p.token);
        let targets = r.targets.iter().map(|t| &t.token);
        for text in r
            .tokens
            .iter()
            .map(|t| &t.display)
            .chain(cells)
            .chain(targets)
        {
            if !all.contains_key(text.as_str()) {
                all.insert(text.as_str(), visible(text));
            }
        }
    }
    all.into_iter()
        .filter(|(text, shown)| text != shown)
        .map(|(text, shown)| (text.to_string(), shown))
        .collect()
}

/// The summary of `reports` as the `--summary` file and `--summary-plot` have it.
fn summary(reports: &[Report]) -> SummaryView {
    let mut summary = Summary::new();
    for r in reports {
        add_report(&mut summary, r);
    }
    let records = summary.records();
    // The rows in order of first appearance, each labelled as its first report labels it.
    let mut rows: Vec<((Site, usize), String)> = Vec::new();
    for r in reports {
        for (l, label) in r.layers.iter().zip(row_labels(r)) {
            if !rows.iter().any(|(k, _)| *k == (l.site, l.layer)) {
                rows.push(((l.site, l.layer), label));
            }
        }
    }
    let lenses = summary_plot::lenses(&records);
    let curves = summary_plot::curves(&records);
    let series = |axis: Axis| -> Vec<Series> {
        let mut list = Vec::new();
        for curve in curves.iter().filter(|c| c.axis == axis) {
            for (k, &lens) in lenses.iter().enumerate() {
                let at = |key: &(Site, usize)| {
                    records
                        .iter()
                        .find(|r| r.lens == lens && (r.site, r.layer) == *key)
                };
                list.push(Series {
                    label: curve.label.to_string(),
                    lens,
                    colour: hex(curve.colour),
                    dashed: summary_plot::dashed(axis, k, lenses.len()),
                    values: rows
                        .iter()
                        .map(|(key, _)| at(key).and_then(|r: &Record| (curve.value)(r)))
                        .collect(),
                    at: Vec::new(),
                });
            }
        }
        list
    };
    SummaryView {
        nats: ChartView::new(
            "nats",
            &summary_plot::nats_scale(&records, &curves),
            None,
            series(Axis::Nats),
        ),
        fractions: ChartView::new(
            "fraction",
            &Scale::fixed(0.0, 1.0),
            Some(summary_plot::fraction_ticks()),
            series(Axis::Fraction),
        ),
        rows: rows.into_iter().map(|(_, label)| label).collect(),
        lenses,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::lens::{LogitLens, TokenStat};
    use crate::report::{InputToken, Layer, Prediction};

    /// A report of two tokens (" a", "b") and two rows (embeddings, output) whose cells have
    /// the entropies `entropy[row][position]`.
    fn report(prompt_index: usize, lens: &'static str, entropy: [[f32; 2]; 2]) -> Report {
        let token = |id: u32, text: &str| InputToken {
            id,
            text: text.into(),
            bytes: None,
            display: text.into(),
        };
        let cell = |e: f32, position: usize| Prediction {
            token: " a".into(),
            exact: crate::tokens::exact_text(b" a"),
            stat: TokenStat {
                id: 1,
                prob: 0.5,
                entropy: e,
                kl: 0.25,
                next_logprob: (position == 0).then_some(-1.0),
                next_rank: (position == 0).then_some(3),
            },
            topk: Vec::new(),
            targets: Vec::new(),
            nonfinite: false,
        };
        let layer = |layer, site, row: [f32; 2]| Layer {
            layer,
            site,
            positions: vec![cell(row[0], 0), cell(row[1], 1)],
        };
        Report {
            model: "m".into(),
            prompt: " ab".into(),
            prompt_index,
            prompt_id: None,
            lens: Arc::new(LogitLens::default()),
            lens_kind: lens,
            first_layer: Some(0),
            settled_layer: Some(0),
            top_k: 0,
            tokens: vec![token(1, " a"), token(2, "b")],
            targets: Vec::new(),
            layers: vec![
                layer(0, Site::Embed, entropy[0]),
                layer(1, Site::ResidPost, entropy[1]),
            ],
            provenance: None,
        }
    }

    fn json(reports: &[Report]) -> serde_json::Value {
        serde_json::to_value(view(reports)).unwrap()
    }

    /// The keys of a list of metrics.
    fn keys(metrics: &serde_json::Value) -> Vec<&str> {
        let list = metrics.as_array().unwrap().iter();
        list.map(|m| m["key"].as_str().unwrap()).collect()
    }

    #[test]
    fn a_prompts_lenses_make_one_group() {
        let e = [[1.0, 2.0], [0.5, 0.25]];
        let both = [
            report(0, "logit", e),
            report(0, "tuned", e),
            report(1, "logit", e),
            report(1, "tuned", e),
        ];
        assert_eq!(groups(&both), [vec![0, 1], vec![2, 3]]);
        let one = [report(0, "logit", e), report(1, "logit", e)];
        assert_eq!(groups(&one), [vec![0], vec![1]]);
        // The same prompt twice under one lens is two groups.
        assert_eq!(
            groups(&[report(0, "logit", e), report(0, "logit", e)]).len(),
            2
        );
    }

    #[test]
    fn scales_labels_and_glyphs_are_the_heatmaps() {
        let reports = [
            report(0, "logit", [[3.7, 2.0], [0.5, 0.25]]),
            report(1, "logit", [[1.0, 1.0], [0.5, 0.25]]),
        ];
        let v = json(&reports);
        assert_eq!(
            v["reports"][0]["rows"],
            serde_json::json!(["0 emb", "1 out"])
        );
        assert_eq!(v["reports"][0]["prompt"], "·ab");
        assert_eq!(v["glyphs"], serde_json::json!([[" a", "·a"]]));
        // No targets: no target metric.
        assert_eq!(keys(&v["metrics"]), ["entropy", "prob", "kl", "ce", "rank"]);
        assert_eq!(
            v["metrics"][3]["read"],
            serde_json::json!({"key": "next_logprob", "negate": true})
        );
        // Every prompt's entropy scale spans the page's largest (3.7), rounded up to a
        // tick, as the heatmap's.
        for group in v["groups"].as_array().unwrap() {
            let metrics = group["metrics"].as_array().unwrap();
            assert_eq!(metrics.len(), 5);
            let entropy = &metrics[0];
            assert_eq!(entropy["title"], "entropy (nats)");
            assert_eq!(entropy["scale"]["max"], 4.0);
            let ticks: Vec<&str> = entropy["scale"]["ticks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t[1].as_str().unwrap())
                .collect();
            assert_eq!(ticks, ["0", "1", "2", "3", "4"]);
            assert_eq!(entropy["missing"], serde_json::Value::Null);
            // Cross-entropy has no value at the last position.
            assert_eq!(metrics[3]["missing"], "no next token");
            assert_eq!(metrics[4]["scale"]["log"], true);
            assert_eq!(metrics[4]["scale"]["max"], 10.0);
        }
    }

    #[test]
    fn kl_scales_past_the_embedding_row_as_the_heatmap() {
        // The embeddings are 110 and 120 nats from the output; the output rows 0..2.6.
        let mut reports = [
            report(0, "logit", [[1.0, 1.0], [0.5, 0.25]]),
            report(1, "logit", [[1.0, 1.0], [0.5, 0.25]]),
        ];
        let kl = [[[110.0, 110.0], [0.3, 1.7]], [[120.0, 120.0], [2.6, 0.0]]];
        for (r, kl) in reports.iter_mut().zip(kl) {
            for (layer, kl) in r.layers.iter_mut().zip(kl) {
                for (cell, kl) in layer.positions.iter_mut().zip(kl) {
                    cell.stat.kl = kl;
                }
            }
        }
        let v = json(&reports);
        for group in v["groups"].as_array().unwrap() {
            let kl = &group["metrics"][2];
            assert_eq!(kl["key"], "kl");
            // The page's KL outside the embedding rows tops at 2.6: the scale ends at 3,
            // and its top says the embeddings lie beyond.
            assert_eq!(kl["scale"]["max"], 3.0);
            let ticks = kl["scale"]["ticks"].as_array().unwrap();
            assert_eq!(ticks.last().unwrap(), &serde_json::json!([3.0, "≥ 3", 1.0]));
            // The embedding rows' cells are drawn in the top colour.
            assert_eq!(kl["cells"][0][0], "ffff");
        }
    }

    /// `report` tracking " x" and "\ty", whose cells give them the ranks
    /// `ranks[row][position]` (and probabilities 1 / rank).
    fn tracking(prompt_index: usize, ranks: [[[u32; 2]; 2]; 2]) -> Report {
        let mut r = report(prompt_index, "logit", [[1.0, 1.0], [0.5, 0.25]]);
        r.targets = [" x", "\ty"]
            .iter()
            .map(|t| crate::report::Target {
                id: 5,
                token: t.to_string(),
                first_layer: None,
                settled_layer: None,
            })
            .collect();
        for (layer, ranks) in r.layers.iter_mut().zip(ranks) {
            for (cell, ranks) in layer.positions.iter_mut().zip(ranks) {
                cell.targets = ranks
                    .iter()
                    .map(|&rank| crate::lens::TargetStat {
                        prob: 1.0 / rank as f32,
                        logprob: -(rank as f32).ln(),
                        rank,
                    })
                    .collect();
            }
        }
        r
    }

    #[test]
    fn every_target_has_a_probability_and_a_rank() {
        // Prompt 0's second target reaches rank 150, prompt 1's only 40.
        let reports = [
            tracking(0, [[[1, 3], [2, 150]], [[1, 1], [4, 2]]]),
            tracking(1, [[[2, 40], [1, 7]], [[1, 1], [1, 2]]]),
        ];
        let v = json(&reports);
        let all = [
            "entropy",
            "prob",
            "kl",
            "ce",
            "rank",
            "target",
            "target-rank",
            "target-2",
            "target-rank-2",
        ];
        assert_eq!(keys(&v["metrics"]), all);
        let m = &v["metrics"];
        assert_eq!(
            m[5]["read"],
            serde_json::json!({"target": 0, "key": "prob"})
        );
        assert_eq!(
            m[8]["read"],
            serde_json::json!({"target": 1, "key": "rank"})
        );
        assert_eq!(m[8]["scale"], "log");
        assert_eq!(m[8]["unit"], "rank");
        assert_eq!(m[7]["scale"], "unit");
        for (g, top) in [(0, 1000.0), (1, 100.0)] {
            let metrics = v["groups"][g]["metrics"].as_array().unwrap();
            assert_eq!(keys(&v["groups"][g]["metrics"]), all);
            let titles: Vec<&str> = metrics[5..]
                .iter()
                .map(|m| m["title"].as_str().unwrap())
                .collect();
            assert_eq!(
                titles,
                [
                    "probability of “·x”",
                    "rank of “·x” (log scale)",
                    "probability of “→y”",
                    "rank of “→y” (log scale)"
                ]
            );
            // A target's rank scale runs from 1 to its prompt's largest rank, rounded up to
            // a power of 10, as the heatmap's.
            let rank = &metrics[8]["scale"];
            assert_eq!(
                (rank["min"].as_f64(), rank["max"].as_f64()),
                (Some(1.0), Some(top))
            );
            assert_eq!(rank["log"], true);
            // 10 sits a third of the way up a scale to 1000, half way up one to 100.
            let ten = &rank["ticks"][1];
            assert_eq!((ten[0].as_f64(), ten[1].as_str()), (Some(10.0), Some("10")));
            let at = ten[2].as_f64().unwrap();
            assert!((at - 1.0 / top.log10()).abs() < 1e-12, "{at}");
            assert_eq!(metrics[6]["scale"]["max"], 10.0);
            assert_eq!(metrics[7]["scale"]["max"], 1.0);
            assert_eq!(metrics[7]["missing"], serde_json::Value::Null);
        }
        // A prompt tracking one target has only that one's.
        let mut one = tracking(2, [[[1, 3], [2, 150]], [[1, 1], [4, 2]]]);
        one.targets.pop();
        let v = json(&[reports[0].clone(), one]);
        assert_eq!(v["metrics"].as_array().unwrap().len(), 9);
        assert_eq!(v["groups"][1]["metrics"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn the_summary_holds_the_records_means() {
        let e = [[3.0, 1.0], [0.5, 0.25]];
        // One prompt under one lens: no summary.
        assert_eq!(
            json(&[report(0, "logit", e)])["summary"],
            serde_json::Value::Null
        );
        let v = json(&[
            report(0, "logit", e),
            report(1, "logit", [[1.0, 1.0], [0.5, 0.5]]),
        ]);
        let s = &v["summary"];
        assert_eq!(s["rows"], serde_json::json!(["0 emb", "1 out"]));
        let entropy = &s["nats"]["series"][0];
        assert_eq!(entropy["label"], "mean entropy (nats)");
        assert_eq!(entropy["colour"], "#0072b2");
        assert_eq!(entropy["dashed"], false);
        // Means over 2 prompts × 2 positions.
        assert_eq!(entropy["values"], serde_json::json!([1.5, 0.4375]));
        // Fractions are dashed with one lens, as in the summary plot.
        assert_eq!(s["fractions"]["series"][0]["dashed"], true);
        assert_eq!(
            s["fractions"]["scale"]["ticks"][1],
            serde_json::json!([0.2, "0.2", 0.2])
        );
        // Each point placed on its chart's scale (0 to 1.5 nats: 0.4375 at 0.2917).
        assert_eq!(s["nats"]["scale"]["min"], 0.0);
        assert_eq!(s["nats"]["scale"]["max"], 1.5);
        assert_eq!(entropy["at"], serde_json::json!([1.0, 0.4375 / 1.5]));
        // One lens: one legend entry per series, as drawn.
        let legend = s["nats"]["legend"].as_array().unwrap();
        assert_eq!(legend.len(), s["nats"]["series"].as_array().unwrap().len());
        assert_eq!(
            legend[0],
            serde_json::json!({"label": "mean entropy (nats)", "colour": "#0072b2", "dashed": false})
        );
    }

    #[test]
    fn with_two_lenses_the_legend_names_each_curve_once_then_the_lenses() {
        let e = [[3.0, 1.0], [0.5, 0.25]];
        let v = json(&[report(0, "logit", e), report(0, "tuned", e)]);
        let chart = &v["summary"]["nats"];
        let series = chart["series"].as_array().unwrap();
        assert_eq!(series.len() % 2, 0);
        let labels: Vec<&str> = chart["legend"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["label"].as_str().unwrap())
            .collect();
        let mut want: Vec<&str> = series
            .iter()
            .step_by(2)
            .map(|s| s["label"].as_str().unwrap())
            .collect();
        want.extend(["logit lens", "tuned lens"]);
        assert_eq!(labels, want);
        let lenses = &chart["legend"].as_array().unwrap()[labels.len() - 2..];
        assert_eq!(
            lenses,
            [
                serde_json::json!({"label": "logit lens", "colour": PAGE_INK, "dashed": false}),
                serde_json::json!({"label": "tuned lens", "colour": PAGE_INK, "dashed": true}),
            ]
        );
    }

    #[test]
    fn each_cell_is_coloured_by_its_place_on_the_scale() {
        // Entropy on 0..4 nats: 3.7 → 0.925 → entry 236 (0xec), 2 → 128, 0.5 → 32, 0.25 → 16.
        let v = json(&[report(0, "logit", [[3.7, 2.0], [0.5, 0.25]])]);
        let metrics = &v["groups"][0]["metrics"];
        assert_eq!(metrics[0]["key"], "entropy");
        assert_eq!(metrics[0]["cells"], serde_json::json!([["ec80", "2010"]]));
        // Cross-entropy has no value at the last position: "..".
        assert_eq!(metrics[3]["key"], "ce");
        let ce = metrics[3]["cells"][0].as_array().unwrap();
        assert!(
            ce.iter().all(|row| row.as_str().unwrap().ends_with("..")),
            "{ce:?}"
        );
        // A prompt's lenses: one list of rows per report, in the group's order.
        let e = [[3.7, 2.0], [0.5, 0.25]];
        let both = json(&[
            report(0, "logit", e),
            report(0, "tuned", [[0.0, 4.0], [1.0, 1.0]]),
        ]);
        assert_eq!(
            both["groups"][0]["metrics"][0]["cells"],
            serde_json::json!([["ec80", "2010"], ["00ff", "4040"]])
        );
    }

    /// The scripts place nothing on a scale: no logarithm, no scale ends read.
    #[test]
    fn the_scripts_map_no_value_to_a_colour_or_a_place() {
        for (name, js) in [
            ("data.js", include_str!("assets/data.js")),
            ("grid.js", include_str!("assets/grid.js")),
            ("main.js", include_str!("assets/main.js")),
        ] {
            for computing in ["Math.log", "scale.min", "scale.max", "values.forEach"] {
                assert!(!js.contains(computing), "{name} has {computing:?}");
            }
        }
    }

    #[test]
    fn the_target_charts_follow_each_target_at_the_last_position() {
        let v = json(&[tracking(0, [[[1, 3], [2, 150]], [[1, 1], [4, 2]]])]);
        let charts = &v["groups"][0]["targets"];
        let rank = &charts["rank"];
        assert_eq!(rank["label"], "rank (log scale)");
        assert_eq!(rank["scale"]["max"], 1000.0);
        let series = rank["series"].as_array().unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0]["label"], "“·x”");
        assert_eq!(series[1]["label"], "“→y”");
        assert_eq!(series[0]["values"], serde_json::json!([2.0, 4.0]));
        assert_eq!(series[1]["values"], serde_json::json!([150.0, 2.0]));
        let at: Vec<f64> = series[1]["at"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_f64().unwrap())
            .collect();
        let want = [150f64.ln() / 1000f64.ln(), 2f64.ln() / 1000f64.ln()];
        assert!(
            at.iter().zip(want).all(|(a, w)| (a - w).abs() < 1e-12),
            "{at:?}"
        );
        assert_ne!(series[0]["colour"], series[1]["colour"]);
        let prob = &charts["prob"];
        assert_eq!(prob["label"], "probability");
        assert_eq!(prob["series"][0]["values"], serde_json::json!([0.5, 0.25]));
        assert_eq!(prob["series"][0]["at"], serde_json::json!([0.5, 0.25]));
        assert_eq!(prob["legend"].as_array().unwrap().len(), 2);
        // No targets: no charts.
        let none = json(&[report(0, "logit", [[1.0, 1.0], [0.5, 0.25]])]);
        assert_eq!(none["groups"][0]["targets"], serde_json::Value::Null);
    }
}
