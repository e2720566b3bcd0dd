//! What a command trains or evaluates on: a built-in data set, or the user's own files (`.npz`,
//! `.csv`, IDX), with a validation split and the scaling a model records so that `eval` and
//! `predict` see their inputs as training did.
//!
//! A model file records in its metadata the task, how inputs were scaled (`bytes`: ÷255;
//! `standard:` the training set's means and standard deviations; `none`), how regression targets
//! were standardized, and where its data came from, so `--resume`, `eval` and `predict` need none
//! of the options again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use wgpu_mlp::data::files::{self, LoadOptions, Task};
use wgpu_mlp::data::scaling::{
    InputScaling, Standardization, standardize_features, standardize_targets,
};
use wgpu_mlp::data::{self, Dataset, DatasetKind, Features, Targets, synthetic};

use crate::common::Recorded;

/// How float features are scaled before training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Normalize {
    /// Standardized by the training set's mean and standard deviation, per feature.
    Standard,
    /// Used as they are.
    None,
}

/// Where the data comes from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Built-in data set [default: synthetic, or the one a saved model was trained on].
    #[arg(long, value_enum, conflicts_with = "train")]
    pub dataset: Option<DatasetKind>,
    /// Folder with the IDX files (.gz or raw); default: the first of $WGPU_MLP_DATA/<dataset>,
    /// $WGPU_MLP_DATA, ./data/<dataset> and, for Fashion-MNIST, /usr/share/datasets/fashion-mnist
    /// that holds them.
    #[arg(long, value_name = "DIR", conflicts_with = "train")]
    pub data: Option<PathBuf>,
    /// Train on your own file: .npz (arrays x and y), .csv (with a header row), or IDX images
    /// (NAME-images-idx3-ubyte[.gz], with NAME-labels-idx1-ubyte[.gz] beside it).
    #[arg(long, value_name = "PATH")]
    pub train: Option<PathBuf>,
    /// Test on this file, of the same format and features as --train.
    #[arg(long, value_name = "PATH")]
    pub test: Option<PathBuf>,
    /// The CSV column to predict [default: the last column].
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Classification or regression [default: classification for integer targets, regression
    /// for floats].
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// Classes, when there are more than the largest label + 1.
    #[arg(long, value_name = "N")]
    pub classes: Option<usize>,
    /// Fraction of the training data held out, seeded, to validate on [default: 0.1 with --train
    /// and no --test, else 0].
    #[arg(long, value_name = "FRACTION")]
    pub validation: Option<f64>,
    /// Scaling of float features (and regression targets) [default: standard]; byte features
    /// are always divided by 255.
    #[arg(long, value_enum)]
    pub normalize: Option<Normalize>,
    /// Training samples to use (all when omitted; the synthetic set makes this many, default 10000).
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Test samples to use (all when omitted; the synthetic set makes this many, default 2000).
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
}

/// Where a run's samples come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A built-in data set.
    Builtin(DatasetKind),
    /// The user's files.
    Files {
        train: PathBuf,
        test: Option<PathBuf>,
    },
}

impl Source {
    /// How reports name it: the data set, or the training file's name.
    pub fn name(&self) -> String {
        match self {
            Source::Builtin(kind) => kind.name().to_string(),
            Source::Files { train, .. } => train.file_name().map_or_else(
                || train.display().to_string(),
                |n| n.to_string_lossy().into(),
            ),
        }
    }

