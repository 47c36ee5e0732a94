//! `--summary-plot FILE.png|svg`: the per-layer curves of a batch ([`crate::lens::summary`]),
//! one line per statistic with the layer on x, drawn once after the last prompt and
//! written through a temporary file and a rename.
//!
//! Statistics in nats (mean entropy, mean KL to the output, mean next-token cross-entropy)
//! read on the left axis; fractions (next-token top-1 accuracy, agreement with the output's
//! argmax, and the mean target probability at the last position when targets are tracked)
//! on the right one, 0 to 1, drawn dashed. Every line also has its own marker shape, so
//! that the plot reads in black and white. A `--sublayers` row (the residual after block
//! l's attention) sits half a layer before the block's output, at l − ½.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::heatmap::{
    draw_error, encode, fit, register_font, text_width, visible, Figure, ImageFormat, Pen, Scale,
    INK, MUTED,
};
use super::summary::{add_report, write_if_any};
use super::{Report, RunContext, Sink};
use crate::atomic;
use crate::lens::summary::{Record, Summary};
use crate::lens::Site;

/// The plot's size: the axes' box, and the room around it.
const PLOT_W: i32 = 640;
const PLOT_H: i32 = 360;
const LEFT: i32 = 70;
const RIGHT: i32 = 62;
const TOP: i32 = 70;
const BOTTOM: i32 = 56;
/// Room for the legend, right of the right axis.
const LEGEND_W: i32 = 270;

const TITLE_FONT: f64 = 17.0;
const SUBTITLE_FONT: f64 = 13.0;
const TICK_FONT: f64 = 12.0;
const AXIS_FONT: f64 = 13.0;
const LEGEND_FONT: f64 = 12.0;

/// Which axis a curve reads on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Axis {
    Nats,
    Fraction,
}

/// The marker drawn at every point of a curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
    Plus,
}

/// One line of the plot (and of the HTML report's summary charts).
pub(crate) struct Curve {
    pub(crate) label: &'static str,
    pub(crate) axis: Axis,
    pub(crate) colour: RGBColor,
    mark: Mark,
    /// A record's value, if it has one.
    pub(crate) value: fn(&Record) -> Option<f64>,
}

/// Okabe and Ito's colour-blind-safe palette. A table: one curve a line.
#[rustfmt::skip]
pub(crate) const CURVES: [Curve; 6] = {
    use Axis::{Fraction, Nats};
    use Mark::*;
    [
        Curve::new("mean entropy (nats)", Nats, (0, 114, 178), Circle, |r| Some(r.mean_entropy)),
        Curve::new("mean KL to the output (nats)", Nats, (213, 94, 0), Square, |r| Some(r.mean_kl)),
        Curve::new("mean next-token cross-entropy (nats)", Nats, (0, 158, 115), Triangle, |r| r.mean_next_ce),
        Curve::new("next-token top-1 accuracy", Fraction, (204, 121, 167), Diamond, |r| r.next_top1),
        Curve::new("top-1 agreement with the output", Fraction, (230, 159, 0), Cross, |r| Some(r.output_agreement)),
        Curve::new("mean target probability (last position)", Fraction, (86, 180, 233), Plus, |r| r.mean_target_prob),
    ]
};

impl Curve {
    const fn new(
        label: &'static str,
        axis: Axis,
        (r, g, b): (u8, u8, u8),
        mark: Mark,
        value: fn(&Record) -> Option<f64>,
    ) -> Self {
        Self {
            label,
            axis,
            colour: RGBColor(r, g, b),
            mark,
            value,
        }
    }
}

/// The curves of [`CURVES`] that have a value in some record.
pub(crate) fn curves(records: &[Record]) -> Vec<&'static Curve> {
    CURVES
        .iter()
        .filter(|c| records.iter().any(|r| (c.value)(r).is_some()))
        .collect()
}

