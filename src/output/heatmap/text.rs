//! Text: the bundled font, legible token labels, and fitting text into a width.

use std::sync::Once;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform};

use super::fonts::{face, Face};
use super::{bearing, draw_error, ImageFormat};

/// Font family for all text; registered from the bundled TTF in [`register_font`].
pub(super) const FONT: &str = "sans-serif";
/// DejaVu Sans, bundled so text renders without system fonts.
pub(super) const FONT_TTF: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// Makes the bundled DejaVu Sans the "sans-serif" family, once per process,
/// so text renders on machines without system fonts.
pub(crate) fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // Cannot fail for the bundled font; were it to, drawing text reports it.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_TTF);
    });
}

/// Makes a token legible: newline, tab and carriage return `↵`, `→`, `⇤`,
/// other control characters escapes (which also keeps the SVG valid XML),
/// leading and trailing spaces a thin `·`, a no-break space `⍽`, zero-width
/// and other invisible characters escapes, the empty text `""`.
pub(crate) fn visible(text: &str) -> String {
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
pub(super) fn label(text: &str, max_chars: usize) -> String {
    truncate(&visible(text), max_chars)
}

/// `text` cut to at most `max_chars` chars, the last being `…` when cut.
pub(super) fn truncate(text: &str, max_chars: usize) -> String {
    let max_chars = max_chars.max(1);
    if text.chars().nth(max_chars).is_none() {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max_chars - 1).collect();
    cut.push('…');
    cut
}

/// The rendered width of `text` in the bundled font, in pixels; the characters it lacks
/// are measured in the font of the machine that draws them ([`face`]), or as the box that
/// shows their code point.
pub(crate) fn text_width(text: &str, size: f64) -> f64 {
    if text.chars().all(|c| face(c) == Face::Bundled) {
        return run_width(FONT, text, size);
    }
    runs(text)
        .map(|(face, run)| match face {
            Face::Bundled => run_width(FONT, run, size),
            Face::System(family) => run_width(family, run, size),
            Face::Missing => run.chars().map(|c| code_box(c, size).0).sum(),
        })
        .sum()
}

/// The width of `text` in the font `family`, in pixels.
fn run_width(family: &str, text: &str, size: f64) -> f64 {
    match (family, size).into_font().box_size(text) {
        Ok((w, _)) => f64::from(w),
        // No font: a generous guess, so text is cut rather than overflowing.
        Err(_) => text.chars().count() as f64 * size * 0.65,
    }
}

/// `text` cut into runs of characters drawn from the same face.
fn runs(text: &str) -> impl Iterator<Item = (Face, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = face(rest.chars().next()?);
        let end = rest
            .char_indices()
            .find(|&(_, c)| face(c) != first)
            .map_or(rest.len(), |(i, _)| i);
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some((first, run))
    })
}

/// The box that stands for a character no font covers: its width at `size` (the code
/// point's hex digits at [`CODE_SIZE`] of it, with a margin), and the digits.
fn code_box(c: char, size: f64) -> (f64, String) {
    let hex = format!("{:04X}", u32::from(c));
    (
        (run_width(FONT, &hex, size * CODE_SIZE) + 0.4 * size).ceil(),
        hex,
    )
}

/// The size of the hex digits in a [`code_box`], relative to the text's.
const CODE_SIZE: f64 = 0.55;

/// The largest size in `min..=size` at which `text` fits `max_w`, cutting
/// it further (with `…`) if it does not fit even at `min`.
pub(crate) fn fit(text: &str, size: f64, min: f64, max_w: f64) -> (String, f64) {
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

/// Draws text the same way on every backend, centred across its line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pen {
    pub(crate) format: ImageFormat,
}

impl Pen {
    /// Draws `text` with its cap height centred on `cy`.
    pub(crate) fn text<DB: DrawingBackend>(
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
    pub(crate) fn vertical_text<DB: DrawingBackend>(
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
    pub(crate) fn run<DB: DrawingBackend>(
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
            match face(c) {
                Face::Bundled => root
                    .draw_text(glyph, &style, place(pen + bearing::left(c, size)))
                    .map_err(draw_error)?,
                Face::System(family) => {
                    let style = TextStyle::from((family, size).into_font())
                        .color(color)
                        .transform(style.font.get_transform())
                        .pos(Pos::new(HPos::Left, VPos::Top));
                    root.draw_text(glyph, &style, place(pen))
                        .map_err(draw_error)?
                }
                Face::Missing => self.code_box(root, c, (x, y), pen, size, color, vertical)?,
            }
        }
        Ok(())
    }

    /// Draws the box that stands for `c`, which no font covers, at `pen` along the line
    /// through `(x, y)`: a frame around its code point's hex digits.
    #[allow(clippy::too_many_arguments)]
    fn code_box<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        c: char,
        (x, y): (i32, i32),
        pen: i32,
        size: f64,
        color: &RGBColor,
        vertical: bool,
    ) -> Result<()> {
        let (width, hex) = code_box(c, size);
        // Along the line and across it (down, or right when vertical) to the screen.
        let at = |along: f64, across: f64| {
            let (along, across) = (along.round() as i32, across.round() as i32);
            match vertical {
                true => (x + across, y - along),
                false => (x + along, y + across),
            }
        };
        let (left, right) = (
            f64::from(pen) + 0.1 * size,
            f64::from(pen) + width - 0.1 * size,
        );
        let half = 0.45 * size;
        root.draw(&Rectangle::new(
            [at(left, -half), at(right, half)],
            color.stroke_width(1),
        ))
        .map_err(draw_error)?;
        let centre = at(f64::from(pen) + width / 2.0, 0.0);
        self.run(
            root,
            &hex,
            centre,
            size * CODE_SIZE,
            color,
            HPos::Center,
            vertical,
        )
    }

    /// How far above the wanted cap-height centre a top-anchored text's
    /// origin sits, per font pixel: the backends place baselines differently.
    pub(crate) fn rise(&self) -> f64 {
        match self.format {
            // ab_glyph puts the baseline half a font size below the origin.
            ImageFormat::Png => 0.19,
            // SVG uses dy="0.76em" with font-size = size / 1.24.
            ImageFormat::Svg => 0.32,
        }
    }
}
