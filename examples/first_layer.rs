//! Embedding logitlens in another program: load a model, run the lens on a prompt, and
//! report the layer at which the model's final prediction first becomes the argmax.
//!
//! cargo run --release --example first_layer -- tests/fixtures/phi-tiny "The quick brown fox"

use anyhow::{Context, Result};
use logitlens::lens::{first_appearance, settling_layer};
use logitlens::{LoadOptions, RunOptions, Session};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let model = args.next().context("usage: first_layer MODEL PROMPT")?;
    let prompt = args.next().context("usage: first_layer MODEL PROMPT")?;

    let session = Session::load(&model, &LoadOptions::default())?;
    let ids = session.encode(&prompt, false)?;
    let rows = session.lens_ids(&ids, RunOptions::default().lens)?;

    let last = ids.len() - 1;
    let prediction = rows.last().context("the model has no layers")?[last];
    let first = first_appearance(&rows, last).context("no rows")?;
    let settled = settling_layer(&rows, last).context("no rows")?;
    println!(
        "final prediction {:?} (p = {:.3}) first appears at layer {first} and stays from layer {settled} of {}",
        session.vocab().display(prediction.id),
        prediction.prob,
        rows.len() - 1
    );
    Ok(())
}
