//! `Session`: a model on the GPU, with a training run over data resident there (the library's
//! [`Run`], as the CLI's `train` drives it), or a loaded model that only predicts until given
//! data.
//!
//! The session's state sits behind a `RefCell`, borrowed for the whole of an operation: the
//! page's promises may interleave, and an operation that finds the session busy is refused
//! rather than run on a half-trained model.

use std::cell::{RefCell, RefMut};
use std::path::Path;
use std::rc::Rc;

use serde_json::{Value, json};
use wasm_bindgen::prelude::*;
use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::ndarray::ArrayView2;
use wgpu_mlp::run::{Resume, Run};
use wgpu_mlp::{Error, Gpu, GpuMlp, Mlp};

use crate::data::Data;
use crate::js;
use crate::settings;

/// How saved models are named in errors: the page reads them from bytes, not a path.
const MODEL_NAME: &str = "model.safetensors";

/// A model being trained or used (see `Session` in `web/API.md`).
#[wasm_bindgen]
pub struct Session {
    state: Rc<RefCell<State>>,
}

/// What a session's model is.
enum Model {
    /// Trained by a run, on its data.
    Training(Box<Run>),
    /// Loaded from a file, with what the file records, and no data yet.
    Loaded(Mlp, CheckpointInfo),
}

/// Everything a session holds.
struct State {
    gpu: Gpu,
    model: Model,
    /// A one-sample copy of the model for predictions, made on the first one, and the epoch
    /// count its parameters are from.
    predictor: Option<(GpuMlp, usize)>,
}

// Each operation holds the state's borrow across its awaits on purpose: that is what makes a
// second operation find the session busy (`borrow` fails with an error, never a panic).
#[allow(clippy::await_holding_refcell_ref)]
#[wasm_bindgen]
impl Session {
    /// A new model as `settings` describe it, with `data` uploaded to `gpu`.
    pub fn create(gpu: &crate::Gpu, data: &Data, settings: JsValue) -> Result<Session, JsError> {
        let sets = (data.train.clone(), data.test.clone());
        let spec = settings::spec(&json_of(&settings)?, sets, None).map_err(js::error)?;
        let run = Run::with_gpu(spec, Some(&gpu.gpu)).map_err(js::error)?;
        Ok(Session::from_state(State {
            gpu: gpu.gpu.clone(),
            model: Model::Training(Box::new(run)),
            predictor: None,
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
            let predictor = GpuMlp::with_batch_capacity(&gpu, &mlp, 1).map_err(js::error)?;
            Ok(Session::from_state(State {
                gpu,
                model: Model::Loaded(mlp, info),
                predictor: Some((predictor, 0)),
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
        let sets = (data.train.clone(), data.test.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            let mut state = borrow(&state)?;
            let (mlp, info) = state.checkpoint().await.map_err(js::error)?;
            let resume = Resume::Model {
                mlp,
                info,
                optimizer: None,
            };
            let spec = settings::spec(&settings?, sets, Some(resume)).map_err(js::error)?;
            let run = Run::with_gpu(spec, Some(&state.gpu)).map_err(js::error)?;
            state.model = Model::Training(Box::new(run));
            state.predictor = None;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// One epoch, then an evaluation on the test set: the CLI's `--metrics` record, `{epoch,
    /// train_loss, lr, test_loss, test_accuracy, samples_per_s, seconds}`.
    /// `on_progress(samples, total, runningLoss)` is called at the trainer's own progress
    /// read-backs.
    #[wasm_bindgen(js_name = trainEpoch)]
    pub fn train_epoch(&self, on_progress: Option<js_sys::Function>) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut state = borrow(&state)?;
            let run = state.run().map_err(js::error)?;
            let outcome = run
                .train_epoch_async(&mut |p| {
                    if let Some(f) = &on_progress {
                        let (samples, total) = (p.samples as f64, p.total as f64);
                        let loss = f64::from(p.running_loss);
                        let _ =
                            f.call3(&JsValue::NULL, &samples.into(), &total.into(), &loss.into());
                    }
                })
                .await
                .map_err(js::error)?;
            Ok(js::object(&outcome.json())?)
        })
    }

    /// The CLI's `train --json` line for the epochs so far; `adapter` names the device, by
    /// default as the CLI does.
    pub fn summary(&self, adapter: Option<String>) -> Result<String, JsError> {
        let mut state = borrow(&self.state)?;
        let mut summary = state.run().map_err(js::error)?.summary();
        if let Some(adapter) = adapter {
            summary.adapter = adapter;
        }
        Ok(summary.to_json().to_string())
    }

    /// The settings in force, every default filled in, and the epochs done: `{layers, hidden,
    /// output, loss, optimizer, lr, weight_decay, batch, epochs, seed, dataset, epochs_done}`.
    pub fn settings(&self) -> Result<JsValue, JsError> {
        let state = borrow(&self.state)?;
        let (mut settings, epochs_done) = match &state.model {
            Model::Training(run) => (
                settings::json(run.settings(), &run.data().source.name()),
                run.epochs_done(),
            ),
            Model::Loaded(mlp, info) => (settings::recorded_json(mlp, info), info.epochs),
        };
        settings["epochs_done"] = json!(epochs_done);
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
            let (mlp, info) = state.checkpoint().await.map_err(js::error)?;
            let bytes = checkpoint::to_bytes(&mlp, &info).map_err(js::error)?;
            Ok(js_sys::Uint8Array::from(&bytes[..]).into())
        })
    }
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
    /// The run training the model, or an error for a loaded model without data.
    fn run(&mut self) -> Result<&mut Run, Error> {
        match &mut self.model {
            Model::Training(run) => Ok(run),
            Model::Loaded(..) => Err(Error::Invalid {
                what: "training".into(),
                why: "this session holds a loaded model and no data (call setData first)".into(),
            }),
        }
    }

    /// The model's current parameters and what its file records.
    async fn checkpoint(&mut self) -> Result<(Mlp, CheckpointInfo), Error> {
        match &mut self.model {
            Model::Training(run) => Ok((run.mlp_async().await?, run.checkpoint_info())),
            Model::Loaded(mlp, info) => Ok((mlp.clone(), info.clone())),
        }
    }

    /// The outputs for one sample, from the one-sample copy of the model, brought up to date on
    /// the GPU first if the run has trained since.
    async fn predict(&mut self, pixels: &[f32]) -> Result<Vec<f32>, Error> {
        let (mlp, epochs) = match &self.model {
            Model::Training(run) => (&run.settings().mlp, run.epochs_done()),
            Model::Loaded(mlp, info) => (mlp, info.epochs),
        };
        let inputs = mlp.inputs();
        let x = ArrayView2::from_shape((1, inputs), pixels).map_err(|_| Error::Shape {
            what: "pixels".into(),
            actual: vec![pixels.len()],
            expected: format!("[{inputs}] (the model's inputs)"),
        })?;
        let made = match self.predictor.take() {
            Some(made) => made,
            None => (GpuMlp::with_batch_capacity(&self.gpu, mlp, 1)?, usize::MAX),
        };
        let (predictor, from_epoch) = self.predictor.insert(made);
        if let Model::Training(run) = &mut self.model
            && *from_epoch != epochs
            && let Some(network) = run.gpu_network()
        {
            predictor.copy_parameters_from(network)?;
            *from_epoch = epochs;
        }
        Ok(predictor
            .forward_async(x)
            .await?
            .into_raw_vec_and_offset()
            .0)
    }
}
