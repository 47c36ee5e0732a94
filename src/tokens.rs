//! Tokenization and human-readable token text.
//!
//! Byte-level BPE vocabularies (GPT-2, CodeGen/Phi, Llama 3, SmolLM) store each token as
//! bytes mapped to printable characters (`Ġ` is a space). SentencePiece vocabularies use
//! `▁` for a space and `<0xNN>` for raw bytes. Every token has two texts, and neither
//! lookup panics, whatever the id:
//!
//! - [`Vocab::exact`], for machine-readable output: the token's own bytes as a string
//!   (`" "`, `"\n"`, `"\\"` stay themselves). When the bytes are not valid UTF-8 on their
//!   own (one byte of a multi-byte character, such as `0xE2`), `text` holds their lossy
//!   decoding (`"\u{FFFD}"` per invalid sequence) and `bytes` the exact bytes as lowercase
//!   hex (`"e2"`), so nothing is lost and a real `"\\xE2"` or `"\u{FFFD}"` token is never
//!   confused with a byte.
//! - [`Vocab::display`], for people: see [`printable`].

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, Result};
use serde::Serialize;
use tokenizers::{DecoderWrapper, Tokenizer};

use crate::error::{one_line, Error};

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

    /// One more than the largest id the tokenizer can produce (added tokens included): the
    /// embedding rows a model needs for it.
    pub fn id_bound(&self) -> usize {
        self.tokenizer
            .get_vocab(true)
            .values()
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// True when the tokenizer has no tokens at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encodes with the tokenizer's own rules (its post-processor decides about BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true, "the prompt")
    }

    /// `text`'s ids without the special tokens the tokenizer's post-processor adds (a BOS,
    /// for instance): a word on its own, as a tracked target.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, false, "the target")
    }

    fn encode_with(&self, text: &str, special: bool, what: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, special)
            .map_err(|e| anyhow!("cannot tokenize {what}: {}", one_line(&e.to_string())))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The id of a token spelled exactly `token`, if any.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// Readable text of one token ([`printable`]); ids the tokenizer does not know show
    /// as `<#ID>`.
    pub fn display(&self, id: u32) -> String {
        match self.bytes(id) {
            Some(bytes) => printable(&bytes),
            None => format!("<#{id}>"),
        }
    }

    /// The exact text of one token ([`exact_text`]); ids the tokenizer does not know
    /// have the empty text.
    pub fn exact(&self, id: u32) -> TokenText {
        exact_text(&self.bytes(id).unwrap_or_default())
    }

    /// The bytes one token stands for, or `None` for an id the tokenizer does not know.
    pub fn bytes(&self, id: u32) -> Option<Vec<u8>> {
        if let Some(text) = self.added.get(&id) {
            return Some(text.as_bytes().to_vec());
        }
        self.tokenizer
            .id_to_token(id)
            .map(|piece| self.piece_bytes(&piece))
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
pub(crate) fn byte_level_bytes(piece: &str) -> Option<Vec<u8>> {
    piece.chars().map(byte_for_char).collect()
}

/// Bytes of a SentencePiece piece: `▁` → space, `<0xNN>` → that byte.
pub(crate) fn sentencepiece_bytes(piece: &str) -> Vec<u8> {
    if let Some(hex) = piece.strip_prefix("<0x").and_then(|s| s.strip_suffix('>')) {
        if let Ok(b) = u8::from_str_radix(hex, 16) {
            if hex.len() == 2 {
                return vec![b];
            }
        }
    }
    piece.replace('▁', " ").into_bytes()
}

/// A token's exact text, as machine-readable formats carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenText {
    /// The token's text: exact when its bytes are valid UTF-8, else their lossy decoding
    /// (U+FFFD for each invalid sequence).
    pub text: String,
    /// The token's bytes as lowercase hex, present only when they are not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

/// The exact text of a token's bytes (see [`TokenText`]).
pub fn exact_text(bytes: &[u8]) -> TokenText {
    match std::str::from_utf8(bytes) {
        Ok(text) => TokenText {
            text: text.to_string(),
            bytes: None,
        },
        Err(_) => TokenText {
            text: String::from_utf8_lossy(bytes).into_owned(),
            bytes: Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        },
    }
}

/// Readable text for arbitrary bytes, for tables, heatmaps and the `display` field: valid
/// UTF-8 is kept; newline/tab/CR become `↵`/`⇥`/`␍`; a no-break space becomes `⍽`; other
/// control, zero-width, bidirectional and unusual space characters become escapes such as
/// `\u{200B}`; bytes that are not valid UTF-8 become `\xE2`; and an all-space token shows
/// `␣`s. Lossy by design: [`exact_text`] is the exact form.
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
        '\u{A0}' => out.push('⍽'),
        c if c.is_control() || is_invisible(c) => out.push_str(&format!("\\u{{{:X}}}", c as u32)),
        c => out.push(c),
    }
}

/// Characters that print as nothing, or as a blank that looks like an ordinary space, or
/// that reorder the text around them: soft hyphen, the Unicode spaces other than U+0020,
/// zero-width and joiner characters, bidirectional controls and the byte-order mark.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{1680}'
            | '\u{180E}'
            | '\u{2000}'..='\u{200F}'
            | '\u{2028}'..='\u{202F}'
            | '\u{205F}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{3000}'
            | '\u{FEFF}'
    )
}

/// Checks that a prompt has something to encode.
pub(crate) fn check_prompt(prompt: &str) -> Result<()> {
    if prompt.trim().is_empty() {
        return Err(Error::EmptyPrompt { empty: true }.into());
    }
    Ok(())
}

