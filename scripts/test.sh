#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs Mesa's software Vulkan driver (lavapipe)
# when no Vulkan, Metal or DX12 adapter is present, then runs every test on the adapter
# `--adapter auto` picks.
#
# The GPU tests never skip: with no adapter they fail. Set WGPU_MLP_ADAPTER (auto, software or
# part of a name) to pick the adapter the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Vulkan loader warns without a runtime directory; any writable folder silences it.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    export XDG_RUNTIME_DIR="$(mktemp -d)"
fi

echo "== building (release)"
cargo build --release --all-targets --locked

# An adapter on one of the backends the library is for. A machine with Mesa's OpenGL libraries
# (libegl-mesa0) but no Vulkan driver shows only llvmpipe through wgpu's GL backend; the suite
# is meant for lavapipe, so such a machine gets the Vulkan driver too.
# (The list is read whole first: `grep -q` stops at the first match, and under pipefail the
# writer's SIGPIPE would fail the pipeline.)
has_compute_adapter() {
    local adapters
    adapters="$(target/release/wgpu-mlp adapters 2>/dev/null || true)"
    grep -qE '\((Vulkan|Metal|Dx12), ' <<<"$adapters"
}

if ! has_compute_adapter; then
    echo "== no Vulkan, Metal or DX12 adapter found: installing Mesa's software Vulkan driver (mesa-vulkan-drivers)"
    if ! command -v apt-get >/dev/null; then
        echo "no apt-get here: install a Vulkan driver (Mesa's lavapipe) by hand and run again" >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    # Through `env` so that the setting survives sudo, which resets the environment.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers >/dev/null
fi

echo "== adapters"
target/release/wgpu-mlp adapters || true
if ! has_compute_adapter; then
    echo "still no Vulkan, Metal or DX12 adapter: the GPU tests cannot run" >&2
    exit 1
fi

echo "== the library alone (default-features = false)"
cargo check --release --locked --no-default-features --lib

echo "== tests"
cargo test --release --locked --all-targets
cargo test --release --locked --doc

echo "== the documentation, without a broken link"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --lib

# The Python package as a user installs it: `pip install ./python` into a fresh virtual
# environment (maturin builds the extension in release, into this workspace's target/, so the
# dependencies compiled above are reused), then its tests: scikit-learn's estimator checks, the
# round trips with the CLI built above, on the CPU reference and on the adapter.
echo "== the Python package (python/) in a fresh virtual environment"
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    echo "== python3 has no venv or pip: installing python3-venv and python3-pip"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi
venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
CARGO_TARGET_DIR="$PWD/target" "$venv/bin/pip" install --quiet ./python scikit-learn pytest
WGPU_MLP_BIN="$PWD/target/release/wgpu-mlp" "$venv/bin/python" -m pytest -q python/tests

# The kernel, gradient and training tests again as weaker devices: WebGPU's guaranteed limits
# without subgroups on lavapipe, and the GL backend (no subgroups) with its own limits and with
# WebGPU's; each with every matmul kernel such a device runs forced in turn. The shuffled
# kernel needs subgroups, so none of these runs it: the kernel tests assert that it is refused.
limited_targets=(--test kernels --test gradients --test training --test limits --test output_kernels)
for setting in "vulkan webgpu" "gl adapter" "gl webgpu"; do
    read -r backend limits <<<"$setting"
    for matmul in register tiled; do
        echo "== tests on $backend under $limits limits without subgroups, $matmul matmul"
        WGPU_BACKEND="$backend" WGPU_MLP_LIMITS="$limits" WGPU_MLP_FEATURES=none \
            WGPU_MLP_MATMUL="$matmul" cargo test --release --locked "${limited_targets[@]}"
    done
done

# And as the weakest devices the kernels are written for: 4 storage buffers per stage (wgpu's
# downlevel limits), and WebGPU's compatibility mode (128 invocations per workgroup), on
# lavapipe with subgroups (so the shuffled kernel too) and on GL without; every matmul kernel
# the device runs, forced in turn; then the CLI's train, gradcheck and bench under each.
for setting in "vulkan downlevel" "vulkan compat" "gl downlevel" "gl compat"; do
    read -r backend limits <<<"$setting"
    matmuls=(register tiled)
    if [ "$backend" = vulkan ]; then matmuls+=(shuffled); fi
    for matmul in "${matmuls[@]}"; do
        echo "== tests on $backend under $limits limits, $matmul matmul"
        WGPU_BACKEND="$backend" WGPU_MLP_LIMITS="$limits" WGPU_MLP_MATMUL="$matmul" \
            cargo test --release --locked "${limited_targets[@]}"
        echo "== train, gradcheck and bench on $backend under $limits limits, $matmul matmul"
        WGPU_BACKEND="$backend" WGPU_MLP_LIMITS="$limits" WGPU_MLP_MATMUL="$matmul" \
            target/release/wgpu-mlp train --dataset synthetic --train-size 512 --test-size 128 \
            --epochs 1 --optimizer adam --hidden-sizes 32 >/dev/null
        WGPU_BACKEND="$backend" WGPU_MLP_LIMITS="$limits" WGPU_MLP_MATMUL="$matmul" \
            target/release/wgpu-mlp gradcheck --layers 20,16,10 >/dev/null
        WGPU_BACKEND="$backend" WGPU_MLP_LIMITS="$limits" \
            target/release/wgpu-mlp bench --workload W1 --matmul "$matmul" --samples 640
    done
done

# The page (web/) in headless Chromium through WebGPU: installs chromium, the wasm32 target,
# wasm-bindgen-cli and playwright-core when missing, builds the page and runs tests/browser.
echo "== the page in headless Chromium"
scripts/test-browser.sh
