//! A user's files: saves never replace what is not a regular file, go through a symbolic link to
//! its target, leave no temporaries (a killed run's are cleaned by the next save), and every
//! output path is checked before any training. Ctrl-C keeps the last completed save.

use std::os::unix::fs::FileTypeExt;
use std::time::{Duration, Instant};

use crate::*;

/// A small, fast run on the synthetic set.
const QUICK: [&str; 8] = [
    "--layers",
    "784,16,10",
    "--train-size",
    "256",
    "--test-size",
    "64",
    "--epochs",
    "1",
];

fn train_quick(extra: &[&str]) -> Output {
    let mut args = vec!["train"];
    args.extend(QUICK);
    args.extend(extra);
    wgpu_mlp(&args)
}

/// Asserts the run failed before its first epoch, with `expected` in its error.
fn refused_before_training(output: &Output, expected: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(expected), "{expected:?} not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("epoch"),
        "trained before refusing: {stdout}"
    );
    assert!(
        !stderr.contains("training ["),
        "trained before refusing: {stderr}"
    );
    stderr
}

#[test]
fn a_save_onto_a_fifo_or_a_directory_is_refused_and_leaves_it_as_it_was() {
    let dir = scratch("not-regular");
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let output = train_quick(&["--save", fifo.to_str().unwrap()]);
    refused_before_training(&output, "is a FIFO, not a regular file");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    for option in ["--save", "--plot"] {
        let output = train_quick(&[option, folder.to_str().unwrap()]);
        let stderr = refused_before_training(&output, "is a directory, not a regular file");
        assert!(stderr.contains(option), "{stderr}");
        assert!(folder.is_dir());
    }
    // Nothing was created beside them.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["fifo", "folder"]);
}

#[test]
fn a_save_through_a_symbolic_link_writes_its_target_and_keeps_the_link() {
    let dir = scratch("symlink");
    let target = dir.join("real.safetensors");
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink("real.safetensors", &link).unwrap();
    let output = train_quick(&["--save", link.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let (mlp, info) = wgpu_mlp::checkpoint::load(&target).unwrap();
    assert_eq!(mlp.sizes(), [784, 16, 10]);
    assert_eq!(info.epochs, 1);
}

#[test]
fn a_missing_folder_is_refused_before_training_naming_the_file_asked_for() {
    let dir = scratch("no-folder");
    let missing = dir.join("nodir/x.safetensors");
    let output = train_quick(&["--save", missing.to_str().unwrap()]);
    let stderr = refused_before_training(&output, "nodir/x.safetensors");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!stderr.contains("x.optimizer.safetensors"), "{stderr}");
}

#[test]
fn a_killed_runs_temporaries_are_removed_by_the_next_save() {
    let dir = scratch("stale");
    let model = dir.join("model.safetensors");
    // A pid above the kernel's limit never runs: its temporaries are stale.
    let stale = dir.join(".model.safetensors.tmp-4194305");
    std::fs::write(&stale, b"half a model").unwrap();
    let unrelated = dir.join(".other.safetensors.tmp-4194305");
    std::fs::write(&unrelated, b"another file's").unwrap();
    let output = train_quick(&["--save", model.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stale.exists(), "the stale temporary is still there");
    assert!(unrelated.exists(), "another file's temporary was removed");
}

#[test]
fn ctrl_c_stops_after_the_step_keeps_the_last_save_and_prints_the_summary() {
    let dir = scratch("interrupt");
    let model = dir.join("model.safetensors");
    let child = Command::new(env!("CARGO_BIN_EXE_wgpu-mlp"))
        .args([
            "train",
            "--layers",
            "784,16,10",
            "--train-size",
            "2000",
            "--test-size",
            "64",
        ])
        .args([
            "--epochs",
            "100000",
            "--json",
            "--save",
            model.to_str().unwrap(),
        ])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first epoch is saved, interrupt as a terminal's Ctrl-C would.
    let start = Instant::now();
    while !model.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no epoch was saved"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted in epoch"), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let summary = last_json(&stdout);
    assert_eq!(summary["interrupted"], true, "{summary}");
    let (_, info) = wgpu_mlp::checkpoint::load(&model).unwrap();
    assert_eq!(summary["epochs"].as_u64().unwrap(), info.epochs as u64);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
}

#[test]
fn a_model_saved_by_the_library_with_a_default_info_is_read_by_predict_and_eval() {
    use wgpu_mlp::ndarray::Array2;
    use wgpu_mlp::{Activation, CheckpointInfo, Loss, Mlp, checkpoint};
    let dir = scratch("default-info");
    let model = dir.join("model.safetensors");
    let mlp = Mlp::new(
        &[3, 4, 2],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
        9,
    )
    .unwrap();
    checkpoint::save(&model, &mlp, &CheckpointInfo::default()).unwrap();
    let rows = [[0.5f32, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 1.0, 0.0]];
    let labels = [0, 1, 1];
    // The samples to predict, and the same with their labels in the last column to evaluate on.
    let (mut features, mut labelled) = ("a,b,c\n".to_string(), "a,b,c,label\n".to_string());
    for (row, label) in rows.iter().zip(labels) {
        let line = format!("{},{},{}", row[0], row[1], row[2]);
        features += &format!("{line}\n");
        labelled += &format!("{line},{label}\n");
    }
    let (samples, test) = (dir.join("samples.csv"), dir.join("test.csv"));
    std::fs::write(&samples, features).unwrap();
    std::fs::write(&test, labelled).unwrap();
    let model_arg = model.to_str().unwrap();
    // predict: the file records no input scaling, so the floats go in as they are.
    let stdout = succeed(&["predict", "--model", model_arg, samples.to_str().unwrap()]);
    let x = Array2::from_shape_fn((3, 3), |(i, j)| rows[i][j]);
    let expected = mlp.forward(x.view()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "class,p0,p1");
    for (line, row) in lines[1..].iter().zip(expected.rows()) {
        let values: Vec<f32> = line
            .split(',')
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(values, row.to_vec(), "{stdout}");
    }
    // eval: the test file's last column is its labels; the loss is the mean cross-entropy.
    let evaluated = last_json(&succeed(&[
        "eval",
        "--model",
        model_arg,
        "--test",
        test.to_str().unwrap(),
        "--cpu",
        "--json",
    ]));
    let loss: f32 = labels
        .iter()
        .enumerate()
        .map(|(i, &label)| -expected[[i, label]].ln())
        .sum::<f32>()
        / 3.0;
    let reported = evaluated["test_loss"].as_f64().unwrap() as f32;
    assert!((reported - loss).abs() < 1e-5, "{reported} vs {loss}");
    assert_eq!(evaluated["task"], "classification");
}
