//! Training on the user's own files through the command line: CSV regression with RMSE and R² in
//! the target's own units, target columns, tasks and class counts, NPZ and IDX images, validation
//! splits, learning-rate schedules, early stopping, resuming, `predict` on a table, and bad input.
//!
//! The data is generated here with a seeded generator (written into each test's scratch folder),
//! or comes from the numpy-written fixtures in `tests/data/formats`.

use std::io::Write as _;
use std::path::Path;

use wgpu_mlp::checkpoint;

use crate::*;

/// SplitMix64: the tests' own data, the same on every run.
struct Rand(u64);

impl Rand {
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

pub(crate) fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Writes `contents` to `dir/name`; returns the path as an argument.
pub(crate) fn write_file(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_string()
}

/// `tests/data/formats/NAME`.
fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/formats")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// Regression rows `x1,x2,y` with features of very different scales (x1 in [0, 1e-3], x2 in
/// [0, 1e4]) and `y = 10 + 4·u1 + 6·u2 + 0.5·sin(3·u1)` for `u1 = 1000·x1`, `u2 = x2 / 10⁴`;
/// returns the CSV and the targets.
pub(crate) fn regression_csv(rows: usize, seed: u64) -> (String, Vec<f64>) {
    let mut rand = Rand(seed);
    let mut csv = String::from("x1,x2,y\n");
    let mut targets = Vec::new();
    for _ in 0..rows {
        let (u1, u2) = (rand.uniform(), rand.uniform());
        let y = 10.0 + 4.0 * u1 + 6.0 * u2 + 0.5 * (3.0 * u1).sin();
        csv += &format!("{},{},{y}\n", u1 * 1e-3, u2 * 1e4);
        targets.push(y);
    }
    (csv, targets)
}

/// Three classes by quadrant, the label between the two features: `f1,label,f2`, the label
/// written by `label`. Returns the CSV and the labels.
pub(crate) fn classes_csv(rows: usize, seed: u64, label: fn(u32) -> String) -> (String, Vec<u32>) {
    let mut rand = Rand(seed);
    let mut csv = String::from("f1,label,f2\n");
    let mut labels = Vec::new();
    for _ in 0..rows {
        let (a, b) = (2.0 * rand.uniform() - 1.0, 2.0 * rand.uniform() - 1.0);
        let class = u32::from(a > 0.0) + 2 * u32::from(b > 0.0);
        let class = class.min(2);
        csv += &format!("{a},{},{b}\n", label(class));
        labels.push(class);
    }
    (csv, labels)
}

pub(crate) fn integer_label(class: u32) -> String {
    class.to_string()
}

fn float_label(class: u32) -> String {
    format!("{class}.0")
}

/// Runs the binary expecting success; returns the `--json` summary and stderr.
fn train_json(args: &[&str]) -> (serde_json::Value, String) {
    let output = wgpu_mlp(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "wgpu-mlp {args:?} failed: {stderr}"
    );
    (
        last_json(&String::from_utf8(output.stdout).unwrap()),
        stderr,
    )
}

/// The lines of a `--metrics` file.
fn metrics(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The columns of the confusion matrix printed in `output`, from its header row.
fn confusion_columns(output: &str) -> usize {
    let mut lines = output
        .lines()
        .skip_while(|l| !l.starts_with("confusion matrix"));
    assert!(lines.next().is_some(), "no confusion matrix in: {output}");
    let header: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(header, (0..header.len()).collect::<Vec<_>>());
    header.len()
}

/// The layer sizes of a saved model.
fn model_sizes(path: &Path) -> Vec<usize> {
    checkpoint::load(path).unwrap().0.sizes()
}

/// `predict`'s CSV: the header's names and the values of each line.
pub(crate) fn prediction_table(csv: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .expect("a header row")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|line| line.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

fn assert_relative(what: &str, got: f64, want: f64, tolerance: f64) {
    assert!(
        (got - want).abs() <= tolerance * want.abs(),
        "{what}: {got} vs {want} (relative tolerance {tolerance})"
    );
}

fn number(value: &serde_json::Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {value}"))
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A `.npy` file (format 1.0) of `data`, little-endian `descr` (`|u1`, `<i8`, `<f4`).
fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

/// An `.npz` archive (stored, as `np.savez` writes it) of `arrays`.
fn write_npz(path: &Path, arrays: &[(&str, Vec<u8>)]) {
    let mut archive = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in arrays {
        archive.start_file(format!("{name}.npy"), options).unwrap();
        archive.write_all(bytes).unwrap();
    }
    archive.finish().unwrap();
}

/// `n` uint8 images of `rows`×`cols` and int64 labels below `classes`.
fn images_npz(path: &Path, n: usize, (rows, cols): (usize, usize), classes: i64) {
    let mut rand = Rand(n as u64);
    let pixels: Vec<u8> = (0..n * rows * cols)
        .map(|_| (rand.uniform() * 256.0) as u8)
        .collect();
    let labels: Vec<u8> = (0..n as i64)
        .flat_map(|i| (i % classes).to_le_bytes())
        .collect();
    write_npz(
        path,
        &[
            ("x", npy("|u1", &[n, rows, cols], &pixels)),
            ("y", npy("<i8", &[n], &labels)),
        ],
    );
}

#[test]
fn own_data_csv_regression_reports_rmse_in_the_targets_units_and_eval_agrees() {
    let dir = scratch("own-regression");
    let (train_csv, train_targets) = regression_csv(400, 1);
    let (test_csv, truth) = regression_csv(100, 2);
    let train = write_file(&dir, "a.csv", &train_csv);
    let test = write_file(&dir, "b.csv", &test_csv);
    let model = dir.join("m.safetensors");
    let network = [
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch",
        "16",
        "--epochs",
        "10",
        "--hidden-sizes",
        "16",
        "--json",
    ];
    let mut args = vec!["train", "--train", &train, "--test", &test];
    args.extend(network);
    args.extend(["--save", text(&model)]);
    let (summary, stderr) = train_json(&args);
    assert!(
        stderr.contains("400 samples of 2 features, 1 regression target(s)"),
        "{stderr}"
    );
    assert_eq!(summary["task"], "regression", "{summary}");
    assert_eq!(summary["epochs"], 10);
    assert!(summary.get("test_accuracy").is_none(), "{summary}");
    let (rmse, r2) = (number(&summary, "test_rmse"), number(&summary, "test_r2"));
    assert!(r2 > 0.9, "R² {r2} after 10 epochs of adam");
    // The loss is in standardized units; the RMSE in the targets' own: √loss times the
    // training targets' (population) standard deviation, about 2.1 here.
    let loss = number(&summary, "test_loss");
    let n = train_targets.len() as f64;
    let mean = train_targets.iter().sum::<f64>() / n;
    let std = (train_targets
        .iter()
        .map(|y| (y - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    assert!(std > 2.0, "{std}");
    assert_relative("test_rmse against √loss·σ", rmse, loss.sqrt() * std, 1e-4);

    // The RMSE and R² of predict's outputs against the true targets, computed here.
    let (header, rows) = prediction_table(&succeed(&["predict", "--model", text(&model), &test]));
    assert_eq!(header, ["y"]);
    assert_eq!(rows.len(), 100);
    let squared: f64 = rows
        .iter()
        .zip(&truth)
        .map(|(row, y)| (row[0] - y).powi(2))
        .sum();
    let mean = truth.iter().sum::<f64>() / truth.len() as f64;
    let total: f64 = truth.iter().map(|y| (y - mean).powi(2)).sum();
    assert_relative("test_rmse", rmse, (squared / 100.0).sqrt(), 1e-4);
    assert!(
        (r2 - (1.0 - squared / total)).abs() < 1e-4,
        "R² {r2} vs {}",
        1.0 - squared / total
    );

    // eval on the GPU: the same scores from the saved model as the resident run reported.
    let evaluated = last_json(&succeed(&[
        "eval",
        "--model",
        text(&model),
        "--test",
        &test,
        "--json",
    ]));
    assert_eq!(evaluated["task"], "regression");
    assert_eq!(evaluated["samples"], 100);
    assert_relative(
        "eval test_rmse",
        number(&evaluated, "test_rmse"),
        rmse,
        1e-5,
    );
    assert_relative("eval test_r2", number(&evaluated, "test_r2"), r2, 1e-5);

    // Without standardization the features' scales (1e-3 and 1e4) cripple the same network.
    let mut args = vec!["train", "--train", &train, "--test", &test, "--cpu"];
    args.extend(network);
    args.extend(["--normalize", "none"]);
    let (raw, _) = train_json(&args);
    let raw_r2 = number(&raw, "test_r2");
    assert!(
        raw_r2 < r2 - 0.3,
        "--normalize none R² {raw_r2} vs standardized {r2}"
    );
}

#[test]
fn own_data_target_task_and_class_count_options() {
    let dir = scratch("own-target");
    let (csv, _) = classes_csv(300, 3, integer_label);
    let train = write_file(&dir, "c.csv", &csv);
    let (csv, _) = classes_csv(100, 4, integer_label);
    let test = write_file(&dir, "ct.csv", &csv);
    let quick = ["--cpu", "--json", "--epochs", "3", "--hidden-sizes", "16"];

    // The middle column as the target: three classes from the two other columns.
    let model = dir.join("label.safetensors");
    let mut args = vec!["train", "--train", &train, "--test", &test];
    args.extend(["--target", "label", "--loss", "cross-entropy"]);
    args.extend([
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--save",
        text(&model),
    ]);
    args.extend(quick);
    let (summary, stderr) = train_json(&args);
    assert!(
        stderr.contains("300 samples of 2 features, 3 classes"),
        "{stderr}"
    );
    assert_eq!(summary["task"], "classification");
    let accuracy = number(&summary, "test_accuracy");
    assert!(accuracy > 0.8, "accuracy {accuracy}");
    assert_eq!(confusion_columns(&stderr), 3);
    assert_eq!(model_sizes(&model), [2, 16, 3]);
    let (_, info) = checkpoint::load(&model).unwrap();
    assert_eq!(info.extra["target"], "label");

    // The same integer column as values to regress.
    let mut args = vec!["train", "--train", &train, "--test", &test];
    args.extend(["--target", "label", "--task", "regression"]);
    let model = dir.join("regression.safetensors");
    args.extend(["--save", text(&model)]);
    args.extend(quick);
    let (summary, stderr) = train_json(&args);
    assert!(stderr.contains("1 regression target(s)"), "{stderr}");
    assert_eq!(summary["task"], "regression");
    assert!(summary["test_rmse"].is_number() && summary["test_r2"].is_number());
    assert!(!stderr.contains("confusion matrix"), "{stderr}");
    assert_eq!(model_sizes(&model), [2, 16, 1]);

    // Whole numbers written as floats are values, unless classification is asked for.
    let (csv, _) = classes_csv(300, 5, float_label);
    let float_train = write_file(&dir, "cf.csv", &csv);
    let (csv, _) = classes_csv(100, 6, float_label);
    let float_test = write_file(&dir, "cft.csv", &csv);
    let floats = [
        "--train",
        &float_train,
        "--test",
        &float_test,
        "--target",
        "label",
    ];
    let mut args = vec!["train"];
    args.extend(floats);
    args.extend(quick);
    assert_eq!(train_json(&args).0["task"], "regression");
    args.extend(["--task", "classification"]);
    let (summary, stderr) = train_json(&args);
    assert_eq!(summary["task"], "classification");
    assert!(summary["test_accuracy"].is_number(), "{summary}");
    assert_eq!(confusion_columns(&stderr), 3);

    // More classes than the labels show: five outputs, a 5×5 confusion matrix.
    let model = dir.join("five.safetensors");
    args.extend(["--classes", "5", "--save", text(&model)]);
    let (summary, stderr) = train_json(&args);
    assert_eq!(summary["task"], "classification");
    assert!(stderr.contains("5 classes"), "{stderr}");
    assert_eq!(confusion_columns(&stderr), 5);
    assert_eq!(model_sizes(&model), [2, 16, 5]);

    // Fewer classes than the labels need, or a class count for regression: errors.
    let mut args = vec!["train"];
    args.extend(floats);
    args.extend(["--task", "classification", "--classes", "2", "--cpu"]);
    let error = fail(&args);
    assert!(
        error.contains("cf.csv") && error.contains("needs at least 3 classes"),
        "{error}"
    );
    let error = fail(&[
        "train",
        "--train",
        &train,
        "--target",
        "label",
        "--task",
        "regression",
        "--classes",
        "4",
        "--cpu",
    ]);
    assert!(
        error.contains("c.csv") && error.contains("the task is regression"),
        "{error}"
    );
}

#[test]
fn own_data_npz_images_and_an_emnist_style_idx_pair_train_as_classification() {
    let dir = scratch("own-images");
    let images = fixture("images_u8.npz");
    let model = dir.join("images.safetensors");
    let (summary, stderr) = train_json(&[
        "train",
        "--train",
        &images,
        "--test",
        &images,
        "--cpu",
        "--epochs",
        "2",
        "--json",
        "--save",
        text(&model),
    ]);
    // numpy's values (expected.json): 12 images of 4×3 bytes, labels up to 4.
    assert!(
        stderr.contains("12 samples of 12 features, 5 classes"),
        "{stderr}"
    );
    assert_eq!(summary["task"], "classification");
    assert!(summary["test_accuracy"].is_number(), "{summary}");
    assert_eq!(confusion_columns(&stderr), 5);
    assert_eq!(model_sizes(&model), [12, 128, 5]);
    let (_, info) = checkpoint::load(&model).unwrap();
    assert_eq!(info.extra["input_scaling"], "bytes");

    // The image shape is kept: a test set of 4×3 images fits, one of 2×6 (the same 12 bytes) not.
    let same = dir.join("same.npz");
    images_npz(&same, 8, (4, 3), 5);
    let other = dir.join("other.npz");
    images_npz(&other, 8, (2, 6), 5);
    let mut args = vec!["train", "--train", &images, "--cpu", "--epochs", "1"];
    args.extend(["--test", text(&same)]);
    succeed(&args);
    args.pop();
    args.push(text(&other));
    let error = fail(&args);
    assert!(
        error.contains("other.npz") && error.contains("holds 2×6 images but the training set 4×3"),
        "{error}"
    );

    // An EMNIST-style pair: 47 classes in training, 31 in the test file; nothing but the files.
    let (summary, stderr) = train_json(&[
        "train",
        "--train",
        &fixture("emnist-balanced-train-images-idx3-ubyte.gz"),
        "--test",
        &fixture("emnist-balanced-test-images-idx3-ubyte.gz"),
        "--json",
    ]);
    assert!(
        stderr.contains("60 samples of 12 features, 47 classes"),
        "{stderr}"
    );
    assert!(stderr.contains("60 train / 20 test"), "{stderr}");
    assert_eq!(summary["task"], "classification");
    assert!(summary["test_accuracy"].is_number(), "{summary}");
    assert_eq!(confusion_columns(&stderr), 47);
}

#[test]
fn own_data_eval_scores_a_model_with_more_classes_than_its_test_file_holds() {
    // The model has an output per class of its training (47, or --classes 5); its test file holds
    // fewer classes. train scored it (its test set got the model's class count); eval must too.
    let dir = scratch("own-eval-classes");
    let emnist = dir.join("emnist.safetensors");
    let (trained, _) = train_json(&[
        "train",
        "--train",
        &fixture("emnist-balanced-train-images-idx3-ubyte.gz"),
        "--test",
        &fixture("emnist-balanced-test-images-idx3-ubyte.gz"),
        "--cpu",
        "--epochs",
        "1",
        "--json",
        "--save",
        text(&emnist),
    ]);
    let (csv, _) = classes_csv(100, 7, integer_label);
    let train = write_file(&dir, "c.csv", &csv);
    let (csv, _) = classes_csv(50, 8, integer_label);
    let test = write_file(&dir, "ct.csv", &csv);
    let five = dir.join("five.safetensors");
    let (five_trained, _) = train_json(&[
        "train",
        "--train",
        &train,
        "--test",
        &test,
        "--target",
        "label",
        "--classes",
        "5",
        "--cpu",
        "--epochs",
        "1",
        "--json",
        "--save",
        text(&five),
    ]);
    let mut failures = Vec::new();
    for (model, trained) in [(&emnist, &trained), (&five, &five_trained)] {
        let output = wgpu_mlp(&["eval", "--model", text(model), "--cpu", "--json"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            failures.push(format!("eval of {}: {stderr}", model.display()));
            continue;
        }
        let evaluated = last_json(&String::from_utf8(output.stdout).unwrap());
        assert_eq!(evaluated["test_accuracy"], trained["test_accuracy"]);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn own_data_validation_split_and_metrics_lines() {
    let dir = scratch("own-validation");
    let (csv, _) = regression_csv(400, 9);
    let train = write_file(&dir, "a.csv", &csv);
    let (csv, _) = regression_csv(100, 10);
    let test = write_file(&dir, "b.csv", &csv);
    let log = dir.join("metrics.jsonl");
    let (summary, stderr) = train_json(&[
        "train",
        "--train",
        &train,
        "--cpu",
        "--epochs",
        "2",
        "--json",
        "--metrics",
        text(&log),
    ]);
    assert!(
        stderr.contains("(360 train / 40 validation samples)"),
        "{stderr}"
    );
    for key in ["val_loss", "val_rmse", "val_r2"] {
        assert!(summary[key].is_number(), "summary lacks {key}: {summary}");
    }
    assert!(summary.get("test_loss").is_none(), "{summary}");
    let lines = metrics(&log);
    assert_eq!(lines.len(), 2);
    for (epoch, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"], epoch + 1);
        for key in ["lr", "train_loss", "val_loss", "val_rmse", "val_r2"] {
            assert!(line[key].is_number(), "metrics line lacks {key}: {line}");
        }
        // The default learning rate, Adam's 1e-3.
        assert_relative("lr", number(line, "lr"), 1e-3, 1e-6);
    }
    assert_eq!(lines[1]["val_loss"], summary["val_loss"]);

    // --validation sets the fraction, beside a test file too.
    let output = wgpu_mlp(&[
        "train",
        "--train",
        &train,
        "--validation",
        "0.25",
        "--cpu",
        "--epochs",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("(300 train / 100 validation samples)"),
        "{stderr}"
    );
    let (summary, stderr) = train_json(&[
        "train",
        "--train",
        &train,
        "--test",
        &test,
        "--validation",
        "0.25",
        "--cpu",
        "--epochs",
        "1",
        "--json",
    ]);
    assert!(
        stderr.contains("(300 train / 100 validation / 100 test samples)"),
        "{stderr}"
    );
    assert!(summary["val_rmse"].is_number() && summary["test_rmse"].is_number());
    // With a test file and no --validation, nothing is held out.
    let output = wgpu_mlp(&[
        "train", "--train", &train, "--test", &test, "--cpu", "--epochs", "1",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("(400 train / 100 test samples)"),
        "{stderr}"
    );

    // A classification set validates on accuracy.
    let (summary, stderr) = train_json(&[
        "train",
        "--train",
        &fixture("emnist-balanced-train-images-idx3-ubyte.gz"),
        "--cpu",
        "--epochs",
        "1",
        "--json",
    ]);
    assert!(
        stderr.contains("(54 train / 6 validation samples)"),
        "{stderr}"
    );
    assert!(summary["val_accuracy"].is_number(), "{summary}");
    assert!(summary.get("val_rmse").is_none(), "{summary}");

    let error = fail(&["train", "--train", &train, "--validation", "1", "--cpu"]);
    assert!(error.contains("validation fraction"), "{error}");
}

/// The `lr` of each metrics line of a synthetic run with `schedule`.
fn learning_rates(dir: &Path, name: &str, schedule: &[&str]) -> Vec<f64> {
    let log = dir.join(format!("{name}.jsonl"));
    let mut args = vec!["train", "--cpu", "--layers", "784,8,10"];
    args.extend(["--train-size", "128", "--test-size", "32"]);
    args.extend(["--metrics", text(&log)]);
    args.extend(schedule);
    succeed(&args);
    metrics(&log).iter().map(|l| number(l, "lr")).collect()
}

fn assert_rates(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6 * w, "{what}: {got:?} vs {want:?}");
    }
}

#[test]
fn own_data_learning_rate_schedules_follow_their_closed_forms() {
    let dir = scratch("own-schedule");
    let step = learning_rates(
        &dir,
        "step",
        &[
            "--lr-schedule",
            "step",
            "--lr-step",
            "1",
            "--lr-gamma",
            "0.5",
            "--lr",
            "0.1",
            "--epochs",
            "3",
        ],
    );
    assert_rates("step", &step, &[0.1, 0.05, 0.025]);

    // Cosine over E epochs (as torch's CosineAnnealingLR with T_max = E): epoch e at
    // lr·(1 + cos(π(e−1)/E))/2.
    let cosine = |base: f64, t: usize, span: usize| {
        base * (1.0 + (std::f64::consts::PI * t as f64 / span as f64).cos()) / 2.0
    };
    let got = learning_rates(
        &dir,
        "cosine",
        &["--lr-schedule", "cosine", "--lr", "0.2", "--epochs", "4"],
    );
    let want: Vec<f64> = (1..=4).map(|e| cosine(0.2, e - 1, 4)).collect();
    assert_rates("cosine", &got, &want);

    // Two epochs of linear warm-up (e/(W+1) of the rate), then the cosine over the other four.
    let got = learning_rates(
        &dir,
        "warmup",
        &[
            "--lr-schedule",
            "cosine",
            "--warmup",
            "2",
            "--lr",
            "0.1",
            "--epochs",
            "6",
        ],
    );
    let mut want = vec![0.1 / 3.0, 0.2 / 3.0];
    want.extend((3..=6).map(|e| cosine(0.1, e - 3, 4)));
    assert_rates("cosine with warm-up", &got, &want);

    // Warm-up before a step schedule: the steps count from the end of the warm-up.
    let got = learning_rates(
        &dir,
        "warm-step",
        &[
            "--lr-schedule",
            "step",
            "--lr-step",
            "2",
            "--lr-gamma",
            "0.1",
            "--warmup",
            "1",
            "--lr",
            "0.1",
            "--epochs",
            "5",
        ],
    );
    assert_rates("step with warm-up", &got, &[0.05, 0.1, 0.1, 0.01, 0.01]);

    let error = fail(&["train", "--lr-step", "2", "--epochs", "1"]);
    assert!(error.contains("--lr-schedule step"), "{error}");
}

/// Noisy regression rows `a,b,c,y`: `y = a + N(0, 1)`, which a wide network soon overfits.
fn noisy_csv(rows: usize, seed: u64) -> String {
    let mut rand = Rand(seed);
    let mut csv = String::from("a,b,c,y\n");
    for _ in 0..rows {
        let (a, b, c) = (rand.uniform(), rand.uniform(), rand.uniform());
        csv += &format!("{a},{b},{c},{}\n", a + rand.normal());
    }
    csv
}

#[test]
fn own_data_early_stopping_keeps_the_best_epochs_model() {
    let dir = scratch("own-early");
    let train = write_file(&dir, "noisy.csv", &noisy_csv(40, 11));
    let test = write_file(&dir, "noisy-test.csv", &noisy_csv(40, 12));
    let model = dir.join("best.safetensors");
    let log = dir.join("metrics.jsonl");
    let (summary, stderr) = train_json(&[
        "train",
        "--train",
        &train,
        "--test",
        &test,
        "--validation",
        "0.25",
        "--cpu",
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--hidden",
        "relu",
        "--hidden-sizes",
        "64",
        "--epochs",
        "40",
        "--early-stopping",
        "2",
        "--save-best",
        "--save",
        text(&model),
        "--metrics",
        text(&log),
        "--json",
    ]);
    assert_eq!(summary["stopped_early"], true, "{summary}");
    let best = summary["best_epoch"].as_u64().unwrap() as usize;
    let epochs = summary["epochs"].as_u64().unwrap() as usize;
    assert!(epochs < 40, "{summary}");
    assert_eq!(epochs, best + 2, "patience 2: {summary}");
    assert!(stderr.contains(&format!("since epoch {best}")), "{stderr}");
    let lines = metrics(&log);
    assert_eq!(lines.len(), epochs);
    let val_losses: Vec<f64> = lines.iter().map(|l| number(l, "val_loss")).collect();
    let lowest = val_losses.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(val_losses[best - 1], lowest, "{val_losses:?}");
    assert!(val_losses[epochs - 1] > lowest, "{val_losses:?}");

    // The saved model is the best epoch's: its epoch count, and its test loss on re-evaluation.
    let (_, info) = checkpoint::load(&model).unwrap();
    assert_eq!(info.epochs, best);
    let evaluated = last_json(&succeed(&[
        "eval",
        "--model",
        text(&model),
        "--cpu",
        "--json",
    ]));
    let best_test = number(&lines[best - 1], "test_loss");
    assert_relative(
        "best model's test loss",
        number(&evaluated, "test_loss"),
        best_test,
        1e-6,
    );
    assert_ne!(
        number(&lines[epochs - 1], "test_loss"),
        best_test,
        "the last epoch's model would pass too"
    );

    // Without validation data there is nothing to watch.
    let error = fail(&[
        "train",
        "--dataset",
        "synthetic",
        "--train-size",
        "64",
        "--test-size",
        "32",
        "--early-stopping",
        "2",
    ]);
    assert!(error.contains("--validation"), "{error}");
    let error = fail(&[
        "train",
        "--train",
        &train,
        "--test",
        &test,
        "--save-best",
        "--save",
        text(&dir.join("x.safetensors")),
    ]);
    assert!(error.contains("--validation"), "{error}");
    assert!(!dir.join("x.safetensors").exists());
}

#[test]
fn own_data_resume_continues_a_file_trained_model_with_its_recorded_data_and_scaling() {
    let dir = scratch("own-resume");
    let (csv, _) = regression_csv(400, 13);
    let train = write_file(&dir, "a.csv", &csv);
    let (csv, _) = regression_csv(100, 14);
    let test = write_file(&dir, "b.csv", &csv);
    let (first, straight) = (
        dir.join("first.safetensors"),
        dir.join("straight.safetensors"),
    );
    let (first_log, resumed_log) = (dir.join("first.jsonl"), dir.join("resumed.jsonl"));
    let run = |epochs: &str, save: &Path, log: &Path| {
        train_json(&[
            "train",
            "--train",
            &train,
            "--test",
            &test,
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--batch",
            "16",
            "--hidden-sizes",
            "16",
            "--cpu",
            "--json",
            "--epochs",
            epochs,
            "--save",
            text(save),
            "--metrics",
            text(log),
        ])
    };
    run("4", &first, &first_log);
    let (uninterrupted, _) = run("6", &straight, &dir.join("straight.jsonl"));
    let scaling = checkpoint::load(&first).unwrap().1.extra["input_scaling"].clone();

    // No --train, --test or network options: all from the file.
    let (resumed, stderr) = train_json(&[
        "train",
        "--resume",
        text(&first),
        "--epochs",
        "2",
        "--cpu",
        "--json",
        "--save",
        text(&first),
        "--metrics",
        text(&resumed_log),
    ]);
    assert!(stderr.contains("4 epochs done"), "{stderr}");
    assert!(
        stderr.contains("(400 train / 100 test samples)"),
        "{stderr}"
    );
    assert_eq!(resumed["epochs"], 6);
    assert_eq!(resumed["task"], "regression");
    assert_eq!(resumed["dataset"], "a.csv");
    let before = metrics(&first_log);
    let after = metrics(&resumed_log);
    assert_eq!(after[0]["epoch"], 5);
    // The resumed epoch 5 continues epoch 4, as the uninterrupted run's epoch 5 did (a restart
    // would train from the initial weights).
    let straight_log = metrics(&dir.join("straight.jsonl"));
    let (last, next) = (
        number(&before[3], "train_loss"),
        number(&after[0], "train_loss"),
    );
    assert_eq!(
        next,
        number(&straight_log[4], "train_loss"),
        "train loss {last} before the resume, {next} after"
    );
    // The recorded scaling and the continued shuffle: the uninterrupted run's result exactly.
    assert_eq!(resumed["test_loss"], uninterrupted["test_loss"]);
    let (_, info) = checkpoint::load(&first).unwrap();
    assert_eq!(info.epochs, 6);
    assert_eq!(info.extra["input_scaling"], scaling);
}

#[test]
fn own_data_resume_reads_the_recorded_target_column_task_and_classes() {
    // A model trained on a column named with --target (here the middle one), with --task or
    // with --classes, resumed with nothing but --resume, continues as an uninterrupted run.
    let dir = scratch("own-resume-target");
    let (csv, _) = classes_csv(200, 15, integer_label);
    let integers = write_file(&dir, "c.csv", &csv);
    let (csv, _) = classes_csv(200, 16, float_label);
    let floats = write_file(&dir, "cf.csv", &csv);
    let cases: [(&str, &str, &[&str]); 3] = [
        ("target", &integers, &["--loss", "cross-entropy"]),
        ("task-regression", &integers, &["--task", "regression"]),
        (
            "classes",
            &floats,
            &["--task", "classification", "--classes", "5"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, file, options) in cases {
        let (first, straight) = (
            dir.join(format!("{name}.safetensors")),
            dir.join(format!("{name}-straight.safetensors")),
        );
        let run = |epochs: &str, save: &Path| {
            let mut args = vec!["train", "--train", file, "--target", "label", "--cpu"];
            args.extend(["--hidden-sizes", "8", "--json", "--epochs", epochs]);
            args.extend(["--save", text(save)]);
            args.extend(options);
            train_json(&args).0
        };
        run("2", &first);
        let uninterrupted = run("3", &straight);
        let output = wgpu_mlp(&[
            "train",
            "--resume",
            text(&first),
            "--epochs",
            "1",
            "--cpu",
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            failures.push(format!("{name}: {stderr}"));
            continue;
        }
        let resumed = last_json(&String::from_utf8(output.stdout).unwrap());
        if resumed["val_loss"] != uninterrupted["val_loss"] {
            failures.push(format!(
                "{name}: resumed val_loss {} but uninterrupted {}",
                resumed["val_loss"], uninterrupted["val_loss"]
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn own_data_predict_prints_a_csv_line_per_sample() {
    let dir = scratch("own-predict");
    let (csv, _) = classes_csv(300, 17, integer_label);
    let train = write_file(&dir, "c.csv", &csv);
    let (csv, labels) = classes_csv(100, 18, integer_label);
    let test = write_file(&dir, "ct.csv", &csv);
    let model = dir.join("classes.safetensors");
    let (summary, _) = train_json(&[
        "train",
        "--train",
        &train,
        "--test",
        &test,
        "--target",
        "label",
        "--loss",
        "cross-entropy",
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--hidden-sizes",
        "16",
        "--epochs",
        "3",
        "--cpu",
        "--json",
        "--save",
        text(&model),
    ]);
    let predicted = succeed(&["predict", "--model", text(&model), &test]);
    let (header, rows) = prediction_table(&predicted);
    assert_eq!(header, ["class", "p0", "p1", "p2"]);
    assert_eq!(rows.len(), 100);
    let mut correct = 0;
    for (row, &label) in rows.iter().zip(&labels) {
        let probabilities = &row[1..];
        let sum: f64 = probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{row:?} sums to {sum}");
        let argmax = (0..3)
            .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
            .unwrap();
        assert_eq!(row[0], argmax as f64, "{row:?}");
        correct += usize::from(argmax as u32 == label);
    }
    // The classes predicted are the ones the test accuracy counted.
    assert_relative(
        "accuracy from predict",
        correct as f64 / 100.0,
        number(&summary, "test_accuracy"),
        1e-9,
    );

    // Features only, without the target column: the same lines.
    let features_only: String = csv
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            format!("{},{}\n", fields[0], fields[2])
        })
        .collect();
    let bare = write_file(&dir, "features.csv", &features_only);
    assert_eq!(
        succeed(&["predict", "--model", text(&model), &bare]),
        predicted
    );
    // A file with another feature count is refused, naming it.
    let wide = write_file(&dir, "wide.csv", "f1,f2,f3\n1,2,3\n");
    let error = fail(&["predict", "--model", text(&model), &wide]);
    assert!(
        error.contains("wide.csv") && error.contains("3 features per sample but the model takes 2"),
        "{error}"
    );

    // An .npz of images.
    let images = fixture("images_u8.npz");
    let image_model = dir.join("images.safetensors");
    succeed(&[
        "train",
        "--train",
        &images,
        "--loss",
        "cross-entropy",
        "--cpu",
        "--epochs",
        "1",
        "--save",
        text(&image_model),
    ]);
    let (header, rows) = prediction_table(&succeed(&[
        "predict",
        "--model",
        text(&image_model),
        &images,
    ]));
    assert_eq!(header, ["class", "p0", "p1", "p2", "p3", "p4"]);
    assert_eq!(rows.len(), 12);
    for row in &rows {
        let sum: f64 = row[1..].iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{row:?} sums to {sum}");
        let best = row[1..].iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(row[1 + row[0] as usize], best, "{row:?}");
    }
}

#[test]
fn own_data_predict_output_writes_the_predictions_to_the_file() {
    // `predict --output FILE` (the predictions of a table, written atomically) next to the
    // state-dict option `--output ACTIVATION`: the file must be reachable.
    let dir = scratch("own-predict-output");
    let (csv, _) = regression_csv(100, 19);
    let train = write_file(&dir, "a.csv", &csv);
    let model = dir.join("m.safetensors");
    succeed(&[
        "train",
        "--train",
        &train,
        "--cpu",
        "--epochs",
        "1",
        "--save",
        text(&model),
    ]);
    let printed = succeed(&["predict", "--model", text(&model), &train]);
    let file = dir.join("p.csv");
    let output = wgpu_mlp(&[
        "predict",
        "--model",
        text(&model),
        &train,
        "--output",
        text(&file),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("wrote 100 predictions"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), printed);
}

#[test]
fn own_data_bad_input_is_an_error_naming_the_file_and_saves_nothing() {
    let dir = scratch("own-bad");
    let inputs = dir.join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let (csv, _) = regression_csv(20, 20);
    let good = write_file(&inputs, "good.csv", &csv);
    let three = write_file(&inputs, "three.csv", "a,b,c,y\n1,2,3,4\n5,6,7,8\n");
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let model = out.join("m.safetensors");
    let cases: [(&[&str], &str, &[&str]); 8] = [
        (
            &["--train", &fixture("ragged.csv")],
            "ragged.csv",
            &["line 4 has 2 fields but the header names 3 columns"],
        ),
        (
            &["--train", &fixture("text.csv")],
            "text.csv",
            &["line 3, column `b`", "`abc` is not a number"],
        ),
        (
            &["--train", &fixture("nan.npz")],
            "nan.npz",
            &["feature 1 of sample 2 is NaN"],
        ),
        (
            &["--train", &good, "--test", &three],
            "three.csv",
            &["has 3 features per sample but the training set has 2"],
        ),
        (
            &["--train", &good, "--target", "nosuch"],
            "good.csv",
            &["no column named `nosuch`", "x1, x2, y"],
        ),
        (
            &["--train", &fixture("empty.csv")],
            "empty.csv",
            &["is empty"],
        ),
        (
            &["--train", &fixture("header_only.csv")],
            "header_only.csv",
            &["no data rows"],
        ),
        (
            &["--train", &fixture("negative_labels.npz")],
            "negative_labels.npz",
            &["sample 3 of array y is -1"],
        ),
    ];
    for (data, file, expected) in cases {
        let mut args = vec!["train", "--cpu", "--epochs", "1", "--save", text(&model)];
        args.extend(data);
        let error = fail(&args);
        assert!(error.contains(file), "{data:?}: {error}");
        for part in expected {
            assert!(error.contains(part), "{data:?}: {part:?} not in {error}");
        }
        assert!(
            names_in(&out).is_empty(),
            "{data:?} left {:?}",
            names_in(&out)
        );
    }
    // The inputs are as they were.
    assert_eq!(names_in(&inputs), ["good.csv", "three.csv"]);
}

#[test]
fn own_data_a_run_refused_for_its_data_leaves_the_metrics_file_as_it_was() {
    // Every output is checked before any work, but nothing is written before the data loads: a
    // run that fails on its data keeps an earlier run's metrics.
    let dir = scratch("own-bad-metrics");
    let log = dir.join("metrics.jsonl");
    std::fs::write(&log, "{\"epoch\":1}\n").unwrap();
    let error = fail(&[
        "train",
        "--train",
        &fixture("ragged.csv"),
        "--cpu",
        "--metrics",
        text(&log),
    ]);
    assert!(error.contains("ragged.csv"), "{error}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "{\"epoch\":1}\n");
}

#[test]
fn own_data_layers_must_fit_the_data_and_exclude_hidden_sizes() {
    let dir = scratch("own-layers");
    let (csv, _) = regression_csv(50, 21);
    let train = write_file(&dir, "a.csv", &csv);
    let (csv, _) = classes_csv(50, 22, integer_label);
    let classes = write_file(&dir, "c.csv", &csv);

    let error = fail(&["train", "--train", &train, "--layers", "3,8,1", "--cpu"]);
    assert!(error.contains("--layers 3,8,1"), "{error}");
    assert!(
        error.contains("2 features and 1 target per sample")
            && error.contains("start with 2 and end with 1"),
        "{error}"
    );
    let error = fail(&[
        "train", "--train", &classes, "--target", "label", "--layers", "2,8,4", "--cpu",
    ]);
    assert!(error.contains("--layers 2,8,4"), "{error}");
    assert!(
        error.contains("2 features and 3 classes") && error.contains("start with 2 and end with 3"),
        "{error}"
    );
    // Said in plain words: no runs of spaces left by the message's line breaks in the source.
    assert!(!error.contains("  "), "{error}");

    let error = fail(&[
        "train",
        "--train",
        &train,
        "--layers",
        "2,8,1",
        "--hidden-sizes",
        "8",
        "--cpu",
    ]);
    assert!(
        error.contains("--layers")
            && error.contains("--hidden-sizes")
            && error.contains("cannot be used with"),
        "{error}"
    );

    // What fits trains: --layers as the data says, or --hidden-sizes between its widths.
    let model = dir.join("m.safetensors");
    let mut args = vec!["train", "--train", &train, "--cpu", "--epochs", "1"];
    args.extend(["--hidden-sizes", "8,4", "--save", text(&model)]);
    succeed(&args);
    assert_eq!(model_sizes(&model), [2, 8, 4, 1]);
    let mut args = vec!["train", "--train", &train, "--cpu", "--epochs", "1"];
    args.extend(["--layers", "2,6,1", "--save", text(&model)]);
    succeed(&args);
    assert_eq!(model_sizes(&model), [2, 6, 1]);
}
