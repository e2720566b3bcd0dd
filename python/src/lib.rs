//! `wgpu_mlp._core`, the extension module under the Python package `wgpu_mlp`: numpy arrays in
//! and out through the `numpy` crate, the library's errors as Python exceptions, and training
//! with the GIL released. The estimators (`wgpu_mlp/_estimators.py`) give scikit-learn's
//! meaning to their parameters and call these functions; [`engine`] is where they meet the
//! library's training API.
//!
//! A model crosses into Python as the bytes of its safetensors file, exactly what `save`
//! writes and `wgpu-mlp eval` reads, so a fitted estimator pickles, saves and loads as bytes.

mod engine;

use std::path::Path;
use std::sync::Mutex;

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::gpu::context::{available_adapters, describe_adapter};
use wgpu_mlp::ndarray::{Array1, Array2};
use wgpu_mlp::optim::{Optimizer, OptimizerState};
use wgpu_mlp::{
    Activation, AdapterChoice, Data, DataOptions, Dataset, Error, Features, Mlp, Normalize, Resume,
    Task, TrainSpec,
};

use engine::EpochEnd;

/// The library's error as the Python exception that scikit-learn's conventions call for: bad
/// input or settings are a `ValueError`, files an `OSError`, the device a `RuntimeError`.
fn to_py(error: Error) -> PyErr {
    let text = error.to_string();
    match error {
        Error::Io { .. } => PyOSError::new_err(text),
        Error::Interrupted { .. } => PyKeyboardInterrupt::new_err(text),
        Error::Shape { .. }
        | Error::Invalid { .. }
        | Error::Data { .. }
        | Error::Model(_)
        | Error::Settings(_)
        | Error::Diverged { .. } => PyValueError::new_err(text),
        _ => PyRuntimeError::new_err(text),
    }
}

/// Features from a 2-D numpy array: C-contiguous uint8 (pixels, ÷255 in the model) and float32
/// copied once into the data set, float64 converted once to float32; the estimators hand
/// nothing else.
fn features(x: &Bound<'_, PyAny>) -> PyResult<Features> {
    if let Ok(bytes) = x.extract::<PyReadonlyArray2<'_, u8>>() {
        return Ok(Features::Bytes(bytes.as_array().to_owned()));
    }
    Ok(Features::Floats(floats(x)?))
}

/// A 2-D float32 or float64 numpy array as float32, or uint8 as its values.
fn floats(x: &Bound<'_, PyAny>) -> PyResult<Array2<f32>> {
    if let Ok(x) = x.extract::<PyReadonlyArray2<'_, f32>>() {
        return Ok(x.as_array().to_owned());
    }
    if let Ok(x) = x.extract::<PyReadonlyArray2<'_, f64>>() {
        return Ok(x.as_array().mapv(|v| v as f32));
    }
    if let Ok(x) = x.extract::<PyReadonlyArray2<'_, u8>>() {
        return Ok(x.as_array().mapv(f32::from));
    }
    Err(PyValueError::new_err(
        "features must be a 2-D numpy array of float32, float64 or uint8",
    ))
}

/// A data set of `x` and `y`: class indices (uint32, 1-D) below `classes`, or float targets
/// (2-D) to regress.
fn dataset(
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    classes: Option<usize>,
) -> PyResult<Dataset> {
    let features = features(x)?;
    let dataset = match classes {
        Some(classes) => {
            let labels: PyReadonlyArray1<'_, u32> = y.extract()?;
            Dataset::classification(features, labels.as_array().to_owned(), Some(classes))
        }
        None => Dataset::regression(features, floats(y)?),
    };
    dataset.map_err(to_py)
}

/// The bytes of a model file, with the path its errors name.
fn read(bytes: &[u8]) -> PyResult<(Mlp, CheckpointInfo)> {
    engine::read_model(bytes, Path::new("the model")).map_err(to_py)
}

