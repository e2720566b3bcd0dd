//! `shaders/matmul.wgsl`: `C = op(A) · op(B)` with optional transposes and a fused epilogue.
//!
//! Shapes: `op(A): (m, k)`, `op(B): (k, n)`, `C: (m, n)`, all row-major. With `transpose_a` the
//! buffer `A` holds `(k, m)`; with `transpose_b` the buffer `B` holds `(n, k)`.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, MatmulStrategy, Shader, bound_sizes, grid_1d_checked};
use crate::model::Activation;

/// Bindings after the uniform: a, b, bias, aux, c, and the parts of a product split over k.
pub(crate) const STORAGE: &[Access] = &[
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
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

/// The shader's `MatmulParams`: the shape, the layout as strides, and the epilogue. Layout and
/// epilogue are run-time values so that one pipeline per tile serves every product.
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
    /// 1 when the parts go to `partials` for `matmul_sum_parts` to add.
    split: u32,
    _pad: u32,
}

/// The block of `C` one workgroup computes: `wg_x × wg_y` invocations, each accumulating a
/// `block_m × block_n` register block whose rows are `wg_y` apart and columns `wg_x` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulTile {
    /// Invocations along the columns of `C` (a CPU adapter's SIMD lanes).
    pub wg_x: u32,
    /// Invocations along the rows of `C`.
    pub wg_y: u32,
    /// Rows of `C` per invocation, at most [`MatmulTile::MAX_BLOCK`].
    pub block_m: u32,
    /// Columns of `C` per invocation, at most [`MatmulTile::MAX_BLOCK`].
    pub block_n: u32,
}

impl MatmulTile {
    /// The largest block the register-blocked kernel's arrays hold (`MM_MAX_BLOCK` in matmul.wgsl).
    pub const MAX_BLOCK: u32 = 16;

    /// The most rows per invocation of the shuffled kernel (`MS_MAX_ROWS` in
    /// matmul_shuffled.wgsl).
    pub const MAX_SHUFFLED_ROWS: u32 = 32;

    /// The most columns per invocation of the shuffled kernel (`MS_MAX_COLS`).
    pub const MAX_SHUFFLED_COLS: u32 = 8;

    /// The largest tile side of the vec4 shared-memory kernel (4 · `TL_MAX_QUADS` in
    /// matmul.wgsl).
    pub const MAX_SHARED_TILE: u32 = 128;

    /// The depth of the vec4 shared-memory kernel's slices (`TL_TILE_K` in matmul.wgsl).
    pub const SHARED_TILE_K: u32 = 16;

    /// The tiles of [`MatmulStrategy::Tiled`], largest first: 16×16 or fewer invocations,
    /// each with 4×4 elements in one or two groups per side (`block_m`, `block_n` of 4 or 8).
    pub const SHARED_TILES: [MatmulTile; 7] = [
        MatmulTile::shared(16, 16, 8, 8),
        MatmulTile::shared(16, 16, 8, 4),
        MatmulTile::shared(16, 16, 4, 8),
        MatmulTile::shared(16, 16, 4, 4),
        MatmulTile::shared(16, 8, 4, 4),
        MatmulTile::shared(8, 16, 4, 4),
        MatmulTile::shared(8, 8, 4, 4),
    ];

    const fn shared(wg_x: u32, wg_y: u32, block_m: u32, block_n: u32) -> MatmulTile {
        MatmulTile {
            wg_x,
            wg_y,
            block_m,
            block_n,
        }
    }

    /// Rows of `C` per workgroup.
    pub fn rows(self) -> u32 {
        self.wg_y * self.block_m
    }

    /// Columns of `C` per workgroup.
    pub fn cols(self) -> u32 {
        self.wg_x * self.block_n
    }

    fn workgroups(self, shape: MatmulShape) -> usize {
        shape.m.div_ceil(self.rows() as usize) * shape.n.div_ceil(self.cols() as usize)
    }

