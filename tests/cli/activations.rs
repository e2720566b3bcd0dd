//! `--hidden gelu|silu|leaky-relu` and `--leaky-slope` from the command line: the slope recorded
//! in the model file and honoured by `--resume`, `eval`, `gradcheck` and `bench`, and refused with
//! the option's name where it does not apply or is out of range.

use crate::*;

/// `train` on 256 synthetic samples of 784-16-10 softmax cross-entropy with `hidden` for
/// `epochs` epochs, saving to `model`; more arguments after.
fn train_with(model: &Path, hidden: &str, epochs: &str, more: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--layers",
        "784,16,10",
        "--hidden",
        hidden,
        "--loss",
        "cross-entropy",
    ];
    args.extend(small_run(epochs, model));
    args.extend(more);
    succeed(&args)
}

#[test]
fn the_slope_is_recorded_and_a_resumed_leaky_run_equals_an_uninterrupted_one() {
    let dir = scratch("leaky-resume");
    let (whole, halves) = (
        dir.join("whole.safetensors"),
        dir.join("halves.safetensors"),
    );
    train_with(&whole, "leaky-relu", "2", &["--leaky-slope", "0.2"]);
    train_with(&halves, "leaky-relu", "1", &["--leaky-slope", "0.2"]);
    // The resumed run names no slope: the file's 0.2 continues, not the default 0.01.
    let mut resume = vec!["train", "--resume", halves.to_str().unwrap()];
    resume.extend(small_run("1", &halves));
    succeed(&resume);
    let (whole_model, info) = wgpu_mlp::checkpoint::load(&whole).unwrap();
    let (halves_model, _) = wgpu_mlp::checkpoint::load(&halves).unwrap();
    assert_eq!(whole_model.leaky_slope, 0.2);
    assert_eq!(whole_model, halves_model, "resumed weights differ");
    assert_eq!(
        info.extra.get("leaky_slope"),
        None,
        "the slope is the model's, not a run setting"
    );
    // eval reads the slope from the file: the same weights with slope 0 evaluate to another
    // loss, on the GPU as on the CPU.
    let eval_loss = |model: &Path, cpu: bool| {
        let mut args = vec!["eval", "--model", model.to_str().unwrap(), "--json"];
        if cpu {
            args.push("--cpu");
        }
        last_json(&succeed(&args))["test_loss"].as_f64().unwrap()
    };
    let mut zero_slope = whole_model.clone();
    zero_slope.leaky_slope = 0.0;
    let relu_like = dir.join("zero-slope.safetensors");
    wgpu_mlp::checkpoint::save(&relu_like, &zero_slope, &info).unwrap();
    let (leaky, zero) = (eval_loss(&whole, false), eval_loss(&relu_like, false));
    assert!(
        (leaky - eval_loss(&whole, true)).abs() < 1e-5,
        "gpu {leaky} vs cpu"
    );
    assert!(
        (leaky - zero).abs() > 1e-5,
        "slope 0.2: {leaky}, slope 0: {zero}"
    );
    // A contradicting slope on resume is refused, naming the option.
    let mut contradicting = vec!["train", "--resume", halves.to_str().unwrap()];
    contradicting.extend(["--leaky-slope", "0.1", "--epochs", "1"]);
    let stderr = fail(&contradicting);
    assert!(stderr.contains("--leaky-slope 0.1 contradicts"), "{stderr}");
}

#[test]
fn a_gelu_and_a_silu_run_train_and_resume_bit_for_bit() {
    for hidden in ["gelu", "silu"] {
        let dir = scratch(&format!("{hidden}-resume"));
        let (whole, halves) = (
            dir.join("whole.safetensors"),
            dir.join("halves.safetensors"),
        );
        train_with(&whole, hidden, "2", &[]);
        train_with(&halves, hidden, "1", &[]);
        let mut resume = vec!["train", "--resume", halves.to_str().unwrap()];
        resume.extend(small_run("1", &halves));
        succeed(&resume);
        let (whole_model, _) = wgpu_mlp::checkpoint::load(&whole).unwrap();
        let (halves_model, _) = wgpu_mlp::checkpoint::load(&halves).unwrap();
        assert_eq!(
            whole_model, halves_model,
            "{hidden}: resumed weights differ"
        );
        assert_eq!(whole_model.layers[0].activation.name(), hidden);
    }
}

#[test]
fn gradcheck_and_bench_take_the_new_activations_and_the_slope() {
    for hidden in [
        &["gelu"][..],
        &["silu"],
        &["leaky-relu", "--leaky-slope", "0.3"],
    ] {
        let mut args = vec![
            "gradcheck",
            "--layers",
            "12,9,7,4",
            "--batch",
            "3",
            "--hidden",
        ];
        args.extend(hidden);
        let stdout = succeed(&args);
        assert!(stdout.contains("\nok (tolerances"), "{hidden:?}: {stdout}");
        let mut bench = vec!["bench", "--samples", "64", "--json", "--hidden"];
        bench.extend(hidden);
        let line = last_json(&succeed(&bench));
        assert_eq!(line["hidden"], hidden[0], "{line}");
    }
}

#[test]
fn a_bad_or_misplaced_leaky_slope_and_a_hidden_only_output_are_refused_naming_the_option() {
    let refused: [(&[&str], &str); 5] = [
        (
            &["--hidden", "leaky-relu", "--leaky-slope", "1.5"],
            "--leaky-slope",
        ),
        (
            &["--hidden", "leaky-relu", "--leaky-slope", "-0.1"],
            "--leaky-slope",
        ),
        (
            &["--hidden", "leaky-relu", "--leaky-slope", "NaN"],
            "--leaky-slope",
        ),
        (
            &["--hidden", "relu", "--leaky-slope", "0.2"],
            "--leaky-slope",
        ),
        (&["--output", "gelu"], "--output"),
    ];
    assert_refused("leaky-refused", &refused);
    let stderr = fail(&["bench", "--leaky-slope", "0.2"]);
    assert!(stderr.contains("--leaky-slope"), "{stderr}");
}
