//! The forward pass against its own matrix products, in one run (issue 12).
//!
//! cargo run --release --example bench -- MODEL_DIR TOKENS [BATCH]
//!
//! For a Phi-shaped checkpoint (hidden, intermediate, layers, heads from config.json; q, k,
//! v and dense square, fc1 and fc2): times the forward pass over TOKENS positions (BATCH
//! prompts of TOKENS each, packed, when BATCH is given), then the same run's matrix
//! products alone on the same shapes: every linear layer through `kernels::matmul` (f16
//! weights, as the model reads them), and the causal attention kernel. Prints the seconds
//! of each, the GFLOP/s, and the ratio forward ÷ products. Then the head's matmul at the
//! row count the lens uses per chunk, against the linear kernel's rate on a square shape,
//! and the same head with `--fast`'s bf16 products on every path this CPU has
//! (`kernels::dot_bf16`). `BENCH_HEAD_ONLY=1` times the head rows alone.

use std::time::Instant;

use anyhow::{Context, Result};
use half::f16;
use logitlens::kernels::dot_bf16::{Packed, Path};
use logitlens::kernels::{self, attention, HalfBits};
use logitlens::{LoadOptions, Session};

fn config(dir: &str) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(format!("{dir}/config.json"))?;
    Ok(serde_json::from_str(&text)?)
}

fn field(c: &serde_json::Value, name: &str) -> Result<usize> {
    c[name]
        .as_u64()
        .map(|v| v as usize)
        .with_context(|| format!("config.json has no {name}"))
}

fn weights(n: usize, k: usize) -> Vec<f16> {
    (0..n * k)
        .map(|i| f16::from_f32(((i * 7919 % 2003) as f32 / 1001.0 - 1.0) * 0.02))
        .collect()
}

fn input(m: usize, k: usize) -> Vec<f32> {
    (0..m * k)
        .map(|i| (i * 104_729 % 4001) as f32 / 2000.0 - 1.0)
        .collect()
}

/// Seconds of `x (m×k) · W(n×k)ᵀ` through the linear kernel (the fastest of `reps`).
fn linear(m: usize, k: usize, n: usize, reps: usize) -> f64 {
    let (x, w) = (input(m, k), weights(n, k));
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(kernels::matmul(&x, &w, m, k, n));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench MODEL_DIR TOKENS [BATCH]";
    let dir = args.next().context(usage)?;
    let tokens: usize = args.next().context(usage)?.parse()?;
    let batch: usize = args.next().map_or(Ok(1), |b| b.parse())?;
    let c = config(&dir)?;
    let (d, inter) = (field(&c, "hidden_size")?, field(&c, "intermediate_size")?);
    let (layers, heads) = (
        field(&c, "num_hidden_layers")?,
        field(&c, "num_attention_heads")?,
    );
    let vocab = field(&c, "vocab_size")?;
    let hd = d / heads;

    if std::env::var_os("BENCH_HEAD_ONLY").is_some() {
        return head(layers, d, vocab);
    }
    let session = Session::load(&dir, &LoadOptions::default())?;
    let model = session.model();
    let ids: Vec<u32> = (0..tokens).map(|i| (i * 7919 % 50_000) as u32).collect();
    anyhow::ensure!(batch == 1, "batches come with packing");
    model.forward_sites(&ids[..9], false, &mut |_, _, _| Ok(()))?; // warm the pages
                                                                   // The faster of two runs, as for the products below: the machine may be shared.
    let mut forward = f64::INFINITY;
    for _ in 0..2 {
        let t = Instant::now();
        model.forward_sites(&ids, false, &mut |_, _, _| Ok(()))?;
        forward = forward.min(t.elapsed().as_secs_f64());
    }
    if std::env::var_os("BENCH_FORWARD_ONLY").is_some() {
        println!("forward {forward:.2} s");
        return Ok(());
    }

    let m = tokens * batch;
    let proj_flops = 2.0 * m as f64 * (4 * d * d + 2 * d * inter) as f64 * layers as f64;
    let square = linear(m, d, d, 2);
    let proj = layers as f64 * (4.0 * square + linear(m, d, inter, 2) + linear(m, inter, d, 2));
    // Causal: query i reads i+1 keys, for q·kᵀ and for p·v.
    let attn_flops =
        4.0 * (heads * hd * batch * layers) as f64 * (tokens * (tokens + 1) / 2) as f64;
    let (q, k) = (input(m * heads, hd), input(m * heads, hd));
    let spans: Vec<attention::Span> = (0..batch)
        .flat_map(|b| {
            (0..tokens as u32)
                .map(move |i| (b as u32 * tokens as u32, b as u32 * tokens as u32 + i + 1))
        })
        .collect();
    let shape = attention::Shape {
        batch: 1,
        heads,
        kv_heads: heads,
        seq: m,
        head_dim: hd,
    };
    let t = Instant::now();
    std::hint::black_box(attention::attention(
        &q,
        &k,
        &k,
        shape,
        &spans,
        attention::Scores {
            scale: 0.125,
            cap: None,
        },
    ));
    let attn = t.elapsed().as_secs_f64() * layers as f64;
    let gf = |flops: f64, s: f64| flops / s / 1e9;
    println!("bench: {tokens} tokens x {batch}, {layers} layers, hidden {d}, intermediate {inter}, {heads} heads");
    println!(
        "forward {forward:.2} s; projections alone {proj:.2} s ({:.1} GFLOP/s, {:.2} TFLOP); attention kernel alone {attn:.2} s ({:.1} GFLOP/s of causal products, {:.3} TFLOP)",
        gf(proj_flops, proj),
        proj_flops / 1e12,
        gf(attn_flops, attn),
        attn_flops / 1e12
    );
    println!(
        "forward / (projections + attention kernel) = {:.3}",
        forward / (proj + attn)
    );
    head(layers, d, vocab)
}