/// The left axis (nats) of `curves` over `records`. The embeddings' KL and cross-entropy
/// can be tens of times the other rows' (SmolLM2: 104 nats against 22): the axis then ends
/// at the others' largest, and the embeddings' points sit on its top edge.
pub(crate) fn nats_scale(records: &[Record], curves: &[&Curve]) -> Scale {
    let largest = |embed: bool| {
        curves
            .iter()
            .filter(|c| c.axis == Axis::Nats)
            .flat_map(|c| {
                records
                    .iter()
                    .filter(move |r| (r.site == Site::Embed) == embed)
                    .filter_map(c.value)
            })
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
    };
    let (rest, embed) = (largest(false), largest(true));
    let largest = match embed > 2.0 * rest && rest > 0.0 {
        true => rest,
        false => rest.max(embed),
    };
    Scale::new(largest)
}

/// The right axis's ticks (fractions): 0 to 1 in fifths, labelled with one decimal.
pub(crate) fn fraction_ticks() -> Vec<(f64, String)> {
    (0..=5)
        .map(|k| {
            let t = f64::from(k) / 5.0;
            (t, format!("{t:.1}"))
        })
        .collect()
}

/// The lenses whose rows `records` holds, in order of first appearance.
pub(crate) fn lenses(records: &[Record]) -> Vec<&'static str> {
    let mut lenses: Vec<&'static str> = Vec::new();
    for r in records {
        if !lenses.contains(&r.lens) {
            lenses.push(r.lens);
        }
    }
    lenses
}

/// Whether a curve on `axis` is dashed for the `lens`-th lens of `lenses`: the second
/// lens's when there are several (line styles then tell the lenses apart), else the
/// fractions'.
pub(crate) fn dashed(axis: Axis, lens: usize, lenses: usize) -> bool {
    match lenses > 1 {
        true => lens > 0,
        false => axis == Axis::Fraction,
    }
}

/// Where a row sits on the layer axis: block l's output at l, its `resid_mid` at l − ½.
fn x_of(record: &Record) -> f64 {
    match record.site {
        Site::ResidMid => record.layer as f64 - 0.5,
        Site::Embed | Site::ResidPost => record.layer as f64,
    }
}

/// The summary plot sink: adds each report, draws and writes the file at the end.
#[derive(Debug)]
pub struct SummaryPlot {
    path: PathBuf,
    format: ImageFormat,
    summary: Summary,
    /// The model as a person knows it, for the title.
    model: Option<String>,
}

impl SummaryPlot {
    /// The format a plot at `path` is drawn in, once `path` is checked: a .png or .svg
    /// file in a directory where it can be created.
    pub fn check(path: &Path) -> Result<ImageFormat> {
        let format = ImageFormat::from_path(path).map_err(|_| {
            anyhow!(
                "{}: the summary plot is drawn as .png or .svg; name the file so",
                path.display()
            )
        })?;
        atomic::check_can_create(path)?;
        Ok(format)
    }

    /// A plot to be drawn to `path` in `format` (see [`SummaryPlot::check`]); its title
    /// names the model as [`Sink::begin`]'s context does.
    pub fn new(path: &Path, format: ImageFormat) -> Self {
        Self {
            path: path.to_path_buf(),
            format,
            summary: Summary::new(),
            model: None,
        }
    }

    /// The plot of the prompts added so far.
    pub fn render(&self) -> Result<Vec<u8>> {
        render(
            &self.summary.records(),
            self.summary.prompts(),
            self.model.as_deref().unwrap_or("model"),
            self.format,
        )
    }
}

impl Sink for SummaryPlot {
    fn begin(&mut self, ctx: &RunContext) -> Result<()> {
        self.model = Some(ctx.title.clone());
        Ok(())
    }

    fn report(&mut self, report: &Report) -> Result<()> {
        add_report(&mut self.summary, report);
        Ok(())
    }

    fn resumed(&mut self, finished: &super::jsonl::Finished) -> Result<()> {
        finished.add_to(&mut self.summary);
        Ok(())
    }

    /// Writes the file (nothing when no prompt succeeded).
    fn finish(&mut self) -> Result<()> {
        write_if_any(&self.summary, &self.path, || self.render())
    }
}

/// Draws the curves of `records` (a summary over `prompts` prompts of `model`).
pub fn render(
    records: &[Record],
    prompts: usize,
    model: &str,
    format: ImageFormat,
) -> Result<Vec<u8>> {
    if records.is_empty() {
        bail!("cannot draw a summary without rows");
    }
    register_font();
    encode(&Chart::new(records, prompts, model, format), format)
}