    /// The tile for `shape` with `strategy`.
    ///
    /// [`MatmulStrategy::Tiled`] takes the largest of [`MatmulTile::SHARED_TILES`] that gives
    /// [`MIN_GPU_WORKGROUPS`] workgroups, alone or with k split into parts at least
    /// [`MatmulSplit::LONG_PART`] deep ([`MatmulSplit::for_shape`]); failing that, the smallest:
    /// a big tile reuses each operand load more, but a product of a few big tiles leaves most of
    /// a GPU's cores idle. On an H200 W2's 256-row products ran 15–60% faster as 128×64 tiles
    /// with k in 4–5 parts than as unsplit tiles small enough to fill the GPU alone.
    ///
    /// A CPU adapter (lavapipe) runs the 8 invocations along x as the lanes of one SIMD
    /// register and loads storage buffers lane by lane, each load costing about as much as 20
    /// vector FMAs; so each invocation takes the largest block (16×16: 8 FMAs per value loaded)
    /// and a workgroup is one row of 8 invocations, 16×128 of `C`, which keeps small products
    /// spread over every core. Narrow products (the 10 classes of an output layer) get narrower
    /// blocks rather than compute columns that are thrown away (and with the shuffled kernel 16
    /// rows, which compile in half the time).
    ///
    /// [`MatmulStrategy::Shuffled`] loads A once per 8 depths instead of once per depth, so its
    /// blocks trade columns for rows: 32×8 takes 12 loads per depth for 256 FMAs where 16×16
    /// takes 32. On lavapipe that doubled W2's throughput.
    ///
    /// Measured against the alternatives with `examples/tile_probe.rs`; see BENCHMARKS.md.
    pub fn for_shape(strategy: MatmulStrategy, shape: MatmulShape) -> Self {
        if strategy == MatmulStrategy::Tiled {
            let tiles = Self::SHARED_TILES;
            return tiles
                .into_iter()
                .find(|tile| {
                    let parts = MatmulSplit::parts_wanted(*tile, shape);
                    parts == 1 || parts <= shape.k / MatmulSplit::LONG_PART
                })
                .unwrap_or(tiles[tiles.len() - 1]);
        }
        const LANES: u32 = 8;
        let (block_m, max_block_n) = match strategy {
            MatmulStrategy::Shuffled => (Self::MAX_SHUFFLED_ROWS, Self::MAX_SHUFFLED_COLS),
            _ => (Self::MAX_BLOCK, Self::MAX_BLOCK),
        };
        let columns_per_lane = shape.n.div_ceil(LANES as usize).min(max_block_n as usize);
        let block_n = (columns_per_lane as u32).next_power_of_two();
        // A narrow product is a sliver of a step's work but a pipeline of its own, compiled in
        // the first step: 16 shuffled rows compile in half the time of 32 (0.15–0.20 s against
        // 0.30–0.42 s on lavapipe) and cost W2's output layer about 0.2 ms of a 400 ms step.
        let block_m = if strategy == MatmulStrategy::Shuffled && block_n <= 2 {
            block_m / 2
        } else {
            block_m
        };
        MatmulTile {
            wg_x: LANES,
            wg_y: 1,
            block_m,
            block_n,
        }
    }