/// The head's matmul over one lens chunk, exact and with `--fast`, against the linear
/// kernel's square rate.
fn head(layers: usize, d: usize, vocab: usize) -> Result<()> {
    let gf = |flops: f64, s: f64| flops / s / 1e9;
    // The head: rows per chunk as the lens takes them (its logits budget, whole positions).
    let rows = layers + 1;
    let chunk = (logitlens::lens::LOGITS_BUDGET / (4 * vocab) / rows).max(1) * rows;
    let head = linear(chunk, d, vocab, 2);
    let head_rate = gf(2.0 * (chunk * d * vocab) as f64, head);
    let sq = 1024;
    let peak = gf(2.0 * (sq * sq * sq) as f64, linear(sq, sq, sq, 3));
    println!(
        "head {chunk}x{d}x{vocab}: {head:.3} s, {head_rate:.1} GFLOP/s; linear kernel on {sq}^3: {peak:.1} GFLOP/s"
    );
    let (x, w) = (input(chunk, d), weights(vocab, d));
    {
        use candle_core::{Device, Tensor};
        let wf: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
        let wt = Tensor::from_vec(wf, (vocab, d), &Device::Cpu)?;
        let xt = Tensor::from_vec(x.clone(), (chunk, d), &Device::Cpu)?;
        let s = (0..2)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(xt.matmul(&wt.t().unwrap()).unwrap());
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "head with W kept in f32 (candle matmul): {s:.3} s, {:.1} GFLOP/s",
            gf(2.0 * (chunk * d * vocab) as f64, s)
        );
    }
    let t = Instant::now();
    let packed = Packed::from_bits(bytemuck::cast_slice(&w), HalfBits::F16, vocab, d);
    let pack = t.elapsed().as_secs_f64();
    for path in Path::available() {
        let s = (0..2)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(packed.matmul_on(path, &x, chunk));
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "--fast head on {}: {s:.3} s, {:.1} GFLOP/s, {:.2}x the f32 head (packing W once: {pack:.2} s)",
            path.name(),
            gf(2.0 * (chunk * d * vocab) as f64, s),
            head / s
        );
    }
    Ok(())
}