/// One moment of every layer as Python keeps it: `[(weight-shaped, bias-shaped)…]`.
type MomentArrays<'py> = Vec<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<f32>>)>;

/// The optimizer's state as Python keeps it: `(steps, moment1, moment2)`.
type StateArrays<'py> = (u64, MomentArrays<'py>, MomentArrays<'py>);

fn state_to_py(py: Python<'_>, state: OptimizerState) -> StateArrays<'_> {
    let layers = |moments: Vec<(Array2<f32>, Array1<f32>)>| {
        moments
            .into_iter()
            .map(|(w, b)| (w.into_pyarray(py), b.into_pyarray(py)))
            .collect()
    };
    (state.steps, layers(state.moment1), layers(state.moment2))
}

fn state_from_py(state: StateArrays<'_>) -> OptimizerState {
    let layers = |moments: MomentArrays<'_>| {
        moments
            .into_iter()
            .map(|(w, b)| (w.to_owned_array(), b.to_owned_array()))
            .collect()
    };
    OptimizerState {
        steps: state.0,
        moment1: layers(state.1),
        moment2: layers(state.2),
    }
}

/// The library's spec for the settings the estimators resolved (a dict of the library's
/// names), training on `train`; `start` is the model file and optimizer state to continue from.
fn spec(
    settings: &Bound<'_, PyDict>,
    train: Dataset,
    start: Option<(Mlp, CheckpointInfo, Option<OptimizerState>)>,
) -> PyResult<TrainSpec> {
    let get = |key: &str| -> PyResult<Bound<'_, PyAny>> {
        settings
            .get_item(key)?
            .ok_or_else(|| PyValueError::new_err(format!("missing setting {key:?}")))
    };
    let optimizer = match get("optimizer")?.extract::<String>()?.as_str() {
        "sgd" => match get("momentum")?.extract::<f32>()? {
            0.0 => Optimizer::Sgd,
            momentum => Optimizer::Momentum { momentum },
        },
        name => {
            let (beta1, beta2, epsilon) = (
                get("beta_1")?.extract()?,
                get("beta_2")?.extract()?,
                get("epsilon")?.extract()?,
            );
            match Optimizer::from_name(name).map_err(to_py)? {
                Optimizer::AdamW { .. } => Optimizer::AdamW {
                    beta1,
                    beta2,
                    epsilon,
                },
                _ => Optimizer::Adam {
                    beta1,
                    beta2,
                    epsilon,
                },
            }
        }
    };
    let activation = |key: &str| -> PyResult<Option<Activation>> {
        let name: Option<String> = get(key)?.extract()?;
        name.map(|n| Activation::from_name(&n))
            .transpose()
            .map_err(to_py)
    };
    let device: String = get("device")?.extract()?;
    let task = match train.classes() {
        Some(_) => Task::Classification,
        None => Task::Regression,
    };
    Ok(TrainSpec {
        data: Data::Sets {
            train,
            test: None,
            name: "arrays".into(),
        },
        data_options: DataOptions {
            task: Some(task),
            normalize: Some(Normalize::None),
            validation: Some(get("validation")?.extract()?),
            ..DataOptions::default()
        },
        hidden_sizes: get("hidden_sizes")?.extract()?,
        hidden: activation("hidden")?,
        output: activation("output")?,
        optimizer: Some(optimizer),
        lr: Some(get("learning_rate")?.extract()?),
        weight_decay: get("weight_decay")?.extract()?,
        label_smoothing: Some(get("label_smoothing")?.extract()?),
        clip_norm: get("clip_norm")?.extract()?,
        dropout: Some(get("dropout")?.extract()?),
        input_dropout: Some(get("input_dropout")?.extract()?),
        batch: Some(get("batch_size")?.extract()?),
        epochs: Some(get("epochs")?.extract()?),
        seed: Some(get("seed")?.extract()?),
        shuffle: Some(get("shuffle")?.extract()?),
        device: device.parse().map_err(to_py)?,
        resume: start.map(|(mlp, info, optimizer)| Resume::Model {
            mlp,
            info,
            optimizer,
        }),
        ..TrainSpec::default()
    })
}

