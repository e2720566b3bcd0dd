#!/usr/bin/env bash
# Every figure BENCHMARKS.md gives for a real GPU, in one run that fits a few minutes:
#
#     scripts/gpu_benchmarks.sh [--quick]
#
# whole steps (W1, W2; the adapter's matmul and each kernel by name; fused and unfused), W1's and
# W2's profiles, the matmul at W2's shapes and at squares with every shared-memory tile, PyTorch's
# CUDA FP32 baseline when torch is installed. Each part has its own time limit, so one slow part
# cannot eat the rest. `--quick` shrinks everything so that the script itself can be checked on
# a software adapter. Set WGPU_MLP to use a prebuilt binary directory (default target/release).
set -uo pipefail
cd "$(dirname "$0")/.."

quick=false
if [ "${1:-}" = "--quick" ]; then quick=true; fi
bin="${WGPU_MLP:-target/release}"
if [ -z "${WGPU_MLP:-}" ]; then
    cargo build --release --bin wgpu-mlp --example tile_probe || exit 1
fi
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    export XDG_RUNTIME_DIR="$(mktemp -d)"
fi

samples=51200
profile_steps=20
squares="1024 2048 4096"
if $quick; then
    samples=512
    profile_steps=1
    squares="128"
fi

# `part LIMIT_S TITLE COMMAND...`: one part, cut off after LIMIT_S seconds.
part() {
    local limit="$1" title="$2"
    shift 2
    echo "== $title"
    timeout "$limit" "$@"
    local status=$?
    if [ "$status" = 124 ]; then echo "   (cut off after ${limit} s)"; fi
}

part 30 "adapters" "$bin/wgpu-mlp" adapters
for workload in W1 W2; do
    for matmul in auto tiled register; do
        part 60 "$workload, --matmul $matmul" \
            "$bin/wgpu-mlp" bench --workload "$workload" --samples "$samples" --matmul "$matmul" --json
    done
done
part 60 "W2 unfused" "$bin/wgpu-mlp" bench --workload W2 --samples "$samples" --unfused --json
for workload in W1 W2; do
    part 60 "$workload profile" \
        "$bin/wgpu-mlp" bench --workload "$workload" --samples "$samples" --profile "$profile_steps"
done

# W2's products as (m n k layout): forward, δ of the hidden layer, dW, and the output layer's
# forward and dW, which split over k.
probe="$bin/examples/tile_probe"
if $quick; then
    shapes=("64 128 96 nt")
else
    shapes=("256 1024 784 nt" "256 1024 1024 nt" "256 784 1024 nn" "1024 784 256 tn" "1024 1024 256 tn"
        "256 10 1024 nt" "10 1024 256 tn")
fi
for shape in "${shapes[@]}"; do
    # shellcheck disable=SC2086 # the shape is four words on purpose
    part 60 "matmul $shape" "$probe" $shape shared
done
for n in $squares; do
    part 60 "matmul ${n}³ nn" "$probe" "$n" "$n" "$n" nn shared
done

if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    part 180 "PyTorch CUDA FP32 eager, cuBLAS FP32" \
        python3 scripts/pytorch_baseline.py --samples "$samples" --matmul
else
    echo "== PyTorch: not run (no torch with CUDA here)"
fi
