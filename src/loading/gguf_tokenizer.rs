//! A Hugging Face tokenizer rebuilt from a GGUF file's `tokenizer.ggml.*` metadata, for
//! GGUF files that come without a tokenizer.json.
//!
//! Only byte-level BPE vocabularies (`tokenizer.ggml.model` = "gpt2") are rebuilt: the
//! tokens and merges go into a BPE model behind GPT-2's ByteLevel pre-tokenizer and
//! decoder. What splits the text before BPE is not stored in GGUF except as a name,
//! `tokenizer.ggml.pre`, which names one of llama.cpp's hard-coded pre-tokenizers; each
//! name known here maps to the chain the model's own tokenizer.json uses, and unknown ones
//! are refused (the ids would silently differ) with a pointer to `--tokenizer`.
//!
//! SmolLM2 ("smollm") splits every digit into its own token before the byte-level split,
//! like StarCoder: its tokenizer.json has `Sequence[Digits(individual), ByteLevel]`.
//! transformers' GGUF loader omits the digit split, so for text with digits its ids differ
//! from the model's real tokenizer and from these.
//!
//! Llama 3 ("llama-bpe") and Qwen2 ("qwen2", also written into Qwen2.5 and Qwen3 files)
//! split with a regex first (`Split` isolated, then ByteLevel without its own regex), as
//! their tokenizer.json files do. The two regexes differ only in numbers: Llama 3 groups up
//! to three digits, Qwen2 isolates every digit.
//!
//! Control tokens (`token_type` 3) become special added tokens, matched whole in the input
//! as the original tokenizer does; user-defined tokens (4) become plain added tokens.

use anyhow::{anyhow, Result};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab as BpeVocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::gguf::GgufFile;
use crate::error::{one_line, Error};

/// `tokenizer.ggml.token_type` of control tokens (`<|im_start|>`, `<|endoftext|>`, …).
const CONTROL: i64 = 3;
/// `tokenizer.ggml.token_type` of user-defined tokens.
const USER_DEFINED: i64 = 4;

/// Pre-tokenizer names (llama.cpp's `tokenizer.ggml.pre`) whose splitting is GPT-2's
/// regex with every digit isolated first.
const DIGIT_SPLIT: &[&str] = &[
    "smollm",
    "starcoder",
    "refact",
    "command-r",
    "codeshell",
    "exaone",
];

/// Llama 3's split regex, as its tokenizer.json has it.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's split regex, as its tokenizer.json has it (llama.cpp's
/// `LLAMA_VOCAB_PRE_TYPE_QWEN2`): Llama 3's with every digit on its own.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The names `tokenizer.ggml.pre` may take here, for messages.
fn known_pre() -> String {
    let mut names = vec!["default", "gpt-2", "llama-bpe", "qwen2"];
    names.extend_from_slice(DIGIT_SPLIT);
    names.join(", ")
}

/// Builds the tokenizer the file's metadata describes.
pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    let model = file.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(Error::GgufTokenizer {
            problem: format!(
                "{} has a \"{model}\" tokenizer in its metadata, which logitlens cannot rebuild (only byte-level BPE, \"gpt2\")",
                file.path().display()
            ),
        }
        .into());
    }
    let pre = file.opt_string("tokenizer.ggml.pre")?;
    let pre = pre.as_deref().unwrap_or("default");
    let tokens = file.strings("tokenizer.ggml.tokens")?;
    let types = file
        .opt_ints("tokenizer.ggml.token_type")?
        .unwrap_or_default();
    let mut tokenizer = Tokenizer::new(bpe(file, &tokens, pre == "llama-bpe")?);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer(file, pre)?));
    tokenizer.with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
    add_tokens(&mut tokenizer, &tokens, &types)?;
    if file.opt_bool("tokenizer.ggml.add_bos_token")? == Some(true) {
        tokenizer.with_post_processor(Some(bos_template(file, &tokens)?));
    }
    Ok(tokenizer)
}

/// The BPE model: every token with its id, and the merges in rank order.
fn bpe(file: &GgufFile, tokens: &[String], ignore_merges: bool) -> Result<BPE> {
    let vocab: BpeVocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), id as u32))
        .collect();
    let merges = file
        .strings("tokenizer.ggml.merges")?
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| {
                    anyhow!(
                        "{}: merge {m:?} is not two tokens separated by a space",
                        file.path().display()
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| {
            anyhow!(
                "{}: cannot build the BPE tokenizer from its metadata: {}",
                file.path().display(),
                one_line(&e.to_string())
            )
        })
}

/// The splitting chain `tokenizer.ggml.pre` names.
fn pre_tokenizer(file: &GgufFile, pre: &str) -> Result<PreTokenizerWrapper> {
    let byte_level = |use_regex| ByteLevel::new(false, true, use_regex).into();
    Ok(match pre {
        "default" | "gpt-2" => byte_level(true),
        p if DIGIT_SPLIT.contains(&p) => {
            Sequence::new(vec![Digits::new(true).into(), byte_level(true)]).into()
        }
        "llama-bpe" => split_then_bytes(pre, LLAMA3_REGEX)?,
        "qwen2" => split_then_bytes(pre, QWEN2_REGEX)?,
        other => {
            return Err(Error::GgufTokenizer {
                problem: format!(
                    "{} names the pre-tokenizer \"{other}\" (tokenizer.ggml.pre), which logitlens does not know (known: {})",
                    file.path().display(),
                    known_pre()
                ),
            }
            .into())
        }
    })
}

