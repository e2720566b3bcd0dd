//! [`Epilogue`]: what a product does to each element of `C` before storing it, with the buffer
//! it reads to do so.

use crate::error::{Error, Result};
use crate::gpu::kernels::matmul::MatmulShape;
use crate::model::Activation;

/// What happens to each output element before it is stored.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// `c = acc`.
    None,
    /// `c = g(acc + bias[col])`: the forward pass of a dense layer (softmax excluded).
    BiasActivation {
        /// `(n)` values.
        bias: &'a wgpu::Buffer,
        /// `g`.
        activation: Activation,
        /// Leaky ReLU's negative slope (read by no other activation).
        leaky_slope: f32,
    },
    /// `c = acc · g′(activations[row, col])`, `g′` written in terms of what the previous layer
    /// keeps for backward ([`Activation::derivative`]): the backward pass through its activation.
    TimesDerivative {
        /// The previous layer's outputs `g(z)`, `(m, n)`, or its `z` for GELU and SiLU.
        activations: &'a wgpu::Buffer,
        /// `g`.
        activation: Activation,
        /// Leaky ReLU's negative slope (read by no other activation).
        leaky_slope: f32,
    },
}

impl<'a> Epilogue<'a> {
    /// The buffer the epilogue reads, if any.
    pub(super) fn buffer(&self) -> Option<&'a wgpu::Buffer> {
        match *self {
            Epilogue::None => None,
            Epilogue::BiasActivation { bias, .. } => Some(bias),
            Epilogue::TimesDerivative { activations, .. } => Some(activations),
        }
    }

    /// The epilogue as matmul.wgsl encodes it; softmax, being row-wise, cannot be fused.
    pub(super) fn code(&self) -> Result<EpilogueCode> {
        let (op, activation, leaky_slope) = match *self {
            Epilogue::None => (EpilogueCode::NONE, Activation::Identity, 0.0),
            Epilogue::BiasActivation {
                activation,
                leaky_slope,
                ..
            } => (EpilogueCode::BIAS_ACTIVATION, activation, leaky_slope),
            Epilogue::TimesDerivative {
                activation,
                leaky_slope,
                ..
            } => (EpilogueCode::TIMES_DERIVATIVE, activation, leaky_slope),
        };
        if activation == Activation::Softmax {
            return Err(Error::invalid(
                "matmul epilogue",
                "softmax is row-wise and cannot be fused into a matmul",
            ));
        }
        Ok(EpilogueCode {
            op,
            activation: activation.wgsl_code(),
            leaky_slope,
        })
    }
}

/// An epilogue as the parameter block carries it: what a reshaped dispatch keeps from its
/// binding, since the buffers it reads are bound once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct EpilogueCode {
    /// `MatmulParams::epilogue` in matmul.wgsl.
    pub op: u32,
    /// The activation's `wgsl_code`.
    pub activation: u32,
    /// Leaky ReLU's negative slope.
    pub leaky_slope: f32,
}

impl EpilogueCode {
    const NONE: u32 = 0;
    const BIAS_ACTIVATION: u32 = 1;
    const TIMES_DERIVATIVE: u32 = 2;

    /// The operand the epilogue reads and the values it must hold for `shape`, if it reads one.
    pub fn operand_len(self, shape: MatmulShape) -> Option<(&'static str, usize)> {
        match self.op {
            Self::BIAS_ACTIVATION => Some(("bias", shape.n)),
            Self::TIMES_DERIVATIVE => Some(("activations", shape.m * shape.n)),
            _ => None,
        }
    }
}
