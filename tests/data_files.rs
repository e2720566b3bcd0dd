//! The file loaders (`data::files`) and standardization (`data::scaling`) against files numpy
//! wrote and the values numpy read back from them (`tests/data/formats/expected.json`, made by
//! `scripts/make_test_data.py --formats`).

use std::path::{Path, PathBuf};

use serde_json::Value;
use wgpu_mlp::data::files::{
    LoadOptions, Task, check_compatible, load_file, load_idx_images, unify_classes,
};
use wgpu_mlp::data::scaling::{
    InputScaling, Standardization, standardize_features, standardize_targets,
};
use wgpu_mlp::data::{Dataset, Features, Targets};
use wgpu_mlp::ndarray::{Array2, array};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/formats")
        .join(name)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[name].clone()
}

fn load(name: &str) -> Dataset {
    load_with(name, LoadOptions::default())
}

fn load_with(name: &str, options: LoadOptions) -> Dataset {
    load_file(&fixture(name), &options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The error loading `name` with `options`, checked to name the file and every one of `parts`.
fn error_with(name: &str, options: LoadOptions, parts: &[&str]) -> String {
    let message = match load_file(&fixture(name), &options) {
        Ok(_) => panic!("{name} loaded, but it should have been refused"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains(name), "{message}");
    for part in parts {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    message
}

fn error(name: &str, parts: &[&str]) -> String {
    error_with(name, LoadOptions::default(), parts)
}

fn task(task: Task) -> LoadOptions {
    LoadOptions {
        task: Some(task),
        ..LoadOptions::default()
    }
}

/// JSON numbers (nested lists flattened) as f32; each is a float32 value numpy wrote exactly.
fn f32s(value: &Value) -> Vec<f32> {
    match value {
        Value::Array(items) => items.iter().flat_map(f32s).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("not a number: {other}"),
    }
}

fn u32s(value: &Value) -> Vec<u32> {
    match value {
        Value::Array(items) => items.iter().flat_map(u32s).collect(),
        Value::Number(n) => vec![u32::try_from(n.as_u64().unwrap()).unwrap()],
        other => panic!("not an integer: {other}"),
    }
}

fn floats(set: &Dataset) -> Vec<f32> {
    set.features
        .floats()
        .expect("float features")
        .iter()
        .copied()
        .collect()
}

fn bytes(set: &Dataset) -> Vec<u32> {
    let x = set.features.bytes().expect("byte features");
    x.iter().map(|&b| u32::from(b)).collect()
}

fn labels(set: &Dataset) -> (Vec<u32>, usize) {
    let (labels, classes) = set.targets.classes().expect("classification");
    (labels.to_vec(), classes)
}

fn values(set: &Dataset) -> Array2<f32> {
    match &set.targets {
        Targets::Values(values) => values.clone(),
        Targets::Classes { .. } => panic!("expected regression targets"),
    }
}

#[test]
fn uint8_images_keep_their_shape_and_int64_labels_are_classes() {
    let set = load("images_u8.npz");
    let want = expected("images_u8.npz");
    assert_eq!(bytes(&set), u32s(&want["x"]));
    assert_eq!(set.image_shape, Some((4, 3)));
    assert_eq!(labels(&set), (u32s(&want["y"]), 5));
    assert_eq!(Task::of(&set), Task::Classification);
}

#[test]
fn float32_features_with_float_targets_are_regression() {
    let set = load("regression.npz");
    let want = expected("regression.npz");
    assert_eq!(floats(&set), f32s(&want["x"]));
    assert_eq!(set.image_shape, None);
    let y = values(&set);
    assert_eq!(y.dim(), (10, 1));
    assert_eq!(y.iter().copied().collect::<Vec<_>>(), f32s(&want["y"]));
    assert_eq!(Task::of(&set).name(), "regression");

    let multi = load("regression_multi.npz");
    let y = values(&multi);
    assert_eq!(y.dim(), (10, 2));
    assert_eq!(
        y.iter().copied().collect::<Vec<_>>(),
        f32s(&expected("regression_multi.npz")["y"])
    );
}

#[test]
fn compressed_float64_is_rounded_to_f32_as_numpy_does() {
    let set = load("compressed_f64.npz");
    let want = expected("compressed_f64.npz");
    assert_eq!(floats(&set), f32s(&want["x"]));
    assert_eq!(labels(&set), (u32s(&want["y"]), 3));
}

#[test]
fn big_endian_arrays_are_byte_swapped() {
    let set = load("big_endian.npz");
    let want = expected("big_endian.npz");
    assert_eq!(floats(&set), f32s(&want["x"]));
    assert_eq!(labels(&set), (u32s(&want["y"]), 4));
}

#[test]
fn fortran_order_arrays_are_transposed_into_rows() {
    let set = load("fortran.npz");
    let want = expected("fortran.npz");
    assert_eq!(floats(&set), f32s(&want["x"]));
    assert_eq!(labels(&set), (u32s(&want["y"]), 2));
    let images = load("fortran_images.npz");
    let want = expected("fortran_images.npz");
    assert_eq!(bytes(&images), u32s(&want["x"]));
    assert_eq!(images.image_shape, Some((3, 2)));
    assert_eq!(labels(&images).0, u32s(&want["y"]));
}

#[test]
fn npy_header_versions_2_and_3_are_read() {
    let set = load("versions.npz");
    let want = expected("versions.npz");
    assert_eq!(floats(&set), f32s(&want["x"]));
    assert_eq!(
        values(&set).iter().copied().collect::<Vec<_>>(),
        f32s(&want["y"])
    );
}

#[test]
fn the_task_can_be_forced_either_way() {
    let floats_as_classes = load_with("whole_floats.npz", task(Task::Classification));
    assert_eq!(
        labels(&floats_as_classes),
        (u32s(&expected("whole_floats.npz")["y"]), 3)
    );
    assert_eq!(Task::of(&load("whole_floats.npz")), Task::Regression);

    let labels_as_values = load_with("compressed_f64.npz", task(Task::Regression));
    let want: Vec<f32> = u32s(&expected("compressed_f64.npz")["y"])
        .into_iter()
        .map(|l| l as f32)
        .collect();
    assert_eq!(
        values(&labels_as_values)
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        want
    );

    error_with(
        "regression.npz",
        task(Task::Classification),
        &["sample 0 of array y", "negative or fractional class labels"],
    );
}

#[test]
fn a_class_count_may_add_classes_but_not_drop_labels() {
    let more = LoadOptions {
        classes: Some(9),
        ..LoadOptions::default()
    };
    assert_eq!(labels(&load_with("images_u8.npz", more)).1, 9);
    let fewer = LoadOptions {
        classes: Some(4),
        ..LoadOptions::default()
    };
    error_with(
        "images_u8.npz",
        fewer,
        &["sample 7 of array y", "label 4", "5 classes"],
    );
    let for_regression = LoadOptions {
        classes: Some(3),
        ..LoadOptions::default()
    };
    error_with("regression.npz", for_regression, &["regression"]);
}

#[test]
fn csv_reads_quoted_fields_and_the_last_column_as_the_target() {
    let set = load("regression.csv");
    let want = expected("regression.csv");
    assert_eq!(floats(&set), f32s(&want["x"]));
    assert_eq!(
        values(&set).iter().copied().collect::<Vec<_>>(),
        f32s(&want["y"])
    );
    assert_eq!(set.inputs(), 3);
}

#[test]
fn a_named_integer_csv_column_is_classes_unless_regression_is_asked_for() {
    let named = |task: Option<Task>| LoadOptions {
        target: Some("label".into()),
        task,
        classes: None,
    };
    let set = load_with("classes.csv", named(None));
    let want = expected("classes.csv");
    assert_eq!(floats(&set), f32s(&want["x"]));
    assert_eq!(labels(&set), (u32s(&want["y"]), 6));

    let regression = load_with("classes.csv", named(Some(Task::Regression)));
    let want_values: Vec<f32> = u32s(&want["y"]).into_iter().map(|l| l as f32).collect();
    assert_eq!(
        values(&regression).iter().copied().collect::<Vec<_>>(),
        want_values
    );
    // Without a name the last column, `width`, is the (float) target.
    assert_eq!(Task::of(&load("classes.csv")), Task::Regression);

    let fractional = error_with(
        "regression.csv",
        task(Task::Classification),
        &["line 2, column `price`", "10.5", "negative or fractional"],
    );
    assert!(!fractional.contains("line 3"), "{fractional}");
}

#[test]
fn csv_errors_name_the_line_and_column() {
    error("ragged.csv", &["line 4", "2 fields", "3 columns"]);
    error("text.csv", &["line 3, column `b`", "`abc` is not a number"]);
    error(
        "infinite.csv",
        &["line 4, column `b`", "not a finite number"],
    );
    error("empty.csv", &["is empty"]);
    error("header_only.csv", &["no data rows"]);
    let missing = LoadOptions {
        target: Some("nope".into()),
        ..LoadOptions::default()
    };
    error_with("classes.csv", missing, &["`nope`", "height, label, width"]);
}

#[test]
fn npz_errors_name_the_array_and_what_is_wrong() {
    error("no_y.npz", &["no array `y`", "it holds: x"]);
    error("mismatched.npz", &["x has 5 samples", "y has 4"]);
    error("object.npz", &["array x", "|O", "Python objects"]);
    error("strings.npz", &["array y", "<U2", "unicode strings"]);
    error("bool.npz", &["array x", "|b1", "bool"]);
    error("complex.npz", &["array y", "<c8", "complex"]);
    error("nan.npz", &["array x", "feature 1 of sample 2", "NaN"]);
    error(
        "negative_labels.npz",
        &["sample 3 of array y", "-1", "negative or fractional"],
    );
    error("zero_length.npz", &["shape (0,", "zero-length"]);
    error("truncated_array.npz", &["array x", "truncated", "(6, 3)"]);
    error("truncated_archive.npz", &["truncated or corrupt"]);
}

#[test]
fn an_unknown_name_lists_the_accepted_formats() {
    let message = load_file(Path::new("data.parquet"), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("data.parquet"), "{message}");
    for format in [".npz", ".csv", "-images-idx3-ubyte"] {
        assert!(message.contains(format), "{message}");
    }
    let missing = load_file(Path::new("missing.csv"), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing.csv"), "{missing}");
}

#[test]
fn an_emnist_style_idx_pair_has_all_47_classes() {
    let set = load("emnist-balanced-train-images-idx3-ubyte.gz");
    let want = expected("emnist-balanced-train");
    assert_eq!(labels(&set), (u32s(&want["labels"]), 47));
    assert_eq!(want["classes"], 47);
    let pixels = bytes(&set);
    assert_eq!(
        u64::from(pixels.iter().sum::<u32>()),
        want["pixel_sum"].as_u64().unwrap()
    );
    assert_eq!(pixels[..12], u32s(&want["first"])[..]);
    assert_eq!(set.image_shape, Some((4, 3)));
}

#[test]
fn idx_labels_are_found_with_or_without_gz_and_must_exist() {
    let test = load("emnist-balanced-test-images-idx3-ubyte.gz");
    let want = expected("emnist-balanced-test");
    assert_eq!(labels(&test), (u32s(&want["labels"]), 31));
    let orphan = fixture("orphan-images-idx3-ubyte.gz");
    let message = load_idx_images(&orphan, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("orphan-images-idx3-ubyte.gz")
            && message.contains("orphan-labels-idx1-ubyte"),
        "{message}"
    );
}

#[test]
fn a_test_set_with_fewer_classes_is_unified_and_a_mismatched_one_refused() {
    let mut train = load("emnist-balanced-train-images-idx3-ubyte.gz");
    let mut test = load("emnist-balanced-test-images-idx3-ubyte.gz");
    let test_path = fixture("emnist-balanced-test-images-idx3-ubyte.gz");
    check_compatible(&train, &test, &test_path).unwrap();
    unify_classes(&mut train, &mut test);
    assert_eq!((train.classes(), test.classes()), (Some(47), Some(47)));

    let regression = load("regression.npz");
    let other_width = load("compressed_f64.npz");
    let path = fixture("compressed_f64.npz");
    let message = check_compatible(&regression, &other_width, &path)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("compressed_f64.npz") && message.contains("4 features"),
        "{message}"
    );
    assert!(message.contains("has 3"), "{message}");

    let as_regression = load_with("whole_floats.npz", LoadOptions::default());
    let as_classes = load_with("whole_floats.npz", task(Task::Classification));
    let message = check_compatible(&as_regression, &as_classes, &fixture("whole_floats.npz"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("classification") && message.contains("regression"),
        "{message}"
    );

    let multi = load("regression_multi.npz");
    let message = check_compatible(&regression, &multi, &fixture("regression_multi.npz"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("2 target values") && message.contains("has 1"),
        "{message}"
    );
}

fn close(actual: f32, want: f64, what: &str) {
    let tolerance = 1e-6 * want.abs().max(1.0);
    assert!(
        (f64::from(actual) - want).abs() <= tolerance,
        "{what}: {actual} vs numpy's {want} (tolerance {tolerance})"
    );
}

#[test]
fn standardization_matches_numpy_mean_and_population_std() {
    let mut train = load("regression.npz");
    let mut other = load("regression.npz");
    let want = expected("regression.npz");
    let features = standardize_features(&mut train, &mut [&mut other]).unwrap();
    let (mean, std) = (&want["x_mean"], &want["x_std"]);
    for j in 0..3 {
        close(features.mean[j], mean[j].as_f64().unwrap(), "mean");
        let numpy_std = std[j].as_f64().unwrap();
        // numpy's std of the constant column is 0; it is kept as 1 so the column maps to 0.
        close(
            features.std[j],
            if numpy_std == 0.0 { 1.0 } else { numpy_std },
            "std",
        );
    }
    assert_eq!(std[2].as_f64(), Some(0.0));
    for (a, w) in floats(&train).iter().zip(f32s(&want["x_standardized"])) {
        close(*a, f64::from(w), "standardized x");
    }
    assert_eq!(floats(&train), floats(&other));
    assert!(floats(&train).iter().skip(2).step_by(3).all(|&v| v == 0.0));

    let targets = standardize_targets(&mut train, &mut [&mut other]).unwrap();
    close(
        targets.mean[0],
        want["y_mean"].as_f64().unwrap(),
        "target mean",
    );
    close(
        targets.std[0],
        want["y_std"].as_f64().unwrap(),
        "target std",
    );
    let mut y = values(&train);
    targets.invert(&mut y);
    for (a, w) in y.iter().zip(f32s(&want["y"])) {
        close(*a, f64::from(w), "inverted target");
    }

    let mut images = load("images_u8.npz");
    assert!(standardize_features(&mut images, &mut []).is_none());
    assert!(standardize_targets(&mut images, &mut []).is_none());
    assert_eq!(images, load("images_u8.npz"));
}

#[test]
fn scaling_metadata_round_trips_bit_for_bit() {
    let scaling = Standardization {
        mean: vec![0.1, -1.0e-40, f32::MAX, -0.0, 1.0 / 3.0],
        std: vec![1.0, f32::MIN_POSITIVE, 3.4e38, 7.0e-7, 2.5],
    };
    let text = scaling.to_metadata();
    let back = Standardization::from_metadata(&text).unwrap();
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back.mean), bits(&scaling.mean), "{text}");
    assert_eq!(bits(&back.std), bits(&scaling.std), "{text}");

    let fitted = Standardization::fit(load("regression.npz").features.floats().unwrap());
    for input in [
        InputScaling::Bytes,
        InputScaling::None,
        InputScaling::Standard(fitted),
    ] {
        let text = input.to_metadata();
        assert_eq!(InputScaling::from_metadata(&text).unwrap(), input, "{text}");
    }
    assert!(InputScaling::from_metadata("minmax").is_err());
}

#[test]
fn byte_and_float_features_do_not_mix() {
    let bytes_set = Dataset::classification(array![[1u8, 2, 3]], array![0], None).unwrap();
    let floats_set = Dataset {
        features: Features::Floats(array![[1.0f32, 2.0, 3.0]]),
        ..bytes_set.clone()
    };
    let message = check_compatible(&bytes_set, &floats_set, Path::new("test.npz"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("test.npz") && message.contains("bytes"),
        "{message}"
    );
}
