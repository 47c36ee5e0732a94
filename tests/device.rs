//! `--device` and the generic device path from the command line. The parity suites
//! (parity, stats_parity, gguf, tuned_lens, smollm2) check the generic path against
//! transformers fixture by fixture; here: the flag's errors, and that a batch through the
//! generic path (packed prompts, top-k, targets, sublayers) equals the CPU kernels' run.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn devices_this_build_cannot_open_are_one_line_usage_errors() {
    let model = phi();
    if !cfg!(feature = "cuda") {
        let o = run(&["--model", &model, "--prompt", "a", "--device", "cuda"]);
        assert_fails(
            &o,
            2,
            &["--device cuda:0", "--features cuda", "docs/GPU.md"],
        );
    } else {
        // A CUDA build (scripts/build_cuda.sh test): no machine has a GPU number 99.
        let o = run(&["--model", &model, "--prompt", "a", "--device", "cuda:99"]);
        assert_fails(
            &o,
            2,
            &["--device cuda:99: no usable CUDA device 99", "docs/GPU.md"],
        );
    }
    let o = run(&["--model", &model, "--prompt", "a", "--device", "tpu"]);
    assert_fails(&o, 2, &["unknown device \"tpu\"", "cuda:N"]);
    let o = run(&["--model", &model, "--prompt", "a", "--device", "cuda:first"]);
    assert_fails(&o, 2, &["\"first\" is not a device number"]);
}

/// Every number of every cell, as JSONL.
fn jsonl(model: &str, generic: bool, extra: &[&str]) -> (Vec<Value>, String) {
    let prompts = [
        "The quick brown fox",
        "jumps over",
        "the lazy dog and the cat",
    ];
    let mut args = vec!["--model", model, "--format", "jsonl", "--top-k", "4"];
    for p in &prompts {
        args.extend(["--prompt", p]);
    }
    args.extend_from_slice(extra);
    let mut cmd = logitlens(&args);
    cmd.env("LOGITLENS_TIMING", "1");
    if generic {
        cmd.env("LOGITLENS_GENERIC_PATH", "1");
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let values = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (values, err)
}

/// The two runs' values, side by side, walking both documents.
fn compare(a: &Value, b: &Value, at: &str, worst: &mut f64) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: keys");
            for (k, v) in x {
                if k == "timings" || k == "provenance" {
                    continue;
                }
                compare(v, &y[k], &format!("{at}.{k}"), worst);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: length");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                compare(v, w, &format!("{at}[{i}]"), worst);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let d = (x - y).abs();
            assert!(d <= 2e-5 * (1.0 + y.abs()), "{at}: {x} vs {y}");
            *worst = worst.max(d);
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn a_batch_on_the_generic_path_equals_the_cpu_kernels() {
    for (name, extra) in [
        (
            "llama-tiny",
            &["--sublayers", "--target", " the", "--bos"][..],
        ),
        ("phi-tiny-f16", &["--target", " fox"][..]),
        ("gemma2-tiny", &["--no-final-norm"][..]),
    ] {
        let model = fixture(name).display().to_string();
        let (ours, timing) = jsonl(&model, true, extra);
        assert!(timing.contains("on cpu (generic path)"), "{timing}");
        let (theirs, timing) = jsonl(&model, false, extra);
        assert!(
            timing.contains("on cpu\n") || timing.contains("on cpu\r"),
            "{timing}"
        );
        assert_eq!(ours.len(), 3);
        let mut worst = 0f64;
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            compare(a, b, &format!("{name} prompt {i}"), &mut worst);
        }
        say(format!(
            "{name}: generic path vs cpu kernels, max |Δ| {worst:.2e}"
        ));
    }
}
