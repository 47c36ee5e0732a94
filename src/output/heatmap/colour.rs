//! Colours: the value → colour scale with its ticks, viridis, and text that contrasts
//! with a cell.

use plotters::prelude::*;

use crate::output::stats::{Extent, ScaleKind};

pub(crate) const INK: RGBColor = RGBColor(34, 34, 34);
pub(crate) const MUTED: RGBColor = RGBColor(110, 110, 110);
/// Cells the report lacks (ragged rows): drawn, but visibly empty.
pub(super) const MISSING: RGBColor = RGBColor(224, 224, 224);
/// Cells whose metric has no value (ce or rank at the last position): hatched.
pub(crate) const NO_VALUE: RGBColor = RGBColor(236, 236, 236);
pub(crate) const HATCH: RGBColor = RGBColor(150, 150, 150);

/// Matplotlib's viridis at 0, 0.1, …, 1: perceptually uniform and readable
/// in grey scale, so entropy differences look as large as they are.
pub(super) const VIRIDIS: [(u8, u8, u8); 11] = [
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

/// The statistic → colour scale and its ticks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scale {
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(super) step: f64,
    /// Logarithmic (ranks): `step` is then unused, and ticks fall on powers of 10.
    pub(crate) log: bool,
    /// Some value shown lies above `max` (drawn at the top colour): the top tick reads
    /// "≥ max".
    pub(crate) saturated: bool,
}

/// The "nice" step (1, 2, 2.5, 5 × 10ⁿ) that cuts `span` into at most 6.
pub(super) fn nice_step(span: f64) -> f64 {
    let magnitude = 10f64.powf((span / 5.0).log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|f| f * magnitude)
        .find(|s| s * 6.0 >= span)
        .unwrap_or(10.0 * magnitude)
}

impl Scale {
    /// The colour scale of a metric of `kind`: `range` when given, else 0..1 for
    /// probabilities, else up to `largest` (the largest value shown).
    pub(crate) fn of(kind: ScaleKind, range: Option<(f32, f32)>, largest: f64) -> Self {
        match (range, kind) {
            (Some((min, max)), ScaleKind::Log) => Scale::log(f64::from(min), f64::from(max)),
            (Some((min, max)), _) => Scale::fixed(min, max),
            (None, ScaleKind::Unit) => Scale::fixed(0.0, 1.0),
            (None, ScaleKind::Log) => Scale::log_observed(largest),
            (None, _) => Scale::new(largest),
        }
    }

    /// The colour scale of a metric of `kind` over values of `extent` ([`Colouring::extent`]):
    /// `range` when given, else as [`Scale::of`] up to the extent's top; saturated when the
    /// largest value lies above its end.
    ///
    /// [`Colouring::extent`]: crate::output::stats::Colouring::extent
    pub(crate) fn sized(kind: ScaleKind, range: Option<(f32, f32)>, extent: Extent) -> Self {
        let mut scale = Self::of(kind, range, extent.top);
        scale.saturated = extent.largest > scale.max * (1.0 + 1e-9);
        scale
    }

    /// 0 to `observed` rounded up to at most 6 "nice" steps (1, 2, 2.5, 5 × 10ⁿ).
    pub(crate) fn new(observed: f64) -> Self {
        if !(observed.is_finite() && observed > 0.0) {
            return Self {
                min: 0.0,
                max: 1.0,
                step: 0.2,
                log: false,
                saturated: false,
            };
        }
        let step = nice_step(observed);
        let max = (observed / step - 1e-9).ceil().max(1.0) * step;
        Self {
            min: 0.0,
            max,
            step,
            log: false,
            saturated: false,
        }
    }

    /// Exactly `min` to `max` (checked by [`check_color_range`]).
    pub(crate) fn fixed(min: f32, max: f32) -> Self {
        let (min, max) = (f64::from(min), f64::from(max));
        Self {
            min,
            max,
            step: nice_step(max - min),
            log: false,
            saturated: false,
        }
    }

    /// A logarithmic scale from exactly `min` to `max` (both at least 1).
    pub(super) fn log(min: f64, max: f64) -> Self {
        let min = min.max(1.0);
        Self {
            min,
            max: max.max(min * 10.0),
            step: 1.0,
            log: true,
            saturated: false,
        }
    }

