//! `--optimizer adamw`, `--label-smoothing` and `--clip-norm` from the command line: recorded in
//! the model file, honoured by `--resume` (a resumed run equals an uninterrupted one, bit for
//! bit), and refused with the option's name where they do not apply.

use crate::*;

/// `train` on 256 synthetic samples of 784-16-10 softmax cross-entropy with AdamW, label
/// smoothing and clipping, for `epochs` epochs, saving to `model`; more arguments after.
fn train_regularized(model: &Path, epochs: &str, more: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--layers",
        "784,16,10",
        "--hidden",
        "relu",
        "--loss",
        "cross-entropy",
        "--optimizer",
        "adamw",
        "--lr",
        "0.002",
        "--label-smoothing",
        "0.1",
        "--clip-norm",
        "0.5",
    ];
    args.extend(small_run(epochs, model));
    args.extend(more);
    succeed(&args)
}

#[test]
fn the_settings_are_recorded_and_a_resumed_run_equals_an_uninterrupted_one() {
    let dir = scratch("regularized-resume");
    let (whole, halves) = (
        dir.join("whole.safetensors"),
        dir.join("halves.safetensors"),
    );
    train_regularized(&whole, "2", &[]);
    train_regularized(&halves, "1", &[]);
    // The resumed run gives no regularization option: the file says what they were.
    let mut resume = vec!["train", "--resume", halves.to_str().unwrap()];
    resume.extend(small_run("1", &halves));
    succeed(&resume);
    let (whole_model, info) = wgpu_mlp::checkpoint::load(&whole).unwrap();
    let (halves_model, _) = wgpu_mlp::checkpoint::load(&halves).unwrap();
    assert_eq!(whole_model, halves_model, "resumed weights differ");
    for (key, value) in [
        ("optimizer", "adamw"),
        // torch.optim.AdamW's default decay, as no --weight-decay was given.
        ("weight_decay", "0.01"),
        ("label_smoothing", "0.1"),
        ("clip_norm", "0.5"),
    ] {
        assert_eq!(
            info.extra.get(key).map(String::as_str),
            Some(value),
            "{key}"
        );
    }
}

#[test]
fn a_new_smoothing_or_clip_norm_on_resume_is_taken_and_said() {
    let model = scratch("regularized-change").join("model.safetensors");
    train_regularized(&model, "1", &[]);
    let mut args = vec!["train", "--resume", model.to_str().unwrap()];
    args.extend(["--label-smoothing", "0.2", "--clip-norm", "0.5"]);
    args.extend(small_run("1", &model));
    let output = wgpu_mlp(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("label smoothing 0.2 (instead of the 0.1"),
        "{stderr}"
    );
    // The same clip norm as recorded replaces nothing and says nothing.
    assert!(!stderr.contains("clip norm"), "{stderr}");
    let (_, info) = wgpu_mlp::checkpoint::load(&model).unwrap();
    assert_eq!(info.extra["label_smoothing"], "0.2");
    assert_eq!(info.extra["clip_norm"], "0.5");
}

#[test]
fn settings_that_do_not_apply_are_refused_naming_the_option() {
    let refused: [(&[&str], &str); 4] = [
        (
            &["--label-smoothing", "0.1", "--loss", "mse"],
            "--label-smoothing",
        ),
        (&["--label-smoothing", "1"], "label smoothing"),
        (&["--clip-norm", "0"], "clip norm"),
        (&["--clip-norm", "nan"], "clip norm"),
    ];
    assert_refused("regularized-refused", &refused);
}
