//! Text: the bundled font, legible token labels, and fitting text into a width.

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// Font family for all text; registered from the bundled TTF in [`register_font`].
pub(super) const FONT: &str = "sans-serif";
/// DejaVu Sans, bundled so text renders without system fonts.
pub(super) const FONT_TTF: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// Makes the bundled DejaVu Sans the "sans-serif" family, once per process,
/// so text renders on machines without system fonts.
pub(super) fn register_font() {
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
pub(super) fn visible(text: &str) -> String {
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

/// The rendered width of `text` in the bundled font, in pixels.
pub(super) fn text_width(text: &str, size: f64) -> f64 {
    match (FONT, size).into_font().box_size(text) {
        Ok((w, _)) => f64::from(w),
        // No font: a generous guess, so text is cut rather than overflowing.
        Err(_) => text.chars().count() as f64 * size * 0.65,
    }
}

/// The largest size in `min..=size` at which `text` fits `max_w`, cutting
/// it further (with `…`) if it does not fit even at `min`.
pub(super) fn fit(text: &str, size: f64, min: f64, max_w: f64) -> (String, f64) {
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
