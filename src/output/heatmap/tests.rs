//! The heatmap's tests.

use std::path::Path;

use plotters::prelude::*;

use super::bearing;
use super::colour::*;
use super::draw::Plot;
use super::layout::*;
use super::text::*;
use super::*;
use crate::lens::{LogitLens, TokenStat};
use crate::report::{InputToken, Layer, Prediction};

/// 3 tokens × 5 layers; entropy rises with position so columns differ.
fn report(layers: usize, tokens: &[&str]) -> Report {
    let tokens: Vec<InputToken> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| InputToken {
            id: i as u32,
            text: t.to_string(),
            bytes: None,
            display: t.to_string(),
        })
        .collect();
    let layers = (0..layers)
        .map(|l| Layer {
            layer: l,
            site: crate::lens::Site::ResidPost,
            positions: (0..tokens.len())
                .map(|p| Prediction {
                    token: format!(" tok{l}_{p}"),
                    exact: crate::tokens::exact_text(format!(" tok{l}_{p}").as_bytes()),
                    stat: TokenStat {
                        id: p as u32,
                        prob: 0.5,
                        entropy: if p == 0 { 0.05 } else { 1.0 + p as f32 * 2.0 },
                        ..TokenStat::default()
                    },
                    topk: Vec::new(),
                    targets: Vec::new(),
                    nonfinite: false,
                })
                .collect(),
        })
        .collect();
    Report {
        model: "test/model-1b".to_string(),
        prompt: "The quick\nbrown fox".to_string(),
        prompt_index: 0,
        prompt_id: None,
        lens: std::sync::Arc::new(LogitLens::default()),
        lens_kind: "logit",
        first_layer: None,
        settled_layer: None,
        top_k: 0,
        tokens,
        targets: Vec::new(),
        layers,
        provenance: None,
    }
}

fn decode(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
    let mut reader = png::Decoder::new(bytes).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info, buf)
}

