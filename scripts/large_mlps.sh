#!/usr/bin/env bash
# The big-MLP table (docs/large-mlps.md): trains MNIST MLPs with the project's recipe and prints
# one Markdown row per run, with the exact command.
#
#   scripts/large_mlps.sh [--cpu | --adapter NAME] [--epochs N] [--plain] [ARCH ...]
#
# ARCH is a comma list of layer sizes (default: Cireşan et al.'s 784-1000-500-10 and Simard et
# al.'s 784-800-10). --plain trains without deformations. The data comes from $WGPU_MLP_DATA
# (default ../shared/data), as in the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

device=()
epochs=15
augment=(--augment affine,elastic --rotate 10 --scale 0.12 --elastic-sigma 6 --elastic-alpha 34)
archs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) device=(--cpu) ;;
        --adapter) device=(--adapter "$2"); shift ;;
        --epochs) epochs="$2"; shift ;;
        --plain) augment=() ;;
        *) archs+=("$1") ;;
    esac
    shift
done
if [ ${#archs[@]} -eq 0 ]; then archs=(784,1000,500,10 784,800,10); fi
data="${WGPU_MLP_DATA:-../shared/data}/mnist"
cargo build --release --locked --bin wgpu-mlp >&2

for arch in "${archs[@]}"; do
    command=(target/release/wgpu-mlp train --dataset mnist --data "$data" --layers "$arch"
        --hidden relu --loss cross-entropy --optimizer adam --lr 0.001 --lr-schedule cosine
        --batch 128 --epochs "$epochs" --seed 1 "${augment[@]}" "${device[@]}" --json)
    echo "== ${command[*]}" >&2
    summary="$("${command[@]}")"
    python3 - "$arch" "$summary" "${command[*]}" <<'PY'
import json, sys
arch, summary, command = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
error = 100 * (1 - summary["test_accuracy"])
print(f"| {arch.replace(',', '-')} | {error:.2f}% | {summary['epochs']} | {summary['seconds'] / 60:.1f} min "
      f"| {summary['samples_per_s']:,.0f} | {summary['adapter']} | `{command}` |")
PY
done