/// Everything needed to draw, computed once for both backends.
struct Chart<'a> {
    records: &'a [Record],
    prompts: usize,
    model: &'a str,
    pen: Pen,
    /// The layer axis's ends.
    x: (f64, f64),
    /// The left axis (nats) and its ticks.
    nats: Scale,
    /// The layer axis's ticks.
    layers: Scale,
    /// The curves that have a value somewhere.
    curves: Vec<&'static Curve>,
    /// The lenses whose rows `records` holds, in order (two under `--compare-lenses`:
    /// then each statistic has one line per lens, solid for the first, dashed for the
    /// second, instead of solid for nats and dashed for fractions).
    lenses: Vec<&'static str>,
}

impl<'a> Chart<'a> {
    fn new(records: &'a [Record], prompts: usize, model: &'a str, format: ImageFormat) -> Self {
        let xs = records.iter().map(x_of);
        let x = (
            xs.clone().fold(f64::INFINITY, f64::min).min(0.0),
            xs.fold(0.0, f64::max),
        );
        let curves = curves(records);
        // Points past the nats axis's top sit on it, labelled with their values.
        Self {
            records,
            prompts,
            model,
            pen: Pen { format },
            x,
            nats: nats_scale(records, &curves),
            layers: Scale::new(x.1.max(1.0)),
            curves,
            lenses: lenses(records),
        }
    }

    /// Whether the plot compares lenses (line styles then tell the lenses apart).
    fn compares(&self) -> bool {
        self.lenses.len() > 1
    }

    /// Whether `curve`'s line for `lens` is dashed: the second lens's when the plot
    /// compares lenses, else the fractions'.
    fn dashed(&self, curve: &Curve, lens: &str) -> bool {
        let at = self.lenses.iter().position(|&l| l == lens).unwrap_or(0);
        dashed(curve.axis, at, self.lenses.len())
    }

    /// The pixel of a point: `x` on the layer axis, `t` in 0..=1 up the box.
    fn at(&self, x: f64, t: f64) -> (i32, i32) {
        let span = (self.x.1 - self.x.0).max(1e-9);
        let px = LEFT as f64 + (x - self.x.0) / span * PLOT_W as f64;
        let py = (TOP + PLOT_H) as f64 - t.clamp(0.0, 1.0) * PLOT_H as f64;
        (px.round() as i32, py.round() as i32)
    }

    /// Where `value` of a curve on `axis` falls up the box, 0..=1.
    fn height(&self, axis: Axis, value: f64) -> f64 {
        match axis {
            Axis::Nats => self.nats.fraction(value),
            Axis::Fraction => value,
        }
    }