    /// The metadata a model file records to find the data again.
    fn recorded(&self) -> Vec<(&'static str, String)> {
        match self {
            Source::Builtin(kind) => vec![("dataset", kind.name().to_string())],
            Source::Files { train, test } => {
                let mut keys = vec![("train_file", absolute(train))];
                keys.extend(test.as_ref().map(|t| ("test_file", absolute(t))));
                keys
            }
        }
    }
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// How a model's data was prepared: recorded with the model, applied again by `eval` and
/// `predict`.
#[derive(Clone, Debug, PartialEq)]
pub struct Preparation {
    /// Classification or regression.
    pub task: Task,
    /// How inputs were scaled.
    pub inputs: InputScaling,
    /// How regression targets were standardized, if they were.
    pub targets: Option<Standardization>,
    /// The CSV column that was the target.
    pub target: Option<String>,
}

impl Preparation {
    /// The metadata keys and values it is recorded as.
    pub fn recorded(&self) -> Vec<(&'static str, String)> {
        let mut keys = vec![
            ("task", self.task.name().to_string()),
            ("input_scaling", self.inputs.to_metadata()),
        ];
        keys.extend(
            self.targets
                .as_ref()
                .map(|t| ("target_scaling", t.to_metadata())),
        );
        keys.extend(self.target.clone().map(|t| ("target", t)));
        keys
    }

    /// What a model file records; for files older than these keys, byte images classified.
    pub fn of(recorded: &Recorded) -> Result<Preparation> {
        let file = recorded.path().display();
        let task = match recorded.text("task") {
            Some(name) => Task::from_str(name, false)
                .map_err(|_| anyhow::anyhow!("{file}: unknown task {name:?}"))?,
            None => Task::Classification,
        };
        let inputs = match recorded.text("input_scaling") {
            Some(text) => InputScaling::from_metadata(text).with_context(|| file.to_string())?,
            None => InputScaling::Bytes,
        };
        let targets = recorded
            .text("target_scaling")
            .map(Standardization::from_metadata)
            .transpose()
            .with_context(|| file.to_string())?;
        Ok(Preparation {
            task,
            inputs,
            targets,
            target: recorded.text("target").map(str::to_string),
        })
    }

    /// Scales `set` as the training data was: its inputs, and its targets if they are values.
    pub fn apply(&self, set: &mut Dataset) -> Result<()> {
        match (&self.inputs, &mut set.features) {
            (InputScaling::Standard(scaling), Features::Floats(x)) => {
                check_width(scaling, x.ncols(), "features")?;
                scaling.apply(x);
            }
            (InputScaling::Bytes, Features::Floats(_)) => {
                bail!("the model was trained on byte features (images), not floats")
            }
            _ => {}
        }
        if let (Some(scaling), Targets::Values(y)) = (&self.targets, &mut set.targets) {
            check_width(scaling, y.ncols(), "targets")?;
            scaling.apply(y);
        }
        Ok(())
    }