    /// Whether `strategy`'s kernel can run this tile.
    fn check(self, strategy: MatmulStrategy) -> Result<()> {
        if strategy == MatmulStrategy::Tiled {
            // Each invocation carries one or two vec4s of each operand per slice (see
            // matmul.wgsl), and the workgroup arrays hold tiles up to MAX_SHARED_TILE.
            let loads_ok = |groups: u32, side: u32| {
                side > 0 && (Self::SHARED_TILE_K * groups).is_multiple_of(side) && {
                    let loads = Self::SHARED_TILE_K * groups / side;
                    loads == 1 || loads == 2
                }
            };
            let fits = [self.block_m, self.block_n]
                .iter()
                .all(|b| [4, 8].contains(b))
                && self.wg_x * self.wg_y <= 256
                && self.rows() <= Self::MAX_SHARED_TILE
                && self.cols() <= Self::MAX_SHARED_TILE
                && loads_ok(self.block_m / 4, self.wg_x)
                && loads_ok(self.block_n / 4, self.wg_y);
            if !fits {
                return Err(Error::invalid(
                    "matmul tile",
                    format!(
                        "{self:?}: the vec4 shared-memory kernel takes blocks of 4 or 8, at most 256 \
                         invocations, tiles of at most {0}×{0}, and one or two vec4 loads per \
                         invocation of each operand's {1}-deep slice",
                        Self::MAX_SHARED_TILE,
                        Self::SHARED_TILE_K,
                    ),
                ));
            }
            return Ok(());
        }
        if strategy == MatmulStrategy::Shuffled {
            let fits = self.wg_x.is_power_of_two()
                && self.wg_y == 1
                && (1..=Self::MAX_SHUFFLED_ROWS).contains(&self.block_m)
                && (1..=Self::MAX_SHUFFLED_COLS).contains(&self.block_n);
            if !fits {
                return Err(Error::invalid(
                    "matmul tile",
                    format!(
                        "{self:?}: the shuffled kernel takes one row of a power of two of \
                         invocations, each with at most {} rows and {} columns",
                        Self::MAX_SHUFFLED_ROWS,
                        Self::MAX_SHUFFLED_COLS,
                    ),
                ));
            }
            return Ok(());
        }
        let block_ok = |b: u32| (1..=Self::MAX_BLOCK).contains(&b);
        if self.wg_x == 0 || self.wg_y == 0 || !block_ok(self.block_m) || !block_ok(self.block_n) {
            return Err(Error::invalid(
                "matmul tile",
                format!(
                    "{self:?}: workgroup sides must be at least 1 and blocks 1 to {}",
                    Self::MAX_BLOCK
                ),
            ));
        }
        Ok(())
    }

    /// The pipeline constants that give `strategy`'s kernel this tile.
    fn constants(self, strategy: MatmulStrategy) -> Vec<(&'static str, f64)> {
        let names = Self::constant_names(strategy);
        let values = match strategy {
            MatmulStrategy::Tiled => [self.wg_x, self.wg_y, self.block_m / 4, self.block_n / 4],
            MatmulStrategy::RegisterBlocked | MatmulStrategy::Shuffled => {
                [self.wg_x, self.wg_y, self.block_m, self.block_n]
            }
        };
        names.into_iter().zip(values.map(f64::from)).collect()
    }

    fn constant_names(strategy: MatmulStrategy) -> [&'static str; 4] {
        match strategy {
            MatmulStrategy::Tiled => ["TL_WG_X", "TL_WG_Y", "TL_GROUPS_M", "TL_GROUPS_N"],
            MatmulStrategy::RegisterBlocked | MatmulStrategy::Shuffled => {
                ["MM_WG_X", "MM_WG_Y", "MM_BLOCK_M", "MM_BLOCK_N"]
            }
        }
    }

    /// The tile a dispatch of `strategy`'s kernel was bound with.
    fn of_dispatch(strategy: MatmulStrategy, dispatch: &Dispatch) -> Result<MatmulTile> {
        let names = Self::constant_names(strategy);
        let mut values = [0; 4];
        for (value, name) in values.iter_mut().zip(names) {
            *value = dispatch.constant(name).map(|v| v as u32).ok_or_else(|| {
                Error::invalid(
                    "matmul reshape",
                    format!("{} is not a {strategy:?} matmul dispatch", dispatch.label()),
                )
            })?;
        }
        let [wg_x, wg_y, block_m, block_n] = values;
        Ok(match strategy {
            MatmulStrategy::Tiled => MatmulTile::shared(wg_x, wg_y, block_m * 4, block_n * 4),
            MatmulStrategy::RegisterBlocked | MatmulStrategy::Shuffled => MatmulTile {
                wg_x,
                wg_y,
                block_m,
                block_n,
            },
        })
    }
}

