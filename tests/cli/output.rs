//! What the commands say: `--json` keeps stdout to JSON, a full disk is an error, `eval` uses the
//! model's data set and seed, model files are checked whole, and the defaults do the obvious thing.

use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::{Activation, Loss, Mlp};

use crate::*;

/// A safetensors file written here, independently of the library: f32 tensors and metadata.
fn safetensors(tensors: &[(&str, Vec<usize>, Vec<f32>)], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    if !metadata.is_empty() {
        let map: serde_json::Map<_, _> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(map));
    }
    let header = serde_json::Value::Object(header).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

/// The tensors of `mlp` as a PyTorch `state_dict` names them.
fn state_dict(mlp: &Mlp) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    let names = [("0.weight", "0.bias"), ("2.weight", "2.bias")];
    mlp.layers
        .iter()
        .zip(names)
        .flat_map(|(layer, (w, b))| {
            [
                (
                    w,
                    vec![layer.outputs(), layer.inputs()],
                    layer.weight.iter().copied().collect(),
                ),
                (b, vec![layer.outputs()], layer.bias.to_vec()),
            ]
        })
        .collect()
}

#[test]
fn json_keeps_stdout_to_one_json_line() {
    let output = wgpu_mlp(&[
        "train",
        "--layers",
        "784,16,10",
        "--train-size",
        "256",
        "--test-size",
        "64",
        "--epochs",
        "2",
        "--json",
    ]);
    // On an adapter that is itself a CPU, the human lines also say that --cpu may be faster.
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains(", Cpu)") {
        assert_eq!(stderr.matches("may be faster").count(), 1, "{stderr}");
    }
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(summary["epochs"], 2);
}

