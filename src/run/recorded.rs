//! What a model file records beside its architecture, and how it is read back: the run's
//! settings (optimizer, learning rate, batch, seed, regularization), how its data was prepared
//! (task, input and target scaling, target column), where the data came from and the fraction
//! held out for validation. `--resume`, `eval`, `predict`, the page and Python read them here.
//!
//! A file that lacks a key was written by an older version or by a library user with a default
//! [`CheckpointInfo`]; each key has a documented default ([`Preparation::of`],
//! [`crate::train::Defaults::UNRECORDED`]), never an error.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use crate::checkpoint::CheckpointInfo;
use crate::data::files::Task;
use crate::data::scaling::{InputScaling, Standardization};
use crate::data::{Dataset, DatasetKind, Features, Targets};
use crate::error::{Error, Result};
use crate::model::{Activation, Mlp};
use crate::optim::Optimizer;

/// The run settings a model file records in its metadata, read with errors naming the file.
#[derive(Clone, Copy, Debug)]
pub struct Recorded<'a> {
    metadata: &'a HashMap<String, String>,
    path: &'a Path,
}

impl<'a> Recorded<'a> {
    /// What `info`, read from `path` (or bytes named so), records.
    pub fn of(info: &'a CheckpointInfo, path: &'a Path) -> Self {
        Recorded {
            metadata: &info.extra,
            path,
        }
    }

    /// The file that records them.
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The text under `key`, if recorded.
    pub fn text(&self, key: &str) -> Option<&'a str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// The value under `key`, if recorded; an error naming the file if it does not parse.
    pub fn value<T: FromStr>(&self, key: &str) -> Result<Option<T>> {
        self.metadata
            .get(key)
            .map(|text| {
                text.parse().map_err(|_| {
                    Error::Model(format!(
                        "{}: its {key:?} {text:?} is not valid",
                        self.path.display()
                    ))
                })
            })
            .transpose()
    }

    /// The optimizer it was trained with.
    pub fn optimizer(&self) -> Result<Option<Optimizer>> {
        self.text("optimizer").map(Optimizer::from_name).transpose()
    }

    /// The built-in data set it was trained on.
    pub fn dataset(&self) -> Result<Option<DatasetKind>> {
        self.text("dataset")
            .map(|name| {
                DatasetKind::from_name(name).ok_or_else(|| {
                    Error::Model(format!(
                        "{}: unknown data set {name:?}",
                        self.path.display()
                    ))
                })
            })
            .transpose()
    }
}

/// How a model's data was prepared: recorded with the model, applied again by `eval`,
/// `predict`, the page and Python.
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

    /// What the file of `mlp` records. A key it lacks has its documented default: no `task` is
    /// regression for an identity output layer and classification otherwise; no
    /// `input_scaling` is inputs used as they are (byte features are divided by 255 whatever
    /// the file says); no `target_scaling` is targets used as they are.
    pub fn of(recorded: &Recorded, mlp: &Mlp) -> Result<Preparation> {
        let file = recorded.path().display();
        let task = match recorded.text("task") {
            Some(name) => Task::from_name(name)
                .ok_or_else(|| Error::Model(format!("{file}: unknown task {name:?}")))?,
            None if mlp.layers[mlp.layers.len() - 1].activation == Activation::Identity => {
                Task::Regression
            }
            None => Task::Classification,
        };
        let in_file = |e: Error| Error::Model(format!("{file}: {e}"));
        let inputs = match recorded.text("input_scaling") {
            Some(text) => InputScaling::from_metadata(text).map_err(in_file)?,
            None => InputScaling::None,
        };
        let targets = recorded
            .text("target_scaling")
            .map(Standardization::from_metadata)
            .transpose()
            .map_err(in_file)?;
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
                return Err(Error::Settings(
                    "the model was trained on byte features (images), not floats".into(),
                ));
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
        return Err(Error::Settings(format!(
            "the model was trained on {} {what} per sample, this data has {width}",
            scaling.mean.len()
        )));
    }
    Ok(())
}

/// What a resumed model fixes about its data: how it was prepared, its class count (its
/// outputs) and the fraction held out for validation.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedData {
    /// How its data was prepared.
    pub preparation: Preparation,
    /// Its outputs: the classes, or the regression targets.
    pub outputs: usize,
    /// The fraction of the training data it held out for validation.
    pub validation: Option<f64>,
}

impl RecordedData {
    /// What `recorded`, the metadata of `mlp`, says.
    pub fn of(recorded: &Recorded, mlp: &Mlp) -> Result<RecordedData> {
        Ok(RecordedData {
            preparation: Preparation::of(recorded, mlp)?,
            outputs: mlp.outputs(),
            validation: recorded.value::<f64>("validation")?,
        })
    }
}
