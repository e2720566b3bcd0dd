//! Training through the command line: the synthetic set and the shipped MNIST subset past
//! accuracy floors, resuming bit for bit, and divergence.

use crate::*;

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
