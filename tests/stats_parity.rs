//! Parity of issue 8's statistics with transformers: every row of the lens with
//! `--sublayers` (embed, then each block's resid_mid and resid_post), on fixtures of every
//! block layout, against tests/fixtures/<name>/stats.json from scripts/make_stats_goldens.py
//! (float64 statistics of transformers' float32 logits; resid_mid from forward hooks).
//!
//! Tolerances (issue 8): KL, next-token log-probability, target log-probability and entropy
//! within 1e-4 nats; probabilities within 1e-5; ranks and top-k ids equal wherever the logits
//! involved differ by more than 1e-3 (the goldens carry rank bounds and top-k gaps for that).

mod common;

use common::{fixture, load_way, Way, WAYS};
use logitlens::lens::{lens_rows, Cell, LensOptions, LogitLens, Site};
use serde::Deserialize;

const NATS: f64 = 1e-4;
const PROB: f64 = 1e-5;

#[derive(Deserialize)]
struct Stats {
    top_k: usize,
    targets: Vec<u32>,
    tolerance: f64,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    ids: Vec<u32>,
    rows: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    site: String,
    layer: usize,
    cells: Vec<Golden>,
}

#[derive(Deserialize)]
struct Golden {
    id: u32,
    margin: f64,
    prob: f64,
    entropy: f64,
    kl: f64,
    /// [id, prob, gap to the neighbouring logits]
    topk: Vec<(u32, f64, f64)>,
    /// [prob, logprob, rank lo, rank hi]
    targets: Vec<(f64, f64, u32, u32)>,
    next_logprob: Option<f64>,
    next_rank: Option<(u32, u32)>,
}

/// The largest deviations seen: entropy, KL, next-token log-prob, target log-prob.
#[derive(Default)]
struct Worst([f64; 4]);

fn close(what: &str, ours: f64, theirs: f64, tol: f64) -> f64 {
    assert!(
        (ours - theirs).abs() <= tol,
        "{what}: {ours} vs transformers {theirs} (|Δ| {:.3e} > {tol})",
        (ours - theirs).abs()
    );
    (ours - theirs).abs()
}

fn check_cell(at: &str, c: &Cell, g: &Golden, tol: f64, worst: &mut Worst) {
    let s = &c.stat;
    let w = &mut worst.0;
    w[0] = w[0].max(close(
        &format!("{at} entropy"),
        s.entropy.into(),
        g.entropy,
        NATS,
    ));
    w[1] = w[1].max(close(&format!("{at} kl"), s.kl.into(), g.kl, NATS));
    close(&format!("{at} prob"), s.prob.into(), g.prob, PROB);
    if g.margin > tol {
        assert_eq!(s.id, g.id, "{at}: argmax");
    }
    match (s.next_logprob, s.next_rank, g.next_logprob, g.next_rank) {
        (Some(lp), Some(rank), Some(glp), Some((lo, hi))) => {
            w[2] = w[2].max(close(&format!("{at} next_logprob"), lp.into(), glp, NATS));
            assert!(
                (lo..=hi).contains(&rank),
                "{at}: next_rank {rank} not in {lo}..={hi}"
            );
        }
        (None, None, None, None) => {}
        other => panic!("{at}: next-token fields differ in presence: {other:?}"),
    }
    assert_eq!(c.targets.len(), g.targets.len(), "{at}: targets");
    for (i, (t, &(p, lp, lo, hi))) in c.targets.iter().zip(&g.targets).enumerate() {
        w[3] = w[3].max(close(
            &format!("{at} target {i} logprob"),
            t.logprob.into(),
            lp,
            NATS,
        ));
        close(&format!("{at} target {i} prob"), t.prob.into(), p, PROB);
        assert!(
            (lo..=hi).contains(&t.rank),
            "{at}: target {i} rank {} not in {lo}..={hi}",
            t.rank
        );
    }
    assert_eq!(c.topk.len(), g.topk.len(), "{at}: top-k length");
    for (k, (t, &(id, p, gap))) in c.topk.iter().zip(&g.topk).enumerate() {
        if gap > tol {
            assert_eq!(t.id, id, "{at}: top-{} id", k + 1);
            close(&format!("{at} top-{} prob", k + 1), t.prob.into(), p, PROB);
        }
    }
}

/// Every statistic of every cell against transformers, both ways (the CPU kernels, and the
/// generic path whose statistics are reduced as tensors).
fn check(name: &str) {
    for way in WAYS {
        check_way(name, way);
    }
}

fn check_way(name: &str, way: Way) {
    let path = fixture(name).join("stats.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let golden: Stats = serde_json::from_str(&text).unwrap();
    let session = load_way(&fixture(name), way);
    let name = format!("{name} ({})", way.label());
    let mut opts = LensOptions::new(LogitLens::default());
    opts.top_k = golden.top_k;
    opts.targets = golden.targets.clone();
    opts.sublayers = true;
    let (mut cells, mut worst) = (0, Worst::default());
    for case in &golden.cases {
        let (rows, _) = lens_rows(session.model(), &case.ids, &opts).unwrap();
        assert_eq!(rows.len(), case.rows.len(), "{name}/{}: rows", case.name);
        for (row, g) in rows.iter().zip(&case.rows) {
            assert_eq!(
                (row.site.name(), row.layer),
                (g.site.as_str(), g.layer),
                "{name}/{}: row order",
                case.name
            );
            for (t, (c, gc)) in row.cells.iter().zip(&g.cells).enumerate() {
                let at = format!("{name}/{} {} {} pos {t}", case.name, g.site, g.layer);
                check_cell(&at, c, gc, golden.tolerance, &mut worst);
                cells += 1;
            }
        }
        // The output row: KL exactly 0.
        assert!(rows.last().unwrap().cells.iter().all(|c| c.stat.kl == 0.0));
        assert_eq!(rows.last().unwrap().site, Site::ResidPost);
    }
    let [h, kl, next, target] = worst.0;
    eprintln!(
        "{name}: {cells} cells match transformers; max |Δ| entropy {h:.1e}, kl {kl:.1e}, next_logprob {next:.1e}, target logprob {target:.1e}"
    );
}

#[test]
fn phi_parallel_block() {
    check("phi-tiny");
}

#[test]
fn llama_sequential_block() {
    check("llama-tiny");
}

#[test]
fn qwen2() {
    check("qwen2-tiny");
}

#[test]
fn gpt2_learned_positions() {
    check("gpt2-tiny");
}

#[test]
fn gemma2_sandwich_norms() {
    check("gemma2-tiny");
}

#[test]
fn olmo2_post_norms() {
    check("olmo2-tiny");
}

#[test]
fn gpt_neox_parallel_two_norms() {
    check("gpt-neox-tiny");
}
