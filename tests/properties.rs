//! Property tests: token display never panics nor leaks control characters, whatever the
//! bytes or id; config parsing never panics, whatever the JSON.

mod common;

use std::sync::OnceLock;

use candle_core::DType;
use common::fixture;
use logitlens::models::{self, ModelFiles};
use logitlens::source;
use logitlens::tokens::{printable, Vocab};
use proptest::prelude::*;

fn vocab() -> &'static Vocab {
    static VOCAB: OnceLock<Vocab> = OnceLock::new();
    VOCAB.get_or_init(|| Vocab::from_file(&fixture("phi-tiny").join("tokenizer.json")).unwrap())
}

/// No raw control characters: newlines, tabs and the rest must have been made visible.
fn visible(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Arbitrary JSON, nested a few levels, biased towards config-like keys.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("model_type".to_string()),
        Just("hidden_size".to_string()),
        Just("num_hidden_layers".to_string()),
        Just("num_attention_heads".to_string()),
        Just("num_key_value_heads".to_string()),
        Just("vocab_size".to_string()),
        Just("intermediate_size".to_string()),
        Just("partial_rotary_factor".to_string()),
        Just("rope_scaling".to_string()),
        "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (0u64..100).prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("phi"),
            Just("llama"),
            Just("gpt2"),
            Just("qwen2"),
            Just("x")
        ]
        .prop_map(serde_json::Value::from),
        ".{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn printable_never_panics_or_leaks_control_chars(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert!(visible(&printable(&bytes)));
    }

    #[test]
    fn any_token_id_displays(id in any::<u32>()) {
        prop_assert!(visible(&vocab().display(id)));
    }

    #[test]
    fn any_string_round_trips_through_display(text in "\\PC{0,12}|[\\x00-\\x1f\\x7f ]{0,6}") {
        for id in vocab().encode(&text).unwrap_or_default() {
            prop_assert!(visible(&vocab().display(id)));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Loading with an arbitrary config.json (real weights and tokenizer) returns an error
    /// or a model, never a panic; an object with a supported model_type reaches the
    /// architecture's own parser.
    #[test]
    fn arbitrary_config_json_never_panics(mut value in json(), model_type in prop_oneof![Just("phi"), Just("llama"), Just("qwen2"), Just("gpt2"), Just("mistral"), Just("qwen3"), Just("olmo2"), Just("gemma"), Just("gemma2"), Just("gemma3_text"), Just("gemma3"), Just("gpt_neox"), Just("phi3")]) {
        if let Some(obj) = value.as_object_mut() {
            obj.insert("model_type".into(), model_type.into());
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(&config, value.to_string()).unwrap();
        let real = source::local_dir(&fixture("phi-tiny")).unwrap();
        let files = ModelFiles { config, ..real };
        let result = std::panic::catch_unwind(|| models::load(&files, DType::F32, &logitlens::compute::Compute::cpu()).map(drop));
        prop_assert!(result.is_ok(), "panicked on {}", value);
    }
}