#[test]
fn png_has_the_promised_size_and_coloured_cells() {
    let r = report(5, &["The", " quick", " fox"]);
    let bytes = render(&r, &HeatmapOptions::default(), ImageFormat::Png).unwrap();
    let (info, rgb) = decode(&bytes);
    let opts = HeatmapOptions::default();
    assert_eq!(
        (info.width, info.height),
        image_size(&r, &HeatmapOptions::default())
    );
    assert_eq!(info.height, image_height(5));
    assert_eq!(info.color_type, png::ColorType::Rgb);

    let plot = Plot::new(&r, &opts, Layout::new(&r, &opts).unwrap(), ImageFormat::Png);
    // Sample near the top-left corner of a cell, away from its label.
    let pixel = |c: usize, row: usize| {
        let (x0, _) = plot.col_span(c);
        let (y0, _) = plot.row_span(row);
        let i = ((y0 + 3) as usize * info.width as usize + (x0 + 3) as usize) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    let low = pixel(0, 2);
    let high = pixel(2, 2);
    assert_ne!(low, high);
    let expected = viridis(plot.scale.fraction(f64::from(0.05f32)));
    assert_eq!(low, [expected.0, expected.1, expected.2]);
}

#[test]
fn shown_layers_keeps_the_output_layer() {
    assert_eq!(shown_layers(25, 2), (0..=24).step_by(2).collect::<Vec<_>>());
    assert_eq!(shown_layers(24, 5), vec![0, 5, 10, 15, 20, 23]);
    assert_eq!(shown_layers(3, 1), vec![0, 1, 2]);
    assert_eq!(shown_layers(1, 4), vec![0]);
    assert_eq!(shown_layers(0, 4), Vec::<usize>::new());
    assert_eq!(shown_layers(4, 0), vec![0, 1, 2, 3]);
}

#[test]
fn svg_has_the_title() {
    let r = report(5, &["The", " quick", " fox"]);
    let bytes = render(&r, &HeatmapOptions::default(), ImageFormat::Svg).unwrap();
    let svg = String::from_utf8(bytes).unwrap();
    assert!(svg.contains("<svg"));
    assert!(svg.contains("test/model-1b"));
    assert!(svg.contains("The quick↵brown fox"));
    let (w, h) = image_size(&r, &HeatmapOptions::default());
    assert!(svg.contains(&format!("width=\"{w}\"")) && svg.contains(&format!("height=\"{h}\"")));
}

#[test]
fn format_from_path() {
    assert_eq!(
        ImageFormat::from_path(Path::new("a.png")).unwrap(),
        ImageFormat::Png
    );
    assert_eq!(
        ImageFormat::from_path(Path::new("dir/A.PNG")).unwrap(),
        ImageFormat::Png
    );
    assert_eq!(
        ImageFormat::from_path(Path::new("b.svg")).unwrap(),
        ImageFormat::Svg
    );
    let err = ImageFormat::from_path(Path::new("c.jpg"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("jpg") && err.contains("png") && err.contains("svg"),
        "{err}"
    );
    assert!(ImageFormat::from_path(Path::new("noext")).is_err());
}

#[test]
fn odd_inputs_do_not_panic() {
    let opts = HeatmapOptions::default();
    let mut empty = report(5, &[]);
    assert!(render(&empty, &opts, ImageFormat::Png).is_err());
    empty.layers.clear();
    assert!(render(&empty, &opts, ImageFormat::Svg).is_err());

    let mut r = report(
        3,
        &[
            "",
            "\n",
            "a\u{0}b",
            "日本語のトークンです",
            "WWWWWWWWWWWWWWWWWW",
        ],
    );
    r.layers[1].positions[0].stat.entropy = f32::NAN;
    r.layers[1].positions[1].stat.entropy = f32::INFINITY;
    r.layers[2].positions[2].stat.entropy = -1.0;
    r.layers[0].positions[3].token = String::new();
    r.layers[2].positions.truncate(2);
    r.prompt = "x".repeat(10_000);
    let tiny = HeatmapOptions {
        layer_step: 0,
        max_label_chars: 0,
        color_range: Some((-1.0, 0.5)),
        ..HeatmapOptions::default()
    };
    for opts in [&opts, &tiny] {
        for format in [ImageFormat::Png, ImageFormat::Svg] {
            render(&r, opts, format).unwrap();
        }
    }
    // A prompt too long for one image shows its last positions that fit, and says so.
    let huge = report(2, &vec!["t"; 100_000]);
    let drawn = draw(&huge, &opts, ImageFormat::Png).unwrap();
    assert_eq!(drawn.shown.end, 100_000);
    assert!(
        drawn.shown.len() > 100 && drawn.shown.len() < 1_000,
        "{:?}",
        drawn.shown
    );
    let (info, _) = decode(&drawn.bytes);
    assert!(info.width <= MAX_SIDE, "{}", info.width);
    let note = drawn.note().unwrap().to_string();
    assert!(
        note.contains("0–99999") && note.contains(&format!("{}–99999", drawn.shown.start)),
        "{note}"
    );
    // Rows too many for one image are still refused, with the way out.
    let tall = report(2_000, &["t"]);
    let err = render(&tall, &opts, ImageFormat::Png)
        .unwrap_err()
        .to_string();
    assert!(err.contains("layer step"), "{err}");
}

#[test]
fn all_nan_entropies_use_a_unit_scale() {
    let mut r = report(2, &["a"]);
    for layer in &mut r.layers {
        layer.positions[0].stat.entropy = f32::NAN;
    }
    render(&r, &HeatmapOptions::default(), ImageFormat::Png).unwrap();
    assert_eq!(
        Scale::new(f64::NAN),
        Scale {
            min: 0.0,
            max: 1.0,
            step: 0.2,
            log: false,
            saturated: false
        }
    );
}

#[test]
fn scale_rounds_up_to_a_tick() {
    let s = Scale::new(10.37);
    assert_eq!((s.max, s.step), (12.0, 2.0));
    assert_eq!(s.ticks().len(), 7);
    let s = Scale::new(0.7);
    assert_eq!(s.label(0.4), "0.4");
    assert_eq!(Scale::new(14.0).label(2.5), "2.5");
    assert!(Scale::new(3.0).max >= 3.0);
    assert_eq!(
        Scale::new(10.37).ticks(),
        [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    );
}

#[test]
fn a_fixed_scale_labels_its_ends() {
    let s = Scale::fixed(0.0, 10.0);
    assert_eq!(s.ticks(), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    let s = Scale::fixed(1.5, 7.9);
    // The largest entropy over 49,152 tokens: 10 would crowd the end's label.
    let top = (49152f32).ln();
    assert_eq!(
        Scale::fixed(0.0, top).ticks(),
        [0.0, 2.0, 4.0, 6.0, 8.0, f64::from(top)]
    );
    // Step 2: the tick at 2 would crowd the end at 1.5.
    assert_eq!(s.ticks(), [1.5, 4.0, 6.0, f64::from(7.9f32)]);
    assert_eq!(s.label(1.5), "1.5");
    assert_eq!(s.fraction(1.5), 0.0);
    assert_eq!(s.fraction(100.0), 1.0);
    assert_eq!(s.fraction(-3.0), 0.0);
}

#[test]
fn color_range_parses_and_refuses_empty_ranges() {
    assert_eq!(parse_color_range("0..10").unwrap(), (0.0, 10.0));
    assert_eq!(parse_color_range(" 0.5 .. 8.25").unwrap(), (0.5, 8.25));
    for bad in ["10..0", "3..3", "0-10", "a..2", "0..inf", "..4"] {
        assert!(parse_color_range(bad).is_err(), "{bad}");
    }
    let err = parse_color_range("10..0").unwrap_err().to_string();
    assert!(err.contains("MIN < MAX"), "{err}");
    let r = report(2, &["a"]);
    let opts = HeatmapOptions {
        color_range: Some((4.0, 4.0)),
        ..Default::default()
    };
    assert!(render(&r, &opts, ImageFormat::Png).is_err());
}

/// The colour of the cell at (column `c`, display row `row`) of a rendered PNG.
fn cell_color(r: &Report, opts: &HeatmapOptions, c: usize, row: usize) -> [u8; 3] {
    let (info, rgb) = decode(&render(r, opts, ImageFormat::Png).unwrap());
    let plot = Plot::new(r, opts, Layout::new(r, opts).unwrap(), ImageFormat::Png);
    let (x0, _) = plot.col_span(c);
    let (y0, _) = plot.row_span(row);
    let i = ((y0 + 3) as usize * info.width as usize + (x0 + 3) as usize) * 3;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

#[test]
fn a_fixed_color_range_makes_figures_comparable() {
    // Two reports whose largest entropies differ: the same entropy (0.05 at
    // position 0) gets different colours on their own scales, one colour on a
    // shared one.
    let small = report(3, &["a", "b"]);
    let mut large = report(3, &["a", "b"]);
    large.layers[0].positions[1].stat.entropy = 11.0;
    let own = HeatmapOptions::default();
    assert_ne!(
        cell_color(&small, &own, 0, 0),
        cell_color(&large, &own, 0, 0)
    );
    let shared = HeatmapOptions {
        color_range: Some((0.0, 2.0)),
        ..Default::default()
    };
    let a = cell_color(&small, &shared, 0, 0);
    assert_eq!(a, cell_color(&large, &shared, 0, 0));
    let want = viridis(0.05 / 2.0);
    assert_eq!(a, [want.0, want.1, want.2]);
    // 3.0 is past the range's end: the top colour.
    let top = viridis(1.0);
    assert_eq!(cell_color(&small, &shared, 1, 0), [top.0, top.1, top.2]);
}

#[test]
fn side_by_side_panels_share_one_colour_scale_and_name_their_lens() {
    // The same report under two lenses whose largest entropies differ: drawn alone each
    // has its own scale; side by side the same value has the same colour in both panels.
    let logit = report(3, &["a", "b"]);
    let mut tuned = report(3, &["a", "b"]);
    tuned.lens_kind = "tuned";
    tuned.layers[0].positions[1].stat.entropy = 11.0;
    let opts = HeatmapOptions::default();
    assert_ne!(
        cell_color(&logit, &opts, 0, 0),
        cell_color(&tuned, &opts, 0, 0)
    );
    let both = draw_side_by_side(&[&logit, &tuned], &opts, ImageFormat::Png).unwrap();
    let (info, rgb) = decode(&both.bytes);
    let (left, right) = (image_size(&logit, &opts), image_size(&tuned, &opts));
    assert_eq!((info.width, info.height), (left.0 + right.0, left.1));
    let at = |x: i32, y: i32| {
        let i = (y as usize * info.width as usize + x as usize) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    // Top row (the output row), position 0: entropy 0.05 in both.
    for layer in 0..3 {
        let (x0, y0, _, _) = cell_box(&logit, &opts, layer, 0).unwrap().unwrap();
        let (l, t) = (at(x0 + 3, y0 + 3), at(x0 + 3 + left.0 as i32, y0 + 3));
        assert_eq!(l, t, "layer {layer}");
    }
    let (x0, y0, _, _) = cell_box(&logit, &opts, 2, 0).unwrap().unwrap();
    assert_eq!(at(x0 + 3, y0 + 3), cell_color(&tuned, &opts, 0, 0));
    // The scale is the tuned panel's (0..12), not the logit panel's own (0..5).
    let want = viridis(Scale::new(11.0).fraction(0.05));
    assert_eq!(at(x0 + 3, y0 + 3), [want.0, want.1, want.2]);
    let svg = String::from_utf8(
        draw_side_by_side(&[&logit, &tuned], &opts, ImageFormat::Svg)
            .unwrap()
            .bytes,
    )
    .unwrap();
    assert!(
        svg.contains("logit lens · test/model-1b · entropy"),
        "{svg}"
    );
    assert!(
        svg.contains("tuned lens · test/model-1b · entropy"),
        "{svg}"
    );
    // One report draws as it always has.
    let one = draw_side_by_side(&[&logit], &opts, ImageFormat::Png).unwrap();
    assert_eq!(one.bytes, render(&logit, &opts, ImageFormat::Png).unwrap());
}

#[test]
fn spaces_and_invisible_characters_are_marked() {
    assert_eq!(visible(" the"), "·the");
    assert_eq!(visible("the"), "the");
    assert_eq!(visible("\n   "), "↵···");
    assert_eq!(visible("  a b "), "··a b·");
    assert_eq!(visible("   "), "···");
    assert_eq!(visible("\u{A0}"), "⍽");
    assert_eq!(visible("a\u{200B}"), "a\\u{200B}");
    assert_eq!(visible("\u{FEFF}"), "\\u{FEFF}");
    assert_eq!(visible(""), "\"\"");
    // Every stand-in is in the bundled font, so none draws as a blank box.
    assert_eq!(visible("a\r"), "a⇤");
    assert_eq!(visible("a␍"), "a⇤");
    for c in ['·', '⍽', '↵', '→', '⇤', '…', '␣', '⇥'] {
        assert!(bearing::has_glyph(c), "DejaVu Sans lacks {c:?}");
    }
}

#[test]
fn columns_follow_their_labels_within_limits() {
    register_font();
    let r = report(2, &["a", " international", "↵   ", &"w".repeat(60)]);
    let opts = HeatmapOptions::default();
    let widths = column_widths(&r, &opts, &[0, 1], 0..4);
    // The cells (" tok0_0"…) set the narrow columns; a long word widens its own.
    assert!(widths[1] > widths[0], "{widths:?}");
    let whole = text_width(&visible(" international"), TICK_FONT);
    assert!(f64::from(widths[1]) >= whole + 4.0, "{widths:?} vs {whole}");
    assert_eq!(widths[3], MAX_CELL_W);
    assert!(widths
        .iter()
        .all(|&w| (MIN_CELL_W..=MAX_CELL_W).contains(&w)));
    // The axis label "↵   " is drawn whole, as ↵···, not cut to ↵.
    assert_eq!(label("↵   ", opts.max_label_chars), "↵···");
    let (w, h) = image_size(&r, &opts);
    assert_eq!(w, MARGIN_LEFT + widths.iter().sum::<u32>() + MARGIN_RIGHT);
    assert_eq!(h, image_height(2));
    let (lo, hi) = width_bounds(4);
    assert!(lo <= w && w <= hi);
    // Words of ordinary length are not cut.
    for word in [" international", " understanding", " nevertheless"] {
        let (shown, _) = fit(
            &label(word, opts.max_label_chars),
            CELL_FONT,
            CELL_FONT_MIN,
            f64::from(MAX_CELL_W) - 8.0,
        );
        assert!(!shown.ends_with('…'), "{word} cut to {shown}");
    }
}

#[test]
fn labels_are_cut_by_chars() {
    assert_eq!(label(" abcdefghij", 8), "·abcdef…");
    assert_eq!(truncate("abcdefghij", 8), "abcdefg…");
    assert_eq!(truncate("abcdefgh", 8), "abcdefgh");
    assert_eq!(truncate("ééééééééé", 4), "ééé…");
    assert_eq!(truncate("abc", 0), "…");
    assert_eq!(visible("a\nb"), "a↵b");
}

#[test]
fn text_contrasts_with_the_cell() {
    assert_eq!(text_color(viridis(0.0)), WHITE);
    assert_eq!(text_color(viridis(1.0)), BLACK);
}

/// Writes a realistic sample to $TMPDIR/heatmap_test.{png,svg} for eyeballing:
/// `cargo test --lib heatmap -- --ignored`.
#[test]
#[ignore]
fn sample_png() {
    let tokens = [
        "<s>",
        "The",
        " quick",
        " brown",
        " fox",
        " jumps",
        "↵   ",
        " over",
        "\u{A0}",
        " the",
        " internationalization",
        "\u{200B}",
        " dog",
    ];
    let mut r = report(25, &tokens);
    let words = [
        " the",
        " dog",
        " a",
        " fox",
        " and",
        "ing",
        " jumped",
        "↵",
        " Lorem",
        " understanding",
        "\u{A0}",
        "the",
        "日本",
        ",",
    ];
    for layer in &mut r.layers {
        for (p, pred) in layer.positions.iter_mut().enumerate() {
            let l = layer.layer as f32;
            pred.token = words[(p * 7 + layer.layer / 3) % words.len()].to_string();
            pred.stat.entropy = (9.5 - l * 0.35 + (p as f32 * 1.7).sin() * 1.5).max(0.02);
            // Next-token hits in the upper layers of every third position.
            if p % 3 == 1 && layer.layer > 15 {
                pred.stat.id = p as u32 + 1;
            }
        }
    }
    r.model = "meta-llama/Llama-3.2-1B".to_string();
    r.prompt = "The quick brown fox jumps\nover the lazy dog. ".repeat(4);
    let bytes = render(&r, &HeatmapOptions::default(), ImageFormat::Png).unwrap();
    std::fs::write(std::env::temp_dir().join("heatmap_test.png"), bytes).unwrap();
    let svg = render(
        &r,
        &HeatmapOptions {
            layer_step: 3,
            ..Default::default()
        },
        ImageFormat::Svg,
    )
    .unwrap();
    std::fs::write(std::env::temp_dir().join("heatmap_test.svg"), svg).unwrap();
}

/// The pixel at (`dx`, `dy`) from the top-left corner of the cell at (shown column `i`,
/// display row `row`) of `r` drawn as a PNG.
fn pixel_in_cell(
    r: &Report,
    opts: &HeatmapOptions,
    (i, row): (usize, usize),
    (dx, dy): (i32, i32),
) -> [u8; 3] {
    let (info, rgb) = decode(&render(r, opts, ImageFormat::Png).unwrap());
    let plot = Plot::new(r, opts, Layout::new(r, opts).unwrap(), ImageFormat::Png);
    let (x0, _) = plot.col_span(i);
    let (y0, _) = plot.row_span(row);
    let i = ((y0 + dy) as usize * info.width as usize + (x0 + dx) as usize) * 3;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

fn rgb(c: RGBColor) -> [u8; 3] {
    [c.0, c.1, c.2]
}

fn svg(r: &Report, opts: &HeatmapOptions) -> String {
    String::from_utf8(render(r, opts, ImageFormat::Svg).unwrap()).unwrap()
}

#[test]
fn a_next_token_hit_is_framed_in_black_and_white() {
    // Layer 1 predicts the next input token at position 0 (token 1 has id 1).
    let mut r = report(3, &["a", "b", "c"]);
    r.layers[1].positions[0].stat.id = 1;
    let opts = HeatmapOptions::default();
    // Display row 1 is layer 1 (rows are drawn top down from the output).
    let fill = pixel_in_cell(&r, &opts, (0, 1), (10, 12));
    assert_eq!(pixel_in_cell(&r, &opts, (0, 1), (0, 12)), rgb(BLACK));
    assert_eq!(pixel_in_cell(&r, &opts, (0, 1), (1, 12)), rgb(BLACK));
    assert_eq!(pixel_in_cell(&r, &opts, (0, 1), (2, 12)), rgb(WHITE));
    assert_eq!(pixel_in_cell(&r, &opts, (0, 1), (3, 12)), rgb(WHITE));
    assert_ne!(fill, rgb(BLACK));
    // The same position one layer up is no hit: its edge has the cell's own colour.
    let above = pixel_in_cell(&r, &opts, (0, 0), (0, 12));
    assert_eq!(above, pixel_in_cell(&r, &opts, (0, 0), (10, 12)));
    // The legend explains the frame.
    assert!(svg(&r, &opts).contains("next-token hit"));
}

#[test]
fn the_metric_chooses_the_colours() {
    let mut r = report(2, &["a", "b", "c"]);
    for layer in &mut r.layers {
        for (p, cell) in layer.positions.iter_mut().enumerate() {
            cell.stat.prob = 0.2 + 0.3 * p as f32;
            cell.stat.kl = 4.0 - p as f32;
            cell.stat.next_logprob = Some(-0.5 * (p + 1) as f32);
            cell.stat.next_rank = Some([1, 10, 100][p]);
        }
        // The last position has no next token.
        layer.positions[2].stat.next_logprob = None;
        layer.positions[2].stat.next_rank = None;
    }
    let with = |metric| HeatmapOptions {
        metric,
        ..HeatmapOptions::default()
    };
    let colour = |metric, i| pixel_in_cell(&r, &with(metric), (i, 0), (6, 6));
    let entropy = colour(Metric::Entropy, 1);
    assert_ne!(entropy, colour(Metric::Prob, 1));
    assert_ne!(entropy, colour(Metric::Kl, 1));
    // prob is on 0..1: 0.5 is the middle of viridis.
    assert_eq!(colour(Metric::Prob, 1), rgb(viridis(0.5)));
    // kl 4, 3, 2 on its own 0..4 scale: the top colour, then 3/4.
    assert_eq!(colour(Metric::Kl, 0), rgb(viridis(1.0)));
    assert_eq!(colour(Metric::Kl, 1), rgb(viridis(0.75)));
    // ce = −next_logprob: 0.5 and 1.0 on a 0..1 scale.
    assert_eq!(colour(Metric::Ce, 0), rgb(viridis(0.5)));
    // rank on a log scale 1..10 (the largest rank shown, 10, rounded up to a power of 10).
    assert_eq!(colour(Metric::Rank, 0), rgb(viridis(0.0)));
    assert_eq!(colour(Metric::Rank, 1), rgb(viridis(1.0)));
    // A fixed range is in the metric's units: ranks 1..1000 put 10 at a third.
    let fixed = HeatmapOptions {
        color_range: Some((1.0, 1000.0)),
        ..with(Metric::Rank)
    };
    assert_eq!(
        pixel_in_cell(&r, &fixed, (1, 0), (6, 6)),
        rgb(viridis(1.0 / 3.0))
    );
    // No next token at the last position: hatched grey, not a colour of the scale, and
    // the legend says why.
    for metric in [Metric::Ce, Metric::Rank] {
        let corner = colour(metric, 2);
        assert!(
            corner == rgb(NO_VALUE) || corner == rgb(HATCH),
            "{metric:?}: {corner:?}"
        );
        let text = svg(&r, &with(metric));
        assert!(text.contains("no next token"), "{metric:?}");
        assert!(text.contains(&metric.title(&r)), "{metric:?}");
    }
    assert!(!svg(&r, &with(Metric::Kl)).contains("no next token"));
}

#[test]
fn target_colours_by_the_first_targets_probability() {
    let mut r = report(2, &["a", "b"]);
    let opts = HeatmapOptions {
        metric: Metric::Target,
        ..HeatmapOptions::default()
    };
    let err = render(&r, &opts, ImageFormat::Png).unwrap_err();
    assert_eq!(
        err.downcast_ref::<crate::error::Error>(),
        Some(&crate::error::Error::NoTargetToColour),
        "{err}"
    );
    r.targets = vec![crate::report::Target {
        id: 7,
        token: " Paris".into(),
        first_layer: None,
        settled_layer: None,
    }];
    for layer in &mut r.layers {
        for cell in &mut layer.positions {
            cell.targets = vec![crate::lens::TargetStat {
                prob: 0.25,
                logprob: 0.25f32.ln(),
                rank: 3,
            }];
        }
    }
    assert_eq!(pixel_in_cell(&r, &opts, (0, 0), (6, 6)), rgb(viridis(0.25)));
    let text = svg(&r, &opts);
    assert!(text.contains("probability of “·Paris”"), "{text}");
}

#[test]
fn the_title_names_the_model_the_metric_and_the_window() {
    let r = report(2, &["a", "b", "c", "d"]);
    let opts = HeatmapOptions::default();
    assert!(svg(&r, &opts).contains("test/model-1b · entropy (nats)"));
    let windowed = HeatmapOptions {
        window: Window::Last(2),
        model: Some("SmolLM2 135M Instruct".into()),
        metric: Metric::Kl,
        ..HeatmapOptions::default()
    };
    let text = svg(&r, &windowed);
    assert!(
        text.contains("SmolLM2 135M Instruct · KL to the output (nats)")
            && text.contains("positions 2–3 of 4 · “The quick↵brown fox”"),
        "{text}"
    );
    // Only the window's columns are drawn, labelled with their own positions.
    let drawn = draw(&r, &windowed, ImageFormat::Png).unwrap();
    assert_eq!((drawn.shown.clone(), drawn.note()), (2..4, None));
    assert!(!text.contains(">tok0_0<") && !text.contains("·tok0_0"));
    assert!(text.contains("·tok0_3"));
    let outside = HeatmapOptions {
        window: Window::Range {
            start: 3,
            end: Some(9),
        },
        ..HeatmapOptions::default()
    };
    let err = render(&r, &outside, ImageFormat::Png)
        .unwrap_err()
        .to_string();
    assert!(err.contains("4 tokens"), "{err}");
}

/// A report with `--sublayers` rows: embed 0, then "l attn" and l for each block.
fn sublayer_report(blocks: usize) -> Report {
    use crate::lens::Site;
    let mut r = report(2 * blocks + 1, &["a", "b"]);
    for (i, layer) in r.layers.iter_mut().enumerate() {
        layer.layer = i.div_ceil(2);
        layer.site = match i {
            0 => Site::Embed,
            i if i % 2 == 1 => Site::ResidMid,
            _ => Site::ResidPost,
        };
    }
    r
}

#[test]
fn sublayer_rows_are_labelled_and_stepped_by_block() {
    let r = sublayer_report(3);
    assert_eq!(shown_rows(&r, 1), (0..7).collect::<Vec<_>>());
    // Every 2nd block with both its rows, and the output.
    assert_eq!(shown_rows(&r, 2), vec![0, 3, 4, 6]);
    let plain = report(7, &["a"]);
    assert_eq!(shown_rows(&plain, 2), shown_layers(7, 2));
    let text = svg(
        &r,
        &HeatmapOptions {
            layer_step: 2,
            ..HeatmapOptions::default()
        },
    );
    for label in [">0 emb<", ">2 attn<", ">2<", ">3 out<"] {
        let bare = &label[1..label.len() - 1];
        assert!(
            text.contains(label) || text.contains(&format!(">\n{bare}\n<")),
            "{label}"
        );
    }
    assert!(!text.contains("1 attn") && !text.contains("3 attn"));
}

#[test]
fn kl_is_scaled_past_the_embedding_row_and_says_it_saturates() {
    let mut r = report(6, &["a", "b", "c"]);
    r.layers[0].site = crate::lens::Site::Embed;
    for (l, layer) in r.layers.iter_mut().enumerate() {
        for (p, pred) in layer.positions.iter_mut().enumerate() {
            // The embeddings 110 nats and more from the output, the blocks 0..8.2.
            pred.stat.kl = match l {
                0 => 110.0 + p as f32,
                _ => (5 - l) as f32 * 2.0 + p as f32 * 0.1,
            };
        }
    }
    let opts = HeatmapOptions {
        metric: Metric::Kl,
        ..HeatmapOptions::default()
    };
    let plot = Plot::new(&r, &opts, Layout::new(&r, &opts).unwrap(), ImageFormat::Png);
    assert_eq!((plot.scale.min, plot.scale.max), (0.0, 10.0));
    assert!(plot.scale.saturated);
    let labels: Vec<String> = plot
        .scale
        .ticks()
        .iter()
        .map(|&t| plot.scale.label(t))
        .collect();
    assert_eq!(labels, ["0", "2", "4", "6", "8", "≥ 10"]);
    // The blocks' cells spread over the colours; the embeddings' (the bottom row) take the
    // top one.
    assert_eq!(cell_color(&r, &opts, 0, 5), rgb(viridis(1.0)));
    assert_eq!(cell_color(&r, &opts, 0, 4), rgb(viridis(0.8)));
    assert!(svg(&r, &opts).contains("≥ 10"));
    // --color-range still decides, and says when values lie above it.
    let fixed = HeatmapOptions {
        color_range: Some((0.0, 200.0)),
        ..opts.clone()
    };
    let plot = Plot::new(
        &r,
        &fixed,
        Layout::new(&r, &fixed).unwrap(),
        ImageFormat::Png,
    );
    assert_eq!((plot.scale.max, plot.scale.saturated), (200.0, false));
    let low = HeatmapOptions {
        color_range: Some((0.0, 5.0)),
        ..opts.clone()
    };
    let plot = Plot::new(&r, &low, Layout::new(&r, &low).unwrap(), ImageFormat::Png);
    assert_eq!(plot.scale.label(5.0), "≥ 5");
    // Entropy still spans its largest value.
    let entropy = Plot::new(
        &r,
        &HeatmapOptions::default(),
        Layout::new(&r, &HeatmapOptions::default()).unwrap(),
        ImageFormat::Png,
    );
    assert!(!entropy.scale.saturated);
}

/// The label row under the grid (the input tokens) of a PNG of `r`, as RGB rows.
fn token_axis(r: &Report) -> Vec<u8> {
    let opts = HeatmapOptions::default();
    let (info, rgb) = decode(&render(r, &opts, ImageFormat::Png).unwrap());
    let plot = Plot::new(r, &opts, Layout::new(r, &opts).unwrap(), ImageFormat::Png);
    let (_, bottom) = plot.row_span(plot.rows.len() - 1);
    let row = info.width as usize * 3;
    rgb[bottom as usize * row..(bottom as usize + 20) * row].to_vec()
}

/// A CJK font of the machine, as fontconfig lists it (the test's oracle, not the code's).
fn fontconfig_cjk_font() -> Option<String> {
    let out = std::process::Command::new("fc-list")
        .args([":charset=4e2d", "file"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .next()
        .map(|l| l.trim_end_matches(": ").to_string())
}

#[test]
fn characters_the_bundled_font_lacks_are_never_empty_boxes() {
    // An unassigned code point is in no font: it is drawn as its code point in a frame,
    // so two of them draw differently where empty boxes would draw alike.
    let a = token_axis(&report(2, &["\u{378}"]));
    let b = token_axis(&report(2, &["\u{379}"]));
    assert_ne!(a, b, "U+0378 and U+0379 draw alike: empty boxes");
    let width = text_width("\u{378}", TICK_FONT);
    assert!(width > text_width("0378", TICK_FONT * 0.55), "{width}");

    // CJK and Hangul come from a font of the machine that has them.
    let required = std::env::var_os("CI").is_some_and(|v| !v.is_empty())
        || std::env::var("LOGITLENS_REQUIRE_CJK_FONT").is_ok_and(|v| v == "1");
    let Some(file) = fontconfig_cjk_font() else {
        assert!(
            !required,
            "CI or LOGITLENS_REQUIRE_CJK_FONT=1: no CJK font (apt-get install fonts-wqy-zenhei)"
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n!!!!!!!! SKIPPED: no CJK font on this machine (apt-get install fonts-wqy-zenhei) !!!!!!!!\n",
        );
        return;
    };
    for c in ['中', '文', '한', '국'] {
        assert!(
            matches!(super::fonts::face(c), super::fonts::Face::System(_)),
            "{c}: fontconfig lists {file}, yet no font draws it"
        );
    }
    let zh = token_axis(&report(2, &["中"]));
    let wen = token_axis(&report(2, &["文"]));
    assert_ne!(zh, wen, "中 and 文 draw alike: empty boxes");
    // The glyph is the font's, not a framed code point: its width is a CJK glyph's (about
    // one em), narrower than the code point's frame.
    let w = text_width("中", TICK_FONT);
    assert!(
        (0.6 * TICK_FONT..=1.2 * TICK_FONT).contains(&w),
        "中 is {w} px at {TICK_FONT} px"
    );
}
