//! The annotated heatmap: one row per shown layer (embeddings at the bottom,
//! the model's output at the top), one column per input position. Each cell is
//! coloured by one statistic (the entropy unless told otherwise) and labelled
//! with its argmax token, as in the usual logit-lens plot.
//!
//! Everything is drawn by hand on a plotters drawing area (no chart
//! builder), so the cell grid, labels and colour bar line up to the pixel and
//! the PNG and SVG share one layout. Text uses the bundled DejaVu Sans, so
//! the output does not depend on the machine's fonts.
//!
//! Legibility: each column is as wide as its widest label (input token or
//! cell) within [`MIN_CELL_W`]..=[`MAX_CELL_W`] px, so words are shown whole
//! rather than cut at a fixed width; leading and trailing spaces show as a
//! thin `·` (" the" reads `·the`, and an input token "↵   " reads `↵···`);
//! a no-break space shows as `⍽`, and zero-width, bidirectional and unusual
//! space characters as `\u{200B}`-style escapes, so no token is a blank
//! cell. The colour scale is fixed with [`HeatmapOptions::color_range`], so
//! that several figures can be compared.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform};

use super::{Prediction, Report};
use crate::lens::Stat;

/// Image encodings the heatmap can be written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Svg,
}

impl ImageFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Svg => "svg",
        }
    }

    /// From a path's extension (case-insensitive "png" / "svg"); an error
    /// message naming the extension and the choices otherwise.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
        match ext.as_deref() {
            Some("png") => Ok(Self::Png),
            Some("svg") => Ok(Self::Svg),
            Some(other) => bail!(
                "cannot write a heatmap as .{other} ({}): use a .png or .svg file",
                path.display()
            ),
            None => bail!(
                "{} has no extension: the heatmap must be a .png or .svg file",
                path.display()
            ),
        }
    }
}

/// How to draw.
#[derive(Debug, Clone)]
pub struct HeatmapOptions {
    /// Show every `layer_step`-th layer (plus the output layer); 0 acts as 1.
    pub layer_step: usize,
    /// Longest cell / axis label in chars, `…` included; 0 acts as 1. A label
    /// is also cut when it does not fit [`MAX_CELL_W`] at the smallest font.
    pub max_label_chars: usize,
    /// The statistic that colours the cells and titles the colour bar (with its unit).
    pub color: Stat,
    /// The values of the colour statistic at the two ends of the colour
    /// scale; values outside take the end colours. `None`: 0 to the largest
    /// value shown, rounded up to a tick.
    pub color_range: Option<(f32, f32)>,
}

impl Default for HeatmapOptions {
    fn default() -> Self {
        Self {
            layer_step: 1,
            max_label_chars: 24,
            color: Stat::Entropy,
            color_range: None,
        }
    }
}

/// Parses a colour range written `MIN..MAX` (e.g. `0..10`, `0.5..8.25`).
pub fn parse_color_range(text: &str) -> Result<(f32, f32)> {
    let (min, max) = text
        .split_once("..")
        .with_context(|| format!("{text:?} is not a range; write it as MIN..MAX, e.g. 0..10"))?;
    let number = |s: &str| {
        s.trim()
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .with_context(|| {
                format!("{s:?} in {text:?} is not a number; write MIN..MAX, e.g. 0..10")
            })
    };
    let range = (number(min)?, number(max)?);
    check_color_range(range)?;
    Ok(range)
}

/// Checks that a colour range is finite and not empty.
pub fn check_color_range((min, max): (f32, f32)) -> Result<()> {
    if !(min.is_finite() && max.is_finite() && min < max) {
        bail!("the colour range {min}..{max} is empty or not finite; give MIN < MAX, e.g. 0..10");
    }
    Ok(())
}

/// Font family for all text; registered from the bundled TTF in [`register_font`].
const FONT: &str = "sans-serif";
/// DejaVu Sans, bundled so text renders without system fonts.
const FONT_TTF: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The narrowest and widest a column gets; between them it follows its labels.
pub const MIN_CELL_W: u32 = 44;
pub const MAX_CELL_W: u32 = 180;
/// Room around a cell's label, left and right together.
const CELL_PAD: f64 = 12.0;
const CELL_H: u32 = 30;
/// Small reports get bigger cells rather than a cramped title and colour bar.
const MIN_GRID_W: u32 = 168;
const MIN_GRID_H: u32 = 160;
/// Room for the y-axis title and the layer labels.
const MARGIN_LEFT: u32 = 86;
/// Room for the two title lines.
const MARGIN_TOP: u32 = 66;
/// Room for the token labels, positions and the x-axis title.
const MARGIN_BOTTOM: u32 = 66;
/// Room for the colour bar, its tick labels and its title.
const MARGIN_RIGHT: u32 = 124;
/// Larger images are refused: viewers choke, and the RGB buffer gets huge.
const MAX_SIDE: u32 = 32_000;
const MAX_PIXELS: u64 = 120_000_000;

const COLORBAR_GAP: i32 = 20;
const COLORBAR_W: i32 = 16;

const CELL_FONT: f64 = 13.0;
const CELL_FONT_MIN: f64 = 9.0;
const TICK_FONT: f64 = 12.0;
const AXIS_FONT: f64 = 13.0;
const TITLE_FONT: f64 = 18.0;
const SUBTITLE_FONT: f64 = 14.0;

const INK: RGBColor = RGBColor(34, 34, 34);
const MUTED: RGBColor = RGBColor(110, 110, 110);
/// Cells the report lacks (ragged rows): drawn, but visibly empty.
const MISSING: RGBColor = RGBColor(224, 224, 224);

/// Matplotlib's viridis at 0, 0.1, …, 1: perceptually uniform and readable
/// in grey scale, so entropy differences look as large as they are.
const VIRIDIS: [(u8, u8, u8); 11] = [
    (0x44, 0x01, 0x54),
    (0x48, 0x24, 0x75),
    (0x41, 0x44, 0x87),
    (0x35, 0x5f, 0x8d),
    (0x2a, 0x78, 0x8e),
    (0x21, 0x91, 0x8c),
    (0x22, 0xa8, 0x84),
    (0x44, 0xbf, 0x70),
    (0x7a, 0xd1, 0x51),
    (0xbd, 0xdf, 0x26),
    (0xfd, 0xe7, 0x25),
];

