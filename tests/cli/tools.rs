//! `predict`, `gradcheck` and `bench` end to end.

use crate::*;

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
        let pixels = test.features.bytes().unwrap().row(i).to_vec();
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
    // A device without subgroups (GL, or WGPU_MLP_FEATURES=none) refuses the shuffled kernel,
    // and says why; `adapters` tells which kind this one is.
    let has_subgroups =
        !succeed(&["adapters"]).contains("Shuffled matmul: the Shuffled matmul cannot run");
    for (matmul, strategy) in [
        ("tiled", "Tiled"),
        ("register", "RegisterBlocked"),
        ("shuffled", "Shuffled"),
    ] {
        if strategy == "Shuffled" && !has_subgroups {
            let stderr = fail(&args(matmul));
            assert!(stderr.contains("wgpu's SUBGROUP feature"), "{stderr}");
            continue;
        }
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
