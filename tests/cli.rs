//! The built binary end to end: table, JSON and PNG output, the Hub cache path, and one
//! clear stderr line for every bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use logitlens::output::heatmap;

const FOX: &str = "The quick brown fox jumps over the lazy";

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn fox_case() -> Case {
    golden("phi-tiny")
        .cases
        .into_iter()
        .find(|c| c.name == "fox")
        .unwrap()
}

#[test]
fn table_lists_every_layer_with_input_tokens() {
    let o = run(&["--model", &phi(), "--prompt", FOX]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    let layers = golden("phi-tiny").num_layers;
    assert_eq!(
        lines.len(),
        layers + 3,
        "header, L+1 rows and the footer:\n{text}"
    );
    assert!(lines[0].starts_with("layer"));
    for word in ["The", " over", " the"] {
        assert!(
            lines[0].contains(word),
            "header lacks {word:?}: {}",
            lines[0]
        );
    }
    assert!(lines[1].starts_with("0 emb"));
    assert!(lines[layers + 1].starts_with(&format!("{layers} out")));
    assert!(
        lines[layers + 2].starts_with("final "),
        "{}",
        lines[layers + 2]
    );
    assert!(stderr(&o).is_empty(), "stderr: {}", stderr(&o));
}

#[test]
fn entropy_flag_adds_numbers_to_every_cell() {
    let o = run(&["--model", &phi(), "--prompt", FOX, "--entropy"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let last = text.lines().nth_back(1).unwrap();
    let want = fox_case().lens.final_norm.last().unwrap()[0].entropy;
    assert!(
        last.contains(&format!("{want:.2}")),
        "{last} lacks {want:.2}"
    );
}

#[test]
fn layer_step_thins_the_table_as_the_heatmap() {
    let full = run(&["--model", &phi(), "--prompt", FOX, "--top-k", "2"]);
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        FOX,
        "--top-k",
        "2",
        "--layer-step",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let label = |line: &str| line.split(" │").next().unwrap().trim().to_string();
    // The table's rows, then the last-position rows, each under a header starting "layer".
    let sections = |text: &str| -> Vec<Vec<String>> {
        let mut sections: Vec<Vec<String>> = Vec::new();
        for line in text.lines().filter(|l| l.contains(" │")) {
            match line.starts_with("layer") {
                true => sections.push(Vec::new()),
                false => sections.last_mut().unwrap().push(label(line)),
            }
        }
        sections
    };
    let (full, stepped) = (sections(&stdout(&full)), sections(&stdout(&o)));
    assert_eq!(
        stepped.len(),
        2,
        "the grid and the last position: {stepped:?}"
    );
    let rows = golden("phi-tiny").num_layers + 1;
    let want: Vec<String> = heatmap::shown_layers(rows, 2)
        .into_iter()
        .map(|l| full[0][l].clone())
        .collect();
    assert!(want.len() < rows, "{want:?}");
    assert_eq!(stepped[0], want, "the heatmap's rows, output row included");
    assert_eq!(stepped[1], want, "the last position's rows too");
}

#[test]
fn layer_step_is_refused_where_nothing_thins() {
    let tmp = tempfile::tempdir().unwrap();
    for format in ["json", "jsonl", "csv", "tsv"] {
        let o = run(&[
            "--model",
            &phi(),
            "--prompt",
            FOX,
            "--format",
            format,
            "--layer-step",
            "2",
        ]);
        assert_eq!(o.status.code(), Some(2), "{format}: {}", stderr(&o));
        assert_bad(&o, "--layer-step");
        assert!(
            stderr(&o).contains(&format!("--format {format}")),
            "{}",
            stderr(&o)
        );
    }
    // With a heatmap the step applies to the image, and the data keeps every layer.
    let png = tmp.path().join("step.png");
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        FOX,
        "--format",
        "json",
        "--layer-step",
        "2",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let layers = golden("phi-tiny").num_layers + 1;
    assert_eq!(doc["layers"].as_array().unwrap().len(), layers);
}

#[test]
fn heatmap_and_report_name_a_gguf_model_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = fixture("gemma-tiny").join("model-f32.gguf");
    let (svg, html) = (tmp.path().join("m.svg"), tmp.path().join("m.html"));
    for out in [&svg, &html] {
        let o = run(&[
            "--model",
            gguf.to_str().unwrap(),
            "--prompt",
            FOX,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // The file name, then the GGUF's general.name.
    let name = "model-f32.gguf (Gemma Tiny)";
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.contains(&format!("\n{name} · entropy (nats)\n")),
        "{svg}"
    );
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(
        html.contains(&format!("<h1 id=\"title\">logitlens: {name}</h1>")),
        "the heading names the model as the heatmap does"
    );
    assert!(html.contains(&format!("<title>logitlens: {name}: {FOX}</title>")));
}

#[test]
fn json_carries_the_lens_values() {
    let o = run(&["--model", &phi(), "--prompt", FOX, "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let case = fox_case();
    assert_eq!(doc["prompt"], FOX);
    assert_eq!(doc["model"], phi());
    let ids: Vec<u64> = doc["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, case.ids.iter().map(|&i| i as u64).collect::<Vec<_>>());
    let text: String = doc["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, FOX, "token texts spell the prompt back");
    let layers = doc["layers"].as_array().unwrap();
    assert_eq!(layers.len(), case.lens.final_norm.len());
    for (l, (layer, want)) in layers.iter().zip(&case.lens.final_norm).enumerate() {
        assert_eq!(layer["layer"], l);
        for (p, w) in layer["positions"].as_array().unwrap().iter().zip(want) {
            assert!((p["entropy"].as_f64().unwrap() - w.entropy).abs() <= ENTROPY_TOL);
            assert!((p["prob"].as_f64().unwrap() - w.prob).abs() <= ENTROPY_TOL);
            if w.margin > MARGIN_CLEAR {
                assert_eq!(p["id"].as_u64().unwrap(), w.id as u64);
            }
            assert!(p["token"].is_string());
        }
    }
}

#[test]
fn no_final_norm_changes_inner_rows_only() {
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        FOX,
        "--format",
        "json",
        "--no-final-norm",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let case = fox_case();
    for (layer, want) in doc["layers"].as_array().unwrap().iter().zip(&case.lens.raw) {
        for (p, w) in layer["positions"].as_array().unwrap().iter().zip(want) {
            assert!((p["entropy"].as_f64().unwrap() - w.entropy).abs() <= ENTROPY_TOL);
        }
    }
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    (info.width, info.height)
}

#[test]
fn png_heatmap_has_the_size_of_its_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fox.png");
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        FOX,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tokens = fox_case().ids.len();
    let rows = golden("phi-tiny").num_layers + 1;
    let in_bounds = |(w, h): (u32, u32), rows: usize| {
        let (lo, hi) = heatmap::width_bounds(tokens);
        assert_eq!(h, heatmap::image_height(rows));
        assert!(lo <= w && w <= hi, "{w} outside {lo}..={hi}");
    };
    in_bounds(png_size(&out), rows);

    let stepped = dir.path().join("step.png");
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        FOX,
        "--out",
        stepped.to_str().unwrap(),
        "--layer-step",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = heatmap::shown_layers(rows, 2).len();
    in_bounds(png_size(&stepped), shown);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporaries left behind"
    );
}

#[test]
fn svg_heatmap_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fox.svg");
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        FOX,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("<svg") && svg.contains("fox"));
}

#[test]
fn hub_id_resolves_from_the_offline_cache() {
    let home = tempfile::tempdir().unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    hub_cache(home.path(), "org/tiny-phi", commit);
    let json = |extra: &[&str], env: (&str, PathBuf)| {
        let mut args = vec![
            "--model",
            "org/tiny-phi",
            "--prompt",
            FOX,
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let o = logitlens(&args).env(env.0, env.1).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let by_home = json(&[], ("HF_HOME", home.path().to_path_buf()));
    let by_cache = json(&[], ("HF_HUB_CACHE", home.path().join("hub")));
    let by_commit = json(
        &["--revision", commit],
        ("HF_HOME", home.path().to_path_buf()),
    );
    let local = serde_json::from_slice::<serde_json::Value>(
        &run(&["--model", &phi(), "--prompt", FOX, "--format", "json"]).stdout,
    )
    .unwrap();
    for doc in [&by_home, &by_cache, &by_commit] {
        assert_eq!(doc["layers"], local["layers"]);
    }

    let o = logitlens(&["--model", "org/absent", "--prompt", FOX])
        .env("HF_HOME", home.path())
        .output()
        .unwrap();
    assert_bad(&o, "HF_HUB_OFFLINE");
    let o = logitlens(&[
        "--model",
        "org/tiny-phi",
        "--revision",
        "v2",
        "--prompt",
        FOX,
    ])
    .env("HF_HOME", home.path())
    .output()
    .unwrap();
    assert_bad(&o, "revision v2");
}

/// A failure: non-zero exit, exactly one stderr line mentioning `needle`, no panic.
fn assert_bad(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success: {}",
        stdout(o)
    );
    assert_eq!(err.lines().count(), 1, "want one stderr line, got:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(o.stdout.is_empty(), "stdout should be empty on failure");
}

/// Copies the phi fixture into a temporary directory for editing.
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture("phi-tiny").join(f), dir.path().join(f)).unwrap();
    }
    dir
}

#[test]
fn bad_inputs_fail_with_one_clear_line_and_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.png");
    let out_s = out.to_str().unwrap();

    let o = run(&["--model", "./no/such/dir", "--prompt", FOX, "--out", out_s]);
    assert_bad(&o, "does not exist");

    let empty = tempfile::tempdir().unwrap();
    let o = run(&[
        "--model",
        empty.path().to_str().unwrap(),
        "--prompt",
        FOX,
        "--out",
        out_s,
    ]);
    assert_bad(&o, "config.json");

    let alien = fixture_copy();
    let cfg = std::fs::read_to_string(alien.path().join("config.json")).unwrap();
    std::fs::write(
        alien.path().join("config.json"),
        cfg.replace("\"phi\"", "\"mamba\""),
    )
    .unwrap();
    let o = run(&[
        "--model",
        alien.path().to_str().unwrap(),
        "--prompt",
        FOX,
        "--out",
        out_s,
    ]);
    assert_bad(&o, "unsupported model_type \"mamba\"");
    assert!(stderr(&o).contains("phi"), "names the supported ones");

    let o = run(&["--model", &phi(), "--prompt", "", "--out", out_s]);
    assert_bad(&o, "empty");
    let o = run(&["--model", &phi(), "--prompt", "  \n ", "--out", out_s]);
    assert_bad(&o, "empty");

    let long = "the cat sat on the mat and ".repeat(20);
    let o = run(&["--model", &phi(), "--prompt", &long, "--out", out_s]);
    assert_bad(&o, "at most 64");

    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        FOX,
        "--out",
        tmp.path().join("missing/out.png").to_str().unwrap(),
    ]);
    assert_bad(&o, "does not exist");

    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        FOX,
        "--out",
        tmp.path().join("out.jpg").to_str().unwrap(),
    ]);
    assert_bad(&o, "jpg");

    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        FOX,
        "--layer-step",
        "0",
        "--out",
        out_s,
    ]);
    assert_bad(&o, "--layer-step");

    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no file may be written"
    );
}

