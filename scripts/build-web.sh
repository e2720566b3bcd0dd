#!/usr/bin/env bash
# Builds the browser page into target/web/: the wasm module (web/, package wgpu-mlp-web) for
# wasm32-unknown-unknown, its JavaScript bindings (wasm-bindgen --target web) in target/web/pkg/,
# and the page's files (web/www/*) beside them, so that target/web/index.html is the page and
# any static HTTP server can serve the folder:
#
#   scripts/build-web.sh && python3 -m http.server -d target/web 8000
#
# The data sets are not copied: the page fetches data/<dataset>/… relative to itself, and
# target/web/data links to the checkout's data/ (made empty if missing, so the link is never
# broken), where `wgpu-mlp download` puts MNIST and Fashion-MNIST.
#
# Installs what is missing, and only that: the wasm32-unknown-unknown target (rustup) and the
# wasm-bindgen CLI of the version Cargo.lock pins (cargo install; a few minutes, once).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=target/web

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "build-web: adding the wasm32-unknown-unknown target" >&2
    rustup target add wasm32-unknown-unknown
fi

# The CLI must be the version of the wasm-bindgen crate the module links.
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$version" ]; then
    echo "build-web: Cargo.lock names no wasm-bindgen version" >&2
    exit 1
fi
installed=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$installed" != "$version" ]; then
    echo "build-web: installing wasm-bindgen-cli $version (found: ${installed:-none})" >&2
    # --locked builds the CLI with the dependencies its release was tested with; a registry
    # mirror that lacks one of them gets the newest compatible ones instead.
    cargo install wasm-bindgen-cli --version "$version" --locked ||
        cargo install wasm-bindgen-cli --version "$version"
fi

cargo build -p wgpu-mlp-web --target wasm32-unknown-unknown --release

rm -rf "$out/pkg"
mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out/pkg" \
    target/wasm32-unknown-unknown/release/wgpu_mlp_web.wasm

mkdir -p data
ln -sfn "$root/data" "$out/data"

if [ -d web/www ]; then
    cp -R web/www/. "$out/"
else
    echo "build-web: web/www/ is missing: built the module only" >&2
fi
echo "build-web: built $out/ (serve it: python3 -m http.server -d $out 8000)" >&2