/// The workgroups a GPU product should have before [`MatmulTile::for_shape`] takes a bigger
/// tile: about one per core (SM) of a large discrete GPU (an H100 or H200 has 132). On the H200,
/// W2's 256-row products ran at 12–13 TFLOP/s with the 128 workgroups of 32×64 tiles against
/// 10 with the 64 of 64×64 ones and 6 with the 32 of 128×64 ones (BENCHMARKS.md).
pub const MIN_GPU_WORKGROUPS: usize = 128;

/// A product split over k (split-K): part `z` of `parts` sums depths `[z · chunk, (z + 1) ·
/// chunk)` in workgroups of its own, and a second kernel adds the parts and applies the
/// epilogue. An output layer's forward product (256×10 over k = 1024) is 8 workgroups of the
/// smallest tile, each walking all of k while the rest of a GPU idles; split 16 ways it is 128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulSplit {
    /// Depths per part: a multiple of [`MatmulTile::SHARED_TILE_K`].
    pub chunk: u32,
    /// Parts: `k.div_ceil(chunk)`.
    pub parts: u32,
}

impl MatmulSplit {
    /// The shortest part worth a workgroup of its own: 4 slices, so that each part still
    /// overlaps its loads with its arithmetic.
    pub const MIN_CHUNK: usize = 4 * MatmulTile::SHARED_TILE_K as usize;

    /// The shortest part for which a bigger tile split over k beats a smaller unsplit one
    /// ([`MatmulTile::for_shape`]): 12 slices. Measured on an H200: W2's weight gradients
    /// (k = 256) ran slower as 128×64 tiles in two parts than as unsplit 64×64 tiles.
    pub const LONG_PART: usize = 12 * MatmulTile::SHARED_TILE_K as usize;

    /// The parts that bring `tile`'s grid for `shape` to [`MIN_GPU_WORKGROUPS`]; 1 if it
    /// gets there alone.
    fn parts_wanted(tile: MatmulTile, shape: MatmulShape) -> usize {
        MIN_GPU_WORKGROUPS.div_ceil(tile.workgroups(shape))
    }

    /// How `strategy` splits `shape` with `tile`: only the shared-memory kernel splits, and
    /// only a product with fewer than [`MIN_GPU_WORKGROUPS`] tiles and room for two parts; it
    /// takes parts enough to reach that many workgroups, each at least [`Self::MIN_CHUNK`] deep.
    pub fn for_shape(
        strategy: MatmulStrategy,
        tile: MatmulTile,
        shape: MatmulShape,
    ) -> Option<MatmulSplit> {
        if strategy != MatmulStrategy::Tiled || tile.check(strategy).is_err() {
            return None;
        }
        let parts = Self::parts_wanted(tile, shape).min(shape.k / Self::MIN_CHUNK);
        if parts < 2 {
            return None;
        }
        Some(Self::with_parts(shape.k, parts))
    }

