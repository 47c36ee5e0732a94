//! The heatmap and the summary plot from the command line (issue 9): --metric, --positions,
//! --last, the too-long-prompt fallback, titles, the next-token hit marker, --summary-plot,
//! and each bad input with its one stderr line, its exit code and no file clobbered.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_fails, fixture, phi, require_smollm2, run, stderr, svg_texts};
use logitlens::output::heatmap::{self, HeatmapOptions, ImageFormat, Metric};
use logitlens::{LoadOptions, RunOptions, Session};

const FOX: &str = "The quick brown fox jumps over the lazy";

/// Draws phi-tiny's heatmap of [`FOX`] to `out` with `extra` flags; the run must succeed.
fn fox_image(out: &Path, extra: &[&str]) {
    let m = phi();
    let base = [
        "--model",
        m.as_str(),
        "--prompt",
        FOX,
        "--out",
        out.to_str().unwrap(),
    ];
    let o = run(&[&base[..], extra].concat());
    assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
}

/// A PNG's width, height and RGB pixels.
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(bytes).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Rgb);
    (info.width, info.height, buf)
}

fn pixel((w, _, rgb): &(u32, u32, Vec<u8>), (x, y): (i32, i32)) -> [u8; 3] {
    let i = (y as usize * *w as usize + x as usize) * 3;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

/// [`assert_fails`] with nothing on stdout.
fn assert_bad(o: &Output, code: i32, needle: &str) {
    assert_fails(o, code, &[needle]);
    assert!(o.stdout.is_empty(), "stdout should be empty on failure");
}

/// `name` in a fresh directory, holding "yesterday" so that a clobbered file shows.
fn old_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, b"yesterday").unwrap();
    path
}

#[test]
fn bad_heatmap_inputs_fail_with_one_line_and_clobber_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = old_file(tmp.path(), "out.png");
    let plot = old_file(tmp.path(), "summary.png");
    let (out_s, plot_s) = (out.to_str().unwrap(), plot.to_str().unwrap());
    let m = phi();
    let base = ["--model", m.as_str(), "--prompt", FOX, "--out", out_s];
    let with = |extra: &[&str]| run(&[&base[..], extra].concat());

    // Usage errors, found before the model loads: exit 2.
    assert_bad(&with(&["--metric", "perplexity"]), 2, "--metric");
    assert_bad(&with(&["--metric", "target"]), 2, "no target was given");
    assert_bad(&with(&["--positions", "5..2"]), 2, "reversed");
    assert_bad(&with(&["--positions", "3..3"]), 2, "empty");
    assert_bad(&with(&["--positions", "x..3"]), 2, "not a position");
    assert_bad(&with(&["--last", "0"]), 2, "--last");
    assert_bad(
        &with(&["--positions", "0..2", "--last", "3"]),
        2,
        "cannot be used with",
    );
    assert_bad(
        &with(&["--metric", "rank", "--color-range", "0..100"]),
        2,
        "ranks from 1",
    );
    let no_image = run(&["--model", &m, "--prompt", FOX, "--metric", "kl"]);
    assert_bad(&no_image, 2, "--metric applies to heatmaps");
    let no_image = run(&["--model", &m, "--prompt", FOX, "--last", "3"]);
    assert_bad(&no_image, 2, "--last applies to heatmaps");
    // The HTML report has its own metric selector and shows every position.
    let html = tmp.path().join("r.html");
    let html = [
        "--model",
        &m,
        "--prompt",
        FOX,
        "--out",
        html.to_str().unwrap(),
    ];
    for flag in [
        &["--metric", "kl"][..],
        &["--positions", "0..2"],
        &["--last", "2"],
    ] {
        let o = run(&[&html[..], flag].concat());
        assert_bad(&o, 2, "applies to PNG/SVG heatmaps");
    }
    let one = run(&["--model", &m, "--prompt", FOX, "--summary-plot", plot_s]);
    assert_bad(&one, 2, "several");
    let jpg = tmp.path().join("summary.jpg");
    let two = ["--model", &m, "-p", FOX, "-p", "a b"];
    let o = run(&[&two[..], &["--summary-plot", jpg.to_str().unwrap()]].concat());
    assert_bad(&o, 2, ".png or .svg");

    // Positions past the prompt's end are only known once it is encoded: that prompt
    // fails, exit 1, before anything of it is printed.
    let o = with(&["--positions", "2..40"]);
    assert_bad(&o, 1, "outside the prompt's 16 tokens");
    let o = with(&["--positions", "16.."]);
    assert_bad(&o, 1, "outside the prompt's 16 tokens");

    assert_eq!(std::fs::read(&out).unwrap(), b"yesterday");
    assert_eq!(std::fs::read(&plot).unwrap(), b"yesterday");
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no other file may be written: {names:?}");
}

