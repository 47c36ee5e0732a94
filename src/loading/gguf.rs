//! An opened GGUF file (llama.cpp's single-file format): its metadata and its tensor
//! directory, with tensors read on demand.
//!
//! Both the weights (`gguf_weights`) and the tokenizer (`gguf_tokenizer`) are built from
//! the same file, so it is parsed once here and every lookup names the file and key at
//! fault in its error.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;

use crate::error::one_line;

/// A GGUF file's header, and a reader for its tensors.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
    reader: BufReader<File>,
}

impl GgufFile {
    /// Opens `path` and parses its header; a file that is not GGUF is refused by its magic
    /// before anything else is read.
    pub fn open(path: &Path) -> Result<Self> {
        check_magic(path)?;
        let file = File::open(path).map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?;
        // SAFETY: a read-only map, read once here; like every mmap user we rely on nobody
        // truncating the file meanwhile.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| anyhow!("cannot map {}: {e}", path.display()))?;
        check_layout(&map).map_err(|problem| {
            anyhow!(
                "{} is not a valid GGUF file: {problem}; download it again",
                path.display()
            )
        })?;
        drop(map);
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| {
            anyhow!(
                "{} is not a readable GGUF file: {}; download it again",
                path.display(),
                one_line(&e.to_string())
            )
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            content,
            reader,
        })
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `general.architecture`, e.g. "llama".
    pub fn architecture(&self) -> Result<String> {
        self.string("general.architecture")
    }

    /// The raw metadata value under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    /// A required metadata value.
    pub fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| {
            anyhow!(
                "{} has no metadata key {key}; it is not a complete GGUF model",
                self.path.display()
            )
        })
    }

    /// A required unsigned integer (any integer width the writer chose).
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.require(key)
            .and_then(|v| as_u64(v).ok_or_else(|| self.bad_type(key, "an integer")))
            .map(|v| v as usize)
    }

    /// An optional unsigned integer.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.usize(key).map(Some),
        }
    }

    /// A required float (f32 or f64 in the file), which must be finite: no model setting
    /// is NaN or infinite.
    pub fn f64(&self, key: &str) -> Result<f64> {
        let v = match self.require(key)? {
            Value::F32(v) => *v as f64,
            Value::F64(v) => *v,
            _ => return Err(self.bad_type(key, "a float")),
        };
        match v.is_finite() {
            true => Ok(v),
            false => bail!(
                "{}: metadata key {key} is {v}, not a finite number; the file is damaged",
                self.path.display()
            ),
        }
    }

    /// A required string.
    pub fn string(&self, key: &str) -> Result<String> {
        match self.require(key)? {
            Value::String(s) => Ok(s.clone()),
            _ => Err(self.bad_type(key, "a string")),
        }
    }

    /// An optional string.
    pub fn opt_string(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.bad_type(key, "a boolean")),
        }
    }

    /// A required array of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.array(key, "strings", |v| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
    }

    /// An optional array of integers.
    pub fn opt_ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        if self.get(key).is_none() {
            return Ok(None);
        }
        self.array(key, "integers", |v| match v {
            Value::I8(x) => Some(*x as i64),
            Value::I16(x) => Some(*x as i64),
            Value::I32(x) => Some(*x as i64),
            Value::I64(x) => Some(*x),
            other => as_u64(other).map(|x| x as i64),
        })
        .map(Some)
    }

    fn array<T>(&self, key: &str, what: &str, f: impl Fn(&Value) -> Option<T>) -> Result<Vec<T>> {
        match self.require(key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| f(v).ok_or_else(|| self.bad_type(key, &format!("an array of {what}"))))
                .collect(),
            _ => Err(self.bad_type(key, &format!("an array of {what}"))),
        }
    }

    fn bad_type(&self, key: &str, what: &str) -> anyhow::Error {
        anyhow!(
            "{}: metadata key {key} is not {what}; the file is damaged or not a model",
            self.path.display()
        )
    }

    /// The shape of tensor `name` as candle sees it (PyTorch order: rows first), if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.content
            .tensor_infos
            .get(name)
            .map(|info| info.shape.dims())
    }

    /// The names of every tensor in the file.
    pub fn tensor_names(&self) -> Vec<String> {
        self.content.tensor_infos.keys().cloned().collect()
    }

    /// Reads tensor `name`, keeping its quantized type; checks its shape first.
    pub fn tensor(&mut self, name: &str, shape: &[usize], device: &Device) -> Result<QTensor> {
        match self.shape(name) {
            None => bail!(
                "{} has no tensor {name}; it is not a complete GGUF model",
                self.path.display()
            ),
            Some(found) if found != shape => bail!(
                "{}: tensor {name} has shape {found:?} but the metadata implies {shape:?}; the file is inconsistent",
                self.path.display()
            ),
            Some(_) => {}
        }
        self.content
            .tensor(&mut self.reader, name, device)
            .map_err(|e| {
                anyhow!(
                    "cannot read tensor {name} from {}: {}",
                    self.path.display(),
                    one_line(&e.to_string())
                )
            })
    }
}