#[test]
fn failed_run_keeps_the_previous_image() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.png");
    std::fs::write(&out, b"yesterday").unwrap();
    let long = "word ".repeat(200);
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        &long,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), b"yesterday");
}

/// README's option table has a row for every flag clap accepts (with its short form where
/// it has one, and an example in the third column); hidden flags are at least named.
#[test]
fn readme_option_table_has_every_flag() {
    use clap::CommandFactory;
    let readme = readme();
    let rows: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("Every option, with an example:"))
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .collect();
    assert!(rows.len() > 20, "README's option table not found: {rows:?}");
    // Built, so that clap's own --help and --version are among the arguments.
    let mut command = logitlens::cli::flags::Flags::command();
    command.build();
    let flags: Vec<(Option<char>, String, bool)> = command
        .get_arguments()
        .filter_map(|a| Some((a.get_short(), a.get_long()?.to_string(), a.is_hide_set())))
        .collect();
    for (short, long, hidden) in flags {
        if hidden {
            assert!(
                readme.contains(&format!("`--{long}`")),
                "README never names the hidden flag --{long}"
            );
            continue;
        }
        let named = format!("--{long}");
        // A row is `| option | what it does | example |`; escaped pipes have no spaces.
        let row = rows.iter().find(|r| {
            let option = r.split(" | ").next().unwrap_or_default();
            option.split(['`', ',', ' ']).any(|word| word == named)
        });
        let Some(row) = row else {
            panic!("README's option table has no row for --{long}");
        };
        if let Some(s) = short {
            assert!(
                row.contains(&format!("`-{s}, --{long}")),
                "README's row for --{long} does not show -{s}: {row}"
            );
        }
        let example = row.rsplit(" | ").next().unwrap_or_default();
        assert!(
            example.contains('`'),
            "README's row for --{long} has no example: {row}"
        );
    }
}