    /// The standard deviation of each target, to report errors in the targets' own units.
    pub fn target_scale(&self) -> Option<&[f32]> {
        self.targets.as_ref().map(|t| &t.std[..])
    }
}

fn check_width(scaling: &Standardization, width: usize, what: &str) -> Result<()> {
    if scaling.mean.len() != width {
        bail!(
            "the model was trained on {} {what} per sample, this data has {width}",
            scaling.mean.len()
        );
    }
    Ok(())
}

/// What a resumed model fixes about its data: how it was prepared, its class count (its
/// outputs) and the fraction held out for validation.
pub struct RecordedData {
    pub preparation: Preparation,
    pub outputs: usize,
    pub validation: Option<f64>,
}

impl RecordedData {
    /// What `recorded` (the metadata of a model of `outputs` outputs) says.
    pub fn of(recorded: &Recorded, outputs: usize) -> Result<RecordedData> {
        Ok(RecordedData {
            preparation: Preparation::of(recorded)?,
            outputs,
            validation: recorded.value::<f64>("validation")?,
        })
    }
}

/// The samples a training run uses, shared so that a trainer that streams them keeps them
/// without a copy.
pub struct RunData {
    /// Where they came from.
    pub source: Source,
    pub train: Arc<Dataset>,
    pub validation: Option<Arc<Dataset>>,
    pub test: Option<Arc<Dataset>>,
    /// How they were prepared, for the model file.
    pub preparation: Preparation,
    /// The fraction of the training data held out for validation.
    pub validation_fraction: f64,
}

impl RunData {
    /// The metadata a model file records about its data.
    pub fn recorded(&self) -> Vec<(&'static str, String)> {
        let mut keys = self.source.recorded();
        keys.extend(self.preparation.recorded());
        keys.push(("validation", self.validation_fraction.to_string()));
        keys
    }
}

impl DataArgs {
    /// The source the options name, else the one `recorded` (a resumed model) names, else the
    /// synthetic set.
    pub fn source(&self, recorded: Option<&Recorded>) -> Result<Source> {
        if let Some(train) = &self.train {
            return Ok(Source::Files {
                train: train.clone(),
                test: self.test.clone(),
            });
        }
        if self.test.is_some() {
            bail!("--test needs --train (or use --dataset for a built-in data set)");
        }
        let recorded_kind = recorded.map(Recorded::dataset).transpose()?.flatten();
        if let (Some(asked), Some(recorded_kind), Some(recorded)) =
            (self.dataset, recorded_kind, recorded)
            && asked != recorded_kind
        {
            bail!(
                "--dataset {} contradicts {}, which was trained on {}; leave --dataset out to \
                 continue on {}",
                asked.name(),
                recorded.path().display(),
                recorded_kind.name(),
                recorded_kind.name()
            );
        }
        if let Some(kind) = self.dataset {
            return Ok(Source::Builtin(kind));
        }
        if let Some(recorded) = recorded {
            if let Some(train) = recorded.text("train_file") {
                return Ok(Source::Files {
                    train: PathBuf::from(train),
                    test: recorded.text("test_file").map(PathBuf::from),
                });
            }
            if let Some(kind) = recorded_kind {
                return Ok(Source::Builtin(kind));
            }
        }
        Ok(Source::Builtin(DatasetKind::Synthetic))
    }

    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            target: self.target.clone(),
            task: self.task,
            classes: self.classes,
        }
    }

    /// How to read a model's data again: with the target column and task it was trained with
    /// (a `--target` naming another column is an error), and as many classes as it has outputs.
    fn recorded_options(&self, preparation: &Preparation, outputs: usize) -> Result<LoadOptions> {
        if let (Some(asked), Some(recorded)) = (&self.target, &preparation.target)
            && asked != recorded
        {
            bail!("--target {asked} contradicts the model, whose target column is {recorded}");
        }
        Ok(LoadOptions {
            target: preparation.target.clone().or_else(|| self.target.clone()),
            task: Some(preparation.task),
            classes: (preparation.task == Task::Classification).then_some(outputs),
        })
    }

    /// The training, validation and test sets of `source`, prepared as `recorded` says (a
    /// resumed model) or as the options say.
    pub fn load_for_training(
        &self,
        source: Source,
        seed: u64,
        recorded: Option<RecordedData>,
    ) -> Result<RunData> {
        let options = match &recorded {
            Some(r) => self.recorded_options(&r.preparation, r.outputs)?,
            None => self.load_options(),
        };
        let (mut train, mut test) = match &source {
            Source::Builtin(kind) => {
                let (train, test) = self.load_builtin(*kind, seed)?;
                (train, Some(test))
            }
            Source::Files { train, test } => self.load_files(train, test.as_deref(), &options)?,
        };
        let recorded_fraction = recorded.as_ref().and_then(|r| r.validation);
        let fraction = self
            .validation
            .or(recorded_fraction)
            .unwrap_or(match (&source, &test) {
                (Source::Files { .. }, None) => 0.1,
                _ => 0.0,
            });
        let mut validation = None;
        if fraction > 0.0 {
            let (rest, held) = train.split_validation(fraction, seed)?;
            (train, validation) = (rest, Some(held));
        }
        let preparation = match recorded.map(|r| r.preparation) {
            Some(preparation) => {
                for set in [Some(&mut train), validation.as_mut(), test.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    preparation.apply(set)?;
                }
                preparation
            }
            None => {
                let target = match &source {
                    Source::Files { train, .. } if is_csv(train) => {
                        Some(files::csv_target_name(train, self.target.as_deref())?)
                    }
                    _ => None,
                };
                let mut others: Vec<&mut Dataset> =
                    validation.iter_mut().chain(test.iter_mut()).collect();
                self.prepare(&mut train, &mut others, target)
            }
        };
        Ok(RunData {
            source,
            train: Arc::new(train),
            validation: validation.map(Arc::new),
            test: test.map(Arc::new),
            preparation,
            validation_fraction: fraction,
        })
    }

    /// Fits the scaling the options ask for on `train` and applies it to every set; `target`
    /// is the CSV column the targets came from.
    fn prepare(
        &self,
        train: &mut Dataset,
        others: &mut [&mut Dataset],
        target: Option<String>,
    ) -> Preparation {
        let standard = self.normalize.unwrap_or(Normalize::Standard) == Normalize::Standard;
        let inputs = match (&train.features, standard) {
            (Features::Bytes(_), _) => InputScaling::Bytes,
            (Features::Floats(_), false) => InputScaling::None,
            (Features::Floats(_), true) => standardize_features(train, others)
                .map_or(InputScaling::None, InputScaling::Standard),
        };
        let targets = standard
            .then(|| standardize_targets(train, others))
            .flatten();
        Preparation {
            task: Task::of(train),
            inputs,
            targets,
            target,
        }
    }

    fn load_builtin(&self, kind: DatasetKind, seed: u64) -> Result<(Dataset, Dataset)> {
        if kind == DatasetKind::Synthetic {
            return Ok(synthetic::generate(
                self.train_size.unwrap_or(10_000),
                self.test_size.unwrap_or(2_000),
                seed,
            ));
        }
        let dir = data::find_data_dir(kind, self.data.as_deref())?;
        let (train, test, provenance) = data::load_checked(kind, &dir)?;
        eprintln!("data: {provenance}");
        Ok((
            self.keep(train, self.train_size),
            self.keep(test, self.test_size),
        ))
    }

    fn keep(&self, set: Dataset, size: Option<usize>) -> Dataset {
        match size {
            Some(n) => set.take(n),
            None => set,
        }
    }

    fn load_files(
        &self,
        train: &Path,
        test: Option<&Path>,
        options: &LoadOptions,
    ) -> Result<(Dataset, Option<Dataset>)> {
        let train_set = files::load_file(train, options)?;
        let mut train_set = self.keep(train_set, self.train_size);
        let test_set = match test {
            Some(path) => {
                let mut test_set = self.keep(files::load_file(path, options)?, self.test_size);
                files::check_compatible(&train_set, &test_set, path)?;
                files::unify_classes(&mut train_set, &mut test_set);
                Some(test_set)
            }
            None => None,
        };
        eprintln!(
            "data: {} ({} samples of {} features, {}{})",
            train.display(),
            train_set.len(),
            train_set.inputs(),
            match train_set.classes() {
                Some(classes) => format!("{classes} classes"),
                None => format!("{} regression target(s)", train_set.outputs()),
            },
            test.map_or(String::new(), |t| format!("; test: {}", t.display()))
        );
        Ok((train_set, test_set))
    }

    /// The test set for `eval` of a model of `outputs` outputs: the file `--test` names or the
    /// built-in set, read and prepared as the model's data was.
    pub fn load_for_evaluation(
        &self,
        source: &Source,
        seed: u64,
        (preparation, outputs): (&Preparation, usize),
    ) -> Result<Dataset> {
        let mut test = match source {
            Source::Builtin(kind) => self.load_builtin(*kind, seed)?.1,
            Source::Files {
                test: Some(path), ..
            } => {
                let options = self.recorded_options(preparation, outputs)?;
                self.keep(files::load_file(path, &options)?, self.test_size)
            }
            Source::Files { test: None, .. } => bail!("nothing to evaluate on: give --test PATH"),
        };
        preparation.apply(&mut test)?;
        Ok(test)
    }
}
