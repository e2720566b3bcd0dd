//! The `wgpu-mlp` binary end to end: training on the synthetic set and on real MNIST, model
//! files that evaluate to the same accuracy, downloads from a local server, and bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wgpu_mlp(args: &[&str]) -> Output {
    wgpu_mlp_with(args, &[])
}

/// [`wgpu_mlp`] with extra environment variables.
fn wgpu_mlp_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
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
fn succeed(args: &[&str]) -> String {
    let output = wgpu_mlp(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "wgpu-mlp {args:?} failed: {stderr}"
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs the binary expecting failure; returns stderr.
fn fail(args: &[&str]) -> String {
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

fn last_json(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    serde_json::from_str(line).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpu-mlp-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The MNIST subset shipped with the tests: the first 6,000 training and 1,000 test images
/// (`tests/data/mnist/README.md`).
fn mnist_subset_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mnist")
}

#[test]
fn trains_on_synthetic_data_and_the_saved_model_evaluates_to_the_same_accuracy() {
    let dir = scratch("synthetic");
    let model = dir.join("model.safetensors");
    let metrics = dir.join("metrics.jsonl");
    let plot = dir.join("curves.svg");
    let model_arg = model.to_str().unwrap();
    let stdout = succeed(&[
        "train",
        "--hidden",
        "relu",
        "--output",
        "softmax",
        "--loss",
        "cross-entropy",
        "--optimizer",
        "adam",
        "--lr",
        "0.003",
        "--train-size",
        "2000",
        "--test-size",
        "500",
        "--epochs",
        "3",
        "--save",
        model_arg,
        "--metrics",
        metrics.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--json",
    ]);
    let summary = last_json(&stdout);
    for key in [
        "test_accuracy",
        "test_loss",
        "epochs",
        "seconds",
        "samples_per_s",
        "adapter",
    ] {
        assert!(summary.get(key).is_some(), "summary lacks {key}: {summary}");
    }
    assert_eq!(summary["epochs"], 3);
    let accuracy = summary["test_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "synthetic accuracy {accuracy}");
    assert_eq!(
        std::fs::read_to_string(&metrics).unwrap().lines().count(),
        3
    );
    assert!(
        std::fs::read_to_string(&plot)
            .unwrap()
            .contains("<polyline")
    );

    // At the batch it trained with, eval runs the very same products: the same accuracy exactly.
    // (At another batch the GPU may choose other tiles, and a sample on a near-tie may flip.)
    let evaluated = last_json(&succeed(&[
        "eval",
        "--model",
        model_arg,
        "--test-size",
        "500",
        "--batch",
        "64",
        "--json",
    ]));
    assert_eq!(evaluated["test_accuracy"].as_f64().unwrap(), accuracy);
    let on_cpu = last_json(&succeed(&[
        "eval",
        "--model",
        model_arg,
        "--test-size",
        "500",
        "--cpu",
        "--json",
    ]));
    assert!(
        (on_cpu["test_accuracy"].as_f64().unwrap() - accuracy).abs() <= 1.0 / 500.0,
        "cpu {on_cpu} vs gpu {accuracy}"
    );
}

#[test]
fn trains_real_mnist_subset_past_an_accuracy_floor_and_resumes() {
    let dir = scratch("mnist");
    let model = dir.join("mnist.safetensors");
    let model_arg = model.to_str().unwrap();
    let data = mnist_subset_dir();
    let data_arg = data.to_str().unwrap();
    let common = [
        "--dataset",
        "mnist",
        "--data",
        data_arg,
        "--train-size",
        "6000",
        "--test-size",
        "1000",
    ];
    let mut args = vec![
        "train",
        "--layers",
        "784,64,10",
        "--hidden",
        "relu",
        "--output",
        "softmax",
        "--loss",
        "cross-entropy",
    ];
    args.extend([
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
        "--batch",
        "32",
        "--epochs",
        "2",
        "--save",
        model_arg,
        "--json",
    ]);
    args.extend(common);
    let summary = last_json(&succeed(&args));
    let accuracy = summary["test_accuracy"].as_f64().unwrap();
    // 6,000 samples, two epochs: a working trainer is far above this; a broken one near 10%.
    assert!(accuracy >= 0.88, "MNIST subset accuracy {accuracy}");

    let mut eval_args = vec!["eval", "--model", model_arg, "--json"];
    eval_args.extend(common);
    assert_eq!(
        last_json(&succeed(&eval_args))["test_accuracy"]
            .as_f64()
            .unwrap(),
        accuracy
    );

    // --resume continues from the file: one more epoch, counted on top of the two.
    let mut resume = vec![
        "train",
        "--resume",
        model_arg,
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
        "--batch",
        "32",
        "--epochs",
        "1",
        "--json",
    ];
    resume.extend(common);
    let resumed = last_json(&succeed(&resume));
    assert_eq!(resumed["epochs"], 3);
    assert!(resumed["test_accuracy"].as_f64().unwrap() >= 0.88);
}

#[test]
fn predicts_images_as_the_model_does() {
    use wgpu_mlp::ndarray::Array2;
    let dir = scratch("predict");
    let model = dir.join("model.safetensors");
    succeed(&[
        "train",
        "--train-size",
        "1000",
        "--test-size",
        "100",
        "--epochs",
        "2",
        "--save",
        model.to_str().unwrap(),
    ]);
    let (mlp, _) = wgpu_mlp::checkpoint::load(&model).unwrap();
    let (_, test) = wgpu_mlp::data::synthetic::generate(10, 10, 42);
    let mut images = Vec::new();
    let mut expected = Vec::new();
    for i in 0..3 {
        let pixels = &test.images[i * 784..(i + 1) * 784];
        // Binary PGM, 56×56 (twice the size), bright strokes on dark as in MNIST.
        let mut pgm = b"P5\n56 56\n255\n".to_vec();
        for y in 0..56 {
            for x in 0..56 {
                pgm.push(pixels[(y / 2) * 28 + x / 2]);
            }
        }
        let path = dir.join(format!("digit{i}.pgm"));
        std::fs::write(&path, pgm).unwrap();
        images.push(path);
        let x =
            Array2::from_shape_vec((1, 784), pixels.iter().map(|&p| p as f32 / 255.0).collect())
                .unwrap();
        expected.push(wgpu_mlp::train::argmax(
            mlp.forward(x.view()).unwrap().iter().copied(),
        ));
    }
    let mut args = vec!["predict", "--model", model.to_str().unwrap()];
    args.extend(images.iter().map(|p| p.to_str().unwrap()));
    let stdout = succeed(&args);
    assert_eq!(
        stdout.lines().count(),
        expected.len(),
        "one line per image: {stdout}"
    );
    for (line, want) in stdout.lines().zip(&expected) {
        let predicted: usize = line
            .split(": ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(predicted, *want, "{line}");
    }
}

#[test]
fn gradcheck_passes_and_reports_the_worst_errors() {
    let stdout = succeed(&[
        "gradcheck",
        "--layers",
        "20,9,5",
        "--hidden",
        "tanh",
        "--loss",
        "cross-entropy",
    ]);
    assert!(
        stdout.contains("worst gpu − cpu gradient difference against its tolerance"),
        "{stdout}"
    );
    assert!(
        stdout.contains("worst |finite difference − analytic|"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with(')') && stdout.contains("\nok "),
        "{stdout}"
    );
}

#[test]
fn bench_reports_throughput_and_profiles_every_kernel() {
    for kernels in ["fused", "unfused"] {
        let mut args = vec![
            "bench",
            "--workload",
            "W1",
            "--samples",
            "128",
            "--profile",
            "2",
            "--json",
        ];
        if kernels == "unfused" {
            args.push("--unfused");
        }
        let report = last_json(&succeed(&args));
        assert_eq!(report["workload"], "W1");
        assert_eq!(report["kernels"], kernels);
        assert!(report["samples"].as_u64().unwrap() >= 128, "{report}");
        for key in ["samples_per_s", "gflops", "first_step_s"] {
            assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
        }
        let profile = &report["profile"];
        assert_eq!(profile["steps"], 2, "{report}");
        let kernels_timed: Vec<&str> = profile["kernels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kernel"].as_str().unwrap())
            .collect();
        for kernel in [
            "layer0.forward",
            "layer1.dweight",
            "layer0.delta",
            "train.gather",
        ] {
            assert!(
                kernels_timed.contains(&kernel),
                "{kernel} missing: {report}"
            );
        }
        // The unfused step has the kernels the fused one folds into its matmuls.
        assert_eq!(
            kernels_timed.contains(&"layer0.bias_add"),
            kernels == "unfused",
            "{report}"
        );
        assert!(
            profile["gpu_ms_per_step"].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
    let stderr = fail(&["bench", "--cpu", "--profile"]);
    assert!(stderr.contains("cannot be used with --cpu"), "{stderr}");
}

#[test]
fn wgpu_mlp_bounds_checks_turns_wgpus_checks_on_and_changes_no_result() {
    let adapters = |checked: &str| {
        let output = wgpu_mlp_with(&["adapters"], &[("WGPU_MLP_BOUNDS_CHECKS", checked)]);
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(adapters("1").contains("bounds checks on"));
    assert!(!adapters("0").contains("bounds checks on"));
    // With the checks on, the same loss and gradients, on tiles with ragged edges.
    let gpu_lines = |checked: &str| {
        let args = ["gradcheck", "--layers", "70,33,5", "--hidden", "relu"];
        let output = wgpu_mlp_with(&args, &[("WGPU_MLP_BOUNDS_CHECKS", checked)]);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{stdout}");
        let lines: Vec<String> = stdout
            .lines()
            .filter(|l| l.starts_with("loss: gpu") || l.starts_with("worst gpu − cpu"))
            .map(String::from)
            .collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        lines
    };
    assert_eq!(gpu_lines("1"), gpu_lines("0"));
}

#[test]
fn bench_runs_the_matmul_kernel_asked_for() {
    let args = |matmul| ["bench", "--samples", "64", "--json", "--matmul", matmul];
    for (matmul, strategy) in [
        ("tiled", "Tiled"),
        ("register", "RegisterBlocked"),
        ("shuffled", "Shuffled"),
    ] {
        let report = last_json(&succeed(&args(matmul)));
        assert_eq!(report["matmul"], strategy, "{report}");
        assert!(report["samples_per_s"].as_f64().unwrap() > 0.0, "{report}");
    }
    let cpu = last_json(&succeed(&["bench", "--cpu", "--samples", "64", "--json"]));
    assert!(cpu["matmul"].is_null(), "{cpu}");
    let stderr = fail(&["bench", "--cpu", "--matmul", "tiled"]);
    assert!(stderr.contains("cannot be used with --cpu"), "{stderr}");
    let stderr = fail(&["bench", "--matmul", "fastest"]);
    assert!(
        stderr.contains("invalid value 'fastest' for '--matmul"),
        "{stderr}"
    );
}

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
        fail(&["train", "--loss", "cross-entropy", "--output", "sigmoid"])
            .contains("needs a softmax output")
    );
    let unknown = fail(&["train", "--adapter", "no-such-gpu", "--epochs", "1"]);
    assert!(
        unknown.contains("no adapter matches") && unknown.contains("available adapters"),
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

#[test]
fn resuming_reaches_exactly_the_uninterrupted_result_with_every_optimizer() {
    // Weights, optimizer moments, step count, epoch and shuffle all continue where they stopped,
    // so on one adapter a resumed run equals an uninterrupted one bit for bit.
    for (optimizer, lr) in [("sgd", "0.1"), ("momentum", "0.05"), ("adam", "0.002")] {
        for side in [&[][..], &["--cpu"][..]] {
            let dir = scratch(&format!("resume-{optimizer}-{}", side.len()));
            let (straight, first) = (
                dir.join("straight.safetensors"),
                dir.join("first.safetensors"),
            );
            let run = |extra: &[&str]| {
                let mut args = vec![
                    "train",
                    "--hidden",
                    "relu",
                    "--output",
                    "softmax",
                    "--loss",
                    "cross-entropy",
                    "--seed",
                    "7",
                ];
                args.extend([
                    "--optimizer",
                    optimizer,
                    "--lr",
                    lr,
                    "--train-size",
                    "640",
                    "--test-size",
                    "100",
                ]);
                args.extend(side);
                args.extend(extra);
                succeed(&args)
            };
            run(&["--epochs", "2", "--save", straight.to_str().unwrap()]);
            run(&["--epochs", "1", "--save", first.to_str().unwrap()]);
            // The seed comes back from the file: no --seed here would still be seed 7.
            let mut resume = vec![
                "train",
                "--resume",
                first.to_str().unwrap(),
                "--epochs",
                "1",
                "--save",
                first.to_str().unwrap(),
            ];
            resume.extend([
                "--optimizer",
                optimizer,
                "--lr",
                lr,
                "--train-size",
                "640",
                "--test-size",
                "100",
            ]);
            resume.extend(side);
            succeed(&resume);
            let (a, a_info) = wgpu_mlp::checkpoint::load(&straight).unwrap();
            let (b, b_info) = wgpu_mlp::checkpoint::load(&first).unwrap();
            assert_eq!((a_info.epochs, b_info.epochs), (2, 2));
            assert_eq!(
                a, b,
                "{optimizer} {side:?}: resumed training differs from uninterrupted training"
            );
        }
    }
}

#[test]
fn diverging_training_stops_naming_the_step_and_keeps_the_last_good_model() {
    let dir = scratch("diverge");
    let model = dir.join("model.safetensors");
    let model_arg = model.to_str().unwrap();
    let network = [
        "--hidden",
        "relu",
        "--output",
        "identity",
        "--loss",
        "mse",
        "--train-size",
        "640",
        "--test-size",
        "64",
    ];
    let mut good = vec![
        "train", "--epochs", "1", "--lr", "0.01", "--save", model_arg,
    ];
    good.extend(network);
    succeed(&good);
    let saved = std::fs::read(&model).unwrap();
    for side in [&[][..], &["--cpu"][..]] {
        let mut blow_up = vec![
            "train", "--resume", model_arg, "--epochs", "2", "--lr", "1e12", "--save", model_arg,
        ];
        blow_up.extend(network);
        blow_up.extend(side);
        let error = fail(&blow_up);
        assert!(
            error.contains("epoch 2, at step") && error.contains("try a lower learning rate"),
            "{side:?}: {error}"
        );
        assert_eq!(
            std::fs::read(&model).unwrap(),
            saved,
            "{side:?}: the last good model was overwritten"
        );
    }
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