/// An epoch's report as the dict `on_epoch` receives: `epoch`, `train_loss`, `learning_rate`,
/// `seconds`, `line` (the CLI's), `notes`, `model` (the model file's bytes) and, with a
/// validation set, `val_loss` and `val_score` (accuracy or R²).
fn epoch_dict<'py>(py: Python<'py>, end: &EpochEnd) -> PyResult<Bound<'py, PyDict>> {
    let (outcome, dict) = (&end.outcome, PyDict::new(py));
    dict.set_item("epoch", outcome.report.epoch)?;
    dict.set_item("train_loss", outcome.report.train_loss)?;
    dict.set_item("learning_rate", outcome.learning_rate)?;
    dict.set_item("seconds", outcome.report.seconds)?;
    dict.set_item("line", outcome.line())?;
    dict.set_item("notes", &end.notes)?;
    dict.set_item("model", PyBytes::new(py, &end.model))?;
    if let Some(scores) = &outcome.validation_scores {
        dict.set_item("val_loss", scores.loss)?;
        dict.set_item("val_score", scores.accuracy.or(scores.r2))?;
    }
    Ok(dict)
}

/// Trains on `x` and `y` (class indices below `classes`, or values to regress) with
/// `settings`, from the model file `model` and `optimizer_state` when given (a warm start) or
/// a new model. After each epoch `on_epoch(report)` is called with the GIL held; it answers
/// true to go on. The GIL is released while training; Ctrl-C stops after the step in progress
/// and raises `KeyboardInterrupt`, the epochs before it having been reported. Returns the model
/// file's bytes, the optimizer's state and the run's summary (the library's one JSON form).
#[pyfunction]
#[pyo3(signature = (x, y, classes, settings, model, optimizer_state, on_epoch))]
#[allow(clippy::too_many_arguments)]
fn fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    classes: Option<usize>,
    settings: &Bound<'py, PyDict>,
    model: Option<&[u8]>,
    optimizer_state: Option<StateArrays<'py>>,
    on_epoch: Py<PyAny>,
) -> PyResult<(Bound<'py, PyBytes>, Option<StateArrays<'py>>, String)> {
    let train = dataset(x, y, classes)?;
    let start = match model {
        Some(bytes) => {
            let (mlp, info) = read(bytes)?;
            Some((mlp, info, optimizer_state.map(state_from_py)))
        }
        None => None,
    };
    let spec = spec(settings, train, start)?;
    // What Python raised in a callback (Ctrl-C's KeyboardInterrupt, or the callback's error).
    let raised: Mutex<Option<PyErr>> = Mutex::new(None);
    let keep = |error: PyErr| {
        let mut slot = raised
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.get_or_insert(error);
    };
    let outcome = py.detach(|| {
        let mut on_epoch = |end: EpochEnd| {
            Python::attach(|py| {
                let answer = epoch_dict(py, &end).and_then(|d| on_epoch.call1(py, (d,)));
                answer
                    .and_then(|answer| answer.bind(py).is_truthy())
                    .unwrap_or_else(|error| {
                        keep(error);
                        false
                    })
            })
        };
        let mut interrupted = || match Python::attach(|py| py.check_signals()) {
            Ok(()) => false,
            Err(error) => {
                keep(error);
                true
            }
        };
        engine::train(spec, &mut on_epoch, &mut interrupted)
    });
    let outcome = outcome.map_err(to_py)?;
    if let Some(error) = raised
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
    {
        return Err(error);
    }
    let state = outcome.optimizer.map(|state| state_to_py(py, state));
    Ok((PyBytes::new(py, &outcome.model), state, outcome.summary))
}

