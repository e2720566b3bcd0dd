//! A user's own data from a file: `.npz` (arrays `x` and `y`), `.csv` with a header row, or an
//! IDX image file with its labels beside it, chosen by the file's name ([`load_file`]).
//!
//! The task follows the targets unless [`LoadOptions::task`] says otherwise: integer targets are
//! class labels (`max label + 1` classes unless [`LoadOptions::classes`] says more), float
//! targets are values to regress. Every error names the file, and the sample, line, column or
//! array where it can.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};

use super::dataset::{Dataset, Features, Targets};
use super::table::TargetColumnName;
use super::{idx, npz, table};
use crate::error::{Error, Result};

/// What a data set is for: the model's outputs are classes, or values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Task {
    /// One class label per sample; softmax outputs, one per class.
    Classification,
    /// One or more float values per sample.
    Regression,
}

impl Task {
    /// `classification` or `regression`.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }

    /// The task [`Task::name`] names.
    pub fn from_name(name: &str) -> Option<Task> {
        [Task::Classification, Task::Regression]
            .into_iter()
            .find(|task| task.name() == name)
    }

    /// The task of `dataset`'s targets.
    pub fn of(dataset: &Dataset) -> Task {
        match dataset.targets {
            Targets::Classes { .. } => Task::Classification,
            Targets::Values(_) => Task::Regression,
        }
    }
}

/// How to read a file's targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The CSV column holding the target (`None`: the last column).
    pub target: Option<String>,
    /// The task, overriding what the targets' type says.
    pub task: Option<Task>,
    /// The class count, when there are more classes than the largest label + 1.
    pub classes: Option<usize>,
}

/// Targets as a file holds them, before the task is decided.
pub(crate) enum RawTargets {
    /// One integer per sample.
    Integers(Vec<i64>),
    /// `(N, K)` floats.
    Floats(Array2<f32>),
}

impl RawTargets {
    pub(crate) fn len(&self) -> usize {
        match self {
            RawTargets::Integers(values) => values.len(),
            RawTargets::Floats(values) => values.nrows(),
        }
    }
}

/// [`Error::Data`] for `path`.
pub(crate) fn data_error(path: &Path, why: impl Into<String>) -> Error {
    Error::Data {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// The formats [`load_file`] accepts, for its error.
const ACCEPTED: &str = "accepted: .npz (arrays x and y, from np.savez), .csv (a header row, the target in the last column or the one named), or IDX images named *-images-idx3-ubyte[.gz] with their *-labels-idx1-ubyte[.gz] beside them";

/// Loads `path` by its name: `.npz` ([`load_npz`]), `.csv` ([`load_csv`]), or a name holding
/// `-images-idx3-ubyte` ([`load_idx_images`]).
pub fn load_file(path: &Path, options: &LoadOptions) -> Result<Dataset> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".npz") {
        load_npz(path, options)
    } else if name.ends_with(".csv") {
        load_csv(path, options)
    } else if name.contains("-images-idx3-ubyte") {
        load_idx_images(path, options)
    } else {
        Err(data_error(
            path,
            format!("is in no format this loader knows by its name; {ACCEPTED}"),
        ))
    }
}

/// Loads an `.npz` archive: features `x` of shape `(N, D)` or `(N, H, W)` (uint8 kept as bytes,
/// `(N, H, W)` uint8 as images; integers and floats as f32) and targets `y` of shape `(N,)`
/// (integers: class labels) or `(N,)` / `(N, K)` (floats: values).
pub fn load_npz(path: &Path, options: &LoadOptions) -> Result<Dataset> {
    refuse_target_column(path, options)?;
    let content = npz::read_npz(path)?;
    if let Some(x) = content.features.floats() {
        check_finite(x, path, |i, j, v| {
            format!("array x: feature {j} of sample {i} is {v}, not a finite number")
        })?;
    }
    let targets = resolve_targets(content.targets, options, path, &|i| {
        format!("sample {i} of array y")
    })?;
    finish(path, content.features, targets, content.image_shape)
}

/// Loads a CSV file with a header row: the target is the column named by
/// [`LoadOptions::target`] (the last column if `None`), every other column a feature.
pub fn load_csv(path: &Path, options: &LoadOptions) -> Result<Dataset> {
    let table = table::read_csv(path, TargetColumnName::Required(options.target.as_deref()))?;
    let lines = table.lines;
    let column = table.target_name;
    let targets = resolve_targets(table.targets, options, path, &|i| {
        format!("line {}, column `{column}`", lines[i])
    })?;
    finish(path, Features::Floats(table.features), targets, None)
}

