//! [`CpuTrainer`]: the same schedule as the GPU trainer, on the ndarray reference.

use web_time::Instant;

use ndarray::Array2;

use super::{
    EpochReport, Evaluation, PROGRESS_INTERVAL, Progress, StopFlag, TrainConfig, Trainer, argmax,
    batch_sizes, check_dataset, diverged, epoch_order, no_test_set,
};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Mlp;
use crate::optim::OptimizerState;

/// Trains an [`Mlp`] with the CPU reference.
pub struct CpuTrainer<'a> {
    mlp: Mlp,
    state: OptimizerState,
    config: TrainConfig,
    epochs_done: usize,
    train: &'a Dataset,
    test: Option<&'a Dataset>,
    /// Raised to stop after the step in progress.
    stop: StopFlag,
}

impl<'a> CpuTrainer<'a> {
    /// A trainer for `mlp` on `train`, evaluating on `test`.
    pub fn new(
        mlp: &Mlp,
        train: &'a Dataset,
        test: Option<&'a Dataset>,
        config: TrainConfig,
    ) -> Result<Self> {
        config.validate()?;
        mlp.validate()?;
        check_dataset(mlp.inputs(), mlp.outputs(), train, "training set")?;
        if let Some(test) = test {
            check_dataset(mlp.inputs(), mlp.outputs(), test, "test set")?;
        }
        Ok(CpuTrainer {
            state: OptimizerState::new(mlp),
            mlp: mlp.clone(),
            config,
            epochs_done: 0,
            train,
            test,
            stop: StopFlag::default(),
        })
    }
}

/// Evaluates `mlp` on `dataset` with the CPU reference, `batch_size` samples at a time.
pub fn evaluate_cpu(mlp: &Mlp, dataset: &Dataset, batch_size: usize) -> Result<Evaluation> {
    check_dataset(mlp.inputs(), mlp.outputs(), dataset, "data set")?;
    let classes = dataset.outputs();
    let labels = dataset.targets.classes().map(|(labels, _)| labels);
    let mut confusion = Array2::<u64>::zeros((classes, classes));
    let (mut loss_sum, mut correct, mut start) = (0.0f64, 0usize, 0usize);
    for rows in batch_sizes(dataset.len(), batch_size.max(1)) {
        let indices: Vec<usize> = (start..start + rows).collect();
        let (x, y) = dataset.batch(&indices);
        let (outputs, loss) = mlp.forward_and_loss(x.view(), y.view())?;
        loss_sum += f64::from(loss) * rows as f64;
        for (row, &sample) in indices.iter().enumerate().filter(|_| labels.is_some()) {
            let predicted = argmax(outputs.row(row).iter().copied());
            let truth = labels.as_ref().map_or(0, |l| l[sample] as usize);
            confusion[[truth, predicted]] += 1;
            correct += usize::from(predicted == truth);
        }
        start += rows;
    }
    let len = dataset.len();
    Ok(Evaluation {
        loss: (loss_sum / len as f64) as f32,
        accuracy: correct as f64 / len as f64,
        confusion,
        samples: len,
    })
}

impl Trainer for CpuTrainer<'_> {
    fn train_epoch(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<EpochReport> {
        let start = Instant::now();
        let len = self.train.len();
        let mut order: Vec<u32> = (0..len as u32).collect();
        epoch_order(self.config.seed, self.epochs_done + 1, &mut order);
        let (mut samples, mut loss_sum) = (0, 0.0f64);
        let mut last_report = Instant::now();
        let steps = len.div_ceil(self.config.batch_size);
        for (step, rows) in batch_sizes(len, self.config.batch_size).enumerate() {
            self.stop.check(self.epochs_done + 1, samples)?;
            let indices: Vec<usize> = order[samples..samples + rows]
                .iter()
                .map(|&i| i as usize)
                .collect();
            let (x, y) = self.train.batch(&indices);
            let (loss, grads) = self.mlp.loss_and_gradients(x.view(), y.view())?;
            if !loss.is_finite() {
                return Err(diverged(
                    self.epochs_done + 1,
                    step + 1,
                    steps,
                    &self.config.optimizer,
                ));
            }
            self.state
                .apply(&self.config.optimizer, &mut self.mlp, &grads)?;
            loss_sum += f64::from(loss) * rows as f64;
            samples += rows;
            if last_report.elapsed() >= PROGRESS_INTERVAL || samples == len {
                progress(Progress {
                    samples,
                    total: len,
                    running_loss: (loss_sum / samples as f64) as f32,
                });
                last_report = Instant::now();
            }
        }
        self.epochs_done += 1;
        let train_loss = (loss_sum / len as f64) as f32;
        Ok(EpochReport::finished(
            self.epochs_done,
            train_loss,
            len,
            start,
        ))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let test = self.test.ok_or_else(no_test_set)?;
        evaluate_cpu(&self.mlp, test, self.config.batch_size)
    }

    fn stop_on(&mut self, flag: StopFlag) {
        self.stop = flag;
    }

    fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    fn set_epochs_done(&mut self, epochs: usize) {
        self.epochs_done = epochs;
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState> {
        Ok(self.state.clone())
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        let shapes = |s: &OptimizerState| -> Vec<(usize, usize)> {
            s.moment1.iter().map(|(w, b)| (w.len(), b.len())).collect()
        };
        if shapes(state) != shapes(&self.state) || state.moment2.len() != self.state.moment2.len() {
            return Err(Error::Model(
                "the optimizer state does not match the model's layers".into(),
            ));
        }
        self.state = state.clone();
        Ok(())
    }

    fn to_mlp(&mut self) -> Result<Mlp> {
        Ok(self.mlp.clone())
    }
}