/// Renders the report to bytes in the given format (pure: no file I/O).
///
/// The colour scale runs from 0 to the largest finite value of the colour
/// statistic among the shown rows, rounded up to a tick (so the bar ends on a
/// labelled value); NaN or infinite values are drawn at the top of the scale.
pub fn render(report: &Report, opts: &HeatmapOptions, format: ImageFormat) -> Result<Vec<u8>> {
    if report.tokens.is_empty() {
        bail!("cannot draw a heatmap of an empty prompt: there are no tokens");
    }
    if report.layers.is_empty() {
        bail!("cannot draw a heatmap without layers");
    }
    if let Some(range) = opts.color_range {
        check_color_range(range)?;
    }
    let rows = shown_layers(report.layers.len(), opts.layer_step);
    check_size(
        width_bounds(report.tokens.len()).0,
        image_height(rows.len()),
        report,
        &rows,
    )?;
    register_font();
    let widths = column_widths(report, opts, &rows);
    let (w, h) = (width_of(&widths), image_height(rows.len()));
    check_size(w, h, report, &rows)?;
    let plot = Plot::new(report, opts, rows, widths, format);
    match format {
        ImageFormat::Png => render_png(&plot),
        ImageFormat::Svg => render_svg(&plot),
    }
}

/// The rows shown: every `step`-th layer from 0, always including the last
/// (output) layer. Returns layer indices ascending; a `step` of 0 acts as 1.
pub fn shown_layers(num_rows: usize, step: usize) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..num_rows).step_by(step.max(1)).collect();
    if let Some(last) = num_rows.checked_sub(1) {
        if rows.last() != Some(&last) {
            rows.push(last);
        }
    }
    rows
}

/// The image size in pixels of a report's heatmap (so tests can check a
/// PNG's size): the height follows the shown rows, the width the labels.
pub fn image_size(report: &Report, opts: &HeatmapOptions) -> (u32, u32) {
    register_font();
    let rows = shown_layers(report.layers.len(), opts.layer_step);
    (
        width_of(&column_widths(report, opts, &rows)),
        image_height(rows.len()),
    )
}

/// The image height for `rows` shown rows. Saturates instead of overflowing.
pub fn image_height(rows: usize) -> u32 {
    let grid_h = u32::try_from(rows)
        .unwrap_or(u32::MAX)
        .saturating_mul(CELL_H)
        .max(MIN_GRID_H);
    MARGIN_TOP
        .saturating_add(grid_h)
        .saturating_add(MARGIN_BOTTOM)
}

/// The narrowest and widest the image can be for `columns` tokens: every
/// column at [`MIN_CELL_W`], or at [`MAX_CELL_W`].
pub fn width_bounds(columns: usize) -> (u32, u32) {
    let n = u32::try_from(columns).unwrap_or(u32::MAX);
    let grid = |cell: u32| n.saturating_mul(cell).max(MIN_GRID_W);
    let side = |grid: u32| {
        MARGIN_LEFT
            .saturating_add(grid)
            .saturating_add(MARGIN_RIGHT)
    };
    (side(grid(MIN_CELL_W)), side(grid(MAX_CELL_W)))
}

/// The image width for these column widths.
fn width_of(widths: &[u32]) -> u32 {
    let grid = widths
        .iter()
        .fold(0u32, |sum, &w| sum.saturating_add(w))
        .max(MIN_GRID_W);
    MARGIN_LEFT
        .saturating_add(grid)
        .saturating_add(MARGIN_RIGHT)
}

/// Each column's width: its widest label (the input token at the tick font,
/// the shown cells at the cell font) plus padding, within
/// [`MIN_CELL_W`]..=[`MAX_CELL_W`]; a narrow grid is widened evenly to its
/// minimum.
fn column_widths(report: &Report, opts: &HeatmapOptions, rows: &[usize]) -> Vec<u32> {
    let max_chars = opts.max_label_chars.max(1);
    let mut widths: Vec<u32> = (0..report.tokens.len())
        .map(|c| {
            let axis = text_width(&label(&report.tokens[c].display, max_chars), TICK_FONT);
            let cells = rows
                .iter()
                .filter_map(|&l| report.layers[l].positions.get(c))
                .map(|p| text_width(&label(&p.token, max_chars), CELL_FONT))
                .fold(0.0, f64::max);
            let want = (axis.max(cells) + CELL_PAD).ceil();
            (want as u32).clamp(MIN_CELL_W, MAX_CELL_W)
        })
        .collect();
    let total: u32 = widths.iter().sum();
    if total < MIN_GRID_W && !widths.is_empty() {
        let n = widths.len() as u32;
        let extra = MIN_GRID_W - total;
        for (i, w) in widths.iter_mut().enumerate() {
            *w += extra / n + u32::from((i as u32) < extra % n);
        }
    }
    widths
}

/// Refuses images too big to allocate or view.
fn check_size(w: u32, h: u32, report: &Report, rows: &[usize]) -> Result<()> {
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        bail!(
            "the heatmap of {} tokens × {} layers would be {w}×{h} px, \
             over the {MAX_SIDE} px limit: use a shorter prompt or a larger layer step",
            report.tokens.len(),
            rows.len()
        );
    }
    Ok(())
}

/// Makes the bundled DejaVu Sans the "sans-serif" family, once per process,
/// so text renders on machines without system fonts.
fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // Cannot fail for the bundled font; were it to, drawing text reports it.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_TTF);
    });
}

/// Draws into an RGB buffer and encodes it as PNG.
fn render_png(plot: &Plot) -> Result<Vec<u8>> {
    let (w, h) = plot.size;
    let len = usize::try_from(u64::from(w) * u64::from(h) * 3).context("heatmap too large")?;
    let mut rgb = vec![255u8; len];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        plot.draw(&root)?;
        root.present().map_err(draw_error)?;
    }
    encode_png(&rgb, w, h)
}

/// Draws into an SVG document of the same size as the PNG.
fn render_svg(plot: &Plot) -> Result<Vec<u8>> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, plot.size).into_drawing_area();
        plot.draw(&root)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg.into_bytes())
}

