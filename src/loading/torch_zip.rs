//! The zip container of a `torch.save` file (`.pt`, `.pth`), checked before candle's
//! PyTorch reader opens it: every entry whole, stored, and matching its CRC-32.
//!
//! candle's reader reads each tensor's exact byte count, so the zip reader below it never
//! reaches the end of an entry, where it would compare the CRC-32: a flipped bit in the
//! weights, or a damaged pickle, would load silently. This walks the central directory
//! (zip64 included, as torch writes it), finds each entry's data through its local header
//! and compares the CRC-32 of the bytes with the one recorded.

use std::path::Path;

use anyhow::{anyhow, Result};

/// CRC-32 (IEEE, reflected, as zip uses it), eight bytes at a time ("slicing by 8": table
/// `k` advances a byte through `k` more zero bytes). Measured in a release build here, a
/// 1 GiB entry adds 1.2 s to loading a lens, mapping its pages in included.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    const TABLES: [[u32; 256]; 8] = {
        let mut t = [[0u32; 256]; 8];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[0][i] = c;
            i += 1;
        }
        let mut k = 1;
        while k < 8 {
            let mut i = 0;
            while i < 256 {
                let prev = t[k - 1][i];
                t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
                i += 1;
            }
            k += 1;
        }
        t
    };
    let t = &TABLES;
    let mut chunks = bytes.chunks_exact(8);
    let mut c = !0u32;
    for b in &mut chunks {
        let lo = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        c = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][b[4] as usize]
            ^ t[2][b[5] as usize]
            ^ t[1][b[6] as usize]
            ^ t[0][b[7] as usize];
    }
    !chunks
        .remainder()
        .iter()
        .fold(c, |c, &b| t[0][((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8))
}

/// Refuses a torch zip file whose central directory, local headers or entries are damaged:
/// one line naming the file and the entry at fault.
pub(crate) fn check(path: &Path) -> Result<()> {
    let file =
        std::fs::File::open(path).map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?;
    // SAFETY: a read-only map, read once here; like every mmap user we rely on nobody
    // truncating the file meanwhile.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| anyhow!("cannot map {}: {e}", path.display()))?;
    check_entries(&map).map_err(|problem| {
        anyhow!(
            "{} is not a readable PyTorch checkpoint: {problem}; save or download it again",
            path.display()
        )
    })
}

/// Little-endian integer of `N` bytes at `at`, if the bytes are there.
fn le<const N: usize>(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; N] = bytes.get(at..at.checked_add(N)?)?.try_into().ok()?;
    Some(b.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
}

/// Where the central directory lies and how many entries it holds: from the end of
/// central directory record, and from its zip64 form when there is one (torch writes
/// both), which must then agree with every field the short record does not saturate.
fn directory(bytes: &[u8]) -> Result<(usize, usize, u64), String> {
    const EOCD: &[u8] = b"PK\x05\x06";
    let lowest = bytes.len().saturating_sub(22 + 0xFFFF);
    let eocd = (lowest..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&i| bytes[i..].starts_with(EOCD))
        .ok_or("it is not a zip file (no end of central directory); torch.save writes zip files")?;
    let short = [
        (le::<2>(bytes, eocd + 10).unwrap_or(0), 0xFFFF),
        (le::<4>(bytes, eocd + 12).unwrap_or(0), 0xFFFF_FFFF),
        (le::<4>(bytes, eocd + 16).unwrap_or(0), 0xFFFF_FFFF),
    ];
    let mut fields = short.map(|(v, _)| v);
    let locator = eocd
        .checked_sub(20)
        .filter(|&l| bytes[l..].starts_with(b"PK\x06\x07"));
    if let Some(l) = locator {
        let z64 = le::<8>(bytes, l + 8)
            .and_then(|at| usize::try_from(at).ok())
            .filter(|&at| {
                bytes
                    .get(at..)
                    .is_some_and(|b| b.starts_with(b"PK\x06\x06"))
            })
            .ok_or("its zip64 end of central directory is missing")?;
        for (i, at) in [32, 40, 48].into_iter().enumerate() {
            let long = le::<8>(bytes, z64 + at).ok_or("its zip64 record is truncated")?;
            let (value, saturated) = short[i];
            if value != saturated && value != long {
                return Err("its two end of central directory records disagree".into());
            }
            fields[i] = long;
        }
    } else if short.iter().any(|&(v, saturated)| v == saturated) {
        return Err("its zip64 end of central directory is missing".into());
    }
    let [count, size, start] = fields;
    let start = usize::try_from(start).map_err(|_| "bad directory offset")?;
    let end = usize::try_from(size)
        .ok()
        .and_then(|s| start.checked_add(s))
        .filter(|&end| end <= bytes.len())
        .ok_or("its central directory lies outside the file; the file is truncated")?;
    Ok((start, end, count))
}

fn check_entries(bytes: &[u8]) -> Result<(), String> {
    let (mut at, end, count) = directory(bytes)?;
    for i in 0..count {
        let truncated = || format!("its central directory ends inside entry {i}");
        if at >= end || !bytes[at..].starts_with(b"PK\x01\x02") {
            return Err(format!(
                "its central directory holds fewer entries than the {count} it counts"
            ));
        }
        let h = |off: usize, n: usize| match n {
            2 => le::<2>(bytes, at + off),
            _ => le::<4>(bytes, at + off),
        };
        let (method, crc) = (
            h(10, 2).ok_or_else(truncated)?,
            h(16, 4).ok_or_else(truncated)?,
        );
        let (mut packed, mut size) = (
            h(20, 4).ok_or_else(truncated)?,
            h(24, 4).ok_or_else(truncated)?,
        );
        let (name_len, extra_len, comment_len) = (
            h(28, 2).ok_or_else(truncated)? as usize,
            h(30, 2).ok_or_else(truncated)? as usize,
            h(32, 2).ok_or_else(truncated)? as usize,
        );
        let mut local = h(42, 4).ok_or_else(truncated)?;
        let name = bytes
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(truncated)?;
        let shown = String::from_utf8_lossy(name).into_owned();
        let extra = bytes
            .get(at + 46 + name_len..at + 46 + name_len + extra_len)
            .ok_or_else(truncated)?;
        zip64_sizes(extra, [&mut size, &mut packed, &mut local]);
        at += 46 + name_len + extra_len + comment_len;
        if method != 0 {
            return Err(format!(
                "entry {shown} is compressed (method {method}), which torch.save never does"
            ));
        }
        if packed != size {
            return Err(format!(
                "entry {shown} is stored but its sizes disagree ({packed} and {size} bytes)"
            ));
        }
        let local = usize::try_from(local).unwrap_or(usize::MAX);
        let header = bytes
            .get(local..)
            .filter(|b| b.starts_with(b"PK\x03\x04"))
            .ok_or_else(|| {
                format!("entry {shown} has no local header where the directory points")
            })?;
        let local_name_len = le::<2>(header, 26).unwrap_or(0) as usize;
        let local_extra_len = le::<2>(header, 28).unwrap_or(0) as usize;
        if header.get(30..30 + local_name_len) != Some(name) {
            return Err(format!(
                "entry {shown} is named differently in its local header"
            ));
        }
        let data = usize::try_from(size)
            .ok()
            .and_then(|n| {
                let start = local.checked_add(30 + local_name_len + local_extra_len)?;
                bytes.get(start..start.checked_add(n)?)
            })
            .ok_or_else(|| {
                format!("entry {shown} runs past the end of the file; the file is truncated")
            })?;
        let found = crc32(data);
        if u64::from(found) != crc {
            return Err(format!(
                "entry {shown} fails its CRC-32 check (recorded {crc:08x}, computed {found:08x})"
            ));
        }
    }
    if at != end {
        return Err(format!(
            "its central directory holds more than the {count} entries it counts"
        ));
    }
    Ok(())
}

/// Replaces the saturated sizes and offset of an entry with those of its zip64 extra field
/// (id 1), which lists only the saturated ones, in the order uncompressed size, compressed
/// size, local header offset.
fn zip64_sizes(mut extra: &[u8], fields: [&mut u64; 3]) {
    while let (Some(id), Some(len)) = (le::<2>(extra, 0), le::<2>(extra, 2)) {
        let body = extra.get(4..4 + len as usize).unwrap_or(&[]);
        if id == 1 {
            let mut next = 0;
            for field in fields {
                if *field == 0xFFFF_FFFF {
                    match le::<8>(body, next) {
                        Some(v) => *field = v,
                        None => return,
                    }
                    next += 8;
                }
            }
            return;
        }
        extra = extra.get(4 + len as usize..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check value of CRC-32 (IEEE): "123456789" → cbf43926, and zip's empty entry.
    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Every length around the 8-byte stride against the bitwise definition.
        let bitwise = |bytes: &[u8]| {
            !bytes.iter().fold(!0u32, |mut c, &b| {
                c ^= b as u32;
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        0xEDB8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
                c
            })
        };
        let data: Vec<u8> = (0..100u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(crc32(&data[..n]), bitwise(&data[..n]), "{n} bytes");
        }
    }

    /// The tiny tuned lens's params.pt passes; one flipped byte in an entry's data fails
    /// with its name, as does a truncated directory.
    #[test]
    fn a_flipped_byte_fails_its_entry_crc() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tuned-lens/llama-tiny/params.pt"
        );
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(check_entries(&bytes), Ok(()));
        let at = bytes
            .windows(13)
            .position(|w| w == b"params/data/0")
            .unwrap();
        let data = at + 13 + le::<2>(&bytes, at - 2).unwrap() as usize + 100;
        let mut flipped = bytes.clone();
        flipped[data] ^= 1;
        let err = check_entries(&flipped).unwrap_err();
        assert!(err.contains("params/data/0 fails its CRC-32"), "{err}");
        let err = check_entries(&bytes[..bytes.len() - 30]).unwrap_err();
        assert!(err.contains("zip"), "{err}");
    }
}
