//! `shaders/optim.wgsl`: parameter updates, one dispatch per layer for its weight and bias.
//!
//! Shapes: `weight, dweight: (out, in)`, `bias, dbias: (out)`.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, Shader};

/// Bindings after the uniform: weight, dweight, bias, dbias.
const STORAGE: &[Access] = &[Access::ReadWrite, Access::Read, Access::ReadWrite, Access::Read];

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct SgdParams {
    weight_len: u32,
    bias_len: u32,
    learning_rate: f32,
    _pad: u32,
}

/// Plain SGD: `p ← p − lr·dp`.
#[derive(Clone, Copy, Debug)]
pub struct Sgd;

impl Sgd {
    fn layout(gpu: &Gpu, weight_len: usize, bias_len: usize, learning_rate: f32) -> Result<(SgdParams, [u32; 3])> {
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(Error::invalid("learning rate", format!("{learning_rate} (must be a finite number > 0)")));
        }
        let total = weight_len + bias_len;
        if u32::try_from(total).is_err() {
            return Err(Error::invalid("sgd size", format!("{total} parameters exceed 32-bit indexing")));
        }
        let config = gpu.config();
        let params = SgdParams { weight_len: weight_len as u32, bias_len: bias_len as u32, learning_rate, _pad: 0 };
        Ok((params, config.grid_1d(total, config.workgroup_size)))
    }

    /// Binds one layer's parameters (`weight_len` weights, `bias_len` biases) and gradients.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        gpu: &Gpu,
        label: &str,
        learning_rate: f32,
        weight: &wgpu::Buffer,
        dweight: &wgpu::Buffer,
        weight_len: usize,
        bias: &wgpu::Buffer,
        dbias: &wgpu::Buffer,
        bias_len: usize,
    ) -> Result<Dispatch> {
        let (params, groups) = Self::layout(gpu, weight_len, bias_len, learning_rate)?;
        let spec = PipelineSpec { shader: Shader::Optim, entry_point: "sgd", constants: vec![], storage: STORAGE };
        Dispatch::new(gpu, label, &spec, &params, &[weight, dweight, bias, dbias], groups)
    }

    /// Changes the learning rate of a bound update.
    pub fn set_learning_rate(gpu: &Gpu, dispatch: &mut Dispatch, weight_len: usize, bias_len: usize, learning_rate: f32) -> Result<()> {
        let (params, groups) = Self::layout(gpu, weight_len, bias_len, learning_rate)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}