/// The name of the column [`load_csv`] takes as the target: `target` if given, else the last
/// column of the header.
pub fn csv_target_name(path: &Path, target: Option<&str>) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let header = reader
        .headers()
        .map_err(|e| data_error(path, format!("reading the header row: {e}")))?;
    let last = header.iter().next_back().map(|h| h.trim().to_string());
    target.map(str::to_string).or(last).ok_or_else(|| {
        data_error(
            path,
            "is empty: a header row naming the columns must come first",
        )
    })
}

/// The features of the samples in `path` (`.npz`: array `x`; `.csv`: every column but `target`,
/// if the file has it), for predicting: the targets may be absent.
pub fn load_features(path: &Path, target: Option<&str>) -> Result<Features> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let features = if name.ends_with(".npz") {
        npz::read_npz_features(path)?.0
    } else if name.ends_with(".csv") {
        Features::Floats(table::read_csv(path, TargetColumnName::IfPresent(target))?.features)
    } else {
        return Err(data_error(path, "is not a .npz or .csv file of samples"));
    };
    if let Some(x) = features.floats() {
        check_finite(x, path, |i, j, v| {
            format!("feature {j} of sample {i} is {v}, not a finite number")
        })?;
    }
    if features.is_empty() {
        return Err(data_error(path, "has no samples"));
    }
    Ok(features)
}

/// Loads an IDX image file and the labels beside it: the same name with `images-idx3`
/// replaced by `labels-idx1`, gzipped or not (see [`labels_path`]).
pub fn load_idx_images(path: &Path, options: &LoadOptions) -> Result<Dataset> {
    refuse_target_column(path, options)?;
    let labels_path = labels_path(path)?;
    let (count, rows, cols, pixels) = idx::read_images(path)?;
    let labels = idx::read_labels(&labels_path)?;
    if labels.len() != count {
        return Err(data_error(
            &labels_path,
            format!(
                "has {} labels but {} has {count} images",
                labels.len(),
                path.display()
            ),
        ));
    }
    let raw = RawTargets::Integers(labels.into_iter().map(i64::from).collect());
    let targets = resolve_targets(raw, options, &labels_path, &|i| format!("label {i}"))?;
    let features = Array2::from_shape_vec((count, rows * cols), pixels)
        .map_err(|e| data_error(path, e.to_string()))?;
    finish(path, Features::Bytes(features), targets, Some((rows, cols)))
}

/// The labels file beside an IDX image file: its name with `images-idx3` replaced by
/// `labels-idx1`, with or without `.gz`, whichever exists (the same compression first).
pub fn labels_path(images: &Path) -> Result<PathBuf> {
    let name = images
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains("images-idx3") {
        return Err(data_error(
            images,
            "is not named like an IDX image file (*-images-idx3-ubyte[.gz])",
        ));
    }
    let labels = name.replace("images-idx3", "labels-idx1");
    let other = match labels.strip_suffix(".gz") {
        Some(raw) => raw.to_string(),
        None => format!("{labels}.gz"),
    };
    let candidates = [
        images.with_file_name(&labels),
        images.with_file_name(&other),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            data_error(
                images,
                format!(
                    "has no labels file beside it: looked for {} and {}",
                    candidates[0].display(),
                    candidates[1].display()
                ),
            )
        })
}

/// Only a CSV has named columns.
fn refuse_target_column(path: &Path, options: &LoadOptions) -> Result<()> {
    match &options.target {
        Some(target) => Err(data_error(
            path,
            format!("a target column (`{target}`) can only be named for a .csv file"),
        )),
        None => Ok(()),
    }
}

/// The data set, checked.
fn finish(
    path: &Path,
    features: Features,
    targets: Targets,
    image_shape: Option<(usize, usize)>,
) -> Result<Dataset> {
    let dataset = Dataset {
        features,
        targets,
        image_shape,
    };
    dataset.validate(&path.display().to_string())?;
    Ok(dataset)
}

/// The first non-finite value of `x`, as an error from `describe(row, column, value)`.
fn check_finite(
    x: &Array2<f32>,
    path: &Path,
    describe: impl Fn(usize, usize, f32) -> String,
) -> Result<()> {
    match x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((i, j), &v)) => Err(data_error(path, describe(i, j, v))),
        None => Ok(()),
    }
}