/// Encodes 8-bit RGB pixels as a PNG file's bytes.
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding the heatmap PNG")?;
    writer
        .write_image_data(rgb)
        .context("encoding the heatmap PNG")?;
    writer.finish().context("encoding the heatmap PNG")?;
    Ok(out)
}

/// Plotters' errors borrow the backend's type; flatten them for anyhow.
fn draw_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the heatmap: {e}")
}

/// The statistic → colour scale and its ticks.
#[derive(Debug, Clone, PartialEq)]
struct Scale {
    min: f64,
    max: f64,
    step: f64,
}

/// The "nice" step (1, 2, 2.5, 5 × 10ⁿ) that cuts `span` into at most 6.
fn nice_step(span: f64) -> f64 {
    let magnitude = 10f64.powf((span / 5.0).log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|f| f * magnitude)
        .find(|s| s * 6.0 >= span)
        .unwrap_or(10.0 * magnitude)
}

impl Scale {
    /// 0 to `observed` rounded up to at most 6 "nice" steps (1, 2, 2.5, 5 × 10ⁿ).
    fn new(observed: f64) -> Self {
        if !(observed.is_finite() && observed > 0.0) {
            return Self {
                min: 0.0,
                max: 1.0,
                step: 0.2,
            };
        }
        let step = nice_step(observed);
        let max = (observed / step - 1e-9).ceil().max(1.0) * step;
        Self {
            min: 0.0,
            max,
            step,
        }
    }

    /// Exactly `min` to `max` (checked by [`check_color_range`]).
    fn fixed(min: f32, max: f32) -> Self {
        let (min, max) = (f64::from(min), f64::from(max));
        Self {
            min,
            max,
            step: nice_step(max - min),
        }
    }

    /// Where `value` falls in 0..=1; non-finite values count as the maximum.
    fn fraction(&self, value: f64) -> f64 {
        if value.is_finite() {
            ((value - self.min) / (self.max - self.min)).clamp(0.0, 1.0)
        } else {
            1.0
        }
    }

    /// The tick values: both ends, and the multiples of the step between them
    /// that are not crowding an end.
    fn ticks(&self) -> Vec<f64> {
        let room = 0.5 * self.step;
        let first = (self.min / self.step).ceil() as i64;
        let last = (self.max / self.step).floor() as i64;
        let inner = (first..=last)
            .map(|i| i as f64 * self.step)
            .filter(|&v| v - self.min > room && self.max - v > room);
        std::iter::once(self.min)
            .chain(inner)
            .chain(std::iter::once(self.max))
            .collect()
    }

    /// A tick's label with as few decimals as it needs, at most 3 (2.5 → "2.5", 2 → "2").
    fn label(&self, value: f64) -> String {
        let decimals = (0..3)
            .find(|&d| {
                let k = value * 10f64.powi(d);
                (k - k.round()).abs() < 1e-6
            })
            .unwrap_or(3) as usize;
        format!("{value:.decimals$}")
    }
}

