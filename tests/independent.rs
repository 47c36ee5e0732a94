//! The lens's output row against an implementation we did not write: candle-transformers'
//! `phi::Model`, which returns the last position's logits.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::phi;
use common::*;
use logitlens::lens::{row_stats, LensOptions};
use logitlens::{source, Session};

#[test]
fn output_row_equals_candle_transformers_phi() {
    let dir = fixture("phi-tiny");
    let files = source::local_dir(&dir).unwrap();
    let ours = Session::from_files("phi-tiny", &files, DType::F32).unwrap();
    let config: phi::Config =
        serde_json::from_str(&std::fs::read_to_string(&files.config).unwrap()).unwrap();
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&files.weights, DType::F32, &Device::Cpu) }
            .unwrap();
    let mut theirs = phi::Model::new(&config, vb).unwrap();

    for case in golden("phi-tiny").cases {
        theirs.clear_kv_cache();
        let input = Tensor::new(case.ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits: Vec<f32> = theirs
            .forward(&input)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        let expected = row_stats(&logits);

        let hs = ours.model().hidden_states(&case.ids).unwrap();
        let last = hs.last().unwrap();
        let t = last.dim(0).unwrap();
        let our_logits: Vec<f32> = ours
            .model()
            .lm_head(
                &ours
                    .model()
                    .final_norm(&last.narrow(0, t - 1, 1).unwrap())
                    .unwrap(),
            )
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        let d = max_abs_diff(&our_logits, &logits);
        assert!(
            d <= 1e-4,
            "{}: logits differ from candle-transformers by {d}",
            case.name
        );

        let rows = ours.lens_ids(&case.ids, LensOptions::default()).unwrap();
        let got = rows.last().unwrap()[t - 1];
        assert_eq!(got.id, expected.id, "{}", case.name);
        assert!(
            (got.entropy - expected.entropy).abs() <= 1e-4,
            "{}: {} vs {}",
            case.name,
            got.entropy,
            expected.entropy
        );
        eprintln!(
            "{}: candle-transformers logits max |Δ| = {d:.3e}",
            case.name
        );
    }
}
