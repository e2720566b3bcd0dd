//! `Session`: a model on the GPU, with the data set resident there to train on (or none, for a
//! loaded model that only predicts until given data), and what its epochs have produced.
//!
//! The session's state sits behind a `RefCell`, borrowed for the whole of an operation: the
//! page's promises may interleave, and an operation that finds the session busy is refused
//! rather than run on a half-trained model.

use std::cell::{RefCell, RefMut};
use std::path::Path;
use std::rc::Rc;

use serde_json::{Value, json};
use wasm_bindgen::prelude::*;
use web_time::Instant;
use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::ndarray::ArrayView2;
use wgpu_mlp::train::{Evaluation, GpuTrainer, Split};
use wgpu_mlp::{Error, Gpu, GpuMlp, Mlp};

use crate::data::Data;
use crate::js;
use crate::settings::Settings;

/// How saved models are named in errors: the page reads them from bytes, not a path.
const MODEL_NAME: &str = "model.safetensors";

/// A model being trained or used (see `Session` in `web/API.md`).
#[wasm_bindgen]
pub struct Session {
    state: Rc<RefCell<State>>,
}

/// Everything a session holds.
struct State {
    gpu: Gpu,
    settings: Settings,
    /// The trainer, with the data on the GPU; `None` for a loaded model not yet given data.
    trainer: Option<GpuTrainer>,
    /// A one-sample copy of the model for predictions, made on the first one, and the epoch
    /// count its parameters are from.
    predictor: Option<(GpuMlp, usize)>,
    /// Epochs the model had before this session (a loaded model's).
    epochs_before: usize,
    history: History,
    created: Instant,
}

/// What this session's epochs have produced, for the summary.
#[derive(Default)]
struct History {
    epochs: usize,
    samples: usize,
    train_seconds: f64,
    train_loss: Option<f32>,
    evaluation: Option<Evaluation>,
}

// Each operation holds the state's borrow across its awaits on purpose: that is what makes a
// second operation find the session busy (`borrow` fails with an error, never a panic).
#[allow(clippy::await_holding_refcell_ref)]
#[wasm_bindgen]
impl Session {
    /// A new model as `settings` describe it, with `data` uploaded to `gpu`.
    pub fn create(gpu: &crate::Gpu, data: &Data, settings: JsValue) -> Result<Session, JsError> {
        let mut settings =
            Settings::new_model(&json_of(&settings)?, data.train.len()).map_err(js::error)?;
        let mut trainer = GpuTrainer::new(
            &gpu.gpu,
            &settings.mlp,
            &data.train,
            Some(&data.test),
            settings.train_config(),
        )
        .map_err(js::error)?;
        deform_with(&mut trainer, &mut settings, &data.train).map_err(js::error)?;
        Ok(Session::from_state(State {
            gpu: gpu.gpu.clone(),
            settings,
            trainer: Some(trainer),
            predictor: None,
            epochs_before: 0,
            history: History::default(),
            created: Instant::now(),
        }))
    }