    /// A logarithmic scale from 1 to `observed` rounded up to a power of 10 (at least 10).
    pub(crate) fn log_observed(observed: f64) -> Self {
        let top = match observed.is_finite() && observed > 1.0 {
            true => 10f64.powf((observed.log10() - 1e-9).ceil()),
            false => 10.0,
        };
        Self::log(1.0, top)
    }

    /// Where `value` falls in 0..=1; non-finite values count as the maximum.
    pub(crate) fn fraction(&self, value: f64) -> f64 {
        if self.log {
            let value = if value.is_finite() {
                value.max(self.min)
            } else {
                self.max
            };
            return ((value.ln() - self.min.ln()) / (self.max.ln() - self.min.ln()))
                .clamp(0.0, 1.0);
        }
        if value.is_finite() {
            ((value - self.min) / (self.max - self.min)).clamp(0.0, 1.0)
        } else {
            1.0
        }
    }

    /// The tick values: both ends, and the multiples of the step between them
    /// that are not crowding an end.
    pub(crate) fn ticks(&self) -> Vec<f64> {
        if self.log {
            // Powers of 10 inside, none within a third of a decade of an end.
            let (lo, hi) = (self.min.log10(), self.max.log10());
            let inner = (lo.ceil() as i32..=hi.floor() as i32)
                .map(f64::from)
                .filter(|&e| e - lo > 0.33 && hi - e > 0.33)
                .map(|e| 10f64.powf(e));
            return std::iter::once(self.min)
                .chain(inner)
                .chain(std::iter::once(self.max))
                .collect();
        }
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

    /// A tick's label with as few decimals as it needs, at most 3 (2.5 → "2.5", 2 → "2");
    /// the top of a saturated scale reads "≥ 12.5".
    pub(crate) fn label(&self, value: f64) -> String {
        if self.saturated && value == self.max {
            let plain = Self {
                saturated: false,
                ..self.clone()
            };
            return format!("≥ {}", plain.label(value));
        }
        if self.log {
            return format!("{}", value.round());
        }
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
pub(crate) fn viridis(t: f64) -> RGBColor {
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
pub(super) fn luminance(c: RGBColor) -> f64 {
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
pub(crate) fn text_color(background: RGBColor) -> RGBColor {
    let l = luminance(background);
    // Contrast ratios (L1 + 0.05) / (L2 + 0.05) against white and black.
    if 1.05 / (l + 0.05) >= (l + 0.05) / 0.05 {
        WHITE
    } else {
        BLACK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_scale_spaces_decades_evenly() {
        let s = Scale::log_observed(420.0);
        assert_eq!((s.min, s.max), (1.0, 1000.0));
        assert_eq!(s.fraction(1.0), 0.0);
        assert!((s.fraction(10.0) - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.fraction(100.0) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.fraction(1000.0), 1.0);
        assert_eq!(s.fraction(5000.0), 1.0);
        assert_eq!(s.fraction(f64::NAN), 1.0);
        assert_eq!(s.ticks(), [1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(s.label(1000.0), "1000");
        // A whole vocabulary: its end is labelled exactly; 10⁴ is far enough from it.
        let v = Scale::log(1.0, 49152.0);
        assert_eq!(v.ticks(), [1.0, 10.0, 100.0, 1000.0, 10000.0, 49152.0]);
        let near = Scale::log(1.0, 12000.0);
        assert_eq!(near.ticks(), [1.0, 10.0, 100.0, 1000.0, 12000.0]);
        // Ranks of 1 only still get a decade.
        assert_eq!(Scale::log_observed(1.0).max, 10.0);
        assert_eq!(Scale::log_observed(10.0).max, 10.0);
        assert_eq!(Scale::log_observed(11.0).max, 100.0);
    }

    #[test]
    fn linear_scales_are_unchanged_by_the_log_option() {
        let s = Scale::fixed(0.0, 1.0);
        assert!(!s.log);
        assert_eq!(s.fraction(0.25), 0.25);
        let labels: Vec<String> = s.ticks().iter().map(|&t| s.label(t)).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
    }
}