    /// At most `parts` parts of k, each a whole number of slices.
    fn with_parts(k: usize, parts: usize) -> MatmulSplit {
        let slice = MatmulTile::SHARED_TILE_K as usize;
        let chunk = k.div_ceil(parts.max(1)).div_ceil(slice) * slice;
        MatmulSplit {
            chunk: chunk as u32,
            parts: k.div_ceil(chunk) as u32,
        }
    }
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

impl Matmul {
    /// `A · B`.
    pub const NN: Matmul = Matmul {
        transpose_a: false,
        transpose_b: false,
        epilogue: Epilogue::None,
        strategy: None,
        tile: None,
    };
    /// `A · Bᵀ`.
    pub const NT: Matmul = Matmul {
        transpose_a: false,
        transpose_b: true,
        epilogue: Epilogue::None,
        strategy: None,
        tile: None,
    };
    /// `Aᵀ · B`.
    pub const TN: Matmul = Matmul {
        transpose_a: true,
        transpose_b: false,
        epilogue: Epilogue::None,
        strategy: None,
        tile: None,
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

    /// The epilogue's and its activation's codes in matmul.wgsl.
    fn epilogue_codes(&self) -> Result<(u32, u32)> {
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
        Ok((epilogue, activation.wgsl_code()))
    }

    /// The kernel that adds a split product's parts (`matmul_sum_parts`).
    fn sum_spec() -> PipelineSpec {
        PipelineSpec {
            shader: Shader::Matmul,
            entry_point: "matmul_sum_parts",
            constants: vec![],
            storage: STORAGE,
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

    /// Whether this variant's kernel can run `tile` on `gpu`.
    fn check_runnable(&self, gpu: &Gpu, tile: MatmulTile) -> Result<()> {
        let strategy = self.strategy(gpu);
        tile.check(strategy)?;
        if strategy == MatmulStrategy::Shuffled && !gpu.config().subgroups {
            return Err(Error::invalid(
                "matmul strategy",
                "the shuffled kernel needs subgroup operations, which this device does not have",
            ));
        }
        Ok(())
    }

    fn layout(
        &self,
        gpu: &Gpu,
        shape: MatmulShape,
        tile: MatmulTile,
        split: Option<MatmulSplit>,
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
        let (epilogue, activation) = self.epilogue_codes()?;
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
                epilogue,
                activation,
                transpose_a: self.transpose_a.into(),
                transpose_b: self.transpose_b.into(),
                k_chunk: split.map_or(k, |split| split.chunk),
                k_parts: split.map_or(1, |split| split.parts),
                split: split.is_some().into(),
                _pad: 0,
            },
            groups,
        ))
    }

    /// Binds `a`, `b` and `c` (and `bias` or `aux` for the epilogues that read them; pass any
    /// buffer otherwise) to this variant for `shape`. A product that splits over k
    /// ([`MatmulSplit::for_shape`]) gets a buffer for its parts and a second kernel that adds
    /// them, both here.
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
        let (tile, split) = self.plan(gpu, shape);
        let (params, groups) = self.layout(gpu, shape, tile, split)?;
        // Unsplit, the kernel never touches the parts; the binding still needs a buffer.
        let parts_len = split.map_or(1, |split| split.parts as usize * shape.m * shape.n);
        let parts = gpu.storage_buffer(&format!("{label}.parts"), parts_len)?;
        let buffers = [a, b, bias, aux, c, &parts];
        self.check_buffers(shape, split, buffers.map(|buffer| buffer.size()))?;
        let dispatch = Dispatch::new(gpu, label, &self.spec(gpu, tile), &params, &buffers, groups)?;
        match split {
            Some(_) => dispatch.then(gpu, &Self::sum_spec(), Self::sum_groups(gpu, shape)?),
            None => Ok(dispatch),
        }
    }

