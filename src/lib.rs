//! logitlens: what a causal language model predicts at every layer.
//!
//! Run one forward pass, take the hidden state after every layer (embeddings included),
//! project each through the final norm and the head, and keep per position the argmax token
//! and the entropy. The last row is the model's own output.
//!
//! ```no_run
//! use logitlens::{LoadOptions, RunOptions, Session};
//! let session = Session::load("microsoft/phi-1_5", &LoadOptions::default())?;
//! let report = session.run("The quick brown fox jumps over the lazy", &RunOptions::default())?;
//! println!("{}", report.layers.last().unwrap().positions.last().unwrap().token);
//! # anyhow::Ok(())
//! ```

pub(crate) mod atomic;
pub mod cli;
pub mod compute;
pub mod error;
/// Public only for the kernels' tests and benches (tests/fast.rs), not an API.
#[doc(hidden)]
pub mod kernels;
pub mod lens;
pub mod loading;
pub mod models;
pub(crate) mod ops;
pub mod output;
pub(crate) mod prompts;
pub mod provenance;
pub mod report;
pub mod session;
pub(crate) mod timing;
pub mod tokens;

pub use loading::{gguf, gguf_tokenizer, source, weights};

pub use lens::{Lens, LensOptions, LogitLens, TokenStat};
pub use models::{LensModel, ModelFiles, ModelInfo};
pub use report::Report;
pub use session::{LoadOptions, RunOptions, Session};
pub use source::{HubSettings, ModelSource};