/// Viridis at `t` in 0..=1, linearly interpolated between the anchors.
fn viridis(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// WCAG relative luminance of an sRGB colour.
fn luminance(c: RGBColor) -> f64 {
    let lin = |v: u8| {
        let v = f64::from(v) / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c.0) + 0.7152 * lin(c.1) + 0.0722 * lin(c.2)
}

/// White or black, whichever contrasts more with `background`.
fn text_color(background: RGBColor) -> RGBColor {
    let l = luminance(background);
    // Contrast ratios (L1 + 0.05) / (L2 + 0.05) against white and black.
    if 1.05 / (l + 0.05) >= (l + 0.05) / 0.05 {
        WHITE
    } else {
        BLACK
    }
}

/// Makes a token legible: newline, tab and carriage return `↵`, `→`, `⇤`,
/// other control characters escapes (which also keeps the SVG valid XML),
/// leading and trailing spaces a thin `·`, a no-break space `⍽`, zero-width
/// and other invisible characters escapes, the empty text `""`.
fn visible(text: &str) -> String {
    if text.is_empty() {
        return "\"\"".to_string();
    }
    let core = text.trim_matches(' ');
    let lead = text.len() - text.trim_start_matches(' ').len();
    let trail = match core.is_empty() {
        true => 0,
        false => text.len() - text.trim_end_matches(' ').len(),
    };
    let mut out = "·".repeat(lead);
    for c in core.chars() {
        match c {
            '\n' => out.push('↵'),
            '\t' => out.push('→'),
            // The font has no ␍ (the table's carriage return).
            '\r' | '␍' => out.push('⇤'),
            '\u{A0}' => out.push('⍽'),
            c if c.is_control() || crate::tokens::is_invisible(c) => {
                out.push_str(&format!("\\u{{{:X}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push_str(&"·".repeat(trail));
    out
}

/// The label drawn for a token: [`visible`], cut to `max_chars`.
fn label(text: &str, max_chars: usize) -> String {
    truncate(&visible(text), max_chars)
}

/// `text` cut to at most `max_chars` chars, the last being `…` when cut.
fn truncate(text: &str, max_chars: usize) -> String {
    let max_chars = max_chars.max(1);
    if text.chars().nth(max_chars).is_none() {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max_chars - 1).collect();
    cut.push('…');
    cut
}

/// The rendered width of `text` in the bundled font, in pixels.
fn text_width(text: &str, size: f64) -> f64 {
    match (FONT, size).into_font().box_size(text) {
        Ok((w, _)) => f64::from(w),
        // No font: a generous guess, so text is cut rather than overflowing.
        Err(_) => text.chars().count() as f64 * size * 0.65,
    }
}

/// The largest size in `min..=size` at which `text` fits `max_w`, cutting
/// it further (with `…`) if it does not fit even at `min`.
fn fit(text: &str, size: f64, min: f64, max_w: f64) -> (String, f64) {
    let mut s = size;
    while s >= min {
        if text_width(text, s) <= max_w {
            return (text.to_string(), s);
        }
        s -= 1.0;
    }
    // Binary search on the number of chars kept: widths grow with it.
    let (mut lo, mut hi) = (1, text.chars().count());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if text_width(&truncate(text, mid), min) <= max_w {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    (truncate(text, lo), min)
}

/// Everything needed to draw, computed once for both backends.
struct Plot<'a> {
    report: &'a Report,
    max_chars: usize,
    /// Shown layer indices, ascending (drawn bottom to top).
    rows: Vec<usize>,
    size: (u32, u32),
    /// The x of every column edge, left to right (one more than columns).
    col_edges: Vec<i32>,
    grid_x: i32,
    grid_y: i32,
    grid_w: i32,
    grid_h: i32,
    scale: Scale,
    format: ImageFormat,
    /// The statistic that colours the cells.
    color: Stat,
}

impl<'a> Plot<'a> {
    fn new(
        report: &'a Report,
        opts: &HeatmapOptions,
        rows: Vec<usize>,
        widths: Vec<u32>,
        format: ImageFormat,
    ) -> Self {
        let size = (width_of(&widths), image_height(rows.len()));
        let grid_x = MARGIN_LEFT as i32;
        let col_edges: Vec<i32> = std::iter::once(grid_x)
            .chain(widths.iter().scan(grid_x, |x, &w| {
                *x += w as i32;
                Some(*x)
            }))
            .collect();
        let grid_w = col_edges.last().copied().unwrap_or(grid_x) - grid_x;
        let grid_h = (size.1 - MARGIN_TOP - MARGIN_BOTTOM) as i32;
        let scale = match opts.color_range {
            Some((min, max)) => Scale::fixed(min, max),
            None => Scale::new(
                rows.iter()
                    .flat_map(|&l| &report.layers[l].positions)
                    .filter_map(|p| p.value(opts.color).number())
                    .filter(|e| e.is_finite())
                    .fold(0.0, f64::max),
            ),
        };
        Self {
            report,
            max_chars: opts.max_label_chars.max(1),
            rows,
            size,
            col_edges,
            grid_x,
            grid_y: MARGIN_TOP as i32,
            grid_w,
            grid_h,
            scale,
            format,
            color: opts.color,
        }
    }

    /// A cell's colour statistic as a number (NaN for text, drawn at the top of the scale).
    fn number(&self, pred: &Prediction) -> f64 {
        pred.value(self.color).number().unwrap_or(f64::NAN)
    }

    fn columns(&self) -> usize {
        self.report.tokens.len()
    }

    /// Left and right x of column `c` (cells share edges).
    fn col_span(&self, c: usize) -> (i32, i32) {
        (self.col_edges[c], self.col_edges[c + 1])
    }

    /// Top and bottom y of display row `r`, counted from the top.
    fn row_span(&self, r: usize) -> (i32, i32) {
        let n = self.rows.len() as i64;
        let edge = |i: usize| self.grid_y + (i as i64 * i64::from(self.grid_h) / n) as i32;
        (edge(r), edge(r + 1))
    }

    /// Draws the whole figure.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        self.draw_title(root)?;
        self.draw_cells(root)?;
        self.draw_layer_axis(root)?;
        self.draw_token_axis(root)?;
        self.draw_colorbar(root)
    }

    /// Draws `text` with its cap height centred on `cy`.
    fn text<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: &str,
        at: (i32, i32),
        size: f64,
        color: &RGBColor,
        h: HPos,
    ) -> Result<()> {
        self.run(root, text, at, size, color, h, false)
    }

    /// Draws `text` reading bottom to top, centred on `(cx, cy)`.
    fn vertical_text<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: &str,
        centre: (i32, i32),
        size: f64,
        color: &RGBColor,
    ) -> Result<()> {
        self.run(root, text, centre, size, color, HPos::Center, true)
    }

    /// Draws a line of text, anchored at `h` along it and centred across it.
    ///
    /// SVG text is left to the viewer's layout. Bitmap text goes one char at
    /// a time, each shifted by its left side bearing, because plotters'
    /// ab_glyph renderer drops bearings and spaces glyphs unevenly ("th e").
    #[allow(clippy::too_many_arguments)]
    fn run<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: &str,
        (x, y): (i32, i32),
        size: f64,
        color: &RGBColor,
        h: HPos,
        vertical: bool,
    ) -> Result<()> {
        let rise = (self.rise() * size).round() as i32;
        let style = TextStyle::from((FONT, size).into_font())
            .color(color)
            .transform(if vertical {
                FontTransform::Rotate270
            } else {
                FontTransform::None
            });
        // Rotate270 maps the text's x to screen -y.
        let place = |along: i32| {
            if vertical {
                (x - rise, y - along)
            } else {
                (x + along, y - rise)
            }
        };
        if self.format == ImageFormat::Svg {
            let style = style.pos(Pos::new(h, VPos::Top));
            return root.draw_text(text, &style, place(0)).map_err(draw_error);
        }
        let style = style.pos(Pos::new(HPos::Left, VPos::Top));
        let width = text_width(text, size) as i32;
        let start = match h {
            HPos::Left => 0,
            HPos::Center => -width / 2,
            HPos::Right => -width,
        };
        for (i, c) in text.char_indices().filter(|(_, c)| !c.is_whitespace()) {
            let pen = start + text_width(&text[..i], size) as i32;
            let glyph = &text[i..i + c.len_utf8()];
            root.draw_text(glyph, &style, place(pen + bearing::left(c, size)))
                .map_err(draw_error)?;
        }
        Ok(())
    }

    /// How far above the wanted cap-height centre a top-anchored text's
    /// origin sits, per font pixel: the backends place baselines differently.
    fn rise(&self) -> f64 {
        match self.format {
            // ab_glyph puts the baseline half a font size below the origin.
            ImageFormat::Png => 0.19,
            // SVG uses dy="0.76em" with font-size = size / 1.24.
            ImageFormat::Svg => 0.32,
        }
    }

    /// Model on the first line, the prompt (quoted, ↵ for newlines) below.
    fn draw_title<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let width = f64::from(self.size.0) - 24.0;
        let cx = self.size.0 as i32 / 2;
        let model = visible(&truncate(&self.report.model, 200));
        let (model, size) = fit(&model, TITLE_FONT, 12.0, width);
        self.text(root, &model, (cx, 22), size, &INK, HPos::Center)?;
        // Cut long prompts by chars first, so fitting measures little text.
        let prompt = format!("“{}”", visible(&truncate(&self.report.prompt, 300)));
        let prompt = fit(&prompt, SUBTITLE_FONT, SUBTITLE_FONT, width).0;
        self.text(root, &prompt, (cx, 46), SUBTITLE_FONT, &MUTED, HPos::Center)
    }

    /// One coloured, annotated cell per shown layer and position.
    fn draw_cells<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        for (r, &layer) in self.rows.iter().rev().enumerate() {
            let (y0, y1) = self.row_span(r);
            let positions = &self.report.layers[layer].positions;
            for c in 0..self.columns() {
                let (x0, x1) = self.col_span(c);
                // A 1 px white seam on the right and bottom separates cells.
                let rect = [(x0, y0), (x1 - 1, y1 - 1)];
                let Some(pred) = positions.get(c) else {
                    root.draw(&Rectangle::new(rect, MISSING.filled()))
                        .map_err(draw_error)?;
                    continue;
                };
                let fill = viridis(self.scale.fraction(self.number(pred)));
                root.draw(&Rectangle::new(rect, fill.filled()))
                    .map_err(draw_error)?;
                let label = label(&pred.token, self.max_chars);
                let room = f64::from(x1 - x0 - 8);
                let (label, size) = fit(&label, CELL_FONT, CELL_FONT_MIN, room);
                let centre = ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2);
                self.text(root, &label, centre, size, &text_color(fill), HPos::Center)?;
            }
        }
        Ok(())
    }

    /// Layer numbers left of the rows ("emb 0" at the bottom, "out L" on top)
    /// and the axis title.
    fn draw_layer_axis<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let last = self.report.layers.len() - 1;
        for (r, &layer) in self.rows.iter().rev().enumerate() {
            let (y0, y1) = self.row_span(r);
            let number = self.report.layers[layer].layer;
            let label = match layer {
                0 => format!("emb {number}"),
                l if l == last => format!("out {number}"),
                _ => number.to_string(),
            };
            let at = (self.grid_x - 8, (y0 + y1 - 1) / 2);
            self.text(root, &label, at, TICK_FONT, &INK, HPos::Right)?;
        }
        let centre = (16, self.grid_y + self.grid_h / 2);
        self.vertical_text(root, "layer", centre, AXIS_FONT, &MUTED)
    }

    /// Input tokens under the columns, their positions below, then the axis title.
    fn draw_token_axis<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let y = self.grid_y + self.grid_h;
        for (c, token) in self.report.tokens.iter().enumerate() {
            let (x0, x1) = self.col_span(c);
            let cx = (x0 + x1 - 1) / 2;
            let label = label(&token.display, self.max_chars);
            let (label, size) = fit(&label, TICK_FONT, CELL_FONT_MIN, f64::from(x1 - x0 - 4));
            self.text(root, &label, (cx, y + 14), size, &INK, HPos::Center)?;
            self.text(
                root,
                &c.to_string(),
                (cx, y + 31),
                10.0,
                &MUTED,
                HPos::Center,
            )?;
        }
        let centre = (self.grid_x + self.grid_w / 2, y + 52);
        self.text(
            root,
            "input token (position)",
            centre,
            AXIS_FONT,
            &MUTED,
            HPos::Center,
        )
    }

    /// The gradient, its ticks and the colour statistic's title ("entropy (nats)"), right
    /// of the grid.
    fn draw_colorbar<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let x0 = self.grid_x + self.grid_w + COLORBAR_GAP;
        let x1 = x0 + COLORBAR_W;
        let (top, bottom) = (self.grid_y, self.grid_y + self.grid_h - 1);
        let span = f64::from((bottom - top).max(1));
        // One 2 px band per step keeps the SVG small and the gradient smooth.
        for y in (top..bottom).step_by(2) {
            let t = f64::from(bottom - y) / span;
            let band = [(x0, y), (x1, (y + 2).min(bottom))];
            root.draw(&Rectangle::new(band, viridis(t).filled()))
                .map_err(draw_error)?;
        }
        root.draw(&Rectangle::new(
            [(x0, top), (x1, bottom)],
            MUTED.stroke_width(1),
        ))
        .map_err(draw_error)?;
        let mut widest = 0.0f64;
        for value in self.scale.ticks() {
            let t = (value - self.scale.min) / (self.scale.max - self.scale.min);
            let y = bottom - (t * span).round() as i32;
            root.draw(&PathElement::new(
                [(x1, y), (x1 + 4, y)],
                MUTED.stroke_width(1),
            ))
            .map_err(draw_error)?;
            let label = self.scale.label(value);
            widest = widest.max(text_width(&label, TICK_FONT));
            self.text(root, &label, (x1 + 8, y), TICK_FONT, &INK, HPos::Left)?;
        }
        let cx = x1 + 8 + widest.ceil() as i32 + 14;
        let centre = (cx, (top + bottom) / 2);
        self.vertical_text(root, &self.color.title(), centre, AXIS_FONT, &MUTED)
    }
}