/// Prepends `bos` unless the tokenizer already put it first.
pub(crate) fn with_bos(mut ids: Vec<u32>, bos: u32) -> Vec<u32> {
    if ids.first() != Some(&bos) {
        ids.insert(0, bos);
    }
    ids
}

/// Finds the BOS id: config.json first, then the usual BOS spellings in the vocabulary.
pub(crate) fn find_bos(config_bos: Option<u32>, vocab: &Vocab) -> Result<u32> {
    if let Some(id) = config_bos {
        return Ok(id);
    }
    ["<|endoftext|>", "<s>", "<|begin_of_text|>", "<bos>", "<|im_start|>"]
        .iter()
        .find_map(|t| vocab.token_to_id(t))
        .ok_or_else(|| {
            Error::NoBos {
                problem: "this model declares no BOS token (bos_token_id in config.json) and its vocabulary has none of <|endoftext|>, <s>, <|begin_of_text|>, <bos>",
            }
            .into()
        })
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
    fn printable_shows_invisible_characters() {
        assert_eq!(printable("a\u{A0}b".as_bytes()), "a⍽b");
        assert_eq!(printable("\u{200B}".as_bytes()), "\\u{200B}");
        assert_eq!(
            printable("x\u{FEFF}\u{202E}".as_bytes()),
            "x\\u{FEFF}\\u{202E}"
        );
        assert_eq!(printable("\u{2009}".as_bytes()), "\\u{2009}");
        assert_eq!(printable("é日本".as_bytes()), "é日本");
    }

    /// The fixtures' GPT-2 byte-level tokenizer.
    fn fixture_vocab() -> Vocab {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phi-tiny/tokenizer.json");
        Vocab::from_file(&path).unwrap()
    }

    /// The bytes a [`TokenText`] stands for.
    fn bytes_of(t: &TokenText) -> Vec<u8> {
        match &t.bytes {
            Some(hex) => (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect(),
            None => t.text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn exact_text_is_lossless_where_display_is_not() {
        let vocab = fixture_vocab();
        let one = |s: &str| {
            let ids = vocab.encode(s).unwrap();
            assert_eq!(ids.len(), 1, "{s:?} is one token: {ids:?}");
            ids[0]
        };
        let space = one(" ");
        assert_eq!(vocab.exact(space), exact_text(b" "));
        assert_eq!(vocab.exact(space).text, " ");
        assert_eq!(vocab.display(space), "␣");
        let newline = one("\n");
        assert_eq!(vocab.exact(newline).text, "\n");
        assert_eq!(vocab.display(newline), "↵");
        let backslash = one("\\");
        assert_eq!(vocab.exact(backslash).text, "\\");
        assert_eq!(vocab.exact(backslash).bytes, None);

        // A lone continuation byte is a token of its own in byte-level BPE.
        let lone = (0..vocab.len() as u32)
            .find(|&id| vocab.bytes(id) == Some(vec![0x80]))
            .unwrap();
        let t = vocab.exact(lone);
        assert_eq!(t.text, "\u{FFFD}");
        assert_eq!(t.bytes.as_deref(), Some("80"));
        assert_eq!(vocab.display(lone), "\\x80");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"text":"�","bytes":"80"}"#
        );
        assert_eq!(
            serde_json::to_string(&vocab.exact(space)).unwrap(),
            r#"{"text":" "}"#
        );

        // "␣", a backslash escape spelled out and a no-break space: each token's exact form
        // gives back the prompt's bytes, and differs from the space and byte tokens'.
        for prompt in ["␣", "\\xE2", "a\u{A0}b", " \n␣\\\u{A0}\u{200B}"] {
            let ids = vocab.encode(prompt).unwrap();
            let bytes: Vec<u8> = ids
                .iter()
                .flat_map(|&id| bytes_of(&vocab.exact(id)))
                .collect();
            assert_eq!(
                bytes,
                prompt.as_bytes(),
                "{prompt:?} round-trips through {ids:?}"
            );
        }
        let shown = |text: &str| -> String {
            let ids = vocab.encode(text).unwrap();
            ids.iter().map(|&id| vocab.display(id)).collect()
        };
        assert_ne!(
            vocab.exact(vocab.encode("␣").unwrap()[0]),
            vocab.exact(space)
        );
        let real = shown("␣");
        assert_ne!(
            real, "␣",
            "display of a real ␣ is byte escapes here: {real}"
        );
        let literal = vocab.encode("\\xE2").unwrap();
        let texts: Vec<TokenText> = literal.iter().map(|&id| vocab.exact(id)).collect();
        assert!(texts.iter().all(|t| t.bytes.is_none()), "{texts:?}");
        let nbsp = shown("\u{A0}");
        assert_ne!(nbsp.trim(), "", "a no-break space is visible: {nbsp:?}");
    }

    #[test]
    fn exact_text_of_valid_and_invalid_bytes() {
        assert_eq!(exact_text("\u{A0}".as_bytes()).text, "\u{A0}");
        assert_eq!(exact_text("\u{A0}".as_bytes()).bytes, None);
        let t = exact_text(&[b'a', 0xE2, 0x80]);
        assert_eq!(t.text, "a\u{FFFD}");
        assert_eq!(t.bytes.as_deref(), Some("61e280"));
        assert_eq!(exact_text(b"\\xE2").text, "\\xE2");
        assert_eq!(exact_text(b"").text, "");
    }

    #[test]
    fn sentencepiece_pieces() {
        assert_eq!(sentencepiece_bytes("▁Paris"), b" Paris");
        assert_eq!(sentencepiece_bytes("<0x0A>"), b"\n");
        assert_eq!(sentencepiece_bytes("<0xZZ>"), b"<0xZZ>");
    }
}