/// The outputs of the model file `model` for features `x` (float32, float64, or uint8 where it
/// was trained on uint8), prepared as the file records, on the CPU reference: probabilities for
/// a softmax output.
#[pyfunction]
fn predict<'py>(
    py: Python<'py>,
    model: &[u8],
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let (mlp, info) = read(model)?;
    let x = features(x)?;
    let outputs = py
        .detach(|| engine::predict(&mlp, &info, x))
        .map_err(to_py)?;
    Ok(outputs.into_pyarray(py))
}

/// What the model file `model` holds: `sizes`, `activations`, `loss`, `epochs`, `metadata`
/// (every key it records) and `layers`, a list of `(weight [out, in], bias)` arrays. `path`
/// names the file in errors.
#[pyfunction]
#[pyo3(signature = (model, path = "the model"))]
fn describe<'py>(py: Python<'py>, model: &[u8], path: &str) -> PyResult<Bound<'py, PyDict>> {
    let (mlp, info) = engine::read_model(model, Path::new(path)).map_err(to_py)?;
    let dict = PyDict::new(py);
    dict.set_item("sizes", mlp.sizes())?;
    let activations: Vec<&str> = mlp.layers.iter().map(|l| l.activation.name()).collect();
    dict.set_item("activations", activations)?;
    dict.set_item("loss", mlp.loss.name())?;
    dict.set_item("epochs", info.epochs)?;
    dict.set_item("metadata", info.extra.clone())?;
    let layers: Vec<_> = mlp
        .layers
        .into_iter()
        .map(|l| (l.weight.into_pyarray(py), l.bias.into_pyarray(py)))
        .collect();
    dict.set_item("layers", layers)?;
    Ok(dict)
}

/// The model file `model` with `metadata` added to what it records.
#[pyfunction]
fn with_metadata<'py>(
    py: Python<'py>,
    model: &[u8],
    metadata: std::collections::HashMap<String, String>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (mlp, mut info) = read(model)?;
    info.extra.extend(metadata);
    let bytes = checkpoint::to_bytes(&mlp, &info).map_err(to_py)?;
    Ok(PyBytes::new(py, &bytes))
}

/// Writes the model file's bytes `model` to `path` atomically, as `wgpu-mlp train --save`
/// does, with `optimizer_state` beside it (`NAME.optimizer.safetensors`), written first as the
/// library's `Run::save` does, so that `wgpu-mlp train --resume` continues where it stopped.
#[pyfunction]
#[pyo3(signature = (model, path, optimizer_state = None))]
fn save(
    py: Python<'_>,
    model: &[u8],
    path: std::path::PathBuf,
    optimizer_state: Option<StateArrays<'_>>,
) -> PyResult<()> {
    let (mlp, info) = read(model)?;
    let state = optimizer_state.map(state_from_py);
    py.detach(|| wgpu_mlp::run::save_model(&path, &mlp, &info, state.as_ref()))
        .map_err(to_py)
}

/// One line per adapter wgpu sees: name, backend and device type.
#[pyfunction]
fn adapters(py: Python<'_>) -> Vec<String> {
    py.detach(|| {
        available_adapters()
            .iter()
            .map(|adapter| describe_adapter(&adapter.get_info()))
            .collect()
    })
}

/// Opens `device` (as `--adapter` names it) and returns its description; the device is kept
/// for the fits that follow.
#[pyfunction]
fn open_device(py: Python<'_>, device: &str) -> PyResult<String> {
    let choice: AdapterChoice = device.parse().map_err(to_py)?;
    py.detach(|| engine::open_gpu(&choice).map(|gpu| gpu.adapter_description()))
        .map_err(to_py)
}

#[pymodule]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(fit, module)?)?;
    module.add_function(wrap_pyfunction!(predict, module)?)?;
    module.add_function(wrap_pyfunction!(describe, module)?)?;
    module.add_function(wrap_pyfunction!(with_metadata, module)?)?;
    module.add_function(wrap_pyfunction!(save, module)?)?;
    module.add_function(wrap_pyfunction!(adapters, module)?)?;
    module.add_function(wrap_pyfunction!(open_device, module)?)?;
    Ok(())
}