/// GGUF files start with the four bytes `GGUF`.
fn check_magic(path: &Path) -> Result<()> {
    let mut magic = [0u8; 4];
    let read = File::open(path).and_then(|mut f| f.read_exact(&mut magic));
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "GGUF file {} does not exist; pass an existing .gguf file",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => bail!(
            "{} is not a GGUF file (shorter than its 4-byte header); download it again",
            path.display()
        ),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
        Ok(()) if &magic != b"GGUF" => bail!(
            "{} is not a GGUF file (it does not start with \"GGUF\"); pass a llama.cpp .gguf model",
            path.display()
        ),
        Ok(()) => Ok(()),
    }
}

/// GGUF's value types by their number, as (fixed size in bytes, or 0 for a string).
fn value_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        8 => Some(0),
        _ => None,
    }
}

/// ggml tensor types candle reads, by their number: (elements per block, bytes per block).
fn ggml_type(ty: u32) -> Option<(u64, u64)> {
    use candle_core::quantized::GgmlDType as T;
    let t = match ty {
        0 => T::F32,
        1 => T::F16,
        2 => T::Q4_0,
        3 => T::Q4_1,
        6 => T::Q5_0,
        7 => T::Q5_1,
        8 => T::Q8_0,
        9 => T::Q8_1,
        10 => T::Q2K,
        11 => T::Q3K,
        12 => T::Q4K,
        13 => T::Q5K,
        14 => T::Q6K,
        15 => T::Q8K,
        30 => T::BF16,
        _ => return None,
    };
    Some((t.block_size() as u64, t.type_size() as u64))
}

/// A cursor over a GGUF file's bytes that refuses to read past their end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Version 1 writes lengths and dimensions as u32, later versions as u64.
    wide: bool,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let left = self.bytes.len() - self.at;
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                self.at += n;
                Ok(&self.bytes[self.at - n..self.at])
            }
            _ => Err(format!(
                "a field of {n} bytes at byte {} runs past the end of the file ({} bytes)",
                self.at,
                self.bytes.len()
            )),
        }
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    /// A length or count: u32 in version 1, u64 after.
    fn len(&mut self) -> Result<u64, String> {
        match self.wide {
            true => self.u64(),
            false => self.u32().map(u64::from),
        }
    }

    fn string(&mut self) -> Result<&'a [u8], String> {
        let n = self.len()?;
        self.take(n)
    }

    /// Skips a value of type `ty`; arrays hold values of one non-array type.
    fn skip_value(&mut self, ty: u32, key: &str) -> Result<(), String> {
        let bad = |ty| format!("metadata key {key} has the unknown value type {ty}");
        if ty == 9 {
            let (item, n) = (self.u32()?, self.len()?);
            match value_size(item).ok_or_else(|| bad(item))? {
                0 => (0..n).try_for_each(|_| self.string().map(drop)),
                size => self.take(n.saturating_mul(size)).map(drop),
            }
        } else {
            match value_size(ty).ok_or_else(|| bad(ty))? {
                0 => self.string().map(drop),
                size => self.take(size).map(drop),
            }
        }
    }
}

/// Checks a GGUF file's header and tensor table as llama.cpp's `gguf_init_from_file` does,
/// before candle reads it: lengths within the file, known value and tensor types, no
/// duplicate key or tensor name, `general.alignment` a u32 power of two (32 when absent),
/// at most 4 dimensions with a representable element count, rows a whole number of
/// blocks, and each tensor at the offset where the one before it ends, padded to the
/// alignment, with its data inside the file. Returns the problem in words.
fn check_layout(bytes: &[u8]) -> Result<(), String> {
    let mut c = Cursor {
        bytes,
        at: 4,
        wide: true,
    };
    let version = c.u32()?;
    if !(1..=3).contains(&version) {
        return Err(format!(
            "it has version {version}; GGUF versions are 1 to 3"
        ));
    }
    c.wide = version > 1;
    let (tensors, kvs) = (c.len()?, c.len()?);
    let mut alignment = 32u64;
    let mut keys = std::collections::HashSet::new();
    for _ in 0..kvs {
        let key = String::from_utf8_lossy(c.string()?).into_owned();
        let ty = c.u32()?;
        let at = c.at;
        c.skip_value(ty, &key)?;
        if key == "general.alignment" {
            alignment = match ty {
                4 => u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())),
                _ => return Err("general.alignment is not a u32".into()),
            };
            if !alignment.is_power_of_two() {
                return Err(format!("general.alignment {alignment} is not a power of 2"));
            }
        }
        if !keys.insert(key.clone()) {
            return Err(format!("metadata key {key} appears twice"));
        }
    }
    let mut names = std::collections::HashSet::new();
    let mut layout = Vec::new();
    for _ in 0..tensors {
        let name = String::from_utf8_lossy(c.string()?).into_owned();
        let dims = c.u32()?;
        if dims > 4 {
            return Err(format!("tensor {name} has {dims} dimensions, more than 4"));
        }
        let shape = (0..dims).map(|_| c.len()).collect::<Result<Vec<_>, _>>()?;
        let elements = shape.iter().try_fold(1u64, |n, &d| {
            n.checked_mul(d).filter(|n| *n <= i64::MAX as u64)
        });
        let ty = c.u32()?;
        if shape.contains(&0) {
            return Err(format!("tensor {name} has a dimension of 0 in {shape:?}"));
        }
        let (block, block_bytes) =
            ggml_type(ty).ok_or_else(|| format!("tensor {name} has unknown ggml type {ty}"))?;
        let (Some(elements), row) = (elements, shape.first().copied().unwrap_or(1)) else {
            return Err(format!("tensor {name} has {shape:?} elements, too many"));
        };
        if row % block != 0 {
            return Err(format!(
                "tensor {name} has rows of {row} elements, not a whole number of {block}-element blocks"
            ));
        }
        let offset = c.u64()?;
        if !names.insert(name.clone()) {
            return Err(format!("tensor {name} appears twice"));
        }
        layout.push((name, offset, elements / block * block_bytes));
    }
    let data = (c.at as u64).div_ceil(alignment) * alignment;
    let mut expected = 0u64;
    for (name, offset, size) in layout {
        if offset != expected {
            return Err(format!(
                "tensor {name} is at offset {offset} of the data, but the tensors before it end at {expected} (each padded to {alignment} bytes)"
            ));
        }
        let end = data.saturating_add(offset).saturating_add(size);
        if end > bytes.len() as u64 {
            return Err(format!(
                "tensor {name} ends at byte {end}, past the end of the file ({} bytes): it is truncated",
                bytes.len()
            ));
        }
        expected = offset + size.div_ceil(alignment) * alignment;
    }
    Ok(())
}

