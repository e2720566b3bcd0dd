//! The library's front door ([`wgpu_mlp::Run`]) end to end: a scheduled run resumed mid-way
//! equals the uninterrupted one, a resumed run holds out the fraction its file records, a run
//! that diverges names the first step whose loss was not finite, in-memory arrays train and
//! predict in their own units, a model kept after its run saves the files the run saves, and the summary's JSON has every key the CLI's `--json` has.

mod common;

use std::f64::consts::PI;
use std::path::Path;

use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::run::{DataOptions, ScheduleName};
use wgpu_mlp::{
    Activation, CheckpointInfo, Data, Device, Error, Loss, Mlp, Optimizer, OptimizerConfig, Resume,
    Run, TrainSpec, checkpoint,
};

/// 784-8-10 on 128 synthetic training and 32 test samples, batches of 32, on the CPU reference
/// (which is deterministic, so that a resumed run can equal an uninterrupted one exactly).
fn small(epochs: usize) -> TrainSpec {
    TrainSpec {
        data_options: DataOptions {
            train_size: Some(128),
            test_size: Some(32),
            ..DataOptions::default()
        },
        hidden_sizes: Some(vec![8]),
        batch: Some(32),
        epochs: Some(epochs),
        lr: Some(0.01),
        seed: Some(3),
        device: Device::Cpu,
        ..TrainSpec::default()
    }
}

/// The trained model of `spec` after all its epochs, and the learning rate of each.
fn trained(spec: TrainSpec) -> (Mlp, Vec<f32>) {
    let mut run = Run::new(spec).unwrap();
    let mut rates = Vec::new();
    while !run.is_done() {
        rates.push(run.train_epoch().unwrap().learning_rate);
    }
    (run.mlp().unwrap(), rates)
}

/// The first `epochs` epochs of `spec`'s run, saved to `path`: a run stopped mid-way.
fn stopped_after(epochs: usize, spec: TrainSpec, path: &Path) {
    let mut run = Run::new(spec).unwrap();
    run.save_every_epoch(path.to_path_buf(), false);
    for _ in 0..epochs {
        run.train_epoch().unwrap();
    }
}

#[test]
fn a_scheduled_run_resumed_mid_way_equals_the_uninterrupted_one() {
    let dir = common::scratch_dir("front_door", "schedule");
    let model = dir.join("model.safetensors");
    let cosine = |epochs| TrainSpec {
        lr_schedule: Some(ScheduleName::Cosine),
        ..small(epochs)
    };
    let (whole, whole_rates) = trained(cosine(4));
    stopped_after(2, cosine(4), &model);
    let resumed = TrainSpec {
        resume: Some(Resume::File(model)),
        hidden_sizes: None,
        ..cosine(2)
    };
    let (continued, continued_rates) = trained(resumed);
    // Half a cosine over all 4 epochs, from 0.01: epoch e trains at 0.01·(1 + cos(π(e−1)/4))/2.
    let expected: Vec<f32> = (0..4)
        .map(|t| (0.01 * (1.0 + (PI * f64::from(t) / 4.0).cos()) / 2.0) as f32)
        .collect();
    assert_eq!(whole_rates, expected);
    assert_eq!(continued_rates, expected[2..]);
    assert_eq!(continued, whole, "the resumed run's weights differ");
}

#[test]
fn a_resumed_run_holds_out_the_fraction_its_file_records() {
    let dir = common::scratch_dir("front_door", "validation");
    let model = dir.join("model.safetensors");
    let held_out = |epochs| TrainSpec {
        data_options: DataOptions {
            validation: Some(0.25),
            ..small(epochs).data_options
        },
        ..small(epochs)
    };
    let (whole, _) = trained(held_out(2));
    stopped_after(1, held_out(2), &model);
    let info = checkpoint::load(&model).unwrap().1;
    assert_eq!(info.extra["validation"], "0.25");
    // The resumed spec names no fraction: the file's is used, on the same seeded split.
    let resumed = TrainSpec {
        resume: Some(Resume::File(model)),
        hidden_sizes: None,
        ..small(1)
    };
    let run = Run::new(resumed.clone()).unwrap();
    let validation = run.data().validation.as_ref().map(|v| v.len());
    assert_eq!(validation, Some(32), "a quarter of 128 is held out");
    assert_eq!(run.data().train.len(), 96);
    let (continued, _) = trained(resumed);
    assert_eq!(continued, whole, "the resumed run's weights differ");
}

#[test]
fn a_run_that_diverges_names_the_first_step_whose_loss_was_not_finite() {
    // A linear regression by SGD at a rate far past 2/λ_max: the weights grow geometrically
    // until the loss overflows at some step k, and stay non-finite after it.
    let x = common::random_matrix(256, 4, 11);
    let y = common::random_matrix(256, 1, 12);
    let spec = |device| TrainSpec {
        data: Data::values(x.clone(), y.clone()),
        data_options: DataOptions {
            validation: Some(0.0),
            normalize: Some(wgpu_mlp::Normalize::None),
            ..DataOptions::default()
        },
        hidden_sizes: Some(vec![4]),
        hidden: Some(Activation::Identity),
        optimizer: Some(Optimizer::Sgd),
        lr: Some(30.0),
        batch: Some(4),
        epochs: Some(1),
        device,
        ..TrainSpec::default()
    };
    let diverged = |device| match Run::new(spec(device)).unwrap().train_epoch() {
        Err(Error::Diverged {
            epoch, step, steps, ..
        }) => (epoch, step, steps),
        other => panic!("expected a divergence, got {other:?}"),
    };
    // The CPU reference checks every step's loss as it goes: the independent answer.
    let (epoch, step, steps) = diverged(Device::Cpu);
    assert_eq!((epoch, steps), (1, 64));
    assert!(
        step > 1 && step < steps - 1,
        "the loss must overflow mid-epoch and stay non-finite for the test to tell the first \
         step from the last; it did at step {step} of {steps}"
    );
    let gpu = diverged(Device::Gpu(common::adapter_choice()));
    assert_eq!(gpu, (epoch, step, steps), "the GPU names another step");
}

