//! Shared helpers for the integration tests: fixtures and their golden values.
#![allow(dead_code)]

use std::path::PathBuf;

use serde::Deserialize;

/// A fixture directory under tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// golden.json as scripts/make_fixtures.py writes it.
#[derive(Debug, Deserialize)]
pub struct Golden {
    pub model_type: String,
    pub num_layers: usize,
    pub cases: Vec<Case>,
}

/// One prompt's reference values from transformers.
#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    pub prompt: String,
    pub bos: bool,
    pub ids: Vec<u32>,
    #[serde(default)]
    pub hidden_states: Vec<Vec<Vec<f32>>>,
    /// The model's logits at the last position.
    #[serde(default)]
    pub final_logits_last: Vec<f32>,
    pub lens: GoldenLens,
}

/// Lens rows `[layer][position]` with and without the final norm.
#[derive(Debug, Deserialize)]
pub struct GoldenLens {
    pub final_norm: Vec<Vec<GoldenStat>>,
    pub raw: Vec<Vec<GoldenStat>>,
}

/// The reference's argmax, its probability, the entropy and the top-2 logit margin.
#[derive(Debug, Deserialize, Clone, Copy)]
pub struct GoldenStat {
    pub id: u32,
    pub prob: f64,
    pub entropy: f64,
    pub margin: f64,
}

/// Reads a fixture's golden.json.
pub fn golden(name: &str) -> Golden {
    let path = fixture(name).join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Tolerances the parity tests hold every architecture to.
pub const HIDDEN_TOL: f32 = 1e-4;
pub const ENTROPY_TOL: f64 = 1e-4;
pub const MARGIN_CLEAR: f64 = 1e-3;
