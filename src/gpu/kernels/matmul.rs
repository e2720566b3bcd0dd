//! `shaders/matmul.wgsl`: `C = op(A) · op(B)` with optional transposes and a fused epilogue.
//!
//! Shapes: `op(A): (m, k)`, `op(B): (k, n)`, `C: (m, n)`, all row-major. With `transpose_a` the
//! buffer `A` holds `(k, m)`; with `transpose_b` the buffer `B` holds `(n, k)`.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, MatmulStrategy, Shader, bound_sizes};
use crate::model::Activation;

/// Bindings after the uniform: a, b, bias, aux, c.
const STORAGE: &[Access] = &[
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
];

/// What happens to each output element before it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// `c = acc`.
    None,
    /// `c = g(acc + bias[col])`: the forward pass of a dense layer (softmax excluded).
    BiasActivation(Activation),
    /// `c = acc · g′(aux[row, col])`, `g′` written in terms of the activation's output: the
    /// backward pass through the previous layer's activation.
    TimesDerivative(Activation),
}

/// `m, n, k` as the shader's `MatmulParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

/// One variant of the matmul kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Matmul {
    /// Buffer `A` holds `op(A)ᵀ`, i.e. `(k, m)`.
    pub transpose_a: bool,
    /// Buffer `B` holds `op(B)ᵀ`, i.e. `(n, k)`.
    pub transpose_b: bool,
    /// The fused epilogue.
    pub epilogue: Epilogue,
    /// Which kernel; `None` uses the adapter's choice ([`crate::gpu::kernels::KernelConfig`]).
    pub strategy: Option<MatmulStrategy>,
}

/// Output shape and depth of one product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    /// Rows of `C`.
    pub m: usize,
    /// Columns of `C`.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
}

impl Matmul {
    /// `A · B`.
    pub const NN: Matmul = Matmul {
        transpose_a: false,
        transpose_b: false,
        epilogue: Epilogue::None,
        strategy: None,
    };
    /// `A · Bᵀ`.
    pub const NT: Matmul = Matmul {
        transpose_a: false,
        transpose_b: true,
        epilogue: Epilogue::None,
        strategy: None,
    };
    /// `Aᵀ · B`.
    pub const TN: Matmul = Matmul {
        transpose_a: true,
        transpose_b: false,
        epilogue: Epilogue::None,
        strategy: None,
    };

    /// The same variant with `epilogue`.
    pub fn with_epilogue(self, epilogue: Epilogue) -> Matmul {
        Matmul { epilogue, ..self }
    }

    /// The same variant forced onto `strategy`.
    pub fn with_strategy(self, strategy: MatmulStrategy) -> Matmul {
        Matmul {
            strategy: Some(strategy),
            ..self
        }
    }

    fn spec(&self, gpu: &Gpu) -> Result<PipelineSpec> {
        let (epilogue, activation) = match self.epilogue {
            Epilogue::None => (0, Activation::Identity),
            Epilogue::BiasActivation(act) => (1, act),
            Epilogue::TimesDerivative(act) => (2, act),
        };
        if activation == Activation::Softmax {
            return Err(Error::invalid(
                "matmul epilogue",
                "softmax is row-wise and cannot be fused into a matmul",
            ));
        }
        let entry_point = match self.strategy.unwrap_or(gpu.config().matmul) {
            MatmulStrategy::Tiled => "matmul_tiled",
            MatmulStrategy::RegisterBlocked => "matmul_register",
        };
        Ok(PipelineSpec {
            shader: Shader::Matmul,
            entry_point,
            constants: vec![
                ("TRANSPOSE_A", self.transpose_a as u32 as f64),
                ("TRANSPOSE_B", self.transpose_b as u32 as f64),
                ("EPILOGUE", epilogue as f64),
                ("ACTIVATION", activation.wgsl_code() as f64),
            ],
            storage: STORAGE,
        })
    }

    fn layout(&self, gpu: &Gpu, shape: MatmulShape) -> Result<(MatmulParams, [u32; 3])> {
        let MatmulShape { m, n, k } = shape;
        if m == 0 || n == 0 || k == 0 {
            return Err(Error::invalid(
                "matmul shape",
                format!("m={m}, n={n}, k={k}: every dimension must be at least 1"),
            ));
        }
        let too_big = |v: usize| u32::try_from(v).is_err();
        if too_big(m) || too_big(n) || too_big(k) || too_big(m * n) {
            return Err(Error::invalid(
                "matmul shape",
                format!("m={m}, n={n}, k={k} exceeds 32-bit indexing"),
            ));
        }
        let config = gpu.config();
        let per_group = (config.matmul_workgroup_side * config.matmul_block) as usize;
        let groups = [
            n.div_ceil(per_group) as u32,
            m.div_ceil(per_group) as u32,
            1,
        ];
        if groups[0] > config.max_workgroups_per_dimension
            || groups[1] > config.max_workgroups_per_dimension
        {
            return Err(Error::invalid(
                "matmul shape",
                format!(
                    "m={m}, n={n} needs {groups:?} workgroups; the adapter allows {} per dimension",
                    config.max_workgroups_per_dimension
                ),
            ));
        }
        Ok((
            MatmulParams {
                m: m as u32,
                n: n as u32,
                k: k as u32,
                _pad: 0,
            },
            groups,
        ))
    }

    /// Binds `a`, `b` and `c` (and `bias` or `aux` for the epilogues that read them; pass any
    /// buffer otherwise) to this variant for `shape`.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        &self,
        gpu: &Gpu,
        label: &str,
        shape: MatmulShape,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        aux: &wgpu::Buffer,
        c: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let (params, groups) = self.layout(gpu, shape)?;
        self.check_buffers(shape, [a, b, bias, aux, c].map(|buffer| buffer.size()))?;
        Dispatch::new(
            gpu,
            label,
            &self.spec(gpu)?,
            &params,
            &[a, b, bias, aux, c],
            groups,
        )
    }

    /// Points an existing dispatch of this variant at a new `shape` (same buffers).
    pub fn reshape(&self, gpu: &Gpu, dispatch: &mut Dispatch, shape: MatmulShape) -> Result<()> {
        let (params, groups) = self.layout(gpu, shape)?;
        self.check_buffers(shape, bound_sizes(dispatch, "Matmul")?)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }

    /// The kernel runs without wgpu's bounds checks (see `Shader::guards_its_indices`), so every
    /// operand must hold what `shape` reads or writes: refuse anything smaller.
    fn check_buffers(&self, shape: MatmulShape, [a, b, bias, aux, c]: [u64; 5]) -> Result<()> {
        let MatmulShape { m, n, k } = shape;
        let bytes = |values: usize| values as u64 * 4;
        let mut needs = vec![
            ("a", a, bytes(m * k)),
            ("b", b, bytes(k * n)),
            ("c", c, bytes(m * n)),
        ];
        match self.epilogue {
            Epilogue::None => {}
            Epilogue::BiasActivation(_) => needs.push(("bias", bias, bytes(n))),
            Epilogue::TimesDerivative(_) => needs.push(("aux", aux, bytes(m * n))),
        }
        for (what, size, needed) in needs {
            if size < needed {
                return Err(Error::invalid(
                    "matmul operand",
                    format!("{what} holds {size} bytes but m={m}, n={n}, k={k} needs {needed}"),
                ));
            }
        }
        Ok(())
    }
}