/// Left side bearings read from the bundled font's `cmap` and `hmtx` tables,
/// for placing bitmap glyphs where the font means them to be.
mod bearing {
    use super::FONT_TTF;

    /// The pixels between a glyph's pen position and its ink, as ab_glyph
    /// rasterises it at `size` (0 for chars the font lacks).
    pub fn left(c: char, size: f64) -> i32 {
        units(FONT_TTF, c)
            .map(|(lsb, height)| (f64::from(lsb) * size / f64::from(height)).floor() as i32)
            .unwrap_or(0)
    }

    /// Whether the font has a glyph for `c`.
    #[cfg(test)]
    pub fn has_glyph(c: char) -> bool {
        glyph_id(FONT_TTF, c).is_some_and(|g| g != 0)
    }

    /// The char's left side bearing and the font's ascent − descent (ab_glyph's
    /// pixel scale), both in font units.
    fn units(font: &[u8], c: char) -> Option<(i16, u16)> {
        let hhea = table(font, b"hhea")?;
        let hmtx = table(font, b"hmtx")?;
        let height =
            u16::try_from(i32::from(i16_at(font, hhea + 4)?) - i32::from(i16_at(font, hhea + 6)?))
                .ok()?;
        let metrics = usize::from(u16_at(font, hhea + 34)?);
        let glyph = usize::from(glyph_id(font, c)?);
        let lsb = if glyph < metrics {
            i16_at(font, hmtx + 4 * glyph + 2)?
        } else {
            i16_at(font, hmtx + 4 * metrics + 2 * (glyph - metrics))?
        };
        (height > 0).then_some((lsb, height))
    }

