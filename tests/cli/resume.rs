//! `--resume` restores what the saved files record: optimizer and its state, learning rate, batch,
//! data set, seed. An option that contradicts them is an error naming both values; a new learning
//! rate is taken and said.

use crate::*;

/// Trains 784-16-10 with Adam at 0.002 for one epoch, saved in a fresh folder; returns the model.
fn adam_model(name: &str) -> PathBuf {
    let model = scratch(name).join("model.safetensors");
    let mut args = vec![
        "train",
        "--layers",
        "784,16,10",
        "--hidden",
        "sigmoid",
        "--loss",
        "mse",
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
    ];
    args.extend(small_run("1", &model));
    succeed(&args);
    model
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn resume_without_options_continues_with_the_recorded_optimizer_and_settings() {
    let model = adam_model("resume-bare");
    let copy = model.with_file_name("copy.safetensors");
    std::fs::copy(&model, &copy).unwrap();
    std::fs::copy(
        wgpu_mlp::checkpoint::optimizer_path(&model),
        wgpu_mlp::checkpoint::optimizer_path(&copy),
    )
    .unwrap();
    let common = [
        "--train-size",
        "256",
        "--test-size",
        "64",
        "--epochs",
        "1",
        "--json",
    ];

    let mut bare = vec!["train", "--resume", model.to_str().unwrap(), "--save"];
    bare.push(model.to_str().unwrap());
    bare.extend(common);
    let output = wgpu_mlp(&bare);
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("restored the adam state"), "{stderr}");
    assert!(stderr.contains("with adam (lr 0.002)"), "{stderr}");
    let resumed = last_json(&String::from_utf8(output.stdout).unwrap());

    // The same run with every setting repeated gives the same result, bit for bit.
    let mut explicit = vec!["train", "--resume", copy.to_str().unwrap()];
    explicit.extend([
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
        "--batch",
        "32",
        "--seed",
        "7",
    ]);
    explicit.extend(common);
    let repeated = last_json(&succeed(&explicit));
    assert_eq!(resumed["test_loss"], repeated["test_loss"]);
    assert_eq!(resumed["epochs"], 2);

    // The optimizer file holds Adam's state of two epochs, not SGD's zeros.
    let state = std::fs::read(wgpu_mlp::checkpoint::optimizer_path(&model)).unwrap();
    let header_len = u64::from_le_bytes(state[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&state[8..8 + header_len]);
    assert!(header.contains("\"optimizer\":\"adam\""), "{header}");
    assert!(header.contains("\"epochs\":\"2\""), "{header}");
}

#[test]
fn an_option_that_contradicts_the_saved_model_is_an_error_naming_both() {
    let model = adam_model("resume-contradict");
    let path = model.to_str().unwrap();
    let before = std::fs::read(&model).unwrap();
    for (option, value, expected) in [
        ("--optimizer", "sgd", "--optimizer sgd contradicts"),
        ("--layers", "784,32,10", "--layers 784,32,10 contradicts"),
        (
            "--loss",
            "cross-entropy",
            "--loss cross-entropy contradicts",
        ),
        ("--dataset", "mnist", "--dataset mnist contradicts"),
    ] {
        let output = wgpu_mlp(&["train", "--resume", path, option, value, "--epochs", "1"]);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{option}: {stderr}");
        assert!(stderr.contains(expected), "{option}: {stderr}");
        let recorded = ["adam", "784,16,10", "mse", "synthetic"];
        assert!(
            recorded.iter().any(|r| stderr.contains(r)),
            "{option}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read(&model).unwrap(),
        before,
        "a refused run touched the model"
    );
}

#[test]
fn a_new_learning_rate_on_resume_is_taken_and_said() {
    let model = adam_model("resume-lr");
    let path = model.to_str().unwrap();
    let output = wgpu_mlp(&[
        "train",
        "--resume",
        path,
        "--lr",
        "0.001",
        "--train-size",
        "256",
        "--test-size",
        "64",
        "--epochs",
        "1",
        "--save",
        path,
    ]);
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("learning rate 0.001 (instead of the 0.002"),
        "{stderr}"
    );
    let (_, info) = wgpu_mlp::checkpoint::load(&model).unwrap();
    assert_eq!(info.extra["lr"], "0.001");
    assert_eq!(info.extra["optimizer"], "adam");
}