#[test]
fn arrays_train_and_predict_in_their_own_units() {
    // y = 3·x₀ − 2·x₁ + 100: a linear target far from 0, which the run standardizes and
    // `predict` maps back.
    let x = common::random_matrix(512, 2, 21);
    let y = Array2::from_shape_fn((512, 1), |(i, _)| 3.0 * x[[i, 0]] - 2.0 * x[[i, 1]] + 100.0);
    let spec = TrainSpec {
        data: Data::values(x.clone(), y.clone()),
        hidden_sizes: Some(vec![16]),
        lr: Some(0.01),
        epochs: Some(40),
        device: Device::Gpu(common::adapter_choice()),
        ..TrainSpec::default()
    };
    let mut run = Run::new(spec).unwrap();
    assert_eq!(run.data().validation.as_ref().map(|v| v.len()), Some(51));
    let summary = run.train(&mut ()).unwrap();
    assert!(
        summary.validation.as_ref().unwrap().r2.unwrap() > 0.99,
        "{summary:?}"
    );
    let predicted = run
        .predict(x.slice(wgpu_mlp::ndarray::s![..8, ..]).to_owned())
        .unwrap();
    for (p, t) in predicted.iter().zip(y.iter()) {
        assert!((p - t).abs() < 0.5, "predicted {p}, target {t}");
    }
    let keys = [
        "val_loss",
        "val_rmse",
        "val_r2",
        "train_loss",
        "epochs",
        "seconds",
        "samples_per_s",
        "adapter",
        "dataset",
        "task",
        "best_epoch",
        "stopped_early",
        "interrupted",
        "profile",
    ];
    let json = summary.to_json();
    for key in keys {
        assert!(json.get(key).is_some(), "no {key} in {json}");
    }
    assert_eq!(json["task"], "regression");
    assert_eq!(json["epochs"], 40);
}

#[test]
fn a_model_saved_with_a_default_info_is_read_with_the_documented_defaults() {
    let mlp = Mlp::new(
        &[3, 4, 2],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        5,
    )
    .unwrap();
    let dir = common::scratch_dir("front_door", "default_info");
    let path = dir.join("model.safetensors");
    checkpoint::save(&path, &mlp, &CheckpointInfo::default()).unwrap();
    let (loaded, info) = checkpoint::load(&path).unwrap();
    let recorded = wgpu_mlp::run::Recorded::of(&info, &path);
    let preparation = wgpu_mlp::run::Preparation::of(&recorded, &loaded).unwrap();
    assert_eq!(preparation.task, wgpu_mlp::Task::Classification);
    assert_eq!(preparation.inputs, wgpu_mlp::data::InputScaling::None);
    // Float features are used as they are: the outputs are the model's own.
    let x = common::random_matrix(5, 3, 1);
    let predicted = wgpu_mlp::run::predict(&loaded, &preparation, x.clone().into()).unwrap();
    assert_eq!(predicted, mlp.forward(x.view()).unwrap());
}

/// A model kept after its run (as Python's estimators keep theirs) saves to the same two files
/// the run's own save writes; a state without a recorded optimizer is refused, naming the file.
#[test]
fn a_model_kept_after_its_run_saves_the_files_the_run_saves() {
    let dir = common::scratch_dir("front_door", "save_model");
    let (by_run, kept) = (dir.join("run.safetensors"), dir.join("kept.safetensors"));
    let spec = TrainSpec {
        optimizer: Some(Optimizer::MOMENTUM),
        ..small(2)
    };
    let mut run = Run::new(spec).unwrap();
    run.train_epoch().unwrap();
    run.train_epoch().unwrap();
    run.save(&by_run).unwrap();
    let (mlp, info, state) = (
        run.mlp().unwrap(),
        run.checkpoint_info(),
        run.optimizer_state().unwrap(),
    );
    drop(run);
    wgpu_mlp::run::save_model(&kept, &mlp, &info, Some(&state)).unwrap();
    // The same tensors and metadata (the bytes may differ: metadata is a map without order).
    let (run_model, run_info) = checkpoint::load(&by_run).unwrap();
    let (kept_model, kept_info) = checkpoint::load(&kept).unwrap();
    assert_eq!((&kept_model, &kept_info), (&run_model, &run_info));
    let config = OptimizerConfig {
        optimizer: Optimizer::MOMENTUM,
        learning_rate: 0.01,
        weight_decay: 0.0,
    };
    let state_of = |model: &Path| {
        let path = checkpoint::optimizer_path(model);
        checkpoint::load_optimizer(&path, &run_model, &config, 2)
            .unwrap()
            .unwrap_or_else(|| panic!("{} holds no state for epoch 2", path.display()))
    };
    assert_eq!(state_of(&kept), state_of(&by_run));
    assert_eq!(state_of(&kept), state);
    let bare = dir.join("bare.safetensors");
    let refused = wgpu_mlp::run::save_model(&bare, &mlp, &CheckpointInfo::default(), Some(&state))
        .unwrap_err();
    assert!(
        refused.to_string().contains("bare.safetensors")
            && refused.to_string().contains("optimizer"),
        "{refused}"
    );
    assert!(!bare.exists() && !checkpoint::optimizer_path(&bare).exists());
}

/// A run can move to another thread (Python trains with the GIL released).
#[test]
fn a_run_is_send() {
    fn send<T: Send>() {}
    send::<Run>();
    send::<TrainSpec>();
}
