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
    },
    /// `c = acc · g′(activations[row, col])`, `g′` written in terms of the activation's output:
    /// the backward pass through the previous layer's activation.
    TimesDerivative {
        /// The previous layer's outputs `g(z)`, `(m, n)`.
        activations: &'a wgpu::Buffer,
        /// `g`.
        activation: Activation,
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
        let (op, activation) = match *self {
            Epilogue::None => (EpilogueCode::NONE, Activation::Identity),
            Epilogue::BiasActivation { activation, .. } => {
                (EpilogueCode::BIAS_ACTIVATION, activation)
            }
            Epilogue::TimesDerivative { activation, .. } => {
                (EpilogueCode::TIMES_DERIVATIVE, activation)
            }
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
        })
    }
}

/// An epilogue as the parameter block carries it: what a reshaped dispatch keeps from its
/// binding, since the buffers it reads are bound once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EpilogueCode {
    /// `MatmulParams::epilogue` in matmul.wgsl.
    pub op: u32,
    /// The activation's `wgsl_code`.
    pub activation: u32,
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