    /// A session holding the model file `bytes` (as the CLI's `--save` writes it), which can
    /// predict and save at once, and train after [`Session::set_data`].
    #[wasm_bindgen(js_name = fromModel)]
    pub fn from_model(gpu: &crate::Gpu, bytes: Vec<u8>) -> js_sys::Promise {
        let gpu = gpu.gpu.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (mlp, info) =
                checkpoint::from_bytes(&bytes, Path::new(MODEL_NAME)).map_err(js::error)?;
            let settings =
                Settings::continuing(mlp, &info.extra, &Value::Null, 0).map_err(js::error)?;
            let predictor =
                GpuMlp::with_batch_capacity(&gpu, &settings.mlp, 1).map_err(js::error)?;
            Ok(Session::from_state(State {
                gpu,
                settings,
                trainer: None,
                predictor: Some((predictor, 0)),
                epochs_before: info.epochs,
                history: History::default(),
                created: Instant::now(),
            })
            .into())
        })
    }

    /// Uploads `data` to train this session's model on from its current parameters, with
    /// `settings` changing what the model file recorded (optimizer, lr, batch, …); architecture
    /// keys, if given, must agree with the model. The optimizer starts afresh.
    #[wasm_bindgen(js_name = setData)]
    pub fn set_data(&self, data: &Data, settings: JsValue) -> js_sys::Promise {
        let (state, settings) = (self.state.clone(), json_of(&settings));
        let (train, test) = (data.train.clone(), data.test.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            let mut state = borrow(&state)?;
            let mlp = state.model().await.map_err(js::error)?;
            let recorded = state.settings.recorded();
            let mut settings =
                Settings::continuing(mlp, &recorded, &settings?, train.len()).map_err(js::error)?;
            let mut trainer = GpuTrainer::new(
                &state.gpu,
                &settings.mlp,
                &train,
                Some(&test),
                settings.train_config(),
            )
            .map_err(js::error)?;
            deform_with(&mut trainer, &mut settings, &train).map_err(js::error)?;
            state.epochs_before += state.history.epochs;
            state.history = History::default();
            state.settings = settings;
            state.trainer = Some(trainer);
            state.predictor = None;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// One epoch, then an evaluation on the test set: `{epoch, train_loss, test_loss,
    /// test_accuracy, samples_per_s, seconds}`. `on_progress(samples, total, runningLoss)` is
    /// called at the trainer's own progress read-backs.
    #[wasm_bindgen(js_name = trainEpoch)]
    pub fn train_epoch(&self, on_progress: Option<js_sys::Function>) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut state = borrow(&state)?;
            let report = state.train_epoch(on_progress).await.map_err(js::error)?;
            Ok(js::object(&report)?)
        })
    }

    /// The CLI's `train --json` line for the epochs so far; `adapter` names the device, by
    /// default as the CLI does.
    pub fn summary(&self, adapter: Option<String>) -> Result<String, JsError> {
        let state = borrow(&self.state)?;
        Ok(state.summary(adapter).to_string())
    }

    /// The settings in force, every default filled in, and the epochs done: `{layers, hidden,
    /// output, loss, optimizer, lr, weight_decay, batch, epochs, seed, dataset, epochs_done}`.
    pub fn settings(&self) -> Result<JsValue, JsError> {
        let state = borrow(&self.state)?;
        let mut settings = state.settings.json();
        settings["epochs_done"] = json!(state.epochs_before + state.history.epochs);
        js::object(&settings)
    }

    /// The model's outputs for one sample of `inputs` values, computed on the GPU.
    pub fn predict(&self, pixels: Vec<f32>) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut state = borrow(&state)?;
            let outputs = state.predict(&pixels).await.map_err(js::error)?;
            Ok(js_sys::Float32Array::from(&outputs[..]).into())
        })
    }

    /// The model file `train --save` would write now: safetensors with the CLI's tensor names
    /// and metadata.
    #[wasm_bindgen(js_name = saveModel)]
    pub fn save_model(&self) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut state = borrow(&state)?;
            let mlp = state.model().await.map_err(js::error)?;
            let info = CheckpointInfo {
                epochs: state.epochs_before + state.history.epochs,
                extra: state.settings.recorded(),
            };
            let bytes = checkpoint::to_bytes(&mlp, &info).map_err(js::error)?;
            Ok(js_sys::Uint8Array::from(&bytes[..]).into())
        })
    }
}

/// Deforms `trainer`'s training images as `settings` ask, noting their image shape for the
/// model file.
fn deform_with(
    trainer: &mut GpuTrainer,
    settings: &mut Settings,
    train: &wgpu_mlp::Dataset,
) -> Result<(), Error> {
    if let Some(augmentation) = &settings.augmentation {
        trainer.set_augmentation(augmentation)?;
        settings.image_shape = train.image_shape;
    }
    Ok(())
}

impl Session {
    fn from_state(state: State) -> Session {
        Session {
            state: Rc::new(RefCell::new(state)),
        }
    }
}

/// The session's state, or an error if another operation holds it.
fn borrow(state: &Rc<RefCell<State>>) -> Result<RefMut<'_, State>, JsError> {
    state.try_borrow_mut().map_err(|_| {
        JsError::new(
            "the session is busy with another operation (a session runs one at a time: await \
             each promise before the next call)",
        )
    })
}