    /// The pipelines [`Matmul::bind`] will use for `shape`, to create them ahead
    /// ([`Gpu::prepare_pipelines`]); a tile the kernel cannot run gives none, and `bind` the
    /// error.
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
            .unwrap_or_else(|| MatmulTile::for_shape(strategy, shape));
        (tile, MatmulSplit::for_shape(strategy, tile, shape))
    }

    /// Points an existing dispatch of this variant at a new `shape` (same buffers), keeping the
    /// tile it was bound with: no pipeline is created after binding. A split product stays
    /// split, in as many parts as the new shape wants and the bound parts buffer holds.
    pub fn reshape(&self, gpu: &Gpu, dispatch: &mut Dispatch, shape: MatmulShape) -> Result<()> {
        let strategy = self.strategy(gpu);
        let tile = MatmulTile::of_dispatch(strategy, dispatch)?;
        let sizes = bound_sizes(dispatch, "Matmul")?;
        let split = dispatch.has_follow_up().then(|| {
            let room = (sizes[5] / 4) as usize / (shape.m * shape.n).max(1);
            let wanted = MatmulSplit::for_shape(strategy, tile, shape).map_or(1, |s| s.parts);
            MatmulSplit::with_parts(shape.k, (wanted as usize).min(room))
        });
        let (params, groups) = self.layout(gpu, shape, tile, split)?;
        self.check_buffers(shape, split, sizes)?;
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
        [a, b, bias, aux, c, parts]: [u64; 6],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::kernels::KernelConfig;

    fn config(device_type: wgpu::DeviceType) -> KernelConfig {
        config_with(device_type, wgpu::Features::empty())
    }

    fn config_with(device_type: wgpu::DeviceType, features: wgpu::Features) -> KernelConfig {
        let info = wgpu::AdapterInfo {
            device_type,
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::Other, wgpu::Backend::Vulkan)
        };
        KernelConfig::for_adapter(&info, &wgpu::Limits::default(), features)
    }

    #[test]
    fn gpus_get_shared_memory_tiles_and_cpu_adapters_one_row_of_big_blocks() {
        let gpu = config(wgpu::DeviceType::DiscreteGpu);
        assert_eq!(gpu.matmul, MatmulStrategy::Tiled);
        let shape = MatmulShape {
            m: 256,
            n: 1024,
            k: 784,
        };

        // 256×1024 over k = 784 fills 128 workgroups with 128×64 tiles and k in 4 parts. With a
        // short k, 1024×1024 fills them with 128×64 tiles alone, 1024×784 only with 64×64
        // ones, 4096² with the largest; a product too small for any gets the smallest.
        let tiled = MatmulStrategy::Tiled;
        let tile = |m, n| MatmulTile::for_shape(tiled, MatmulShape { m, n, k: 256 });
        assert_eq!(
            MatmulTile::for_shape(tiled, shape),
            MatmulTile::shared(16, 16, 8, 4)
        );
        assert_eq!(tile(1024, 784), MatmulTile::shared(16, 16, 4, 4));
        assert_eq!(tile(1024, 1024), MatmulTile::shared(16, 16, 8, 4));
        assert_eq!(tile(4096, 4096), MatmulTile::SHARED_TILES[0]);
        assert_eq!(tile(256, 10), MatmulTile::shared(8, 8, 4, 4));
        for tile in MatmulTile::SHARED_TILES {
            assert!(tile.check(tiled).is_ok(), "{tile:?}");
        }

        // CPU adapters: one row of 8 invocations with the largest block their kernel holds,
        // taller and narrower for the shuffled kernel they get where they have subgroups.
        for (features, strategy, block_m, block_n) in [
            (
                wgpu::Features::empty(),
                MatmulStrategy::RegisterBlocked,
                16,
                16,
            ),
            (wgpu::Features::SUBGROUP, MatmulStrategy::Shuffled, 32, 8),
        ] {
            let cpu = config_with(wgpu::DeviceType::Cpu, features);
            assert_eq!(cpu.matmul, strategy);
            assert_eq!(cpu.subgroups, features.contains(wgpu::Features::SUBGROUP));
            assert!(!cpu.split_column_sums);
            let tile = |n| MatmulTile::for_shape(strategy, MatmulShape { m: 64, n, k: 9 });
            let wide = MatmulTile {
                wg_x: 8,
                wg_y: 1,
                block_m,
                block_n,
            };
            assert_eq!(tile(1024), wide);
            // Narrow outputs get narrow blocks instead of columns computed and thrown away, and
            // 16 rows: the register kernel's usual, half the shuffled kernel's (half the compile).
            assert_eq!((tile(10).block_n, tile(10).block_m), (2, 16));
            assert_eq!((tile(1).block_n, tile(1).block_m), (1, 16));
            assert_eq!((tile(32).block_n, tile(32).block_m), (4, block_m));
            assert_eq!(tile(100).block_n, block_n);
            for n in [1, 7, 10, 65, 1000] {
                let t = tile(n);
                assert!(t.check(strategy).is_ok(), "{t:?}");
                assert!(t.cols() >= (n as u32).min(wide.cols()), "{t:?} for n={n}");
            }
        }
        // GPUs keep their shared-memory tiles whatever they have.
        let gpu = config_with(wgpu::DeviceType::IntegratedGpu, wgpu::Features::SUBGROUP);
        assert_eq!(gpu.matmul, MatmulStrategy::Tiled);
        // The plain register kernel's 16×16 blocks are too wide for the shuffled kernel's arrays.
        let register = MatmulTile::for_shape(MatmulStrategy::RegisterBlocked, shape);
        assert!(register.check(MatmulStrategy::Shuffled).is_err());
    }

    #[test]
    fn only_shared_memory_products_with_few_tiles_and_a_long_k_split() {
        let split = |m, n, k| {
            let shape = MatmulShape { m, n, k };
            let tile = MatmulTile::for_shape(MatmulStrategy::Tiled, shape);
            MatmulSplit::for_shape(MatmulStrategy::Tiled, tile, shape)
        };
        let parts = |chunk, parts| Some(MatmulSplit { chunk, parts });
        // W2's output layer: 8 tiles of 32×32 over k = 1024, 16 parts of 64 make 128 workgroups.
        assert_eq!(split(256, 10, 1024), parts(64, 16));
        // Its weight gradient (10×1024 over the batch): 32 tiles, 4 parts.
        assert_eq!(split(10, 1024, 256), parts(64, 4));
        // Parts round up to whole slices, so the last part is short: 1000 = 12·80 + 40.
        assert_eq!(split(10, 37, 1000), parts(80, 13));
        // W2's hidden layers: 128×64 tiles, k in parts of 208.
        assert_eq!(split(256, 1024, 784), parts(208, 4));
        assert_eq!(split(256, 784, 1024), parts(208, 5));
        // Enough tiles, or too short a k for two parts of 64, or a CPU adapter's kernel.
        assert_eq!(split(1024, 1024, 256), None);
        assert_eq!(split(256, 10, 127), None);
        let shape = MatmulShape {
            m: 256,
            n: 10,
            k: 1024,
        };
        let register = MatmulTile::for_shape(MatmulStrategy::RegisterBlocked, shape);
        assert_eq!(
            MatmulSplit::for_shape(MatmulStrategy::RegisterBlocked, register, shape),
            None
        );
    }

    #[test]
    fn the_shared_memory_kernel_refuses_tiles_its_arrays_cannot_hold() {
        let tiled = |tile: MatmulTile| tile.check(MatmulStrategy::Tiled);
        for bad in [
            MatmulTile::shared(16, 16, 16, 4), // blocks of 4 or 8 only
            MatmulTile::shared(32, 16, 4, 4),  // a 128-wide tile, but 512 invocations
            MatmulTile::shared(32, 8, 4, 8),   // 256 columns
            MatmulTile::shared(4, 4, 4, 4),    // 4 vec4 loads per invocation per slice
            MatmulTile::shared(3, 8, 4, 4),    // 3 invocations do not divide a slice row
        ] {
            let error = tiled(bad).unwrap_err().to_string();
            assert!(
                error.contains("vec4 shared-memory kernel takes"),
                "{bad:?}: {error}"
            );
        }
        // The register-blocked kernel takes any block up to its arrays.
        assert!(
            MatmulTile::shared(16, 16, 16, 4)
                .check(MatmulStrategy::RegisterBlocked)
                .is_ok()
        );
    }
}