    /// The glyph for `c` from the Windows BMP cmap (format 4).
    fn glyph_id(font: &[u8], c: char) -> Option<u16> {
        let code = u16::try_from(u32::from(c)).ok()?;
        let cmap = table(font, b"cmap")?;
        let sub = (0..usize::from(u16_at(font, cmap + 2)?)).find_map(|i| {
            let record = cmap + 4 + 8 * i;
            let windows_bmp = u16_at(font, record)? == 3 && u16_at(font, record + 2)? == 1;
            windows_bmp.then(|| Some(cmap + u32_at(font, record + 4)? as usize))?
        })?;
        if u16_at(font, sub)? != 4 {
            return None;
        }
        let segments = usize::from(u16_at(font, sub + 6)? / 2);
        let ends = sub + 14;
        let starts = ends + 2 * segments + 2;
        let deltas = starts + 2 * segments;
        let ranges = deltas + 2 * segments;
        let i =
            (0..segments).find(|&i| u16_at(font, ends + 2 * i).is_some_and(|end| code <= end))?;
        let start = u16_at(font, starts + 2 * i)?;
        if code < start {
            return None;
        }
        let delta = u16_at(font, deltas + 2 * i)?;
        let range = usize::from(u16_at(font, ranges + 2 * i)?);
        if range == 0 {
            return Some(code.wrapping_add(delta));
        }
        let glyph = u16_at(font, ranges + 2 * i + range + 2 * usize::from(code - start))?;
        (glyph != 0).then(|| glyph.wrapping_add(delta))
    }

    /// The offset of the table tagged `tag`.
    fn table(font: &[u8], tag: &[u8; 4]) -> Option<usize> {
        (0..usize::from(u16_at(font, 4)?)).find_map(|i| {
            let record = 12 + 16 * i;
            (font.get(record..record + 4)? == tag)
                .then(|| Some(u32_at(font, record + 8)? as usize))?
        })
    }

