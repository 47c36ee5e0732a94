//! The kernels' baseline path, which CPUs without AVX2 or AVX-512 take (aarch64, older
//! x86-64), forced with `LOGITLENS_KERNELS=baseline`: the same lens as the widest path
//! this CPU has, on half weights read in place (short and long inputs) and on f32 weights,
//! single prompts and packed batches.

mod common;

use common::*;

/// prob, entropy, kl and next_logprob of every CSV row.
fn numbers(model: &str, args: &[&str], baseline: bool) -> Vec<[f64; 4]> {
    let mut cmd = logitlens(&[&["-m", model, "-f", "csv", "-q"], args].concat());
    if baseline {
        cmd.env("LOGITLENS_KERNELS", "baseline");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut csv = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(out.stdout.as_slice());
    let header = csv.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let cols = [col("prob"), col("entropy"), col("kl"), col("next_logprob")];
    csv.records()
        .map(|r| {
            let r = r.unwrap();
            cols.map(|c| r[c].parse().unwrap_or(0.0))
        })
        .collect()
}

#[test]
fn the_baseline_path_computes_the_same_lens() {
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(3);
    let prompts = dir_with_prompts(&["a b", "The quick brown fox", &long]);
    for model in ["phi-tiny-f16", "phi-tiny", "llama-tiny"] {
        let model = fixture(model);
        let model = model.to_str().unwrap();
        for args in [
            vec!["-p", "The quick brown fox"],
            vec!["-p", long.as_str()],
            vec!["--prompts", prompts.1.to_str().unwrap()],
        ] {
            let (wide, base) = (numbers(model, &args, false), numbers(model, &args, true));
            assert_eq!(wide.len(), base.len());
            for (w, b) in wide.iter().zip(&base) {
                for (x, y) in w.iter().zip(b) {
                    assert!((x - y).abs() <= 1e-4, "{model} {args:?}: {w:?} vs {b:?}");
                }
            }
        }
    }
}

/// A temporary directory holding a prompts file, one prompt a line.
fn dir_with_prompts(prompts: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prompts.txt");
    std::fs::write(&path, prompts.join("\n")).unwrap();
    (dir, path)
}
