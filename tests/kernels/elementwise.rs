//! `shaders/elementwise.wgsl`: the Hadamard product, bias-add, axpy, and in-place updates.

use crate::common::{assert_close, gpu, random_matrix};
use crate::{ELEMENTWISE_ATOL, ELEMENTWISE_RTOL, run_and_read, shapes, upload};
use wgpu_mlp::gpu::kernels::elementwise::{Elementwise, Update};

#[test]
fn elementwise_kernels_and_updates_match_ndarray() {
    let gpu = gpu();
    for (rows, cols) in shapes() {
        let a = random_matrix(rows, cols, 1);
        let b = random_matrix(rows, cols, 2);
        let bias = random_matrix(1, cols, 3);
        let cases = [
            (Elementwise::Hadamard, &b, &a * &b),
            (Elementwise::BiasAdd, &bias, &a + &bias),
            (Elementwise::Axpy(-0.75), &b, &a * -0.75 + &b),
        ];
        for (op, second, want) in cases {
            let out = gpu.storage_buffer("out", rows * cols).unwrap();
            let dispatch = op
                .bind(
                    &gpu,
                    "elementwise test",
                    rows,
                    cols,
                    &upload(&a),
                    &upload(second),
                    &out,
                )
                .unwrap();
            assert_close(
                &format!("{op:?} {rows}x{cols}"),
                &run_and_read(&gpu, &dispatch, &out, rows * cols),
                want.as_slice().unwrap(),
                ELEMENTWISE_ATOL,
                ELEMENTWISE_RTOL,
            );
        }
        // y starts as b.
        let updates = [
            (Update::Axpy(0.5), &b + &(&a * 0.5)),
            (Update::Scale(-3.0), &a * -3.0),
        ];
        for (update, want) in updates {
            let y = upload(&b);
            let dispatch = update
                .bind(&gpu, "update test", rows, cols, &upload(&a), &y)
                .unwrap();
            assert_close(
                &format!("{update:?} {rows}x{cols}"),
                &run_and_read(&gpu, &dispatch, &y, rows * cols),
                want.as_slice().unwrap(),
                ELEMENTWISE_ATOL,
                ELEMENTWISE_RTOL,
            );
        }
    }
}
