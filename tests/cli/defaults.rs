//! What `train` trains with when only the data is given: ReLU hidden units, Adam at 1e-3, a
//! softmax output with the cross-entropy for classes (so `predict` gives probabilities) and an
//! identity output with the MSE for values, for at least 10 epochs and 5,000 steps; the tutorial's network with `--tutorial`; and model
//! files that record fewer settings continued as they were trained (the tutorial's SGD at 0.5).

use std::path::{Path, PathBuf};

use wgpu_mlp::checkpoint;
use wgpu_mlp::{Activation, Loss};

use crate::own_data::{
    classes_csv, integer_label, prediction_table, regression_csv, text, write_file,
};
use crate::*;

/// A small synthetic set and network, on the CPU.
const SMALL: [&str; 7] = [
    "--train-size",
    "128",
    "--test-size",
    "32",
    "--layers",
    "784,8,10",
    "--cpu",
];

/// The activations (hidden, then output), loss and recorded optimizer, learning rate and batch of
/// a saved model.
fn saved(path: &Path) -> (Vec<Activation>, Loss, [String; 3]) {
    let (mlp, info) = checkpoint::load(path).unwrap();
    let activations = mlp.layers.iter().map(|l| l.activation).collect();
    let recorded = ["optimizer", "lr", "batch"].map(|key| info.extra[key].clone());
    (activations, mlp.loss, recorded)
}

/// Trains one epoch of a model with 8 hidden units on `csv` (written to a fresh folder) with
/// `options` and nothing else; returns the model file and the CSV's.
fn trained_on(name: &str, csv: &str, options: &[&str]) -> (PathBuf, String) {
    let dir = scratch(name);
    let data = write_file(&dir, "data.csv", csv);
    let model = dir.join("model.safetensors");
    let common = [
        "train",
        "--train",
        &data,
        "--hidden-sizes",
        "8",
        "--epochs",
        "1",
        "--cpu",
    ];
    succeed(&[&common[..], options, &["--save", text(&model)]].concat());
    (model, data)
}

#[test]
fn classes_default_to_relu_softmax_cross_entropy_and_adam_so_predict_gives_probabilities() {
    let (csv, _) = classes_csv(300, 21, integer_label);
    let (model, data) = trained_on("defaults-classes", &csv, &["--target", "label"]);
    let (activations, loss, recorded) = saved(&model);
    assert_eq!(activations, [Activation::Relu, Activation::Softmax]);
    assert_eq!(loss, Loss::CrossEntropy);
    assert_eq!(recorded, ["adam", "0.001", "64"]);

    let (header, rows) = prediction_table(&succeed(&["predict", "--model", text(&model), &data]));
    assert_eq!(header, ["class", "p0", "p1", "p2"]);
    for row in &rows {
        let sum: f64 = row[1..].iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{row:?} sums to {sum}");
    }
}

#[test]
fn values_default_to_relu_identity_mse_and_adam() {
    let (csv, _) = regression_csv(200, 23);
    let (model, _) = trained_on("defaults-values", &csv, &[]);
    let (activations, loss, recorded) = saved(&model);
    assert_eq!(activations, [Activation::Relu, Activation::Identity]);
    assert_eq!(loss, Loss::Mse);
    assert_eq!(recorded, ["adam", "0.001", "64"]);
}

#[test]
fn tutorial_trains_the_tutorials_network_unless_an_option_says_otherwise() {
    let dir = scratch("defaults-tutorial");
    let model = dir.join("tutorial.safetensors");
    let stdout = succeed(
        &[
            &["train"][..],
            &SMALL[..],
            &["--tutorial", "--json", "--save", text(&model)],
        ]
        .concat(),
    );
    let (activations, loss, recorded) = saved(&model);
    assert_eq!(activations, [Activation::Sigmoid, Activation::Sigmoid]);
    assert_eq!(loss, Loss::Mse);
    assert_eq!(recorded, ["sgd", "0.5", "64"]);
    assert_eq!(last_json(&stdout)["epochs"], 5);

    let options = [
        "--tutorial",
        "--hidden",
        "relu",
        "--lr",
        "0.1",
        "--epochs",
        "1",
    ];
    succeed(
        &[
            &["train"][..],
            &SMALL[..],
            &["--save", text(&model)],
            &options[..],
        ]
        .concat(),
    );
    let (activations, loss, recorded) = saved(&model);
    assert_eq!(activations, [Activation::Relu, Activation::Sigmoid]);
    assert_eq!(loss, Loss::Mse);
    assert_eq!(recorded, ["sgd", "0.1", "64"]);

    // Classes with an output other than softmax default to the mean squared error.
    succeed(
        &[
            &["train"][..],
            &SMALL[..],
            &[
                "--output",
                "sigmoid",
                "--epochs",
                "1",
                "--save",
                text(&model),
            ],
        ]
        .concat(),
    );
    let (activations, loss, _) = saved(&model);
    assert_eq!(activations, [Activation::Relu, Activation::Sigmoid]);
    assert_eq!(loss, Loss::Mse);
}

#[test]
fn default_epochs_are_ten_or_enough_for_5000_steps_up_to_200() {
    // Steps per epoch of `samples` in batches of 64, and the epochs that make 5,000 of them,
    // counted here apart from the library.
    let expected = |samples: usize| {
        let steps = samples.div_ceil(64);
        5000_usize.div_ceil(steps).clamp(10, 200)
    };
    for (samples, epochs) in [(64, 200), (3200, 100), (40_000, 10)] {
        assert_eq!(expected(samples), epochs);
        let train_size = samples.to_string();
        let stdout = succeed(&[
            "train",
            "--train-size",
            &train_size,
            "--test-size",
            "16",
            "--layers",
            "784,2,10",
            "--cpu",
            "--json",
        ]);
        assert_eq!(last_json(&stdout)["epochs"], epochs, "{samples} samples");
    }
}

#[test]
fn a_file_that_records_no_optimizer_resumes_with_the_tutorials_sgd_at_half() {
    let dir = scratch("defaults-old-file");
    let model = dir.join("old.safetensors");
    succeed(
        &[
            &["train"][..],
            &SMALL[..],
            &["--epochs", "1", "--save", text(&model)],
        ]
        .concat(),
    );
    // As files written before `train` recorded its optimizer, learning rate and batch.
    let (mlp, mut info) = checkpoint::load(&model).unwrap();
    for key in ["optimizer", "lr", "weight_decay", "batch"] {
        info.extra.remove(key);
    }
    checkpoint::save(&model, &mlp, &info).unwrap();
    std::fs::remove_file(checkpoint::optimizer_path(&model)).unwrap();

    let output = wgpu_mlp(
        &[
            &["train"][..],
            &SMALL[..],
            &[
                "--epochs",
                "1",
                "--resume",
                text(&model),
                "--save",
                text(&model),
            ],
        ]
        .concat(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for said in [
        "does not record its learning rate: using 0.5",
        "does not record its batch: using 64",
        "with sgd (lr 0.5)",
    ] {
        assert!(stderr.contains(said), "{said:?} not in {stderr}");
    }
    let (_, _, recorded) = saved(&model);
    assert_eq!(recorded, ["sgd", "0.5", "64"]);
}
