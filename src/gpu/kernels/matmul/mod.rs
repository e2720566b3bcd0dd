//! `shaders/matmul.wgsl`: `C = op(A) · op(B)` with optional transposes and a fused epilogue.
//!
//! Shapes: `op(A): (m, k)`, `op(B): (k, n)`, `C: (m, n)`, all row-major. With `transpose_a` the
//! buffer `A` holds `(k, m)`; with `transpose_b` the buffer `B` holds `(n, k)`.
//!
//! This file binds and reshapes products; which tile a product takes is `tile`, how it is
//! split over k is `split`, and what it does to each element before storing it is
//! `epilogue`.

mod epilogue;
mod split;
mod tile;

pub use epilogue::Epilogue;
pub use split::{MIN_GPU_WORKGROUPS, MatmulSplit};
pub use tile::MatmulTile;

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, MatmulStrategy, Shader, bound_sizes, grid_1d_checked};
use epilogue::EpilogueCode;

/// Bindings after the uniform: a, b, the epilogue's operand (the bias or the kept activations,
/// or `a` when it reads none) and c, or for a product split over k its parts: four, the fewest
/// a device may allow per stage.
pub(crate) const STORAGE: &[Access] =
    &[Access::Read, Access::Read, Access::Read, Access::ReadWrite];

/// Bindings of `matmul_sum_parts`: the parts (at `a`), the epilogue's operand and C.
const SUM_STORAGE: &[Access] = &[
    Access::Read,
    Access::Unused,
    Access::Read,
    Access::ReadWrite,
];

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    /// `block_m · block_n`: the epilogue's trip count, at run time (see matmul.wgsl).
    block_elements: u32,
    a_row_stride: u32,
    a_k_stride: u32,
    b_k_stride: u32,
    b_col_stride: u32,
    epilogue: u32,
    activation: u32,
    transpose_a: u32,
    transpose_b: u32,
    k_chunk: u32,
    k_parts: u32,
    /// 1 when the parts go where C would (bound at `c`) for `matmul_sum_parts` to add.
    split: u32,
    /// Leaky ReLU's negative slope, for an epilogue with that activation.
    leaky_slope: f32,
}

/// One variant of the matmul kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Matmul {
    /// Buffer `A` holds `op(A)ᵀ`, i.e. `(k, m)`.
    pub transpose_a: bool,
    /// Buffer `B` holds `op(B)ᵀ`, i.e. `(n, k)`.
    pub transpose_b: bool,
    /// Which kernel; `None` uses the adapter's choice ([`crate::gpu::kernels::KernelConfig`]).
    pub strategy: Option<MatmulStrategy>,
    /// The tile; `None` picks one for the shape at bind time ([`MatmulTile::for_shape`]) and
    /// keeps it when the dispatch is reshaped.
    pub tile: Option<MatmulTile>,
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

/// The buffers of one product: its two factors and its result.
#[derive(Clone, Copy, Debug)]
pub struct MatmulOperands<'a> {
    /// `op(A)`, stored as `(m, k)`, or `(k, m)` with `transpose_a`.
    pub a: &'a wgpu::Buffer,
    /// `op(B)`, stored as `(k, n)`, or `(n, k)` with `transpose_b`.
    pub b: &'a wgpu::Buffer,
    /// `C: (m, n)`, written.
    pub c: &'a wgpu::Buffer,
}

impl Matmul {
    /// `A · B`.
    pub const NN: Matmul = Matmul {
        transpose_a: false,
        transpose_b: false,
        strategy: None,
        tile: None,
    };
    /// `A · Bᵀ`.
    pub const NT: Matmul = Matmul {
        transpose_a: false,
        transpose_b: true,
        strategy: None,
        tile: None,
    };
    /// `Aᵀ · B`.
    pub const TN: Matmul = Matmul {
        transpose_a: true,
        transpose_b: false,
        strategy: None,
        tile: None,
    };

    /// The same variant forced onto `strategy`.
    pub fn with_strategy(self, strategy: MatmulStrategy) -> Matmul {
        Matmul {
            strategy: Some(strategy),
            ..self
        }
    }

    /// The same variant with `tile` whatever the shape.
    pub fn with_tile(self, tile: MatmulTile) -> Matmul {
        Matmul {
            tile: Some(tile),
            ..self
        }
    }

    fn strategy(&self, gpu: &Gpu) -> MatmulStrategy {
        self.strategy.unwrap_or(gpu.config().matmul)
    }