#[test]
fn metric_target_runs_with_a_target() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("t.svg");
    fox_image(&out, &["--metric", "target", "--target", " dog"]);
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("phi-tiny · probability of “·"), "title");
}

#[test]
fn switching_the_metric_changes_the_cell_colours() {
    let tmp = tempfile::tempdir().unwrap();
    let draw = |metric: &str| {
        let out = tmp.path().join(format!("{metric}.png"));
        fox_image(&out, &["--metric", metric, "-q"]);
        decode(&std::fs::read(&out).unwrap())
    };
    let entropy = draw("entropy");
    let mut seen = vec![entropy.2.clone()];
    for metric in ["prob", "kl", "ce", "rank"] {
        let image = draw(metric);
        assert_eq!(
            (image.0, image.1),
            (entropy.0, entropy.1),
            "{metric}: same layout"
        );
        assert!(
            !seen.contains(&image.2),
            "{metric} draws like another metric"
        );
        seen.push(image.2);
    }
}

/// Loads phi-tiny and runs `prompt` through the library, as the CLI does.
fn phi_report(prompt: &str) -> logitlens::Report {
    let session = Session::load(&phi(), &LoadOptions::default()).unwrap();
    session.run(prompt, &RunOptions::default()).unwrap()
}

#[test]
fn the_last_position_has_no_next_token_under_ce_and_rank() {
    let report = phi_report(FOX);
    let last = report.tokens.len() - 1;
    for metric in [Metric::Ce, Metric::Rank] {
        let opts = HeatmapOptions {
            metric,
            ..HeatmapOptions::default()
        };
        let image = decode(&heatmap::render(&report, &opts, ImageFormat::Png).unwrap());
        for layer in 0..report.layers.len() {
            let (x0, y0, x1, _) = heatmap::cell_box(&report, &opts, layer, last)
                .unwrap()
                .unwrap();
            // Every pixel of the cell's top row is the hatching's light or dark grey
            // (or a hit frame's black and white), never a colour of the scale.
            for x in x0 + 4..x1 - 4 {
                let p = pixel(&image, (x, y0 + 4));
                assert!(
                    p[0] == p[1] && p[1] == p[2],
                    "{metric:?} layer {layer}: {p:?}"
                );
            }
            let (x0, y0, _, _) = heatmap::cell_box(&report, &opts, layer, 0)
                .unwrap()
                .unwrap();
            let p = pixel(&image, (x0 + 6, y0 + 6));
            assert!(!(p[0] == p[1] && p[1] == p[2]), "position 0 is coloured");
        }
    }
}

