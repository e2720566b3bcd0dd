#!/usr/bin/env bash
# The page's tests in headless Chromium, on a fresh machine: installs what is missing (Debian's
# chromium, the wasm32-unknown-unknown target, playwright-core from tests/browser's lock file:
# nothing that downloads a browser of its own), builds the page (scripts/build-web.sh) and the
# native CLI, serves target/web on 127.0.0.1 with the repository's MNIST subset as data/mnist,
# and runs tests/browser/run.mjs against it (Chromium with --enable-unsafe-webgpu: SwiftShader's
# WebGPU adapter, on the CPU). The native half of the model-file test needs a Vulkan adapter as
# scripts/test.sh sets up (lavapipe).
#
# WGPU_MLP_SCREENSHOT=docs/web-screenshot.png then saves the page after training the MNIST subset;
# WGPU_MLP_BROWSER_BENCH=1 also measures W2 and longer W1 in the page.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    export XDG_RUNTIME_DIR="$(mktemp -d)"
fi

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
apt_updated=""
apt_install() {
    if ! command -v apt-get >/dev/null; then
        echo "no apt-get here: install $* by hand and run again" >&2
        exit 1
    fi
    if [ -z "$apt_updated" ]; then
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    echo "== installing $*"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
    apt_install chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "node $(node --version) is too old for playwright-core (it needs Node.js 20 or newer)" >&2
    exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "== rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi
# npm ci when playwright-core is missing or not the locked version.
locked_ok() {
    (cd tests/browser && node -e '
        const locked = require("./package-lock.json").packages["node_modules/playwright-core"].version;
        process.exit(require("./node_modules/playwright-core/package.json").version === locked ? 0 : 1);' 2>/dev/null)
}
if ! locked_ok; then
    echo "== npm ci (tests/browser: playwright-core, which downloads no browser)"
    (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== building the page (scripts/build-web.sh)"
scripts/build-web.sh
echo "== building the native CLI"
cargo build --release --locked --bin wgpu-mlp

# The served folder: a copy of target/web (so that a rebuild while the tests run changes nothing
# under them) with data/mnist linked to the repository's MNIST subset, in a temporary folder
# (nothing is written into the repository).
work="$(mktemp -d)"
serve_root="$work/root"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
cp -R target/web "$serve_root"
for file in index.html pkg/wgpu_mlp_web.js pkg/wgpu_mlp_web_bg.wasm; do
    if [ ! -f "$serve_root/$file" ]; then
        echo "target/web/$file is missing after scripts/build-web.sh" >&2
        exit 1
    fi
done
rm -rf "$serve_root/data"
mkdir "$serve_root/data"
ln -s "$repo/tests/data/mnist" "$serve_root/data/mnist"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$serve_root" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/index.html')" 2>/dev/null; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/server.log" >&2; exit 1; fi
    sleep 0.1
done

echo "== browser tests (headless $("$chromium" --version 2>/dev/null | head -1), http://127.0.0.1:$port/)"
WGPU_MLP_WEB_URL="http://127.0.0.1:$port/" CHROMIUM="$chromium" WGPU_MLP_BIN="$repo/target/release/wgpu-mlp" \
    node --test-reporter=spec tests/browser/run.mjs
if [ -n "${WGPU_MLP_SCREENSHOT:-}" ]; then
    echo "== screenshot: $WGPU_MLP_SCREENSHOT"
    WGPU_MLP_WEB_URL="http://127.0.0.1:$port/" CHROMIUM="$chromium" node tests/browser/screenshot.mjs "$WGPU_MLP_SCREENSHOT"
fi