    /// The kernel that adds a split product's parts (`matmul_sum_parts`).
    fn sum_spec() -> PipelineSpec {
        PipelineSpec {
            shader: Shader::Matmul,
            entry_point: "matmul_sum_parts",
            constants: vec![],
            storage: SUM_STORAGE,
        }
    }

    /// `matmul_sum_parts`'s grid: one invocation per element of `C`.
    fn sum_groups(gpu: &Gpu, shape: MatmulShape) -> Result<[u32; 3]> {
        grid_1d_checked(gpu, "matmul shape", shape.m * shape.n)
    }

    fn spec(&self, gpu: &Gpu, tile: MatmulTile) -> PipelineSpec {
        let entry_point = match self.strategy(gpu) {
            MatmulStrategy::Tiled => "matmul_tiled",
            MatmulStrategy::RegisterBlocked => "matmul_register",
            MatmulStrategy::Shuffled => "matmul_shuffled",
        };
        PipelineSpec {
            shader: Shader::Matmul,
            entry_point,
            constants: tile.constants(self.strategy(gpu)),
            storage: STORAGE,
        }
    }

    /// Whether this variant's kernel can run `tile` on `gpu`: the kernel's arrays hold it, the
    /// device has the features the kernel needs, and the tile fits the device's limits.
    fn check_runnable(&self, gpu: &Gpu, tile: MatmulTile) -> Result<()> {
        let strategy = self.strategy(gpu);
        tile.check(strategy)?;
        let config = gpu.config();
        if strategy == MatmulStrategy::Shuffled && !config.subgroups {
            return config.check_strategy(strategy);
        }
        config.check_needs(
            || format!("the {strategy:?} matmul with tile {tile}"),
            tile.needs(strategy),
        )
    }

    fn layout(
        &self,
        gpu: &Gpu,
        shape: MatmulShape,
        tile: MatmulTile,
        split: Option<MatmulSplit>,
        epilogue: EpilogueCode,
    ) -> Result<(MatmulParams, [u32; 3])> {
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
        self.check_runnable(gpu, tile)?;
        let config = gpu.config();
        let groups = [
            n.div_ceil(tile.cols() as usize) as u32,
            m.div_ceil(tile.rows() as usize) as u32,
            split.map_or(1, |split| split.parts),
        ];
        if groups
            .iter()
            .any(|&g| g > config.max_workgroups_per_dimension)
        {
            return Err(Error::invalid(
                "matmul shape",
                format!(
                    "m={m}, n={n}, k={k} needs {groups:?} workgroups; the adapter allows {} per \
                     dimension",
                    config.max_workgroups_per_dimension
                ),
            ));
        }
        let (m, n, k) = (m as u32, n as u32, k as u32);
        let (a_row_stride, a_k_stride) = if self.transpose_a { (1, m) } else { (k, 1) };
        let (b_k_stride, b_col_stride) = if self.transpose_b { (1, k) } else { (n, 1) };
        Ok((
            MatmulParams {
                m,
                n,
                k,
                block_elements: tile.block_m * tile.block_n,
                a_row_stride,
                a_k_stride,
                b_k_stride,
                b_col_stride,
                epilogue: epilogue.op,
                activation: epilogue.activation,
                transpose_a: self.transpose_a.into(),
                transpose_b: self.transpose_b.into(),
                k_chunk: split.map_or(k, |split| split.chunk),
                k_parts: split.map_or(1, |split| split.parts),
                split: split.is_some().into(),
                leaky_slope: epilogue.leaky_slope,
            },
            groups,
        ))
    }

    /// Binds `operands` and the buffer `epilogue` reads to this variant for `shape`. A product
    /// that splits over k ([`MatmulSplit::for_shape`]) gets a buffer for its parts and a second
    /// kernel that adds them, both here.
    pub fn bind(
        &self,
        gpu: &Gpu,
        label: &str,
        shape: MatmulShape,
        operands: MatmulOperands<'_>,
        epilogue: Epilogue<'_>,
    ) -> Result<Dispatch> {
        let MatmulOperands { a, b, c } = operands;
        let code = epilogue.code()?;
        let (tile, split) = self.plan(gpu, shape);
        let (params, groups) = self.layout(gpu, shape, tile, split, code)?;
        // The kernel reads the epilogue's operand only for an epilogue that has one; the
        // binding still needs a buffer.
        let operand = epilogue.buffer().unwrap_or(a);
        let Some(split) = split else {
            self.check_buffers(shape, None, code, [a, b, operand, c].map(|x| x.size()), 0)?;
            let buffers = [a, b, operand, c];
            return Dispatch::new(gpu, label, &self.spec(gpu, tile), &params, &buffers, groups);
        };
        let parts_len = split.parts as usize * shape.m * shape.n;
        let parts = gpu.storage_buffer(&format!("{label}.parts"), parts_len)?;
        let sizes = [a, b, operand, c].map(|x| x.size());
        self.check_buffers(shape, Some(split), code, sizes, parts.size())?;
        let spec = self.spec(gpu, tile);
        Dispatch::new(gpu, label, &spec, &params, &[a, b, operand, &parts], groups)?.then(
            gpu,
            &Self::sum_spec(),
            &[&parts, b, operand, c],
            Self::sum_groups(gpu, shape)?,
        )
    }

