//! A run's data: where it comes from ([`Source`]), read from a built-in set, files or arrays,
//! split for validation and scaled ([`prepare`]), or for a resumed model read and scaled as its
//! file records, so that `--resume`, `eval` and `predict` need none of the options again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::data::files::{self, LoadOptions, Task};
use crate::data::scaling::{InputScaling, standardize_features, standardize_targets};
use crate::data::{self, Dataset, DatasetKind, Features, synthetic};
use crate::error::{Error, Result};

use super::recorded::{Preparation, Recorded, RecordedData};
use super::spec::{Data, DataOptions, Normalize};

/// Where a run's samples come from, as a model file records it.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A built-in data set.
    Builtin(DatasetKind),
    /// The user's files.
    Files {
        /// The training file.
        train: PathBuf,
        /// The test file.
        test: Option<PathBuf>,
    },
    /// Samples given in memory, under a name.
    Memory(String),
}

impl Source {
    /// How reports name it: the data set, the training file's name, or the arrays' name.
    pub fn name(&self) -> String {
        match self {
            Source::Builtin(kind) => kind.name().to_string(),
            Source::Files { train, .. } => train.file_name().map_or_else(
                || train.display().to_string(),
                |n| n.to_string_lossy().into(),
            ),
            Source::Memory(name) => name.clone(),
        }
    }

    /// The metadata a model file records to find the data again.
    pub fn recorded(&self) -> Vec<(&'static str, String)> {
        match self {
            Source::Builtin(kind) => vec![("dataset", kind.name().to_string())],
            Source::Files { train, test } => {
                let mut keys = vec![("train_file", absolute(train))];
                keys.extend(test.as_ref().map(|t| ("test_file", absolute(t))));
                keys
            }
            // Arrays are recorded by name only when it is a built-in set's (the page's MNIST),
            // which `eval` can then find again.
            Source::Memory(name) => DatasetKind::from_name(name)
                .map(|kind| ("dataset", kind.name().to_string()))
                .into_iter()
                .collect(),
        }
    }