/// Any non-negative integer value as u64.
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::U8(x) => Some(*x as u64),
        Value::U16(x) => Some(*x as u64),
        Value::U32(x) => Some(*x as u64),
        Value::U64(x) => Some(*x),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{header, Meta};
    use super::*;

    fn layout(metadata: &[(&str, Meta)]) -> Result<(), String> {
        check_layout(&std::fs::read(header(metadata).path()).unwrap())
    }

    /// llama.cpp's header rules: `general.alignment` a u32 power of two, no key twice.
    #[test]
    fn alignment_and_keys_follow_llama_cpp() {
        assert_eq!(layout(&[("general.alignment", Meta::U32(64))]), Ok(()));
        for bad in [0, 3, 48] {
            let err = layout(&[("general.alignment", Meta::U32(bad))]).unwrap_err();
            assert!(err.contains("not a power of 2"), "{err}");
        }
        let err = layout(&[("general.alignment", Meta::F32(32.0))]).unwrap_err();
        assert!(err.contains("not a u32"), "{err}");
        let err = layout(&[("a", Meta::U32(1)), ("a", Meta::U32(2))]).unwrap_err();
        assert!(err.contains("appears twice"), "{err}");
    }

    /// A fixture converted by llama.cpp passes; moving its first tensor's data by one byte
    /// (the offset field of the first tensor-table entry, right after the metadata) fails,
    /// as does cutting the file inside its data or inside a length.
    #[test]
    fn tensor_offsets_must_follow_each_other_inside_the_file() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/qwen2-tiny/model-f32.gguf"
        );
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(check_layout(&bytes), Ok(()));
        let name = b"token_embd.weight";
        let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
        // name, n_dims (u32), 2 dims (u64), type (u32), then the offset.
        let offset = at + name.len() + 4 + 16 + 4;
        let mut moved = bytes.clone();
        moved[offset] ^= 1;
        let err = check_layout(&moved).unwrap_err();
        assert!(err.contains("token_embd.weight is at offset"), "{err}");
        let err = check_layout(&bytes[..bytes.len() - 100]).unwrap_err();
        assert!(err.contains("past the end of the file"), "{err}");
        let err = check_layout(&bytes[..30]).unwrap_err();
        assert!(err.contains("runs past the end"), "{err}");
    }
}

/// GGUF files for unit tests: a header with metadata and no tensors.
#[cfg(test)]
pub(crate) mod testing {
    /// A metadata value.
    #[derive(Clone, Copy)]
    pub enum Meta<'a> {
        U32(u32),
        F32(f32),
        Str(&'a str),
    }

    /// A GGUF v3 file holding `metadata` and no tensors.
    pub fn header(metadata: &[(&str, Meta)]) -> tempfile::NamedTempFile {
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        };
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend((metadata.len() as u64).to_le_bytes());
        for (key, value) in metadata {
            string(&mut b, key);
            match value {
                Meta::U32(v) => {
                    b.extend(4u32.to_le_bytes());
                    b.extend(v.to_le_bytes());
                }
                Meta::F32(v) => {
                    b.extend(6u32.to_le_bytes());
                    b.extend(v.to_le_bytes());
                }
                Meta::Str(s) => {
                    b.extend(8u32.to_le_bytes());
                    string(&mut b, s);
                }
            }
        }
        let file = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
        std::fs::write(file.path(), b).unwrap();
        file
    }
}
