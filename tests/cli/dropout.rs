//! `--dropout` and `--input-dropout` from the command line: recorded in the model file,
//! continued by `--resume` (a resumed run equals an uninterrupted one, bit for bit), replaced
//! and said when given again, checked by `gradcheck --dropout`, and refused with the option's
//! name where out of range or of the wrong length.

use crate::*;

/// `train` on 256 synthetic samples of 784-16-12-10 ReLU with dropout, for `epochs` epochs,
/// saving to `model`; more arguments after.
fn train_dropped(model: &Path, epochs: &str, more: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--layers",
        "784,16,12,10",
        "--hidden",
        "relu",
        "--dropout",
        "0.5,0.25",
        "--input-dropout",
        "0.2",
    ];
    args.extend(small_run(epochs, model));
    args.extend(more);
    succeed(&args)
}

/// `train --resume model` for one more epoch, with `more` options, saving over it; its stderr.
fn resume(model: &Path, more: &[&str]) -> String {
    let mut args = vec!["train", "--resume", model.to_str().unwrap()];
    // The batch and the seed come from the file.
    let run = small_run("1", model);
    args.extend(&run[2..6]);
    args.extend(&run[8..]);
    args.extend(more);
    let output = wgpu_mlp(&args);
    assert!(output.status.success(), "{args:?} failed: {output:?}");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn dropout_is_recorded_and_a_resumed_run_equals_an_uninterrupted_one() {
    let dir = scratch("dropout-resume");
    let (whole, halves, plain) = (
        dir.join("whole.safetensors"),
        dir.join("halves.safetensors"),
        dir.join("plain.safetensors"),
    );
    train_dropped(&whole, "2", &[]);
    train_dropped(&halves, "1", &[]);
    // The resumed run gives no dropout option: the file says what it was.
    resume(&halves, &[]);
    let (whole_model, info) = wgpu_mlp::checkpoint::load(&whole).unwrap();
    let (halves_model, _) = wgpu_mlp::checkpoint::load(&halves).unwrap();
    assert_eq!(whole_model, halves_model, "resumed weights differ");
    for (key, value) in [("dropout", "0.5,0.25"), ("input_dropout", "0.2")] {
        let recorded = info.extra.get(key).map(String::as_str);
        assert_eq!(recorded, Some(value), "{key}");
    }
    // A value given on resume replaces the recorded one, and the run says so.
    train_dropped(&plain, "1", &[]);
    let said = resume(&plain, &["--dropout", "0"]);
    assert!(said.contains("--dropout 0 replaces the 0.5,0.25"), "{said}");
    let (_, info) = wgpu_mlp::checkpoint::load(&plain).unwrap();
    assert_eq!(info.extra.get("dropout").map(String::as_str), Some("0"));
    let (plain_model, _) = wgpu_mlp::checkpoint::load(&plain).unwrap();
    assert_ne!(
        plain_model, whole_model,
        "--dropout 0 on resume changed nothing"
    );
}

#[test]
fn gradcheck_checks_the_gradients_with_the_mask_held_fixed() {
    let stdout = succeed(&[
        "gradcheck",
        "--layers",
        "12,9,7,3",
        "--hidden",
        "tanh",
        "--dropout",
        "0.5",
        "--input-dropout",
        "0.3",
        "--samples",
        "40",
    ]);
    assert!(stdout.contains("ok ("), "{stdout}");
}

#[test]
fn bad_dropout_values_are_refused_naming_the_option() {
    let refused: [(&[&str], &str); 6] = [
        (&["--dropout", "1"], "--dropout"),
        (&["--dropout=-0.1"], "--dropout"),
        (&["--dropout", "0.5,x"], "--dropout"),
        (
            &["--dropout", "0.5,0.5"],
            "2 values for a network with 1 hidden layers",
        ),
        (&["--input-dropout", "1"], "--input-dropout"),
        (&["--input-dropout", "nan"], "--input-dropout"),
    ];
    assert_refused("dropout-refused", &refused);
}
