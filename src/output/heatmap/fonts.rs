//! Fonts for the characters the bundled DejaVu Sans lacks (CJK, Hangul, kana, …): the
//! machine's own fonts that cover them, found by scanning the usual font directories and
//! reading each file's character map (once per process, only when such a character is
//! drawn), each registered with plotters under a family name of its own. A character that
//! no font on the machine covers is drawn as its code point in a box (`4E2D` framed), never
//! as an empty box.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use plotters::style::FontStyle;

use super::bearing::{u16_at as be16, u32_at as be32};
use super::text::FONT_TTF;

/// Where a character's glyph comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Face {
    /// The bundled DejaVu Sans.
    Bundled,
    /// A font of the machine, registered with plotters under this family name.
    System(&'static str),
    /// No font covers it: drawn as its code point in a box.
    Missing,
}

/// Where `c`'s glyph comes from: the bundled font when it has one, else the first font of
/// the machine (in [`candidates`]' order) that has one, else none.
pub(crate) fn face(c: char) -> Face {
    if c.is_ascii() || glyph(FONT_TTF, c) != 0 {
        return Face::Bundled;
    }
    let mut fonts = FONTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&face) = fonts.faces.get(&c) {
        return face;
    }
    let face = fonts.find(c);
    fonts.faces.insert(c, face);
    face
}

/// The fonts of the machine, as far as they have been looked at.
struct Fonts {
    /// Each character's face once asked for.
    faces: BTreeMap<char, Face>,
    /// The font files, in the order they are tried; `None` until first needed.
    candidates: Option<Vec<Candidate>>,
    /// How many fonts have been registered.
    registered: usize,
}

/// A font file of the machine.
struct Candidate {
    path: PathBuf,
    /// Its character map (the `cmap` table's bytes); `None` until read, empty when the
    /// file cannot be read as a font.
    cmap: Option<Vec<u8>>,
    /// Its family name with plotters, once registered.
    family: Option<&'static str>,
}

static FONTS: Mutex<Fonts> = Mutex::new(Fonts {
    faces: BTreeMap::new(),
    candidates: None,
    registered: 0,
});

impl Fonts {
    /// The first font of the machine that covers `c`, registered with plotters.
    fn find(&mut self, c: char) -> Face {
        let mut registered = self.registered;
        let candidates = self.candidates.get_or_insert_with(candidates);
        let mut face = Face::Missing;
        for cand in candidates.iter_mut() {
            let cmap = cand
                .cmap
                .get_or_insert_with(|| read_cmap(&cand.path).unwrap_or_default());
            if cmap.is_empty() || glyph_in(cmap, 0, c) == 0 {
                continue;
            }
            if let Some(family) = cand.family {
                face = Face::System(family);
                break;
            }
            let Ok(bytes) = std::fs::read(&cand.path) else {
                cand.cmap = Some(Vec::new());
                continue;
            };
            // Registered fonts live as long as the process, as the bundled one does.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            let family: &'static str =
                Box::leak(format!("logitlens-fallback-{registered}").into_boxed_str());
            if plotters::style::register_font(family, FontStyle::Normal, bytes).is_err() {
                cand.cmap = Some(Vec::new());
                continue;
            }
            registered += 1;
            cand.family = Some(family);
            face = Face::System(family);
            break;
        }
        self.registered = registered;
        face
    }
}

/// The directories fonts are installed in (Linux, then macOS).
fn font_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["/usr/share/fonts", "/usr/local/share/fonts"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        dirs.extend([home.join(".local/share/fonts"), home.join(".fonts")]);
    }
    dirs.extend(
        ["/Library/Fonts", "/System/Library/Fonts"]
            .iter()
            .map(PathBuf::from),
    );
    dirs
}

/// Every TrueType / OpenType file (`.ttf`, `.otf`, `.ttc`) under the font directories, the
/// plain faces first (not bold, italic, light, …), then by path, so the choice is the same
/// on every run.
fn candidates() -> Vec<Candidate> {
    let mut files = Vec::new();
    for dir in font_dirs() {
        walk(&dir, 0, &mut files);
    }
    let styled = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        [
            "bold", "italic", "oblique", "light", "thin", "black", "heavy", "mono", "serif",
        ]
        .iter()
        .filter(|w| name.contains(*w))
        .count()
    };
    files.sort_by_cached_key(|p| (styled(p), p.clone()));
    files
        .into_iter()
        .map(|path| Candidate {
            path,
            cmap: None,
            family: None,
        })
        .collect()
}

/// Collects the font files under `dir`, at most 8 directories deep.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() && depth < 8 => walk(&path, depth + 1, out),
            Ok(_) => {
                let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
                if matches!(ext.as_deref(), Some("ttf" | "otf" | "ttc")) {
                    out.push(path);
                }
            }
            Err(_) => {}
        }
    }
}

/// The glyph id of `c` in `font` (a TrueType / OpenType file or the first font of a
/// collection); 0 when it has none.
pub(crate) fn glyph(font: &[u8], c: char) -> u32 {
    cmap_range(font).map_or(0, |(start, _)| glyph_in(font, start, c))
}