    fn draw_title<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (w, _) = self.size();
        let cx = w as i32 / 2;
        let room = f64::from(w) - 24.0;
        let title = format!(
            "{} · per-layer summary of {} prompts",
            visible(self.model),
            self.prompts
        );
        let (title, size) = fit(&title, TITLE_FONT, 12.0, room);
        self.pen
            .text(root, &title, (cx, 22), size, &INK, HPos::Center)?;
        let mut subtitle =
            "means over every position; next-token statistics over positions with a next token"
                .to_string();
        if let [first, second, ..] = self.lenses[..] {
            subtitle = format!("solid: {first} lens, dashed: {second} lens · {subtitle}");
        }
        let (subtitle, size) = fit(&subtitle, SUBTITLE_FONT, 9.0, room);
        self.pen
            .text(root, &subtitle, (cx, 45), size, &MUTED, HPos::Center)
    }

    /// The box, grid lines, ticks and axis titles.
    fn draw_axes<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (x0, y0, x1, y1) = (LEFT, TOP, LEFT + PLOT_W, TOP + PLOT_H);
        let grid = RGBColor(228, 228, 228);
        for v in self.nats.ticks() {
            let (_, y) = self.at(0.0, self.nats.fraction(v));
            root.draw(&PathElement::new([(x0, y), (x1, y)], grid.stroke_width(1)))
                .map_err(draw_error)?;
            let label = self.nats.label(v);
            self.pen
                .text(root, &label, (x0 - 8, y), TICK_FONT, &INK, HPos::Right)?;
        }
        for (t, label) in fraction_ticks() {
            let (_, y) = self.at(0.0, t);
            root.draw(&PathElement::new(
                [(x1, y), (x1 + 4, y)],
                MUTED.stroke_width(1),
            ))
            .map_err(draw_error)?;
            self.pen
                .text(root, &label, (x1 + 8, y), TICK_FONT, &INK, HPos::Left)?;
        }
        for v in self.layers.ticks().into_iter().filter(|&v| v <= self.x.1) {
            let (x, _) = self.at(v, 0.0);
            root.draw(&PathElement::new(
                [(x, y1), (x, y1 + 4)],
                MUTED.stroke_width(1),
            ))
            .map_err(draw_error)?;
            let label = self.layers.label(v);
            self.pen
                .text(root, &label, (x, y1 + 15), TICK_FONT, &INK, HPos::Center)?;
        }
        root.draw(&Rectangle::new([(x0, y0), (x1, y1)], MUTED.stroke_width(1)))
            .map_err(draw_error)?;
        let mid = (y0 + y1) / 2;
        let (nats, fraction) = match self.compares() {
            true => ("nats (left axis)", "fraction (right axis)"),
            false => ("nats (solid lines)", "fraction (dashed lines)"),
        };
        self.pen
            .vertical_text(root, nats, (18, mid), AXIS_FONT, &MUTED)?;
        let right = x1 + 8 + text_width("0.0", TICK_FONT).ceil() as i32 + 16;
        self.pen
            .vertical_text(root, fraction, (right, mid), AXIS_FONT, &MUTED)?;
        let bottom = (LEFT + PLOT_W / 2, y1 + 38);
        let title = match self.records.iter().any(|r| r.site == Site::ResidMid) {
            true => "layer (l − ½: after block l's attention)",
            false => "layer (0: embeddings)",
        };
        self.pen
            .text(root, title, bottom, AXIS_FONT, &MUTED, HPos::Center)
    }

    /// Every curve: its line through the rows that have a value, and a marker at each.
    fn draw_curves<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let mut clipped = 0;
        for curve in &self.curves {
            for &lens in &self.lenses {
                let records: Vec<&Record> =
                    self.records.iter().filter(|r| r.lens == lens).collect();
                let points: Vec<Option<(i32, i32)>> = records
                    .iter()
                    .map(|r| {
                        let v = (curve.value)(r).filter(|v| v.is_finite())?;
                        Some(self.at(x_of(r), self.height(curve.axis, v)))
                    })
                    .collect();
                // A missing value breaks the line.
                let dashed = self.dashed(curve, lens);
                for run in points.split(Option::is_none) {
                    let run: Vec<(i32, i32)> = run.iter().flatten().copied().collect();
                    line(root, &run, curve.colour, dashed)?;
                }
                for &p in points.iter().flatten() {
                    mark(root, p, curve.mark, curve.colour)?;
                }
                // Values past the top of the nats axis sit on it; their values stack beside.
                for r in records {
                    let Some(v) = (curve.value)(r).filter(|_| curve.axis == Axis::Nats) else {
                        continue;
                    };
                    if v > self.nats.max {
                        let (x, y) = self.at(x_of(r), 1.0);
                        let at = (x + 9, y + 8 + 14 * clipped);
                        let label = format!("{v:.0} ↑");
                        self.pen
                            .text(root, &label, at, TICK_FONT, &curve.colour, HPos::Left)?;
                        clipped += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// One line per curve, right of the plot: a sample of its line and marker, its label.
    fn draw_legend<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let x = LEFT + PLOT_W + RIGHT + 12;
        let room = f64::from(LEGEND_W - 48);
        for (k, curve) in self.curves.iter().enumerate() {
            let y = TOP + 10 + 22 * k as i32;
            let dashed = self.dashed(curve, self.lenses[0]);
            line(root, &[(x, y), (x + 30, y)], curve.colour, dashed)?;
            mark(root, (x + 15, y), curve.mark, curve.colour)?;
            let (label, size) = fit(curve.label, LEGEND_FONT, 9.0, room);
            self.pen
                .text(root, &label, (x + 38, y), size, &INK, HPos::Left)?;
        }
        if !self.compares() {
            return Ok(());
        }
        // Under the statistics, which line style is which lens.
        let below = TOP + 10 + 22 * self.curves.len() as i32 + 12;
        for (k, lens) in self.lenses.iter().enumerate() {
            let y = below + 22 * k as i32;
            line(root, &[(x, y), (x + 30, y)], INK, k > 0)?;
            let label = format!("{lens} lens");
            self.pen
                .text(root, &label, (x + 38, y), LEGEND_FONT, &INK, HPos::Left)?;
        }
        Ok(())
    }
}

impl Figure for Chart<'_> {
    fn size(&self) -> (u32, u32) {
        (
            (LEFT + PLOT_W + RIGHT + LEGEND_W) as u32,
            (TOP + PLOT_H + BOTTOM) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        self.draw_title(root)?;
        self.draw_axes(root)?;
        self.draw_curves(root)?;
        self.draw_legend(root)
    }
}

/// A 2 px polyline through `points`, dashed (6 on, 4 off) when asked.
fn line<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[(i32, i32)],
    colour: RGBColor,
    dashed: bool,
) -> Result<()> {
    let style = colour.stroke_width(2);
    if !dashed {
        return root
            .draw(&PathElement::new(points.to_vec(), style))
            .map_err(draw_error);
    }
    for pair in points.windows(2) {
        let ((ax, ay), (bx, by)) = (pair[0], pair[1]);
        let (dx, dy) = (f64::from(bx - ax), f64::from(by - ay));
        let length = dx.hypot(dy);
        let mut s = 0.0;
        while s < length {
            let e = (s + 6.0).min(length);
            let point = |d: f64| {
                (
                    ax + (dx * d / length).round() as i32,
                    ay + (dy * d / length).round() as i32,
                )
            };
            root.draw(&PathElement::new(vec![point(s), point(e)], style))
                .map_err(draw_error)?;
            s += 10.0;
        }
    }
    Ok(())
}

/// A curve's marker at `(x, y)`, outlined in white so that it reads over lines.
fn mark<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    mark: Mark,
    colour: RGBColor,
) -> Result<()> {
    let r = 4;
    let fill = colour.filled();
    let edge = WHITE.stroke_width(1);
    let shape = |pts: Vec<(i32, i32)>| -> Result<()> {
        root.draw(&Polygon::new(pts.clone(), fill))
            .map_err(draw_error)?;
        let mut ring = pts;
        ring.push(ring[0]);
        root.draw(&PathElement::new(ring, edge)).map_err(draw_error)
    };
    match mark {
        Mark::Circle => {
            root.draw(&Circle::new((x, y), r, fill))
                .map_err(draw_error)?;
            root.draw(&Circle::new((x, y), r, edge)).map_err(draw_error)
        }
        Mark::Square => shape(vec![
            (x - r, y - r),
            (x + r, y - r),
            (x + r, y + r),
            (x - r, y + r),
        ]),
        Mark::Triangle => shape(vec![(x, y - r - 1), (x + r + 1, y + r), (x - r - 1, y + r)]),
        Mark::Diamond => shape(vec![
            (x, y - r - 1),
            (x + r + 1, y),
            (x, y + r + 1),
            (x - r - 1, y),
        ]),
        Mark::Cross | Mark::Plus => {
            let arms = match mark {
                Mark::Cross => [
                    ((x - r, y - r), (x + r, y + r)),
                    ((x - r, y + r), (x + r, y - r)),
                ],
                _ => [
                    ((x - r - 1, y), (x + r + 1, y)),
                    ((x, y - r - 1), (x, y + r + 1)),
                ],
            };
            for (a, b) in arms {
                root.draw(&PathElement::new(vec![a, b], colour.stroke_width(3)))
                    .map_err(draw_error)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(site: Site, layer: usize, entropy: f64) -> Record {
        Record {
            site,
            layer,
            cells: 18,
            mean_entropy: entropy,
            mean_kl: entropy / 2.0,
            next_cells: 16,
            mean_next_ce: Some(entropy + 1.0),
            next_top1: Some(layer as f64 / 10.0),
            output_agreement: layer as f64 / 8.0,
            target_cells: 0,
            mean_target_prob: None,
            mean_target_rank: None,
            lens: "logit",
            nonfinite_cells: 0,
        }
    }

    fn records(sublayers: bool) -> Vec<Record> {
        let mut rows = vec![record(Site::Embed, 0, 9.0)];
        for l in 1..=8 {
            if sublayers {
                rows.push(record(Site::ResidMid, l, 8.5 - l as f64));
            }
            rows.push(record(Site::ResidPost, l, 9.0 - l as f64));
        }
        rows
    }

    #[test]
    fn mid_rows_sit_half_a_layer_before_their_block() {
        assert_eq!(x_of(&record(Site::Embed, 0, 1.0)), 0.0);
        assert_eq!(x_of(&record(Site::ResidMid, 3, 1.0)), 2.5);
        assert_eq!(x_of(&record(Site::ResidPost, 3, 1.0)), 3.0);
    }

    #[test]
    fn the_plot_has_a_line_per_statistic() {
        let rows = records(false);
        let svg =
            String::from_utf8(render(&rows, 4, "SmolLM2", ImageFormat::Svg).unwrap()).unwrap();
        for label in [
            "mean entropy (nats)",
            "mean KL to the output (nats)",
            "mean next-token cross-entropy (nats)",
            "next-token top-1 accuracy",
            "top-1 agreement with the output",
        ] {
            assert!(svg.contains(label), "{label}");
        }
        // No targets were tracked: no target line.
        assert!(!svg.contains("target probability"));
        assert!(svg.contains("SmolLM2 · per-layer summary of 4 prompts"));
        let chart = Chart::new(&rows, 4, "SmolLM2", ImageFormat::Svg);
        assert_eq!(chart.curves.len(), 5);
        assert_eq!(chart.x, (0.0, 8.0));
        // The entropy at layer 0 (9 nats) is on a 0..10 axis.
        assert_eq!((chart.nats.min, chart.nats.max), (0.0, 10.0));
    }

    #[test]
    fn a_png_shows_each_curve_in_its_colour() {
        let rows = records(true);
        let bytes = render(&rows, 2, "m", ImageFormat::Png).unwrap();
        let mut reader = png::Decoder::new(bytes.as_slice()).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let chart = Chart::new(&rows, 2, "m", ImageFormat::Png);
        assert_eq!((info.width, info.height), chart.size());
        let pixel = |(x, y): (i32, i32)| {
            let i = (y as usize * info.width as usize + x as usize) * 3;
            [buf[i], buf[i + 1], buf[i + 2]]
        };
        // The entropy marker at the embeddings (9 nats of 10) is the entropy curve's colour.
        let c = CURVES[0].colour;
        assert_eq!(pixel(chart.at(0.0, 0.9)), [c.0, c.1, c.2]);
        // The KL marker at block 4's attention (resid_mid, x = 3.5, 2.25 nats).
        let c = CURVES[1].colour;
        assert_eq!(pixel(chart.at(3.5, 0.225)), [c.0, c.1, c.2]);
    }

    #[test]
    fn an_outlying_embedding_row_does_not_squash_the_axis() {
        let mut rows = records(false);
        rows[0].mean_kl = 104.0;
        let chart = Chart::new(&rows, 4, "m", ImageFormat::Svg);
        // The other rows reach 9 nats (next-token CE at layer 1): the axis ends at 10.
        assert_eq!(chart.nats.max, 10.0);
        let svg = String::from_utf8(render(&rows, 4, "m", ImageFormat::Svg).unwrap()).unwrap();
        assert!(svg.contains("104 ↑"));
        // Not an outlier: the axis covers it.
        rows[0].mean_kl = 15.0;
        assert_eq!(Chart::new(&rows, 4, "m", ImageFormat::Svg).nats.max, 15.0);
    }

    #[test]
    fn missing_values_break_the_line_without_failing() {
        let mut rows = records(false);
        rows[3].mean_next_ce = None;
        rows[4].next_top1 = Some(f64::NAN);
        for format in [ImageFormat::Png, ImageFormat::Svg] {
            render(&rows, 3, "m", format).unwrap();
        }
        assert!(render(&[], 3, "m", ImageFormat::Png).is_err());
    }
}