/// Decides the task: integers are labels and floats values unless `options.task` says
/// otherwise. `locate(i)` names sample `i` in errors (a line, a sample of an array).
fn resolve_targets(
    raw: RawTargets,
    options: &LoadOptions,
    path: &Path,
    locate: &dyn Fn(usize) -> String,
) -> Result<Targets> {
    let task = options.task.unwrap_or(match raw {
        RawTargets::Integers(_) => Task::Classification,
        RawTargets::Floats(_) => Task::Regression,
    });
    if task == Task::Regression {
        if let Some(classes) = options.classes {
            return Err(data_error(
                path,
                format!("a class count ({classes}) was given, but the task is regression"),
            ));
        }
        let values = match raw {
            RawTargets::Integers(values) => {
                let n = values.len();
                Array2::from_shape_vec((n, 1), values.into_iter().map(|v| v as f32).collect())
                    .map_err(|e| data_error(path, e.to_string()))?
            }
            RawTargets::Floats(values) => values,
        };
        check_finite(&values, path, |i, j, v| {
            format!("target {j} of {} is {v}, not a finite number", locate(i))
        })?;
        return Ok(Targets::Values(values));
    }
    let labels = match raw {
        RawTargets::Integers(values) => values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                u32::try_from(v)
                    .ok()
                    .filter(|&l| l < u32::MAX)
                    .ok_or_else(|| label_error(v, i, path, locate))
            })
            .collect::<Result<Vec<u32>>>()?,
        RawTargets::Floats(values) => {
            if values.ncols() != 1 {
                return Err(data_error(
                    path,
                    format!(
                        "has {} target values per sample; classification needs one label per sample",
                        values.ncols()
                    ),
                ));
            }
            let whole = |v: f32| v >= 0.0 && v.fract() == 0.0 && f64::from(v) < f64::from(u32::MAX);
            values
                .column(0)
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    whole(v)
                        .then_some(v as u32)
                        .ok_or_else(|| label_error(v, i, path, locate))
                })
                .collect::<Result<Vec<u32>>>()?
        }
    };
    let classes = class_count(&labels, options.classes, path, locate)?;
    Ok(Targets::Classes {
        labels: Array1::from(labels),
        classes,
    })
}

/// The error for target `value` of sample `i`, which is not a class label.
fn label_error(
    value: impl std::fmt::Display,
    i: usize,
    path: &Path,
    locate: &dyn Fn(usize) -> String,
) -> Error {
    data_error(
        path,
        format!(
            "{} is {value}: negative or fractional class labels cannot be classes (labels are whole numbers from 0 below 2³²−1)",
            locate(i)
        ),
    )
}

/// `classes` if given (at least the largest label + 1), else the largest label + 1.
fn class_count(
    labels: &[u32],
    classes: Option<usize>,
    path: &Path,
    locate: &dyn Fn(usize) -> String,
) -> Result<usize> {
    let Some((row, &largest)) = labels.iter().enumerate().max_by_key(|&(_, &l)| l) else {
        return Ok(classes.unwrap_or(0));
    };
    let needed = largest as usize + 1;
    match classes {
        Some(classes) if classes < needed => Err(data_error(
            path,
            format!(
                "{} is label {largest}, which needs at least {needed} classes, but {classes} were asked for",
                locate(row)
            ),
        )),
        Some(classes) => Ok(classes),
        None => Ok(needed),
    }
}

/// Checks that a test set fits a model trained on `train`: the same feature count and kind
/// (bytes or floats), image shape, task and, for regression, target width. Class counts may
/// differ; see [`unify_classes`].
pub fn check_compatible(train: &Dataset, test: &Dataset, test_path: &Path) -> Result<()> {
    let refuse = |why: String| Err(data_error(test_path, why));
    if test.inputs() != train.inputs() {
        return refuse(format!(
            "has {} features per sample but the training set has {}",
            test.inputs(),
            train.inputs()
        ));
    }
    let kind = |d: &Dataset| match d.features {
        Features::Bytes(_) => "bytes (scaled by 1/255)",
        Features::Floats(_) => "floats",
    };
    if kind(test) != kind(train) {
        return refuse(format!(
            "holds {} features but the training set holds {}",
            kind(test),
            kind(train)
        ));
    }
    if let (Some(test_shape), Some(train_shape)) = (test.image_shape, train.image_shape)
        && test_shape != train_shape
    {
        return refuse(format!(
            "holds {}×{} images but the training set {}×{}",
            test_shape.0, test_shape.1, train_shape.0, train_shape.1
        ));
    }
    let (test_task, train_task) = (Task::of(test), Task::of(train));
    if test_task != train_task {
        return refuse(format!(
            "is a {} set but the training set is {}",
            test_task.name(),
            train_task.name()
        ));
    }
    if test_task == Task::Regression && test.outputs() != train.outputs() {
        return refuse(format!(
            "has {} target values per sample but the training set has {}",
            test.outputs(),
            train.outputs()
        ));
    }
    Ok(())
}

/// Gives both classification sets the larger of their class counts, so that a test set that
/// lacks the highest classes (or has more) is scored by one model; regression sets are left.
pub fn unify_classes(train: &mut Dataset, test: &mut Dataset) {
    let (Some(a), Some(b)) = (train.classes(), test.classes()) else {
        return;
    };
    let classes = a.max(b);
    for set in [train, test] {
        if let Targets::Classes { classes: c, .. } = &mut set.targets {
            *c = classes;
        }
    }
}