#[test]
fn a_full_disk_on_stdout_is_an_error_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wgpu-mlp"))
        .args([
            "train",
            "--layers",
            "784,16,10",
            "--train-size",
            "64",
            "--test-size",
            "64",
        ])
        .args(["--epochs", "1"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("writing to standard output"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn eval_uses_the_data_set_and_seed_the_model_records() {
    let dir = scratch("eval-defaults");
    let model = dir.join("seven.safetensors");
    let trained = last_json(&succeed(&[
        "train",
        "--layers",
        "784,16,10",
        "--train-size",
        "512",
        "--test-size",
        "200",
        "--seed",
        "7",
        "--epochs",
        "2",
        "--batch",
        "50",
        "--json",
        "--save",
        model.to_str().unwrap(),
    ]));
    let evaluated = last_json(&succeed(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--test-size",
        "200",
        "--batch",
        "50",
        "--json",
    ]));
    assert_eq!(evaluated["test_accuracy"], trained["test_accuracy"]);
    assert_eq!(evaluated["dataset"], "synthetic");

    // A model that records MNIST is evaluated on MNIST (the shipped subset here).
    let mnist_model = dir.join("mnist.safetensors");
    let mlp = Mlp::new(
        &[784, 8, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        3,
    )
    .unwrap();
    let info = CheckpointInfo {
        epochs: 1,
        extra: [("dataset".to_string(), "mnist".to_string())].into(),
    };
    checkpoint::save(&mnist_model, &mlp, &info).unwrap();
    let data = mnist_subset_dir();
    let output = wgpu_mlp(&[
        "eval",
        "--model",
        mnist_model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let on_mnist = last_json(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(on_mnist["dataset"], "mnist");
    assert_eq!(on_mnist["samples"], 1000);
    // Asked for another set, it says so.
    let output = wgpu_mlp(&[
        "eval",
        "--model",
        mnist_model.to_str().unwrap(),
        "--dataset",
        "synthetic",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("was trained on mnist; evaluating on synthetic"),
        "{stderr}"
    );
}

#[test]
fn model_files_with_extra_tensors_or_another_format_are_refused_and_state_dicts_need_options() {
    let dir = scratch("model-files");
    let mlp = Mlp::new(
        &[784, 8, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        5,
    )
    .unwrap();
    let architecture = [
        ("sizes", "784,8,10"),
        ("activations", "relu,softmax"),
        ("loss", "cross-entropy"),
    ];
    let write =
        |name: &str, tensors: &[(&str, Vec<usize>, Vec<f32>)], metadata: &[(&str, &str)]| {
            let path = dir.join(name);
            std::fs::write(&path, safetensors(tensors, metadata)).unwrap();
            path.to_str().unwrap().to_string()
        };
    let mut extra = state_dict(&mlp);
    extra.push(("4.weight", vec![3, 10], vec![0.0; 30]));
    let path = write("extra.safetensors", &extra, &architecture);
    let error = fail(&["eval", "--model", &path]);
    assert!(
        error.contains("\"4.weight\"") && error.contains("not part of"),
        "{error}"
    );
    assert_eq!(error.matches("invalid model").count(), 1, "{error}");

    let mut later = architecture.to_vec();
    later.push(("format", "wgpu-mlp/2"));
    let path = write("later.safetensors", &state_dict(&mlp), &later);
    assert!(fail(&["eval", "--model", &path]).contains("\"wgpu-mlp/2\""));

    // A PyTorch state_dict: refused naming what is needed, accepted when the options say it.
    let bare = write("torch.safetensors", &state_dict(&mlp), &[]);
    let error = fail(&["eval", "--model", &bare]);
    assert!(
        error.contains("--hidden") && error.contains("--loss"),
        "{error}"
    );
    let with = write("ours.safetensors", &state_dict(&mlp), &architecture);
    let ours = last_json(&succeed(&[
        "eval",
        "--model",
        &with,
        "--test-size",
        "100",
        "--json",
    ]));
    let torch = last_json(&succeed(&[
        "eval",
        "--model",
        &bare,
        "--hidden",
        "relu",
        "--loss",
        "cross-entropy",
        "--test-size",
        "100",
        "--json",
    ]));
    assert_eq!(torch["test_loss"], ours["test_loss"]);
}

#[test]
fn the_defaults_do_the_obvious_thing() {
    // `train` is the default command, options and all.
    let stdout = succeed(&[
        "--layers",
        "784, 16, 10",
        "--train-size",
        "128",
        "--test-size",
        "64",
        "--epochs",
        "1",
        "--loss",
        "cross-entropy",
        "--json",
    ]);
    assert_eq!(last_json(&stdout)["epochs"], 1);
    // The help lists for --hidden only what --hidden accepts.
    let help = succeed(&["train", "--help"]);
    let hidden: String = help
        .lines()
        .skip_while(|l| !l.contains("--hidden"))
        .take_while(|l| !l.contains("--output"))
        .collect();
    assert!(
        hidden.contains("tanh") && !hidden.contains("softmax"),
        "{hidden}"
    );
    let error = fail(&["train", "--hidden", "softmax"]);
    assert!(error.contains("possible values"), "{error}");
    // A batch larger than the data is capped, on both sides, and said.
    for side in [&[][..], &["--cpu"][..]] {
        let mut args = vec!["train", "--layers", "784,16,10", "--batch", "50000"];
        args.extend(["--train-size", "200", "--test-size", "64", "--epochs", "1"]);
        args.extend(side);
        let output = wgpu_mlp(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{side:?}: {stderr}");
        assert!(
            stderr.contains("using batches of 200"),
            "{side:?}: {stderr}"
        );
    }
}

#[test]
fn errors_say_things_once_and_advise_what_caused_them() {
    let dir = scratch("wording");
    let error = fail(&["eval", "--model", dir.to_str().unwrap()]);
    assert_eq!(error.matches("os error").count(), 1, "{error}");
    let error = fail(&[
        "train",
        "--layers",
        "784,16,10",
        "--hidden",
        "relu",
        "--output",
        "identity",
        "--train-size",
        "128",
        "--test-size",
        "64",
        "--epochs",
        "1",
        "--optimizer",
        "sgd",
        "--lr",
        "0.5",
        "--weight-decay",
        "1e30",
    ]);
    assert!(error.contains("weight decay is too large"), "{error}");
    // eval names the set it evaluates on.
    let model = dir.join("hundred.safetensors");
    let mlp = Mlp::new(
        &[100, 4, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    checkpoint::save(&model, &mlp, &CheckpointInfo::default()).unwrap();
    let error = fail(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--test-size",
        "10",
    ]);
    assert!(
        error.contains("test set") && !error.contains("training set"),
        "{error}"
    );
}