/// The bytes of the `cmap` table of the font file at `path`, read without reading the rest
/// (a CJK font is tens of MB).
fn read_cmap(path: &Path) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let mut read = |at: u64, len: usize| {
        let mut buf = vec![0; len];
        file.seek(SeekFrom::Start(at)).ok()?;
        file.read_exact(&mut buf).ok()?;
        Some(buf)
    };
    // The table directory (after a collection's header), then the table.
    let head = read(0, 16)?;
    let dir = match &head[..4] {
        b"ttcf" => u64::from(be32(&head, 12)?),
        _ => 0,
    };
    let tables = usize::from(be16(&read(dir + 4, 2)?, 0)?);
    let records = read(dir + 12, 16 * tables)?;
    let record = records.chunks_exact(16).find(|r| &r[..4] == b"cmap")?;
    let (start, len) = (be32(record, 8)?, be32(record, 12)?);
    read(u64::from(start), usize::try_from(len).ok()?.min(1 << 24))
}

/// Where `font`'s `cmap` table lies.
fn cmap_range(font: &[u8]) -> Option<(usize, usize)> {
    // A collection (`ttcf`) lists its fonts' offsets; the first is what plotters draws.
    let dir = match font.get(..4)? {
        b"ttcf" => be32(font, 12)? as usize,
        _ => 0,
    };
    let tables = usize::from(be16(font, dir + 4)?);
    (0..tables).find_map(|i| {
        let record = dir + 12 + 16 * i;
        (font.get(record..record + 4)? == b"cmap").then_some(())?;
        let start = be32(font, record + 8)? as usize;
        Some((start, start.checked_add(be32(font, record + 12)? as usize)?))
    })
}

/// The glyph id of `c` in the `cmap` table at `cmap` in `data`, from its best Unicode
/// subtable: a format 12 (all of Unicode) before a format 4 (the BMP); 0 when it has none.
fn glyph_in(data: &[u8], cmap: usize, c: char) -> u32 {
    let code = u32::from(c);
    let subtables = be16(data, cmap + 2).map_or(0, usize::from);
    let find = |format: u16| {
        (0..subtables).find_map(|i| {
            let record = cmap + 4 + 8 * i;
            let (platform, encoding) = (be16(data, record)?, be16(data, record + 2)?);
            let unicode = platform == 0 || (platform == 3 && matches!(encoding, 1 | 10));
            let sub = cmap + be32(data, record + 4)? as usize;
            (unicode && be16(data, sub)? == format).then_some(sub)
        })
    };
    if let Some(sub) = find(12) {
        return format12(data, sub, code).unwrap_or(0);
    }
    match (find(4), u16::try_from(code)) {
        (Some(sub), Ok(code)) => format4(data, sub, code).unwrap_or(0),
        _ => 0,
    }
}

/// A format 12 subtable's glyph for `code`: groups of consecutive codes, sorted.
fn format12(data: &[u8], sub: usize, code: u32) -> Option<u32> {
    let groups = be32(data, sub + 12)? as usize;
    let group = |i: usize| {
        let g = sub + 16 + 12 * i;
        Some((be32(data, g)?, be32(data, g + 4)?, be32(data, g + 8)?))
    };
    let (mut lo, mut hi) = (0, groups);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let (start, end, glyph) = group(mid)?;
        match (code < start, code > end) {
            (true, _) => hi = mid,
            (_, true) => lo = mid + 1,
            _ => return Some(glyph + (code - start)),
        }
    }
    None
}

/// A format 4 subtable's glyph for `code`: segments sorted by their end.
fn format4(data: &[u8], sub: usize, code: u16) -> Option<u32> {
    let segments = usize::from(be16(data, sub + 6)? / 2);
    let ends = sub + 14;
    let starts = ends + 2 * segments + 2;
    let deltas = starts + 2 * segments;
    let offsets = deltas + 2 * segments;
    let (mut lo, mut hi) = (0, segments);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match be16(data, ends + 2 * mid)? < code {
            true => lo = mid + 1,
            false => hi = mid,
        }
    }
    let i = lo;
    if i >= segments || code < be16(data, starts + 2 * i)? {
        return None;
    }
    let delta = be16(data, deltas + 2 * i)?;
    let offset = be16(data, offsets + 2 * i)?;
    if offset == 0 {
        return Some(u32::from(code.wrapping_add(delta)));
    }
    let start = be16(data, starts + 2 * i)?;
    let at = offsets + 2 * i + usize::from(offset) + 2 * usize::from(code - start);
    match be16(data, at)? {
        0 => Some(0),
        g => Some(u32::from(g.wrapping_add(delta))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_font_maps_what_it_draws() {
        // DejaVu Sans has Latin, Greek, Cyrillic, basic Arabic and (format 12) an emoji face.
        for c in ['a', 'é', 'Λ', 'Ж', 'ع', '😀'] {
            assert_ne!(glyph(FONT_TTF, c), 0, "{c}");
            assert_eq!(face(c), Face::Bundled, "{c}");
        }
        // It has no CJK, Hangul or kana; an unassigned code point is in no font.
        for c in ['中', '한', 'あ', '\u{378}'] {
            assert_eq!(glyph(FONT_TTF, c), 0, "{c}");
        }
        assert_eq!(face('\u{378}'), Face::Missing);
        // Read from the file, the map is the same.
        let dir = std::env::temp_dir().join(format!("logitlens-fonts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("DejaVuSans.ttf");
        std::fs::write(&file, FONT_TTF).unwrap();
        let read = read_cmap(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let (start, end) = cmap_range(FONT_TTF).unwrap();
        assert_eq!(read, FONT_TTF[start..end]);
        // The format 4 (the bearings') and format 12 subtables agree on the BMP.
        for c in ['a', 'Λ', 'Ж', 'ع', '⍽', '·'] {
            assert_eq!(
                super::super::bearing::glyph_id(FONT_TTF, c).map(u32::from),
                Some(glyph_in(FONT_TTF, start, c)),
                "{c} in DejaVu's two maps"
            );
        }
    }
}
