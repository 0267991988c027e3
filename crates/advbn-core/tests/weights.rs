//! Weights in and out: PyTorch pickles (read without running code), safetensors round trips,
//! a new classifier head, and one error that lists every mismatch.

mod common;

use std::path::{Path, PathBuf};

use advbn_core::models::{Arch, ModelConfig, ResNet};
use advbn_core::nn::ForwardMode;
use candle_core::{DType, Device};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tiny(num_classes: usize, seed: u64) -> ResNet {
    let config = ModelConfig { seed, ..ModelConfig::new(Arch::SmallResNet { depth: 8, width: 4 }, num_classes) };
    ResNet::new(config, &Device::Cpu).unwrap()
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("advbn-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn reads_pytorch_pickles_top_level_and_nested() {
    for file in ["tiny_resnet.pth", "nested.pth"] {
        let mut model = tiny(3, 0);
        let report = model.load_weights(&fixture(file), false).unwrap();
        assert_eq!(report.loaded, model.params().all().len(), "{file}");
        // make_pth.py: value(name, i) = sin(len(name) + 0.1 i)
        for name in ["conv1.weight", "layer2.0.downsample.1.running_var", "fc.bias"] {
            let got = common::values(model.params().var(name).unwrap().as_tensor());
            for (i, v) in got.iter().enumerate() {
                let expected = ((name.len() as f64) + 0.1 * i as f64).sin() as f32 as f64;
                assert_eq!(*v, expected, "{file} {name}[{i}]");
            }
        }
    }
}

#[test]
fn malicious_pickle_is_refused_without_running_it() {
    let marker = Path::new("/tmp/advbn-pickle-pwned");
    let _ = std::fs::remove_file(marker);
    let mut model = tiny(3, 0);
    let err = model.load_weights(&fixture("malicious.pth"), false).unwrap_err();
    assert_eq!(err.code(), "ADVBN_INVALID_DATA", "{err}");
    assert!(!marker.exists(), "the pickle's code ran");
}

#[test]
fn safetensors_round_trip_gives_identical_logits() {
    let path = temp_path("roundtrip.safetensors");
    let mut trained = tiny(3, 5);
    trained.ensure_adv_bn(1).unwrap();
    trained.save_weights(&path).unwrap();
    let mut loaded = tiny(3, 99);
    let report = loaded.load_weights(&path, false).unwrap();
    assert!(report.reinitialized.is_empty());
    assert!(loaded.has_adv_bn(), "adv BNs are restored from the adv. prefix");
    let (images, _) = common::separable_batch(4, 3, 16, 1, DType::F32);
    let a = trained.forward(&images, ForwardMode::EVAL_CLEAN).unwrap();
    let b = loaded.forward(&images, ForwardMode::EVAL_CLEAN).unwrap();
    assert_eq!(common::values(&a), common::values(&b));
}

#[test]
fn a_new_class_count_reinitialises_the_head_and_says_so() {
    let mut model = tiny(5, 0);
    let err = model.load_weights(&fixture("tiny_resnet.pth"), false).unwrap_err().to_string();
    assert!(err.contains("fc.weight") && err.contains("mis-shaped"), "{err}");
    let report = model.load_weights(&fixture("tiny_resnet.pth"), true).unwrap();
    assert_eq!(report.reinitialized, vec!["fc.weight".to_string(), "fc.bias".to_string()]);
}

#[test]
fn every_mismatch_is_listed_in_one_error() {
    let mut wider = ResNet::new(ModelConfig { seed: 0, ..ModelConfig::new(Arch::SmallResNet { depth: 14, width: 4 }, 3) }, &Device::Cpu).unwrap();
    let err = wider.load_weights(&fixture("tiny_resnet.pth"), false).unwrap_err().to_string();
    assert!(err.contains("missing (") && err.contains("layer1.1.conv1.weight"), "{err}");
    let mut resnet = ResNet::new(ModelConfig::new(Arch::ResNet18, 3), &Device::Cpu).unwrap();
    let err = resnet.load_weights(&fixture("tiny_resnet.pth"), false).unwrap_err().to_string();
    assert!(err.contains("mis-shaped (") && err.contains("conv1.weight"), "{err}");
    assert!(err.contains("missing (") && err.contains("layer4.0.conv1.weight"), "{err}");
}

#[test]
fn truncated_and_empty_files_give_clear_errors() {
    let bytes = std::fs::read(fixture("tiny_resnet.pth")).unwrap();
    let truncated = temp_path("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let mut model = tiny(3, 0);
    let err = model.load_weights(&truncated, false).unwrap_err().to_string();
    assert!(err.contains("truncated.pth"), "{err}");
    let empty = temp_path("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let err = model.load_weights(&empty, false).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    // A header that claims 10^12 elements must fail validation, not allocate.
    let absurd = temp_path("absurd.safetensors");
    let header = br#"{"fc.bias":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,4000000000000]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&[0u8; 16]);
    std::fs::write(&absurd, &file).unwrap();
    let err = model.load_weights(&absurd, false).unwrap_err().to_string();
    assert!(err.contains("absurd.safetensors"), "{err}");
    let wrong = temp_path("weights.txt");
    std::fs::write(&wrong, b"hello").unwrap();
    assert_eq!(model.load_weights(&wrong, false).unwrap_err().option(), Some("weights"));
}

#[test]
fn integer_tensors_are_refused_by_name_before_any_weight_changes() {
    let path = temp_path("integer.safetensors");
    let source = tiny(3, 1);
    source.save_weights(&path).unwrap();
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let name = "fc.weight".to_string();
    tensors.insert(name.clone(), tensors[&name].to_dtype(DType::I64).unwrap());
    candle_core::safetensors::save(&tensors, &path).unwrap();

    let mut model = tiny(3, 2);
    let before = model.state_dict().unwrap();
    let err = model.load_weights(&path, false).unwrap_err().to_string();
    assert!(err.contains("fc.weight (I64)") && err.contains("floating point"), "{err}");
    let after = model.state_dict().unwrap();
    for (name, t) in &before {
        let same = t.flatten_all().unwrap().to_vec1::<f32>().unwrap() == after[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(same, "{name} changed although the file was refused");
    }
    std::fs::remove_file(&path).ok();
}