    pub(crate) fn pipeline_specs(&self, gpu: &Gpu, shape: MatmulShape) -> Vec<PipelineSpec> {
        let (tile, split) = self.plan(gpu, shape);
        if self.check_runnable(gpu, tile).is_err() {
            return Vec::new();
        }
        let mut specs = vec![self.spec(gpu, tile)];
        if split.is_some() {
            specs.push(Self::sum_spec());
        }
        specs
    }

    /// The tile and split this variant takes for `shape`.
    fn plan(&self, gpu: &Gpu, shape: MatmulShape) -> (MatmulTile, Option<MatmulSplit>) {
        let strategy = self.strategy(gpu);
        let tile = self
            .tile
            .unwrap_or_else(|| gpu.config().tile_for(strategy, shape));
        (tile, MatmulSplit::for_shape(strategy, tile, shape))
    }

    /// Points an existing dispatch of this variant at a new `shape` (same buffers), keeping the
    /// tile and the epilogue it was bound with: no pipeline is created after binding. A split
    /// product stays split, in as many parts as the new shape wants and the bound parts buffer
    /// holds.
    pub fn reshape(&self, gpu: &Gpu, dispatch: &mut Dispatch, shape: MatmulShape) -> Result<()> {
        let strategy = self.strategy(gpu);
        let tile = MatmulTile::of_dispatch(strategy, dispatch)?;
        // [a, b, operand, c], or split [a, b, operand, parts] then the sum's [parts, b, operand, c].
        let (sizes, parts) = match *dispatch.buffer_sizes() {
            [a, b, operand, c] => ([a, b, operand, c], 0),
            [a, b, operand, parts, _, _, _, c] => ([a, b, operand, c], parts),
            _ => bound_sizes::<4>(dispatch, "Matmul").map(|sizes| (sizes, 0))?,
        };
        let bound: MatmulParams = dispatch.params().ok_or_else(|| {
            Error::invalid(
                "Matmul reshape",
                format!(
                    "dispatch {} was not bound by Matmul::bind",
                    dispatch.label()
                ),
            )
        })?;
        let code = EpilogueCode {
            op: bound.epilogue,
            activation: bound.activation,
            leaky_slope: bound.leaky_slope,
        };
        let split = dispatch.has_follow_up().then(|| {
            let room = (parts / 4) as usize / (shape.m * shape.n).max(1);
            let wanted = MatmulSplit::for_shape(strategy, tile, shape).map_or(1, |s| s.parts);
            MatmulSplit::with_parts(shape.k, (wanted as usize).min(room))
        });
        let (params, groups) = self.layout(gpu, shape, tile, split, code)?;
        self.check_buffers(shape, split, code, sizes, parts)?;
        dispatch.update(gpu, &params, groups);
        if split.is_some() {
            dispatch.update_follow_up(Self::sum_groups(gpu, shape)?);
        }
        Ok(())
    }

    /// The kernel runs without wgpu's bounds checks (see `Shader::guards_its_indices`), so every
    /// operand must hold what `shape` reads or writes: refuse anything smaller.
    fn check_buffers(
        &self,
        shape: MatmulShape,
        split: Option<MatmulSplit>,
        epilogue: EpilogueCode,
        [a, b, operand, c]: [u64; 4],
        parts: u64,
    ) -> Result<()> {
        let MatmulShape { m, n, k } = shape;
        let bytes = |values: usize| values as u64 * 4;
        let mut needs = vec![
            ("a", a, bytes(m * k)),
            ("b", b, bytes(k * n)),
            ("c", c, bytes(m * n)),
        ];
        if let Some(split) = split {
            needs.push((
                "the parts of a split product",
                parts,
                bytes(split.parts as usize * m * n),
            ));
        }
        if let Some((what, len)) = epilogue.operand_len(shape) {
            needs.push((what, operand, bytes(len)));
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