    fn u16_at(font: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_be_bytes(font.get(at..at + 2)?.try_into().ok()?))
    }

    fn i16_at(font: &[u8], at: usize) -> Option<i16> {
        Some(i16::from_be_bytes(font.get(at..at + 2)?.try_into().ok()?))
    }

    fn u32_at(font: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_be_bytes(font.get(at..at + 4)?.try_into().ok()?))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn bearings_match_dejavu() {
            // DejaVu Sans: 'l' lsb 193, 'e' lsb 113, space lsb 0; ascent − descent 2384.
            assert_eq!(units(FONT_TTF, 'l'), Some((193, 2384)));
            assert_eq!(units(FONT_TTF, 'e'), Some((113, 2384)));
            assert_eq!(left('l', 24.0), 1);
            assert_eq!(left('😀', 24.0), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lens::{LogitLens, TokenStat};
    use crate::output::{InputToken, Layer};

    /// 3 tokens × 5 layers; entropy rises with position so columns differ.
    fn report(layers: usize, tokens: &[&str]) -> Report {
        let tokens: Vec<InputToken> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| InputToken {
                id: i as u32,
                text: t.to_string(),
                bytes: None,
                display: t.to_string(),
            })
            .collect();
        let layers = (0..layers)
            .map(|l| Layer {
                layer: l,
                site: crate::lens::Site::ResidPost,
                positions: (0..tokens.len())
                    .map(|p| Prediction {
                        token: format!(" tok{l}_{p}"),
                        exact: crate::tokens::exact_text(format!(" tok{l}_{p}").as_bytes()),
                        stat: TokenStat {
                            id: p as u32,
                            prob: 0.5,
                            entropy: if p == 0 { 0.05 } else { 1.0 + p as f32 * 2.0 },
                            ..TokenStat::default()
                        },
                        topk: Vec::new(),
                        targets: Vec::new(),
                    })
                    .collect(),
            })
            .collect();
        Report {
            model: "test/model-1b".to_string(),
            prompt: "The quick\nbrown fox".to_string(),
            prompt_index: 0,
            prompt_id: None,
            lens: std::sync::Arc::new(LogitLens::default()),
            lens_kind: "logit",
            first_layer: None,
            settled_layer: None,
            top_k: 0,
            tokens,
            targets: Vec::new(),
            layers,
            provenance: None,
        }
    }

    fn decode(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut reader = png::Decoder::new(bytes).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn png_has_the_promised_size_and_coloured_cells() {
        let r = report(5, &["The", " quick", " fox"]);
        let bytes = render(&r, &HeatmapOptions::default(), ImageFormat::Png).unwrap();
        let (info, rgb) = decode(&bytes);
        let opts = HeatmapOptions::default();
        assert_eq!(
            (info.width, info.height),
            image_size(&r, &HeatmapOptions::default())
        );
        assert_eq!(info.height, image_height(5));
        assert_eq!(info.color_type, png::ColorType::Rgb);

        let rows = shown_layers(5, 1);
        let widths = column_widths(&r, &opts, &rows);
        let plot = Plot::new(&r, &opts, rows, widths, ImageFormat::Png);
        // Sample near the top-left corner of a cell, away from its label.
        let pixel = |c: usize, row: usize| {
            let (x0, _) = plot.col_span(c);
            let (y0, _) = plot.row_span(row);
            let i = ((y0 + 3) as usize * info.width as usize + (x0 + 3) as usize) * 3;
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        let low = pixel(0, 2);
        let high = pixel(2, 2);
        assert_ne!(low, high);
        let expected = viridis(plot.scale.fraction(f64::from(0.05f32)));
        assert_eq!(low, [expected.0, expected.1, expected.2]);
    }

    #[test]
    fn shown_layers_keeps_the_output_layer() {
        assert_eq!(shown_layers(25, 2), (0..=24).step_by(2).collect::<Vec<_>>());
        assert_eq!(shown_layers(24, 5), vec![0, 5, 10, 15, 20, 23]);
        assert_eq!(shown_layers(3, 1), vec![0, 1, 2]);
        assert_eq!(shown_layers(1, 4), vec![0]);
        assert_eq!(shown_layers(0, 4), Vec::<usize>::new());
        assert_eq!(shown_layers(4, 0), vec![0, 1, 2, 3]);
    }

    #[test]
    fn svg_has_the_title() {
        let r = report(5, &["The", " quick", " fox"]);
        let bytes = render(&r, &HeatmapOptions::default(), ImageFormat::Svg).unwrap();
        let svg = String::from_utf8(bytes).unwrap();
        assert!(svg.contains("<svg"));
        assert!(svg.contains("test/model-1b"));
        assert!(svg.contains("The quick↵brown fox"));
        let (w, h) = image_size(&r, &HeatmapOptions::default());
        assert!(
            svg.contains(&format!("width=\"{w}\"")) && svg.contains(&format!("height=\"{h}\""))
        );
    }

    #[test]
    fn format_from_path() {
        assert_eq!(
            ImageFormat::from_path(Path::new("a.png")).unwrap(),
            ImageFormat::Png
        );
        assert_eq!(
            ImageFormat::from_path(Path::new("dir/A.PNG")).unwrap(),
            ImageFormat::Png
        );
        assert_eq!(
            ImageFormat::from_path(Path::new("b.svg")).unwrap(),
            ImageFormat::Svg
        );
        let err = ImageFormat::from_path(Path::new("c.jpg"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("jpg") && err.contains("png") && err.contains("svg"),
            "{err}"
        );
        assert!(ImageFormat::from_path(Path::new("noext")).is_err());
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let opts = HeatmapOptions::default();
        let mut empty = report(5, &[]);
        assert!(render(&empty, &opts, ImageFormat::Png).is_err());
        empty.layers.clear();
        assert!(render(&empty, &opts, ImageFormat::Svg).is_err());

        let mut r = report(
            3,
            &[
                "",
                "\n",
                "a\u{0}b",
                "日本語のトークンです",
                "WWWWWWWWWWWWWWWWWW",
            ],
        );
        r.layers[1].positions[0].stat.entropy = f32::NAN;
        r.layers[1].positions[1].stat.entropy = f32::INFINITY;
        r.layers[2].positions[2].stat.entropy = -1.0;
        r.layers[0].positions[3].token = String::new();
        r.layers[2].positions.truncate(2);
        r.prompt = "x".repeat(10_000);
        let tiny = HeatmapOptions {
            layer_step: 0,
            max_label_chars: 0,
            color_range: Some((-1.0, 0.5)),
            ..HeatmapOptions::default()
        };
        for opts in [&opts, &tiny] {
            for format in [ImageFormat::Png, ImageFormat::Svg] {
                render(&r, opts, format).unwrap();
            }
        }
        let huge = report(2, &vec!["t"; 100_000]);
        assert!(render(&huge, &opts, ImageFormat::Png).is_err());
    }

    #[test]
    fn all_nan_entropies_use_a_unit_scale() {
        let mut r = report(2, &["a"]);
        for layer in &mut r.layers {
            layer.positions[0].stat.entropy = f32::NAN;
        }
        render(&r, &HeatmapOptions::default(), ImageFormat::Png).unwrap();
        assert_eq!(
            Scale::new(f64::NAN),
            Scale {
                min: 0.0,
                max: 1.0,
                step: 0.2
            }
        );
    }

    #[test]
    fn scale_rounds_up_to_a_tick() {
        let s = Scale::new(10.37);
        assert_eq!((s.max, s.step), (12.0, 2.0));
        assert_eq!(s.ticks().len(), 7);
        let s = Scale::new(0.7);
        assert_eq!(s.label(0.4), "0.4");
        assert_eq!(Scale::new(14.0).label(2.5), "2.5");
        assert!(Scale::new(3.0).max >= 3.0);
        assert_eq!(
            Scale::new(10.37).ticks(),
            [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
        );
    }

    #[test]
    fn a_fixed_scale_labels_its_ends() {
        let s = Scale::fixed(0.0, 10.0);
        assert_eq!(s.ticks(), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let s = Scale::fixed(1.5, 7.9);
        // The largest entropy over 49,152 tokens: 10 would crowd the end's label.
        let top = (49152f32).ln();
        assert_eq!(
            Scale::fixed(0.0, top).ticks(),
            [0.0, 2.0, 4.0, 6.0, 8.0, f64::from(top)]
        );
        // Step 2: the tick at 2 would crowd the end at 1.5.
        assert_eq!(s.ticks(), [1.5, 4.0, 6.0, f64::from(7.9f32)]);
        assert_eq!(s.label(1.5), "1.5");
        assert_eq!(s.fraction(1.5), 0.0);
        assert_eq!(s.fraction(100.0), 1.0);
        assert_eq!(s.fraction(-3.0), 0.0);
    }

    #[test]
    fn color_range_parses_and_refuses_empty_ranges() {
        assert_eq!(parse_color_range("0..10").unwrap(), (0.0, 10.0));
        assert_eq!(parse_color_range(" 0.5 .. 8.25").unwrap(), (0.5, 8.25));
        for bad in ["10..0", "3..3", "0-10", "a..2", "0..inf", "..4"] {
            assert!(parse_color_range(bad).is_err(), "{bad}");
        }
        let err = parse_color_range("10..0").unwrap_err().to_string();
        assert!(err.contains("MIN < MAX"), "{err}");
        let r = report(2, &["a"]);
        let opts = HeatmapOptions {
            color_range: Some((4.0, 4.0)),
            ..Default::default()
        };
        assert!(render(&r, &opts, ImageFormat::Png).is_err());
    }

    /// The colour of the cell at (column `c`, display row `row`) of a rendered PNG.
    fn cell_color(r: &Report, opts: &HeatmapOptions, c: usize, row: usize) -> [u8; 3] {
        let (info, rgb) = decode(&render(r, opts, ImageFormat::Png).unwrap());
        let rows = shown_layers(r.layers.len(), opts.layer_step);
        let plot = Plot::new(
            r,
            opts,
            rows.clone(),
            column_widths(r, opts, &rows),
            ImageFormat::Png,
        );
        let (x0, _) = plot.col_span(c);
        let (y0, _) = plot.row_span(row);
        let i = ((y0 + 3) as usize * info.width as usize + (x0 + 3) as usize) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    #[test]
    fn a_fixed_color_range_makes_figures_comparable() {
        // Two reports whose largest entropies differ: the same entropy (0.05 at
        // position 0) gets different colours on their own scales, one colour on a
        // shared one.
        let small = report(3, &["a", "b"]);
        let mut large = report(3, &["a", "b"]);
        large.layers[0].positions[1].stat.entropy = 11.0;
        let own = HeatmapOptions::default();
        assert_ne!(
            cell_color(&small, &own, 0, 0),
            cell_color(&large, &own, 0, 0)
        );
        let shared = HeatmapOptions {
            color_range: Some((0.0, 2.0)),
            ..Default::default()
        };
        let a = cell_color(&small, &shared, 0, 0);
        assert_eq!(a, cell_color(&large, &shared, 0, 0));
        let want = viridis(0.05 / 2.0);
        assert_eq!(a, [want.0, want.1, want.2]);
        // 3.0 is past the range's end: the top colour.
        let top = viridis(1.0);
        assert_eq!(cell_color(&small, &shared, 1, 0), [top.0, top.1, top.2]);
    }

    #[test]
    fn spaces_and_invisible_characters_are_marked() {
        assert_eq!(visible(" the"), "·the");
        assert_eq!(visible("the"), "the");
        assert_eq!(visible("\n   "), "↵···");
        assert_eq!(visible("  a b "), "··a b·");
        assert_eq!(visible("   "), "···");
        assert_eq!(visible("\u{A0}"), "⍽");
        assert_eq!(visible("a\u{200B}"), "a\\u{200B}");
        assert_eq!(visible("\u{FEFF}"), "\\u{FEFF}");
        assert_eq!(visible(""), "\"\"");
        // Every stand-in is in the bundled font, so none draws as a blank box.
        assert_eq!(visible("a\r"), "a⇤");
        assert_eq!(visible("a␍"), "a⇤");
        for c in ['·', '⍽', '↵', '→', '⇤', '…', '␣', '⇥'] {
            assert!(bearing::has_glyph(c), "DejaVu Sans lacks {c:?}");
        }
    }

    #[test]
    fn columns_follow_their_labels_within_limits() {
        register_font();
        let r = report(2, &["a", " international", "↵   ", &"w".repeat(60)]);
        let opts = HeatmapOptions::default();
        let widths = column_widths(&r, &opts, &[0, 1]);
        // The cells (" tok0_0"…) set the narrow columns; a long word widens its own.
        assert!(widths[1] > widths[0], "{widths:?}");
        let whole = text_width(&visible(" international"), TICK_FONT);
        assert!(f64::from(widths[1]) >= whole + 4.0, "{widths:?} vs {whole}");
        assert_eq!(widths[3], MAX_CELL_W);
        assert!(widths
            .iter()
            .all(|&w| (MIN_CELL_W..=MAX_CELL_W).contains(&w)));
        // The axis label "↵   " is drawn whole, as ↵···, not cut to ↵.
        assert_eq!(label("↵   ", opts.max_label_chars), "↵···");
        let (w, h) = image_size(&r, &opts);
        assert_eq!(w, MARGIN_LEFT + widths.iter().sum::<u32>() + MARGIN_RIGHT);
        assert_eq!(h, image_height(2));
        let (lo, hi) = width_bounds(4);
        assert!(lo <= w && w <= hi);
        // Words of ordinary length are not cut.
        for word in [" international", " understanding", " nevertheless"] {
            let (shown, _) = fit(
                &label(word, opts.max_label_chars),
                CELL_FONT,
                CELL_FONT_MIN,
                f64::from(MAX_CELL_W) - 8.0,
            );
            assert!(!shown.ends_with('…'), "{word} cut to {shown}");
        }
    }

    #[test]
    fn labels_are_cut_by_chars() {
        assert_eq!(label(" abcdefghij", 8), "·abcdef…");
        assert_eq!(truncate("abcdefghij", 8), "abcdefg…");
        assert_eq!(truncate("abcdefgh", 8), "abcdefgh");
        assert_eq!(truncate("ééééééééé", 4), "ééé…");
        assert_eq!(truncate("abc", 0), "…");
        assert_eq!(visible("a\nb"), "a↵b");
    }

    #[test]
    fn text_contrasts_with_the_cell() {
        assert_eq!(text_color(viridis(0.0)), WHITE);
        assert_eq!(text_color(viridis(1.0)), BLACK);
    }

    /// Writes a realistic sample to $TMPDIR/heatmap_test.{png,svg} for eyeballing:
    /// `cargo test --lib heatmap -- --ignored`.
    #[test]
    #[ignore]
    fn sample_png() {
        let tokens = [
            "<s>",
            "The",
            " quick",
            " brown",
            " fox",
            " jumps",
            "↵   ",
            " over",
            "\u{A0}",
            " the",
            " internationalization",
            "\u{200B}",
            " dog",
        ];
        let mut r = report(25, &tokens);
        let words = [
            " the",
            " dog",
            " a",
            " fox",
            " and",
            "ing",
            " jumped",
            "↵",
            " Lorem",
            " understanding",
            "\u{A0}",
            "the",
            "日本",
            ",",
        ];
        for layer in &mut r.layers {
            for (p, pred) in layer.positions.iter_mut().enumerate() {
                let l = layer.layer as f32;
                pred.token = words[(p * 7 + layer.layer / 3) % words.len()].to_string();
                pred.stat.entropy = (9.5 - l * 0.35 + (p as f32 * 1.7).sin() * 1.5).max(0.02);
            }
        }
        r.model = "meta-llama/Llama-3.2-1B".to_string();
        r.prompt = "The quick brown fox jumps\nover the lazy dog. ".repeat(4);
        let bytes = render(&r, &HeatmapOptions::default(), ImageFormat::Png).unwrap();
        std::fs::write(std::env::temp_dir().join("heatmap_test.png"), bytes).unwrap();
        let svg = render(
            &r,
            &HeatmapOptions {
                layer_step: 3,
                ..Default::default()
            },
            ImageFormat::Svg,
        )
        .unwrap();
        std::fs::write(std::env::temp_dir().join("heatmap_test.svg"), svg).unwrap();
    }
}
