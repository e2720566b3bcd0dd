//! `shaders/loss.wgsl`: the output layer's activation, per-row loss and `δ = ∂L/∂z` in one pass.
//!
//! Shapes: `z, y, a, delta: (rows, cols)`, `row_loss: (rows)`; `rows` is the batch, `cols` the
//! output width. The per-row losses are already divided by the mean's denominator, so their sum
//! ([`crate::gpu::kernels::reduce::Sum`]) is the batch loss. Cross-entropy's label smoothing is
//! a pipeline constant, so a kernel without it is the same pipeline as before.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, Shader};
use crate::model::{Activation, Loss};

use Access::{Read, ReadWrite, Unused};

/// Bindings after the uniform: z, y, a, delta, row_loss.
pub(crate) const STORAGE: &[Access] = &[Read, Read, ReadWrite, ReadWrite, ReadWrite];

/// `output_forward`'s: z, a.
const FORWARD_STORAGE: &[Access] = &[Read, Unused, ReadWrite, Unused, Unused];

/// `output_delta`'s: z, y, a, delta; `output_row_loss`'s: z, y, a (read back), row_loss.
const DELTA_STORAGE: &[Access] = &[Read, Read, ReadWrite, ReadWrite, Unused];
const ROW_LOSS_STORAGE: &[Access] = &[Read, Read, ReadWrite, Unused, ReadWrite];

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct OutputParams {
    rows: u32,
    cols: u32,
    _pad: [u32; 2],
}

/// Which half of the output kernel to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    /// `a = g(z)` only (inference); `y`, `delta` and `row_loss` are bound but untouched.
    Forward,
    /// `a`, the per-row loss and `δ` (training).
    Loss,
}

/// The output-layer kernel for one activation and loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputLayer {
    /// The output activation (softmax included).
    pub activation: Activation,
    /// The loss.
    pub loss: Loss,
    /// Forward only, or with loss and δ.
    pub mode: OutputMode,
    /// Cross-entropy's ε: its targets become `(1 − ε)·y + ε/cols` (0 for none).
    pub label_smoothing: f32,
}

impl OutputLayer {
    /// The pipeline of `entry_point` with `storage`, under this layer's constants.
    fn spec(&self, entry_point: &'static str, storage: &'static [Access]) -> PipelineSpec {
        let mut constants = vec![
            ("LOSS", self.loss.wgsl_code() as f64),
            ("ACTIVATION", self.activation.wgsl_code() as f64),
        ];
        // Named only when set, so that the unsmoothed kernel stays the pipeline it always was.
        if self.label_smoothing != 0.0 {
            constants.push(("LABEL_SMOOTHING", f64::from(self.label_smoothing)));
        }
        PipelineSpec {
            shader: Shader::Loss,
            entry_point,
            constants,
            storage,
        }
    }

    /// The pipelines this layer runs on `gpu`: `output_loss` in one pass where the device
    /// binds its five storage buffers, else in two (`output_delta`, `output_row_loss`).
    fn specs(&self, gpu: &Gpu) -> Vec<PipelineSpec> {
        match self.mode {
            OutputMode::Forward => vec![self.spec("output_forward", FORWARD_STORAGE)],
            OutputMode::Loss if gpu.config().binds(STORAGE) => {
                vec![self.spec("output_loss", STORAGE)]
            }
            OutputMode::Loss => vec![
                self.spec("output_delta", DELTA_STORAGE),
                self.spec("output_row_loss", ROW_LOSS_STORAGE),
            ],
        }
    }

    fn layout(gpu: &Gpu, rows: usize, cols: usize) -> Result<(OutputParams, [u32; 3])> {
        if rows == 0 || cols == 0 || u32::try_from(rows * cols).is_err() {
            return Err(Error::invalid(
                "output layer shape",
                format!("rows={rows}, cols={cols}"),
            ));
        }
        let config = gpu.config();
        Ok((
            OutputParams {
                rows: rows as u32,
                cols: cols as u32,
                _pad: [0; 2],
            },
            config.grid_1d(rows, config.workgroup_size),
        ))
    }

    /// Binds the buffers for a `(rows, cols)` output.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        gpu: &Gpu,
        label: &str,
        rows: usize,
        cols: usize,
        z: &wgpu::Buffer,
        y: &wgpu::Buffer,
        a: &wgpu::Buffer,
        delta: &wgpu::Buffer,
        row_loss: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let (params, groups) = Self::layout(gpu, rows, cols)?;
        let buffers = [z, y, a, delta, row_loss];
        let specs = self.specs(gpu);
        let dispatch = Dispatch::new(gpu, label, &specs[0], &params, &buffers, groups)?;
        match specs.get(1) {
            Some(second) => dispatch.then(gpu, second, &buffers, groups),
            None => Ok(dispatch),
        }
    }

    /// Points the dispatch at a new number of rows.
    pub fn reshape(gpu: &Gpu, dispatch: &mut Dispatch, rows: usize, cols: usize) -> Result<()> {
        let (params, groups) = Self::layout(gpu, rows, cols)?;
        dispatch.update(gpu, &params, groups);
        dispatch.update_follow_up(groups);
        Ok(())
    }
}