    /// The source `data` names, else the one `recorded` (a resumed model) names, else the
    /// synthetic set.
    pub fn of(data: &Data, recorded: Option<&Recorded>) -> Result<Source> {
        let asked = match data {
            Data::Files { train, test } => {
                return Ok(Source::Files {
                    train: train.clone(),
                    test: test.clone(),
                });
            }
            Data::Arrays { name, .. } | Data::Sets { name, .. } => {
                return Ok(Source::Memory(name.clone()));
            }
            Data::Builtin { kind, .. } => *kind,
        };
        let recorded_kind = recorded.map(Recorded::dataset).transpose()?.flatten();
        if let (Some(asked), Some(recorded_kind), Some(recorded)) = (asked, recorded_kind, recorded)
            && asked != recorded_kind
        {
            return Err(Error::Settings(format!(
                "--dataset {} contradicts {}, which was trained on {}; leave --dataset out to \
                 continue on {}",
                asked.name(),
                recorded.path().display(),
                recorded_kind.name(),
                recorded_kind.name()
            )));
        }
        if let Some(kind) = asked {
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

/// The samples a training run uses, shared so that a trainer that streams them keeps them
/// without a copy.
#[derive(Clone, Debug)]
pub struct RunData {
    /// Where they came from.
    pub source: Source,
    /// The training set (less the validation set).
    pub train: Arc<Dataset>,
    /// The held-out validation set.
    pub validation: Option<Arc<Dataset>>,
    /// The test set.
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

impl DataOptions {
    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            target: self.target.clone(),
            task: self.task,
            classes: self.classes,
        }
    }

    /// How to read a model's data again: with the target column and task it was trained with
    /// (a `--target` naming another column is an error), and as many classes as it has outputs.
    pub fn recorded_options(
        &self,
        preparation: &Preparation,
        outputs: usize,
    ) -> Result<LoadOptions> {
        if let (Some(asked), Some(recorded)) = (&self.target, &preparation.target)
            && asked != recorded
        {
            return Err(Error::Settings(format!(
                "--target {asked} contradicts the model, whose target column is {recorded}"
            )));
        }
        Ok(LoadOptions {
            target: preparation.target.clone().or_else(|| self.target.clone()),
            task: Some(preparation.task),
            classes: (preparation.task == Task::Classification).then_some(outputs),
        })
    }

    fn keep(&self, set: Dataset, size: Option<usize>) -> Dataset {
        match size {
            Some(n) => set.take(n),
            None => set,
        }
    }

    /// The training and test sets of a built-in data set; `notes` gets where they came from.
    pub fn load_builtin(
        &self,
        kind: DatasetKind,
        dir: Option<&Path>,
        seed: u64,
        notes: &mut Vec<String>,
    ) -> Result<(Dataset, Dataset)> {
        if kind == DatasetKind::Synthetic {
            return Ok(synthetic::generate(
                self.train_size.unwrap_or(10_000),
                self.test_size.unwrap_or(2_000),
                seed,
            ));
        }
        let dir = data::find_data_dir(kind, dir)?;
        let (train, test, provenance) = data::load_checked(kind, &dir)?;
        notes.push(format!("data: {provenance}"));
        Ok((
            self.keep(train, self.train_size),
            self.keep(test, self.test_size),
        ))
    }

    fn load_files(
        &self,
        train: &Path,
        test: Option<&Path>,
        options: &LoadOptions,
        notes: &mut Vec<String>,
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
        notes.push(format!(
            "data: {} ({} samples of {} features, {}{})",
            train.display(),
            train_set.len(),
            train_set.inputs(),
            match train_set.classes() {
                Some(classes) => format!("{classes} classes"),
                None => format!("{} regression target(s)", train_set.outputs()),
            },
            test.map_or(String::new(), |t| format!("; test: {}", t.display()))
        ));
        Ok((train_set, test_set))
    }

    /// The test set for evaluating a model of `outputs` outputs: the test file of `source` or
    /// the built-in set's, read and prepared as the model's data was.
    pub fn load_for_evaluation(
        &self,
        (source, dir): (&Source, Option<&Path>),
        seed: u64,
        (preparation, outputs): (&Preparation, usize),
        notes: &mut Vec<String>,
    ) -> Result<Dataset> {
        let mut test = match source {
            Source::Builtin(kind) => self.load_builtin(*kind, dir, seed, notes)?.1,
            Source::Files {
                test: Some(path), ..
            } => {
                let options = self.recorded_options(preparation, outputs)?;
                self.keep(files::load_file(path, &options)?, self.test_size)
            }
            Source::Files { test: None, .. } | Source::Memory(_) => {
                return Err(Error::Settings(
                    "nothing to evaluate on: give --test PATH".into(),
                ));
            }
        };
        preparation.apply(&mut test)?;
        Ok(test)
    }

    /// Fits the scaling these options ask for on `train` and applies it to every set; `target`
    /// is the CSV column the targets came from.
    fn prepare(
        &self,
        train: &mut Dataset,
        others: &mut [&mut Dataset],
        target: Option<String>,
    ) -> Preparation {
        let standard = self.normalize.unwrap_or_default() == Normalize::Standard;
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
}

/// The training, validation and test sets of `data` (from `source`), split with `seed` and
/// prepared as `recorded` says (a resumed model) or as `options` say; `notes` gets what was
/// read.
pub fn prepare(
    data: Data,
    options: &DataOptions,
    (source, seed): (Source, u64),
    recorded: Option<RecordedData>,
    notes: &mut Vec<String>,
) -> Result<RunData> {
    let load_options = match &recorded {
        Some(r) => options.recorded_options(&r.preparation, r.outputs)?,
        None => options.load_options(),
    };
    let dir = match &data {
        Data::Builtin { dir, .. } => dir.clone(),
        _ => None,
    };
    let (mut train, mut test) = match (data, &source) {
        (Data::Arrays { x, y, test, .. }, _) => {
            let train = in_memory(x, y, "the training arrays")?;
            let test = test
                .map(|(x, y)| in_memory(x, y, "the test arrays"))
                .transpose()?;
            (
                options.keep(train, options.train_size),
                test.map(|t| options.keep(t, options.test_size)),
            )
        }
        (Data::Sets { train, test, .. }, _) => (
            options.keep(train, options.train_size),
            test.map(|t| options.keep(t, options.test_size)),
        ),
        (_, Source::Builtin(kind)) => {
            let (train, test) = options.load_builtin(*kind, dir.as_deref(), seed, notes)?;
            (train, Some(test))
        }
        (_, Source::Files { train, test }) => {
            options.load_files(train, test.as_deref(), &load_options, notes)?
        }
        (_, Source::Memory(name)) => {
            return Err(Error::Settings(format!(
                "the model was trained on arrays ({name}): give the data to continue on"
            )));
        }
    };
    let recorded_fraction = recorded.as_ref().and_then(|r| r.validation);
    let fraction = options
        .validation
        .or(recorded_fraction)
        .unwrap_or(match (&source, &test) {
            (Source::Builtin(_), _) | (_, Some(_)) => 0.0,
            _ => 0.1,
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
                    Some(files::csv_target_name(train, options.target.as_deref())?)
                }
                _ => None,
            };
            let mut others: Vec<&mut Dataset> =
                validation.iter_mut().chain(test.iter_mut()).collect();
            options.prepare(&mut train, &mut others, target)
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

/// A data set of features `x` and targets `y` given in memory; `what` names them in errors.
fn in_memory(x: Features, y: data::Targets, what: &str) -> Result<Dataset> {
    let set = Dataset {
        features: x,
        targets: y,
        image_shape: None,
    };
    set.validate(what)?;
    Ok(set)
}