/// A regex split (matches isolated) followed by ByteLevel without its own regex.
fn split_then_bytes(pre: &str, regex: &str) -> Result<PreTokenizerWrapper> {
    let split = Split::new(
        SplitPattern::Regex(regex.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| anyhow!("cannot compile the {pre} pre-tokenizer: {e}"))?;
    let bytes = ByteLevel::new(false, true, false).into();
    Ok(Sequence::new(vec![split.into(), bytes]).into())
}

/// Registers control tokens as special and user-defined ones as plain added tokens, so that
/// they are matched whole in the input.
fn add_tokens(tokenizer: &mut Tokenizer, tokens: &[String], types: &[i64]) -> Result<()> {
    let pick = |kind: i64| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(types)
            .filter(|&(_, &t)| t == kind)
            .map(|(tok, _)| AddedToken::from(tok.clone(), kind == CONTROL).normalized(false))
            .collect()
    };
    let failed = |e: tokenizers::Error| anyhow!("cannot register added tokens: {e}");
    tokenizer
        .add_special_tokens(pick(CONTROL))
        .map_err(failed)?;
    tokenizer.add_tokens(pick(USER_DEFINED)).map_err(failed)?;
    Ok(())
}

/// A post-processor that prepends BOS, for files that ask for it (`add_bos_token`).
fn bos_template(file: &GgufFile, tokens: &[String]) -> Result<TemplateProcessing> {
    let id = file.usize("tokenizer.ggml.bos_token_id")?;
    let bos = tokens.get(id).ok_or_else(|| {
        anyhow!(
            "{}: tokenizer.ggml.bos_token_id {id} is outside its {} tokens",
            file.path().display(),
            tokens.len()
        )
    })?;
    TemplateProcessing::builder()
        .try_single(format!("{bos} $A:0"))
        .and_then(|b| b.try_pair(format!("{bos} $A:0 {bos}:1 $B:1")))
        .map_err(|e| anyhow!("cannot use BOS token {bos:?} in a template: {e}"))?
        .special_tokens(vec![(bos.clone(), id as u32)])
        .build()
        .map_err(|e| anyhow!("cannot build the BOS template: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::{self, Value};

    /// A GGUF file holding only tokenizer metadata.
    fn file_with(model: &str, pre: &str) -> (tempfile::TempDir, GgufFile) {
        let strings =
            |v: &[&str]| Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect());
        let tokens = strings(&["<|endoftext|>", "a", "b", "ab", "Ġ", "1", "2", "ĠĠ"]);
        let types = Value::Array([3, 1, 1, 1, 1, 1, 1, 1].map(Value::I32).to_vec());
        let merges = strings(&["a b", "Ġ Ġ"]);
        let (model, pre) = (Value::String(model.into()), Value::String(pre.into()));
        let meta = [
            ("tokenizer.ggml.model", &model),
            ("tokenizer.ggml.pre", &pre),
            ("tokenizer.ggml.tokens", &tokens),
            ("tokenizer.ggml.token_type", &types),
            ("tokenizer.ggml.merges", &merges),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tok.gguf");
        gguf_file::write(&mut std::fs::File::create(&path).unwrap(), &meta, &[]).unwrap();
        let file = GgufFile::open(&path).unwrap();
        (dir, file)
    }

    fn ids(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
        tokenizer.encode(text, true).unwrap().get_ids().to_vec()
    }

    #[test]
    fn smollm_splits_digits_merges_and_keeps_control_tokens() {
        let (_dir, file) = file_with("gpt2", "smollm");
        let tok = from_gguf(&file).unwrap();
        // The space run ends at the digit, so it stays one "ĠĠ".
        assert_eq!(ids(&tok, "ab  12"), [3, 7, 5, 6]);
        assert_eq!(ids(&tok, "<|endoftext|>ab"), [0, 3]);
    }

    #[test]
    fn llama3_split_regex_compiles_and_runs() {
        let (_dir, file) = file_with("gpt2", "llama-bpe");
        let tok = from_gguf(&file).unwrap();
        assert_eq!(ids(&tok, "ab  12"), [3, 4, 4, 5, 6]);
    }

    /// The pieces of `text` (as written there) that the named chain splits it into.
    fn pieces(pre: &str, text: &str) -> Vec<String> {
        use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};
        let (_dir, file) = file_with("gpt2", pre);
        let mut s = PreTokenizedString::from(text);
        pre_tokenizer(&file, pre)
            .unwrap()
            .pre_tokenize(&mut s)
            .unwrap();
        s.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(_, (a, b), _)| text[a..b].to_string())
            .collect()
    }

    #[test]
    fn qwen2_split_isolates_digits_folds_contractions_and_keeps_newline_runs() {
        // Checked against Python's `regex` module with the same pattern.
        assert_eq!(
            pieces("qwen2", "I'M 12345 can't\n\n  go"),
            ["I", "'M", " ", "1", "2", "3", "4", "5", " can", "'t", "\n\n", " ", " go"]
        );
        // Llama 3 groups digits by three.
        assert_eq!(
            pieces("llama-bpe", "I'M 12345"),
            ["I", "'M", " ", "123", "45"]
        );
        let (_dir, file) = file_with("gpt2", "qwen2");
        let tok = from_gguf(&file).unwrap();
        assert_eq!(ids(&tok, "ab  12"), [3, 4, 4, 5, 6]);
    }

    #[test]
    fn unknown_tokenizers_point_to_the_tokenizer_json() {
        let (_dir, file) = file_with("gpt2", "mystery");
        let err = from_gguf(&file).unwrap_err().to_string();
        assert!(
            err.contains("\"mystery\"")
                && err.ends_with("; load the model's tokenizer.json instead"),
            "{err}"
        );
        let (_dir, file) = file_with("llama", "default");
        let err = from_gguf(&file).unwrap_err().to_string();
        assert!(
            err.contains("\"llama\" tokenizer")
                && err.ends_with("; load the model's tokenizer.json instead"),
            "{err}"
        );
    }
}
