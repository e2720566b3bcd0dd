//! Bad options, bad files, a corrupted download and a closed stdout: clear errors, never a
//! panic.

use crate::*;

#[test]
fn bad_options_are_clear_errors() {
    assert!(fail(&["train", "--layers", "784,0,10"]).contains("at least 1"));
    let negative = fail(&["train", "--layers", "784,-5,10"]);
    assert!(
        negative.contains("for '--layers")
            && negative.contains("\"-5\" in \"784,-5,10\" is not a size"),
        "{negative}"
    );
    assert!(fail(&["train", "--batch", "0", "--epochs", "1"]).contains("batch size"));
    assert!(fail(&["train", "--lr=-1", "--epochs", "1"]).contains("learning rate"));
    assert!(fail(&["train", "--lr", "NaN", "--epochs", "1"]).contains("learning rate"));
    assert!(fail(&["train", "--epochs", "0"]).contains("--epochs 0"));
    assert!(
        fail(&["gradcheck", "--batch", "100000000000"]).contains("--batch 100000000000: at most")
    );
    assert!(
        fail(&["train", "--loss", "cross-entropy", "--output", "sigmoid"])
            .contains("needs a softmax output")
    );
    let unknown = fail(&["train", "--adapter", "no-such-gpu", "--epochs", "1"]);
    assert!(
        unknown.contains("no adapter matches") && unknown.contains("the adapters here are"),
        "{unknown}"
    );
    let dir = scratch("bad");
    let not_a_model = dir.join("model.safetensors");
    std::fs::write(&not_a_model, b"hello").unwrap();
    assert!(
        fail(&["eval", "--model", not_a_model.to_str().unwrap()])
            .contains("not a safetensors file")
    );
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(
        fail(&[
            "train",
            "--dataset",
            "mnist",
            "--data",
            empty.to_str().unwrap()
        ])
        .contains("wgpu-mlp download")
    );
    assert!(
        fail(&[
            "train",
            "--layers",
            "100,10",
            "--train-size",
            "10",
            "--test-size",
            "10"
        ])
        .contains("784")
    );
}

#[test]
fn download_verifies_checksums_and_never_keeps_a_corrupted_file() {
    // The command end to end against the published checksums, which only the real files match:
    // a mirror serving anything else is refused and leaves nothing behind. Keeping verified
    // files and skipping present ones is tested on small files in tests/download.rs.
    let names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ];
    let server = common::serve(
        names
            .iter()
            .map(|name| (format!("/bad/{name}"), b"not MNIST".to_vec()))
            .collect(),
    );
    let bad = format!("{}/bad/", server.url);

    let dir = scratch("download-bad");
    let error = fail(&[
        "download",
        "--dataset",
        "mnist",
        "--data",
        dir.to_str().unwrap(),
        "--mirror",
        &bad,
    ]);
    assert!(error.contains("checksum mismatch"), "{error}");
    // The published MD5 of train-images-idx3-ubyte.gz, the first file fetched.
    assert!(
        error.contains("f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "a corrupted download was kept"
    );
    assert_eq!(server.requests(), 1, "stopped at the first file");
}

#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_command_quietly_instead_of_panicking() {
    use std::os::unix::process::ExitStatusExt;
    // `wgpu-mlp adapters | head -0`, deterministically: the pipe's reader is gone before the
    // command writes its first line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_wgpu-mlp"))
        .arg("adapters")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    const SIGPIPE: i32 = 13;
    assert_eq!(
        output.status.signal(),
        Some(SIGPIPE),
        "{:?}: {stderr}",
        output.status
    );
}
