//! Tokenization and human-readable token text.
//!
//! Byte-level BPE vocabularies (GPT-2, CodeGen/Phi, Llama 3, SmolLM) store each token as
//! bytes mapped to printable characters (`Ġ` is a space). SentencePiece vocabularies use
//! `▁` for a space and `<0xNN>` for raw bytes. [`Vocab::display`] turns either back into
//! text a person can read, and never panics, whatever the id.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::{DecoderWrapper, Tokenizer};

/// How the vocabulary spells its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// GPT-2 style: every byte is one printable character.
    ByteLevel,
    /// SentencePiece style: `▁` is a space, `<0xNN>` is a byte.
    SentencePiece,
}

/// A tokenizer plus what is needed to show its tokens.
pub struct Vocab {
    tokenizer: Tokenizer,
    spelling: Spelling,
    /// Added tokens are stored as their literal text, not byte-level encoded.
    added: HashMap<u32, String>,
}

impl Vocab {
    /// Reads a Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path).map_err(|e| {
            anyhow!(
                "cannot read tokenizer {}: {}; provide a valid Hugging Face tokenizer.json",
                path.display(),
                one_line(&e.to_string())
            )
        })?;
        Ok(Self::new(tokenizer))
    }

    /// Wraps a tokenizer built elsewhere (e.g. from GGUF metadata).
    pub fn new(tokenizer: Tokenizer) -> Self {
        let spelling = match tokenizer.get_decoder() {
            Some(DecoderWrapper::ByteLevel(_)) => Spelling::ByteLevel,
            _ if tokenizer.get_vocab(false).contains_key("Ġ") => Spelling::ByteLevel,
            _ => Spelling::SentencePiece,
        };
        let added = tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .map(|(id, tok)| (id, tok.content))
            .collect();
        Self {
            tokenizer,
            spelling,
            added,
        }
    }

    /// Number of ids the tokenizer knows (may be fewer than the model's embedding rows).
    pub fn len(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// True when the tokenizer has no tokens at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encodes with the tokenizer's own rules (its post-processor decides about BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| anyhow!("cannot tokenize the prompt: {}", one_line(&e.to_string())))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The id of a token spelled exactly `token`, if any.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// Readable text of one token: spaces kept, control characters made visible.
    pub fn display(&self, id: u32) -> String {
        if let Some(text) = self.added.get(&id) {
            return printable(text.as_bytes());
        }
        match self.tokenizer.id_to_token(id) {
            None => format!("<#{id}>"),
            Some(piece) => printable(&self.piece_bytes(&piece)),
        }
    }

    fn piece_bytes(&self, piece: &str) -> Vec<u8> {
        match self.spelling {
            Spelling::ByteLevel => {
                byte_level_bytes(piece).unwrap_or_else(|| piece.as_bytes().to_vec())
            }
            Spelling::SentencePiece => sentencepiece_bytes(piece),
        }
    }
}

/// GPT-2's byte ↔ character table: printable Latin-1 bytes map to themselves, the rest to
/// U+0100 onwards, in byte order.
fn byte_for_char(c: char) -> Option<u8> {
    let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let code = c as u32;
    if code < 0x100 {
        return printable(code).then_some(code as u8);
    }
    let rank = code - 0x100;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(rank as usize)
        .map(|b| b as u8)
}

/// Bytes of a byte-level BPE piece, or `None` if it has characters outside the table.
pub fn byte_level_bytes(piece: &str) -> Option<Vec<u8>> {
    piece.chars().map(byte_for_char).collect()
}

/// Bytes of a SentencePiece piece: `▁` → space, `<0xNN>` → that byte.
pub fn sentencepiece_bytes(piece: &str) -> Vec<u8> {
    if let Some(hex) = piece.strip_prefix("<0x").and_then(|s| s.strip_suffix('>')) {
        if let Ok(b) = u8::from_str_radix(hex, 16) {
            if hex.len() == 2 {
                return vec![b];
            }
        }
    }
    piece.replace('▁', " ").into_bytes()
}

/// Text for arbitrary bytes: valid UTF-8 is kept, newline/tab/CR become `↵`/`⇥`/`␍`, other
/// control characters and invalid bytes become escapes, and an all-space token shows `␣`s.
pub fn printable(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|&b| b == b' ') {
        return "␣".repeat(bytes.len());
    }
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_visible(&mut out, c);
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

fn push_visible(out: &mut String, c: char) {
    match c {
        '\n' => out.push('↵'),
        '\t' => out.push('⇥'),
        '\r' => out.push('␍'),
        c if c.is_control() => out.push_str(&format!("\\u{{{:X}}}", c as u32)),
        c => out.push(c),
    }
}

/// Collapses a multi-line message onto one line, for single-line stderr reports.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks that a prompt has something to encode.
pub fn check_prompt(prompt: &str) -> Result<()> {
    if prompt.trim().is_empty() {
        bail!("the prompt is empty; pass some text with --prompt");
    }
    Ok(())
}

/// Prepends `bos` unless the tokenizer already put it first.
pub fn with_bos(mut ids: Vec<u32>, bos: u32) -> Vec<u32> {
    if ids.first() != Some(&bos) {
        ids.insert(0, bos);
    }
    ids
}

/// Finds the BOS id: config.json first, then the usual BOS spellings in the vocabulary.
pub fn find_bos(config_bos: Option<u32>, vocab: &Vocab) -> Result<u32> {
    if let Some(id) = config_bos {
        return Ok(id);
    }
    ["<|endoftext|>", "<s>", "<|begin_of_text|>", "<bos>", "<|im_start|>"]
        .iter()
        .find_map(|t| vocab.token_to_id(t))
        .context("this model declares no BOS token (bos_token_id in config.json) and its vocabulary has none of <|endoftext|>, <s>, <|begin_of_text|>, <bos>; drop --bos")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_round_trips_every_byte() {
        for b in 0u8..=255 {
            let c = (0u32..0x200)
                .filter_map(char::from_u32)
                .find(|&c| byte_for_char(c) == Some(b))
                .unwrap();
            assert_eq!(byte_for_char(c), Some(b));
        }
        assert_eq!(byte_level_bytes("Ġdog").unwrap(), b" dog");
        assert_eq!(byte_level_bytes("Ċ").unwrap(), b"\n");
        assert_eq!(byte_level_bytes("ĉ").unwrap(), b"\t");
    }

    #[test]
    fn printable_marks_whitespace_and_escapes_bad_bytes() {
        assert_eq!(printable(b" dog"), " dog");
        assert_eq!(printable(b"a\nb\tc\r"), "a↵b⇥c␍");
        assert_eq!(printable(b"   "), "␣␣␣");
        assert_eq!(printable(&[0xE2, 0x80]), "\\xE2\\x80");
        assert_eq!(printable(b"\x1b[0m"), "\\u{1B}[0m");
        assert_eq!(printable("é".as_bytes()), "é");
    }

    #[test]
    fn sentencepiece_pieces() {
        assert_eq!(sentencepiece_bytes("▁Paris"), b" Paris");
        assert_eq!(sentencepiece_bytes("<0x0A>"), b"\n");
        assert_eq!(sentencepiece_bytes("<0xZZ>"), b"<0xZZ>");
    }
}
