//! Prompts packed into one forward pass (issue 12) give each prompt the rows it gets alone:
//! mixed lengths, with and without BOS, on every block type that changes what packing must
//! respect (rotary and learned positions, sliding windows and soft-caps, LongRoPE's table
//! switch, half weights read in place, GGUF), on both backends: the CPU kernels and the
//! generic (tensor) path, whose statistics are reduced as tensors chunk by chunk.

mod common;

use common::*;
use logitlens::lens::{lens_rows, lens_rows_batch, Row};
use logitlens::{LensOptions, LoadOptions, RunOptions, Session};
use std::path::Path;

const PROMPTS: [&str; 5] = [
    "The quick brown fox jumps over the lazy dog",
    "a",
    "Paris is the capital of France, and Berlin is the capital of",
    "one two",
    "The quick brown fox jumps over the lazy dog, again and again and again and again and again",
];

/// Every cell of `a` against `b`: argmax where clear, probability, entropy, KL and the
/// next-token log-probability within 1e-4.
fn assert_same(a: &[Row], b: &[Row], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: rows");
    for (ra, rb) in a.iter().zip(b) {
        assert_eq!((ra.layer, ra.site), (rb.layer, rb.site), "{what}");
        assert_eq!(ra.cells.len(), rb.cells.len(), "{what}: positions");
        for (p, (ca, cb)) in ra.cells.iter().zip(&rb.cells).enumerate() {
            let (x, y) = (ca.stat, cb.stat);
            let at = format!("{what}: layer {} position {p}", ra.layer);
            for (u, v, name) in [
                (x.prob, y.prob, "prob"),
                (x.entropy, y.entropy, "entropy"),
                (x.kl, y.kl, "kl"),
                (
                    x.next_logprob.unwrap_or(0.0),
                    y.next_logprob.unwrap_or(0.0),
                    "next_logprob",
                ),
            ] {
                assert!((u - v).abs() <= 1e-4, "{at}: {name} {u} vs {v}");
            }
            if x.prob > 1.5 / 64.0 && x.id != y.id {
                panic!("{at}: argmax {} vs {}", x.id, y.id);
            }
            assert_eq!(ca.topk.len(), cb.topk.len(), "{at}: top-k");
            for (u, v) in ca.topk.iter().zip(&cb.topk) {
                assert!(
                    (u.prob - v.prob).abs() <= 1e-4,
                    "{at}: top-k {u:?} vs {v:?}"
                );
            }
            assert_eq!(ca.targets.len(), cb.targets.len(), "{at}: targets");
            for (u, v) in ca.targets.iter().zip(&cb.targets) {
                assert!(
                    (u.logprob - v.logprob).abs() <= 1e-4,
                    "{at}: target {u:?} vs {v:?}"
                );
            }
        }
    }
}

fn check(model: &Path, way: Way) {
    let session = load_way(model, way);
    let model = format!("{} ({})", model.display(), way.label());
    for bos in [false, true] {
        // Each prompt its own top-k and targets; in the batch, a budget of 3 positions' rows
        // per head chunk, so that chunks split prompts and span several, each chunk's
        // prompts asking for different top-k and targets.
        let rows = session.model().info().num_layers + 1;
        let vocab = session.model().info().vocab_size;
        let alone: Vec<LensOptions> = (0..PROMPTS.len())
            .map(|i| LensOptions {
                top_k: i % 3 + 1,
                targets: (0..i as u32).map(|t| 7 + 13 * t).collect(),
                ..LensOptions::default()
            })
            .collect();
        let small: Vec<LensOptions> = alone
            .iter()
            .map(|o| LensOptions {
                logits_budget: 3 * rows * 4 * vocab,
                ..o.clone()
            })
            .collect();
        let ids: Vec<Vec<u32>> = match PROMPTS.iter().map(|p| session.encode(p, bos)).collect() {
            Ok(ids) => ids,
            Err(e) if bos => {
                eprintln!("{model}: no BOS ({e}); checked without");
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        let lenses = [small[0].lens.clone()];
        for budget in [&alone, &small] {
            let batch: Vec<(&[u32], &LensOptions)> = ids
                .iter()
                .zip(budget)
                .map(|(i, o)| (i.as_slice(), o))
                .collect();
            let packed = lens_rows_batch(session.model(), &batch, &lenses).unwrap();
            assert_eq!(packed.len(), ids.len());
            for (i, (ids, (rows, _))) in ids.iter().zip(&packed).enumerate() {
                let (one, _) = lens_rows(session.model(), ids, &alone[i]).unwrap();
                let what = format!("{model} bos={bos} prompt {i}");
                for cell in rows[0].iter().flat_map(|r| &r.cells) {
                    assert_eq!(cell.topk.len(), i % 3 + 1, "{what}");
                    assert_eq!(cell.targets.len(), i, "{what}");
                }
                assert_same(&rows[0], &one, &what);
            }
        }
    }
}

#[test]
fn packed_prompts_match_each_prompt_alone() {
    for name in [
        "phi-tiny",
        "phi-tiny-f16",
        "llama-tiny",
        "gpt2-tiny",
        "gemma2-tiny",
        "phi3-longrope-tiny",
        "qwen3-tiny",
        "gpt-neox-tiny",
    ] {
        for way in WAYS {
            check(&fixture(name), way);
        }
    }
    for way in WAYS {
        check(&fixture("gemma2-tiny").join("model-q8_0.gguf"), way);
    }
}

/// The session's batch runs a prompt that fails to encode apart and reports every other
/// prompt as it reports it alone.
#[test]
fn a_failing_prompt_leaves_the_rest_of_the_batch_alone() {
    let session = Session::load(
        fixture("phi-tiny").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let opts = RunOptions::default();
    let batch = [
        ("The quick brown fox", &opts),
        ("", &opts),
        ("one two", &opts),
    ];
    let got = session.run_all_batch(&batch);
    assert!(got[1].is_err());
    for i in [0, 2] {
        let (batched, _) = got[i].as_ref().unwrap();
        let (alone, _) = session.run_all(batch[i].0, &opts).unwrap();
        assert_eq!(batched[0].tokens.len(), alone[0].tokens.len());
    }
}
