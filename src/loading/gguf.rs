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

    /// A required float (f32 or f64 in the file).
    pub fn f64(&self, key: &str) -> Result<f64> {
        match self.require(key)? {
            Value::F32(v) => Ok(*v as f64),
            Value::F64(v) => Ok(*v),
            _ => Err(self.bad_type(key, "a float")),
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
