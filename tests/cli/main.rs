//! The `wgpu-mlp` binary end to end: training on the synthetic set and on real MNIST, model
//! files that evaluate to the same accuracy, downloads from a local server, and bad input.

mod augment;
#[path = "../common/mod.rs"]
mod common;
mod defaults;
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