/// A JS value as JSON: `undefined` and `null` are `null`.
fn json_of(value: &JsValue) -> Result<Value, JsError> {
    if value.is_undefined() || value.is_null() {
        return Ok(Value::Null);
    }
    let text = js_sys::JSON::stringify(value)
        .ok()
        .and_then(|t| t.as_string())
        .ok_or_else(|| JsError::new("invalid settings: not representable as JSON"))?;
    serde_json::from_str(&text).map_err(js::error)
}

impl State {
    /// The model's current parameters.
    async fn model(&mut self) -> Result<Mlp, Error> {
        match (&mut self.trainer, &mut self.predictor) {
            (Some(trainer), _) => trainer.network().to_mlp_async().await,
            (None, Some((predictor, _))) => predictor.to_mlp_async().await,
            (None, None) => Ok(self.settings.mlp.clone()),
        }
    }

    async fn train_epoch(&mut self, on_progress: Option<js_sys::Function>) -> Result<Value, Error> {
        let trainer = self.trainer.as_mut().ok_or_else(|| Error::Invalid {
            what: "training".into(),
            why: "this session holds a loaded model and no data (call setData first)".into(),
        })?;
        let report = trainer
            .train_epoch_async(&mut |p| {
                if let Some(f) = &on_progress {
                    let (samples, total) = (p.samples as f64, p.total as f64);
                    let loss = f64::from(p.running_loss);
                    let _ = f.call3(&JsValue::NULL, &samples.into(), &total.into(), &loss.into());
                }
            })
            .await?;
        let evaluation = trainer.evaluate_async(Split::Test).await?;
        let history = &mut self.history;
        history.epochs += 1;
        history.samples += report.samples;
        history.train_seconds += report.seconds;
        history.train_loss = Some(report.train_loss);
        let line = json!({
            "epoch": self.epochs_before + history.epochs,
            "train_loss": report.train_loss,
            "test_loss": evaluation.loss,
            "test_accuracy": evaluation.accuracy(),
            "samples_per_s": report.samples_per_second(),
            "seconds": report.seconds,
        });
        history.evaluation = Some(evaluation);
        Ok(line)
    }

    /// The summary line (see [`Session::summary`]).
    fn summary(&self, adapter: Option<String>) -> Value {
        let history = &self.history;
        let evaluation = history.evaluation.as_ref();
        json!({
            "test_accuracy": evaluation.and_then(|e| e.accuracy()),
            "test_loss": evaluation.map(|e| e.loss),
            "train_loss": history.train_loss,
            "epochs": self.epochs_before + history.epochs,
            "seconds": self.created.elapsed().as_secs_f64(),
            "samples_per_s": history.samples as f64 / history.train_seconds.max(1e-9),
            "adapter": adapter.unwrap_or_else(|| self.gpu.adapter_description()),
            "dataset": self.settings.dataset,
            "interrupted": false,
            "profile": null,
        })
    }

    /// The outputs for one sample, from the one-sample copy of the model, brought up to date on
    /// the GPU first if the trainer has trained since.
    async fn predict(&mut self, pixels: &[f32]) -> Result<Vec<f32>, Error> {
        let inputs = self.settings.mlp.inputs();
        let x = ArrayView2::from_shape((1, inputs), pixels).map_err(|_| Error::Shape {
            what: "pixels".into(),
            actual: vec![pixels.len()],
            expected: format!("[{inputs}] (the model's inputs)"),
        })?;
        let epochs = self.history.epochs;
        let made = match self.predictor.take() {
            Some(made) => made,
            None => (
                GpuMlp::with_batch_capacity(&self.gpu, &self.settings.mlp, 1)?,
                usize::MAX,
            ),
        };
        let (predictor, from_epoch) = self.predictor.insert(made);
        if let Some(trainer) = self.trainer.as_mut()
            && *from_epoch != epochs
        {
            predictor.copy_parameters_from(trainer.network())?;
            *from_epoch = epochs;
        }
        Ok(predictor
            .forward_async(x)
            .await?
            .into_raw_vec_and_offset()
            .0)
    }
}
