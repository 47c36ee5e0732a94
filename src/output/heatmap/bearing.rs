//! Left side bearings read from the bundled font's `cmap` and `hmtx` tables,
//! for placing bitmap glyphs where the font means them to be.

use super::text::FONT_TTF;

/// The pixels between a glyph's pen position and its ink, as ab_glyph
/// rasterises it at `size` (0 for chars the font lacks).
pub(super) fn left(c: char, size: f64) -> i32 {
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
pub(super) fn glyph_id(font: &[u8], c: char) -> Option<u16> {
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
    let i = (0..segments).find(|&i| u16_at(font, ends + 2 * i).is_some_and(|end| code <= end))?;
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
        (font.get(record..record + 4)? == tag).then(|| Some(u32_at(font, record + 8)? as usize))?
    })
}

pub(super) fn u16_at(font: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(font.get(at..at + 2)?.try_into().ok()?))
}

fn i16_at(font: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(font.get(at..at + 2)?.try_into().ok()?))
}

pub(super) fn u32_at(font: &[u8], at: usize) -> Option<u32> {
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
