//! The `wgpu-mlp` binary end to end: training on the synthetic set and on real MNIST, model
//! files that evaluate to the same accuracy, downloads from a local server, and bad input.

mod activations;
mod augment;
#[path = "../common/mod.rs"]
mod common;
mod defaults;
mod dropout;
mod errors;
mod files;
mod output;
mod own_data;
mod regularization;
mod resume;
mod tools;
mod training;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn wgpu_mlp(args: &[&str]) -> Output {
    wgpu_mlp_with(args, &[])
}

/// [`wgpu_mlp`] with extra environment variables.
pub fn wgpu_mlp_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let runtime = std::env::temp_dir().join("wgpu-mlp-xdg");
    std::fs::create_dir_all(&runtime).unwrap();
    Command::new(env!("CARGO_BIN_EXE_wgpu-mlp"))
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

/// A small run on the synthetic set: batches of 32 from 256 training and 64 test samples, seed
/// 7, for `epochs`, saved to `model`.
pub fn small_run<'a>(epochs: &'a str, model: &'a Path) -> [&'a str; 12] {
    [
        "--batch",
        "32",
        "--train-size",
        "256",
        "--test-size",
        "64",
        "--seed",
        "7",
        "--epochs",
        epochs,
        "--save",
        model.to_str().unwrap(),
    ]
}

/// Asserts that a one-epoch `train` of 784-16-10 on 64 synthetic samples fails with each of
/// `refused`'s options, its error naming what the pair says, and saves nothing.
pub fn assert_refused(suite: &str, refused: &[(&[&str], &str)]) {
    let model = scratch(suite).join("model.safetensors");
    let base = [
        "train",
        "--layers",
        "784,16,10",
        "--train-size",
        "64",
        "--epochs",
        "1",
    ];
    for (options, needle) in refused {
        let mut args = base.to_vec();
        args.extend(*options);
        args.extend(["--save", model.to_str().unwrap()]);
        let stderr = fail(&args);
        assert!(stderr.contains(needle), "{options:?}: {stderr}");
        assert!(!model.exists(), "{options:?} saved a model");
    }
}

/// Runs the binary and returns its stdout, failing the test with its stderr if it failed.
pub fn succeed(args: &[&str]) -> String {
    let output = wgpu_mlp(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "wgpu-mlp {args:?} failed: {stderr}"
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs the binary expecting failure; returns stderr.
pub fn fail(args: &[&str]) -> String {
    let output = wgpu_mlp(args);
    assert!(
        !output.status.success(),
        "wgpu-mlp {args:?} should have failed"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("error: ") || stderr.contains("\nerror: "),
        "no error line: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    stderr
}

pub fn last_json(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    serde_json::from_str(line).unwrap()
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpu-mlp-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The MNIST subset shipped with the tests: the first 6,000 training and 1,000 test images
/// (`tests/data/mnist/README.md`).
pub fn mnist_subset_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist")
}
