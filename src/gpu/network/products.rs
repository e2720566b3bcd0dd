//! [`LayerProducts`]: the three matrix products of one layer's training step, each with its
//! layout and shape written once, so that the pipelines prepared ahead, the dispatches bound and
//! every reshape for a new batch size agree.

use crate::error::Result;
use crate::gpu::context::{Gpu, PipelineSpec};
use crate::gpu::kernels::Dispatch;
use crate::gpu::kernels::matmul::{Epilogue, Matmul, MatmulOperands, MatmulShape};
use crate::gpu::network::buffers::LayerParams;

/// One product: which layout, and its shape for the current batch.
#[derive(Clone, Copy, Debug)]
pub(super) struct Product {
    pub matmul: Matmul,
    pub shape: MatmulShape,
}

impl Product {
    /// The pipelines [`Product::bind`] will use, to create them ahead.
    pub fn pipeline_specs(&self, gpu: &Gpu) -> Vec<PipelineSpec> {
        self.matmul.pipeline_specs(gpu, self.shape)
    }

    pub fn bind(
        &self,
        gpu: &Gpu,
        label: &str,
        operands: MatmulOperands<'_>,
        epilogue: Epilogue<'_>,
    ) -> Result<Dispatch> {
        self.matmul.bind(gpu, label, self.shape, operands, epilogue)
    }

    /// Points `dispatch`, bound by [`Product::bind`] for another batch size, at this shape.
    pub fn reshape(&self, gpu: &Gpu, dispatch: &mut Dispatch) -> Result<()> {
        self.matmul.reshape(gpu, dispatch, self.shape)
    }
}

/// The products of layer `l` for a batch; layout and epilogue are run-time parameters of one
/// pipeline per tile, so the shapes alone decide which pipelines a step needs.
pub(super) struct LayerProducts {
    /// `z_l = a_{l−1} · W_lᵀ`: `(batch, outputs)` over the inputs.
    pub forward: Product,
    /// `dW_l = δ_lᵀ · a_{l−1}`: `(outputs, inputs)` over the batch.
    pub dweight: Product,
    /// `δ_{l−1} = δ_l · W_l`: `(batch, inputs)` over the outputs; none for the first layer,
    /// whose input needs no gradient.
    pub delta: Option<Product>,
}

impl LayerProducts {
    pub fn new(l: usize, layer: &LayerParams, batch: usize) -> LayerProducts {
        let (inputs, outputs) = (layer.inputs, layer.outputs);
        let product = |matmul, m, n, k| Product {
            matmul,
            shape: MatmulShape { m, n, k },
        };
        LayerProducts {
            forward: product(Matmul::NT, batch, outputs, inputs),
            dweight: product(Matmul::TN, outputs, inputs, batch),
            delta: (l > 0).then(|| product(Matmul::NN, batch, inputs, outputs)),
        }
    }

    /// The products of every layer of `layers` for `batch` rows.
    pub fn of_network(layers: &[LayerParams], batch: usize) -> Vec<LayerProducts> {
        layers
            .iter()
            .enumerate()
            .map(|(l, layer)| LayerProducts::new(l, layer, batch))
            .collect()
    }

    /// The pipelines of every product of `products`.
    pub fn pipeline_specs(gpu: &Gpu, products: &[LayerProducts]) -> Vec<PipelineSpec> {
        products
            .iter()
            .flat_map(|layer| [Some(layer.forward), Some(layer.dweight), layer.delta])
            .flatten()
            .flat_map(|product| product.pipeline_specs(gpu))
            .collect()
    }
}