#[test]
fn a_prompt_too_long_for_one_image_draws_its_last_window_and_says_so() {
    // llama-tiny with room for a long prompt (rotary positions need no table).
    let model = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture("llama-tiny").join(f), model.path().join(f)).unwrap();
    }
    let config = std::fs::read_to_string(fixture("llama-tiny").join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["max_position_embeddings"] = 4096.into();
    std::fs::write(model.path().join("config.json"), config.to_string()).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("long.png");
    let prompt = "the cat sat on the mat. ".repeat(150);
    let long = |out: &Path, extra: &[&str]| {
        let m = model.path().to_str().unwrap();
        let base = [
            "--model",
            m,
            "--prompt",
            &prompt,
            "--out",
            out.to_str().unwrap(),
        ];
        run(&[&base[..], extra].concat())
    };
    let o = long(&out, &["-f", "jsonl"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = doc["tokens"].as_array().unwrap().len();
    assert!(n > 1000, "{n} tokens");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("logitlens: warning: prompt 0: positions 0–")
            && err.contains(&format!("–{})", n - 1))
            && err.contains("--positions A..B or --last N"),
        "{err}"
    );
    let (w, _, _) = decode(&std::fs::read(&out).unwrap());
    assert!((20_000..=32_000).contains(&w), "{w}");

    // -q keeps the warning off stderr; --last picks a window that fits, with no warning.
    let quiet = long(&out, &["-q"]);
    assert!(quiet.status.success() && quiet.stderr.is_empty());
    let svg = tmp.path().join("last.svg");
    let last = long(&svg, &["--last", "20"]);
    assert!(
        last.status.success() && last.stderr.is_empty(),
        "{}",
        stderr(&last)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    let window = format!("positions {}–{} of {n}", n - 20, n - 1);
    assert!(text.contains(&window), "title names the window {window}");
}

#[test]
fn titles_name_the_model_not_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let svg = |model: &str, name: &str| {
        let out = tmp.path().join(name);
        let o = run(&[
            "--model",
            model,
            "--prompt",
            "Hello world",
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(&out).unwrap()
    };
    // A directory by its name; a GGUF by its file name and its general.name.
    let dir = phi();
    let text = svg(&dir, "dir.svg");
    assert!(text.contains("phi-tiny · entropy (nats)"));
    assert!(!text.contains(&dir), "no absolute path in the title");
    let gguf = fixture("qwen2-tiny").join("model-f32.gguf");
    let text = svg(gguf.to_str().unwrap(), "gguf.svg");
    assert!(text.contains("model-f32.gguf (Qwen2 Tiny) · entropy (nats)"));
    assert!(!text.contains(gguf.to_str().unwrap()));
}

#[test]
fn positions_window_the_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("w.svg");
    fox_image(&out, &["--positions", "2..5"]);
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("positions 2–4 of 16"));
    // The position numbers under the columns are the prompt's own: 2, 3, 4.
    let texts = svg_texts(&svg);
    for shown in ["2", "3", "4"] {
        assert!(texts.iter().any(|t| t == shown), "{shown}: {texts:?}");
    }
    // (Position numbers past the colour bar's ticks, 0..8 nats.)
    for hidden in ["9", "12", "15"] {
        assert!(!texts.iter().any(|t| t == hidden), "{hidden}: {texts:?}");
    }
}

#[test]
fn summary_plot_draws_the_batch_curves() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("curves.png");
    let svg = tmp.path().join("curves.svg");
    for (path, extra) in [
        (&png, vec![]),
        (&svg, vec!["--target", " dog", "--sublayers"]),
    ] {
        let mut args = vec![
            "--model",
            "PHI",
            "-p",
            FOX,
            "-p",
            "The capital of France is",
            "--summary-plot",
            path.to_str().unwrap(),
            "-q",
        ];
        let m = phi();
        args[1] = &m;
        args.extend(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (w, h, _) = decode(&std::fs::read(&png).unwrap());
    assert!(w > 600 && h > 300, "{w}×{h}");
    let text = std::fs::read_to_string(&svg).unwrap();
    for label in [
        "phi-tiny · per-layer summary of 2 prompts",
        "mean entropy (nats)",
        "mean KL to the output (nats)",
        "mean next-token cross-entropy (nats)",
        "next-token top-1 accuracy",
        "top-1 agreement with the output",
        "mean target probability (last position)",
        "after block l",
    ] {
        assert!(text.contains(label), "{label}");
    }
}

#[test]
fn next_token_hits_are_framed_on_a_real_model() {
    let Some(path) = require_smollm2() else {
        return;
    };
    let session = Session::load(path.to_str().unwrap(), &LoadOptions::default()).unwrap();
    // The title is the file's name, then its general.name.
    assert_eq!(
        session.title(),
        "SmolLM2-135M-Instruct.Q4_1.gguf (Smollm2 135M 8k Lc100K Mix1 Ep2)"
    );
    let report = session.run(FOX, &RunOptions::default()).unwrap();
    let opts = HeatmapOptions::default();
    let image = decode(&heatmap::render(&report, &opts, ImageFormat::Png).unwrap());
    let (mut hits, mut misses) = (0, 0);
    for (l, layer) in report.layers.iter().enumerate() {
        for (p, cell) in layer.positions.iter().enumerate() {
            let (x0, y0, _, y1) = heatmap::cell_box(&report, &opts, l, p).unwrap().unwrap();
            let mid = (y0 + y1) / 2;
            let hit = report
                .tokens
                .get(p + 1)
                .is_some_and(|t| t.id == cell.stat.id);
            let edge = (pixel(&image, (x0, mid)), pixel(&image, (x0 + 2, mid)));
            if hit {
                hits += 1;
                assert_eq!(edge, ([0, 0, 0], [255, 255, 255]), "layer {l} position {p}");
            } else {
                misses += 1;
                assert_ne!(edge.0, [0, 0, 0], "layer {l} position {p} is no hit");
            }
        }
    }
    // " brown" after "The quick", " over" after " jumps", …: the late layers hit.
    assert!(hits >= 5 && misses > hits, "{hits} hits, {misses} misses");
}
