//! Property-based fuzzing of the two parsers that read untrusted files: the IDX reader and the
//! model-file loader. Whatever the bytes, they return `Ok` or an `Err`; they never panic, and they
//! never allocate what a header merely claims.
//!
//! CI runs the default number of cases; `PROPTEST_CASES=100000 cargo test --release --test fuzz`
//! runs a longer campaign.

use std::path::Path;

use proptest::prelude::*;
use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::data::idx;
use wgpu_mlp::{Activation, Loss, Mlp};

fn valid_idx() -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
    bytes.extend(0..18u8);
    bytes
}

fn valid_model() -> Vec<u8> {
    let mlp = Mlp::new(
        &[3, 4, 2],
        Activation::Relu,
        Activation::Sigmoid,
        Loss::BinaryCrossEntropy,
        1,
    )
    .unwrap();
    checkpoint::to_bytes(&mlp, &CheckpointInfo::default()).unwrap()
}

/// A valid file with a few bytes overwritten, then possibly cut short or extended.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    (
        proptest::collection::vec((0..len, any::<u8>()), 1..6),
        0..=len + 8,
        any::<u8>(),
    )
        .prop_map(move |(edits, keep, fill)| {
            let mut bytes = base.clone();
            for (at, value) in edits {
                bytes[at] = value;
            }
            bytes.resize(keep, fill);
            bytes
        })
}

fn parse_idx(bytes: &[u8]) {
    let _ = idx::parse_idx(bytes, Path::new("fuzz.idx"), Some(bytes.len() as u64));
    let _ = idx::parse_idx(bytes, Path::new("fuzz.idx"), None);
}

proptest! {
    #[test]
    fn idx_parser_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        parse_idx(&bytes);
    }

    #[test]
    fn idx_parser_never_panics_on_mutated_files(bytes in mutated(valid_idx())) {
        parse_idx(&bytes);
    }

    #[test]
    fn model_loader_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = checkpoint::from_bytes(&bytes, Path::new("fuzz.safetensors"));
    }

    #[test]
    fn model_loader_never_panics_on_mutated_files(bytes in mutated(valid_model())) {
        if let Ok((mlp, _)) = checkpoint::from_bytes(&bytes, Path::new("fuzz.safetensors")) {
            // Whatever loads is a model that can be used.
            prop_assert!(mlp.validate().is_ok());
        }
    }
}
