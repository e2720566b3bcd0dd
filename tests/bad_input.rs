//! Every kind of bad file ends in an error that names the file and what is wrong with it: never
//! a panic, a hang, or an allocation the header asked for.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::data::{self, idx};
use wgpu_mlp::{Activation, Loss, Mlp};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpu-mlp-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(data);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn error_of(path: &Path) -> String {
    idx::read_idx(path).unwrap_err().to_string()
}

#[test]
fn missing_empty_and_wrong_files_are_named() {
    let dir = scratch("files");
    let missing = dir.join("nothing-here.gz");
    let error = error_of(&missing);
    assert!(
        error.contains("nothing-here.gz") && error.contains("No such file"),
        "{error}"
    );

    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert!(
        error_of(&empty).contains("too short"),
        "{}",
        error_of(&empty)
    );

    let not_gzip = dir.join("labels.gz");
    std::fs::write(&not_gzip, idx_bytes(&[2], &[1, 2])).unwrap();
    assert!(
        error_of(&not_gzip).contains("not gzip-compressed"),
        "{}",
        error_of(&not_gzip)
    );

    let html = dir.join("page");
    std::fs::write(&html, b"<html>404 Not Found</html>").unwrap();
    assert!(
        error_of(&html).contains("not an IDX file"),
        "{}",
        error_of(&html)
    );
}

#[test]
fn truncation_at_any_byte_is_an_error_raw_and_gzip() {
    let dir = scratch("truncated");
    let full = idx_bytes(&[3, 4, 5], &(0..60).collect::<Vec<u8>>());
    let compressed = gzip(&full);
    for cut in 0..full.len() {
        let raw = dir.join("raw");
        std::fs::write(&raw, &full[..cut]).unwrap();
        let error = error_of(&raw);
        assert!(
            error.contains("short") || error.contains("holds only"),
            "raw cut at {cut}: {error}"
        );
    }
    for cut in 2..compressed.len() {
        let path = dir.join("cut.gz");
        std::fs::write(&path, &compressed[..cut]).unwrap();
        // A cut gzip stream fails somewhere: in the header, the data or the trailer. Any of those
        // is fine as long as it is an error naming the file.
        let error = error_of(&path);
        assert!(error.contains("cut.gz"), "gzip cut at {cut}: {error}");
    }
}

#[test]
fn headers_that_claim_more_than_the_file_holds_are_refused_before_reading() {
    let dir = scratch("claims");
    // 60,000 images claimed, 10 bytes present.
    let liar = dir.join("liar");
    std::fs::write(&liar, idx_bytes(&[60000, 28, 28], &[0; 10])).unwrap();
    let error = error_of(&liar);
    assert!(error.contains("holds only 10 bytes"), "{error}");

    // A gzip bomb: the header claims 4 GiB × 4 GiB bytes.
    let bomb = dir.join("bomb.gz");
    std::fs::write(&bomb, gzip(&idx_bytes(&[u32::MAX, u32::MAX, 784], &[]))).unwrap();
    let error = error_of(&bomb);
    assert!(
        error.contains("limit") && error.contains("refusing"),
        "{error}"
    );

    // Claims 1 GiB (within the limit) but the stream holds 100 bytes: refused from the trailer.
    let small_bomb = dir.join("small-bomb.gz");
    std::fs::write(&small_bomb, gzip(&idx_bytes(&[1 << 20, 32, 32], &[7; 100]))).unwrap();
    let error = error_of(&small_bomb);
    assert!(error.contains("holds only"), "{error}");
}

#[test]
fn image_and_label_files_that_disagree_are_refused() {
    let dir = scratch("pairs");
    let images = dir.join("images");
    let labels = dir.join("labels");
    std::fs::write(&images, idx_bytes(&[3, 2, 2], &[0; 12])).unwrap();

    std::fs::write(&labels, idx_bytes(&[4], &[0, 1, 2, 3])).unwrap();
    let error = data::load_idx_pair(&images, &labels)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("has 4 labels but") && error.contains("has 3 images"),
        "{error}"
    );

    std::fs::write(&labels, idx_bytes(&[3], &[0, 11, 2])).unwrap();
    let error = data::load_idx_pair(&images, &labels)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("label 11 of sample 1 is outside 0–9"),
        "{error}"
    );

    // A label file given as images, and the other way round.
    let error = data::load_idx_pair(&labels, &images)
        .unwrap_err()
        .to_string();
    assert!(error.contains("an image file has three"), "{error}");
}

fn saved_model_bytes() -> (Mlp, Vec<u8>) {
    let mlp = Mlp::new(
        &[4, 3, 2],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let bytes = checkpoint::to_bytes(&mlp, &CheckpointInfo::default()).unwrap();
    (mlp, bytes)
}

/// Rewrites a safetensors file's JSON header with `edit`, keeping the data.
fn edit_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + n..]);
    out
}

fn model_error(bytes: &[u8]) -> String {
    checkpoint::from_bytes(bytes, Path::new("model.safetensors"))
        .unwrap_err()
        .to_string()
}

#[test]
fn model_files_that_are_broken_or_contradict_themselves_are_refused() {
    let (mlp, good) = saved_model_bytes();
    assert_eq!(
        checkpoint::from_bytes(&good, Path::new("m")).unwrap().0,
        mlp
    );

    assert!(model_error(b"PK\x03\x04 a zip file").contains("not a safetensors file"));
    for cut in [0, 7, 8, 40, good.len() - 1] {
        assert!(
            model_error(&good[..cut]).contains("model.safetensors"),
            "cut at {cut}"
        );
    }

    let missing = edit_header(&good, |h| {
        h.as_object_mut().unwrap().remove("2.bias");
    });
    // Removing a tensor from the header leaves its bytes unaccounted for, which safetensors
    // itself rejects; either way the error names the file.
    assert!(model_error(&missing).contains("model.safetensors"));

    let renamed = edit_header(&good, |h| {
        let object = h.as_object_mut().unwrap();
        let tensor = object.remove("2.bias").unwrap();
        object.insert("2.bias_renamed".into(), tensor);
    });
    assert!(
        model_error(&renamed).contains("no tensor \"2.bias\""),
        "{}",
        model_error(&renamed)
    );

    let wrong_sizes = edit_header(&good, |h| h["__metadata__"]["sizes"] = "4,2,3".into());
    assert!(
        model_error(&wrong_sizes)
            .contains("has shape [3, 4] but the metadata's sizes make it [2, 4]"),
        "{}",
        model_error(&wrong_sizes)
    );

    let unknown = edit_header(&good, |h| {
        h["__metadata__"]["activations"] = "tanh,swish".into()
    });
    assert!(
        model_error(&unknown).contains("unknown activation \"swish\""),
        "{}",
        model_error(&unknown)
    );

    let no_loss = edit_header(&good, |h| {
        h["__metadata__"].as_object_mut().unwrap().remove("loss");
    });
    assert!(
        model_error(&no_loss).contains("has no \"loss\""),
        "{}",
        model_error(&no_loss)
    );

    // NaN and Inf weights: patch the first weight's bytes.
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&good[8..8 + n]).unwrap();
    let start = 8 + n + header["0.weight"]["data_offsets"][0].as_u64().unwrap() as usize;
    for bad in [f32::NAN, f32::INFINITY] {
        let mut patched = good.clone();
        patched[start..start + 4].copy_from_slice(&bad.to_le_bytes());
        assert!(
            model_error(&patched).contains("NaN or infinite"),
            "{}",
            model_error(&patched)
        );
    }
}
