// The page's tests in headless Chromium (Debian's /usr/bin/chromium, with --enable-unsafe-webgpu:
// SwiftShader's WebGPU adapter on the CPU), driven by playwright-core, which never downloads a
// browser. scripts/test-browser.sh builds the page, serves it and runs this file:
//
//   WGPU_MLP_WEB_URL=http://127.0.0.1:PORT/ node --test-reporter=spec tests/browser/run.mjs
//
// The server must serve target/web at that URL with data/mnist holding tests/data/mnist.
// Environment: WGPU_MLP_WEB_URL (required), CHROMIUM (default /usr/bin/chromium), WGPU_MLP_BIN
// (the native CLI, default target/release/wgpu-mlp), WGPU_MLP_BROWSER_BENCH=1 (also measure W2,
// and W1 over more steps, in the page and print their samples/s).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { mnistLike } from '../../web/www/digit.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BASE = process.env.WGPU_MLP_WEB_URL;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CLI = process.env.WGPU_MLP_BIN || join(repo, 'target/release/wgpu-mlp');
const WEBGPU = ['--no-sandbox', '--enable-unsafe-webgpu'];
const run = promisify(execFile);

if (!BASE) {
  console.error('WGPU_MLP_WEB_URL is not set: run scripts/test-browser.sh, which builds and serves the page');
  process.exit(2);
}

// Settings the page trains the synthetic set with (measured: see the test's floor).
const SYNTHETIC = {
  dataset: 'synthetic', train: 2000, test: 500, layers: '784,64,10', hidden: 'relu',
  loss: 'cross-entropy', optimizer: 'adam', lr: '0.005', batch: 32, epochs: 3, seed: 7,
};
const SYNTHETIC_FLOOR = 0.9;
// The MNIST subset (6,000 / 1,000) as README's CPU example: 90.7% there after 2 epochs.
const MNIST = {
  dataset: 'mnist', layers: '784,64,10', hidden: 'relu', loss: 'cross-entropy', optimizer: 'adam',
  lr: '0.002', batch: 32, epochs: 2, seed: 42,
};
const MNIST_FLOOR = 0.85;

let browser;
let scratch;

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: WEBGPU });
  scratch = await mkdtemp(join(tmpdir(), 'wgpu-mlp-browser-'));
  console.log(`# ${CHROMIUM} ${browser.version()}, page at ${BASE}`);
});

after(async () => {
  await browser?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function url(query) {
  const u = new URL(BASE);
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, String(v));
  return u.href;
}

/** A page in a fresh context of `b`, with the browser's console errors kept for failures. */
async function open(b, query, { viewport } = {}) {
  const context = await b.newContext({ acceptDownloads: true, viewport: viewport ?? { width: 1280, height: 900 } });
  const page = await context.newPage();
  const log = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.log = log;
  const response = await page.goto(url(query));
  assert.ok(response.ok(), `${url(query)}: HTTP ${response.status()}`);
  return page;
}

/** Waits for body[data-state] to be one of `states`; fails with #error and the console if it is "error" unexpectedly. */
async function settle(page, states, timeout) {
  await page.waitForFunction((s) => s.includes(document.body.dataset.state), states, { timeout, polling: 200 });
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state === 'error' && !states.every((s) => s === 'error')) {
    const error = await page.textContent('#error');
    assert.fail(`the page says: ${error}\n${page.log.join('\n')}`);
  }
  return state;
}

async function text(page, selector) {
  return (await page.textContent(selector)).trim();
}

const last = (v) => (Array.isArray(v) ? v[v.length - 1] : v);

test('kernel and gradient checks in the page (?checks=1) all pass', { timeout: 300_000 }, async () => {
  const page = await open(browser, { checks: 1 });
  try {
    const state = await settle(page, ['done', 'error'], 290_000);
    assert.equal(state, 'done', await text(page, '#error'));
    const checks = JSON.parse(await text(page, '#checks'));
    assert.ok(Array.isArray(checks) && checks.length > 0, 'no checks ran');
    const failed = checks.filter((c) => c.ok !== true);
    for (const c of checks) console.log(`#   ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: worst ${c.worst}${c.ok ? '' : ` (${c.detail})`}`);
    console.log(`# ${checks.length} kernel/gradient checks in the browser, ${checks.length - failed.length} pass`);
    assert.deepEqual(failed.map((c) => c.name), []);
  } finally {
    await page.context().close();
  }
});

test('gradient check in the page (?gradcheck=1) is ok', { timeout: 120_000 }, async () => {
  const page = await open(browser, { gradcheck: 1 });
  try {
    assert.equal(await settle(page, ['done', 'error'], 110_000), 'done');
    const raw = await text(page, '#gradcheck');
    const r = JSON.parse(raw);
    assert.deepEqual(Object.keys(r).sort(), ['ok', 'worst_gpu_cpu']);
    console.log(`# gradcheck: ${raw}`);
    assert.equal(r.ok, true);
    assert.ok(Number.isFinite(r.worst_gpu_cpu) && r.worst_gpu_cpu >= 0);
  } finally {
    await page.context().close();
  }
});

// Trained once, used by the accuracy test and the model-file test.
let synthetic;

test(`the page trains the synthetic set (?autostart=1) past ${SYNTHETIC_FLOOR * 100}% test accuracy`, { timeout: 240_000 }, async () => {
  const page = await open(browser, { ...SYNTHETIC, autostart: 1 });
  assert.equal(await settle(page, ['done', 'error'], 230_000), 'done');
  const states = await page.evaluate(() => window.wgpuMlp.states);
  assert.deepEqual(states.slice(-3), ['ready', 'training', 'done']);
  const summary = JSON.parse(await text(page, '#summary'));
  // The CLI's `--json` keys, made by the same code (the library's run::Summary).
  for (const key of ['test_accuracy', 'test_loss', 'train_loss', 'samples_per_s', 'adapter', 'dataset', 'epochs',
    'task', 'best_epoch', 'stopped_early', 'interrupted', 'profile']) {
    assert.ok(key in summary, `#summary has no ${key}: ${JSON.stringify(summary)}`);
  }
  assert.equal(summary.dataset, 'synthetic');
  assert.equal(summary.epochs, SYNTHETIC.epochs);
  const accuracy = last(summary.test_accuracy);
  console.log(`# synthetic ${SYNTHETIC.train}/${SYNTHETIC.test}, ${SYNTHETIC.epochs} epochs: test accuracy ${accuracy}, `
    + `test loss ${last(summary.test_loss)}, ${Math.round(last(summary.samples_per_s))} samples/s on ${summary.adapter}`);
  assert.ok(accuracy >= SYNTHETIC_FLOOR, `test accuracy ${accuracy} < ${SYNTHETIC_FLOOR}`);
  // The curves have a point per epoch and the progress bar ended full.
  assert.equal(await page.locator('#epochs tbody tr').count(), SYNTHETIC.epochs);
  synthetic = { page, summary };
});

// A weak device's limits forced by the address: the page still trains, on the kernel forms
// that fit 4 storage buffers per stage under downlevel and 128 invocations per workgroup under
// compat (which keeps compute's 8 storage buffers).
for (const preset of ['compat', 'downlevel']) {
  test(`the page trains the synthetic set under ?limits=${preset}`, { timeout: 240_000 }, async () => {
    const page = await open(browser, { ...SYNTHETIC, autostart: 1, limits: preset });
    try {
      assert.equal(await settle(page, ['done', 'error'], 230_000), 'done');
      const limits = await text(page, '#adapter .limits');
      if (preset === 'compat') {
        assert.match(limits, /\b8 storage buffers per stage/);
        assert.match(limits, /\b128 invocations per workgroup/);
      } else {
        assert.match(limits, /\b4 storage buffers per stage/);
      }
      const summary = JSON.parse(await text(page, '#summary'));
      const accuracy = last(summary.test_accuracy);
      console.log(`# ?limits=${preset}: ${limits}; test accuracy ${accuracy}`);
      assert.ok(accuracy >= SYNTHETIC_FLOOR, `test accuracy ${accuracy} < ${SYNTHETIC_FLOOR}`);
    } finally {
      await page.context().close();
    }
  });
}

test('a model saved in the page gives the same outputs natively (wgpu-mlp eval and predict)', { timeout: 180_000 }, async (t) => {
  assert.ok(synthetic, 'the synthetic training test did not finish');
  const { page, summary } = synthetic;
  t.after(() => page.context().close());

  // The page's Save button: the download is the file.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
  assert.equal(download.suggestedFilename(), 'model.safetensors');
  const modelPath = join(scratch, 'model.safetensors');
  await download.saveAs(modelPath);
  const file = await readFile(modelPath);

  // In the page: the session's outputs for the first test images, the same file's bytes from
  // saveModel, and the outputs of a session loaded from them.
  const images = 8;
  const inPage = await page.evaluate(async ({ images, seed, test }) => {
    const { wasm, gpu, useSession } = window.wgpuMlp;
    const data = wasm.Data.synthetic(10, test, seed);
    const pixels = Array.from({ length: images }, (_, i) => data.testImage(i));
    data.free();
    return useSession(async (session) => {
      const probabilities = [];
      for (const x of pixels) probabilities.push(Array.from(await session.predict(x)));
      const bytes = await session.saveModel();
      // The header's metadata and a digest of the tensors that follow it.
      const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
      const metadata = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))).__metadata__;
      const tensors = await crypto.subtle.digest('SHA-256', bytes.subarray(8 + length));
      const digest = Array.from(new Uint8Array(tensors), (b) => b.toString(16).padStart(2, '0')).join('');
      const loaded = await wasm.Session.fromModel(gpu, bytes);
      const reloaded = [];
      for (const x of pixels) reloaded.push(Array.from(await loaded.predict(x)));
      loaded.free();
      return { pixels: pixels.map((p) => Array.from(p)), probabilities, reloaded, metadata, digest };
    });
  }, { images, seed: SYNTHETIC.seed, test: SYNTHETIC.test });

  // 1. The download holds the tensors and metadata saveModel gives (the metadata's order in the
  //    header may differ from one save to the next), and a session loaded from them computes
  //    bit-identical outputs in the page.
  const model = parseSafetensors(file);
  assert.equal(createHash('sha256').update(model.data).digest('hex'), inPage.digest);
  assert.deepEqual(model.metadata, inPage.metadata);
  assert.equal(model.metadata.dataset, 'synthetic');
  assert.equal(model.metadata.seed, String(SYNTHETIC.seed));
  assert.deepEqual(inPage.reloaded, inPage.probabilities);

  // 2. The file's weights, read here and run in f64, give the page's probabilities (f32 on the GPU).
  const reference = forward(model, inPage.pixels);
  let worst = 0;
  reference.forEach((row, i) => row.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - inPage.probabilities[i][j])); }));
  console.log(`# page's probabilities vs the file's weights in f64: worst |difference| ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-5, `worst difference ${worst}`);

  // 3. Natively: `wgpu-mlp eval` (on the GPU adapter and on the CPU reference) finds the page's
  //    test accuracy exactly and its test loss to f32 rounding.
  for (const cpu of [false, true]) {
    const args = ['eval', '--model', modelPath, '--dataset', 'synthetic', '--test-size', String(SYNTHETIC.test), '--json'];
    if (cpu) args.push('--cpu');
    const { stdout } = await run(CLI, args, { cwd: scratch });
    const native = JSON.parse(stdout.trim().split('\n').pop());
    console.log(`# native eval (${native.adapter}): test accuracy ${native.test_accuracy}, test loss ${native.test_loss}; `
      + `page: ${last(summary.test_accuracy)}, ${last(summary.test_loss)}`);
    assert.equal(native.samples, SYNTHETIC.test);
    assert.equal(native.test_accuracy, last(summary.test_accuracy));
    const loss = last(summary.test_loss);
    assert.ok(Math.abs(native.test_loss - loss) <= 1e-6 * Math.max(1, Math.abs(loss)),
      `test loss: native ${native.test_loss}, page ${loss}`);
  }

  // 4. Natively: `wgpu-mlp predict` on the same images (as 28×28 PGM files) names the page's
  //    class and prints the page's top three probabilities, to its three decimals.
  const paths = [];
  for (const [i, pixels] of inPage.pixels.entries()) {
    const path = join(scratch, `test${i}.pgm`);
    const body = Buffer.from(pixels.map((v) => Math.round(v * 255)));
    await writeFile(path, Buffer.concat([Buffer.from('P5\n28 28\n255\n'), body]));
    paths.push(path);
  }
  const { stdout } = await run(CLI, ['predict', '--model', modelPath, ...paths], { cwd: scratch });
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, images, stdout);
  lines.forEach((line, i) => {
    const m = line.match(/: (\d+)\s+\((.*)\)$/);
    assert.ok(m, line);
    const page = inPage.probabilities[i];
    const best = page.indexOf(Math.max(...page));
    assert.equal(Number(m[1]), best, `${line}; page: ${page}`);
    for (const pair of m[2].split(', ')) {
      const [c, p] = pair.split(': ').map(Number);
      assert.ok(Math.abs(page[c] - p) <= 0.0005 + 1e-6, `class ${c}: native ${p}, page ${page[c]}`);
    }
  });

  // 5. The page's Load button takes the file back: the loaded model gives the same outputs.
  await page.setInputFiles('#load', modelPath);
  await page.waitForFunction(() => document.getElementById('model').textContent.includes('model.safetensors'), null, { timeout: 30_000 });
  assert.equal(await settle(page, ['ready', 'error'], 30_000), 'ready');
  const loaded = await page.evaluate((x) => window.wgpuMlp.useSession(async (s) => Array.from(await s.predict(Float32Array.from(x)))), inPage.pixels[0]);
  assert.deepEqual(loaded, inPage.probabilities[0]);
});

test('the page trains on IDX files picked from the disk, and says which are missing', { timeout: 240_000 }, async () => {
  const page = await open(browser, { layers: '784,32,10', hidden: 'relu', loss: 'cross-entropy', optimizer: 'adam', lr: '0.003', batch: 64, epochs: 1 });
  try {
    assert.equal(await settle(page, ['ready', 'error'], 60_000), 'ready');
    await page.selectOption('#dataset', 'files');
    const folder = join(repo, 'tests/data/mnist');
    const files = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'];
    await page.setInputFiles('#idx-files', files.slice(0, 3).map((f) => join(folder, f)));
    await page.click('#train-button');
    assert.equal(await settle(page, ['error'], 60_000), 'error');
    assert.match(await text(page, '#error'), /missing: t10k-labels-idx1-ubyte/);

    await page.setInputFiles('#idx-files', files.map((f) => join(folder, f)));
    await page.click('#train-button');
    assert.equal(await settle(page, ['done', 'error'], 220_000), 'done');
    assert.equal(await page.isVisible('#error'), false);
    const summary = JSON.parse(await text(page, '#summary'));
    console.log(`# mnist subset from the disk, 1 epoch of 784-32-10: test accuracy ${last(summary.test_accuracy)}`);
    assert.equal(summary.dataset, 'mnist');
    assert.ok(last(summary.test_accuracy) >= 0.8, JSON.stringify(summary));
  } finally {
    await page.context().close();
  }
});

test('a setting the library refuses puts its error text, as the native CLI prints it, in #error', { timeout: 120_000 }, async () => {
  const cases = [
    { query: { lr: '0' }, args: ['--lr', '0'] },
    { query: { loss: 'cross-entropy', output: 'sigmoid' }, args: ['--loss', 'cross-entropy', '--output', 'sigmoid'] },
  ];
  for (const { query, args } of cases) {
    const page = await open(browser, { dataset: 'synthetic', train: 100, test: 20, epochs: 1, ...query, autostart: 1 });
    try {
      await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: 60_000 });
      assert.equal(await page.evaluate(() => document.body.dataset.state), 'error');
      const error = await text(page, '#error');
      const native = await run(CLI, ['train', '--train-size', '100', '--test-size', '20', '--epochs', '1', '--cpu', ...args], { cwd: scratch })
        .then(() => assert.fail('the native CLI took it'), (e) => e.stderr.trim().split('\n').pop());
      console.log(`# ${JSON.stringify(query)}: page: ${error}; native: ${native}`);
      assert.ok(native.includes(error), `page: ${error}\nnative: ${native}`);
      assert.equal(await text(page, '#summary'), '');
    } finally {
      await page.context().close();
    }
  }
});

test("the form starts at train's defaults, and a button fills in the tutorial's network", { timeout: 60_000 }, async () => {
  const page = await open(browser, {});
  try {
    const fields = ['hidden', 'output', 'loss', 'optimizer', 'lr', 'batch', 'epochs'];
    const values = () => page.evaluate((names) => names.map((n) => document.getElementById('settings').elements[n].value), fields);
    // `wgpu-mlp train --help`'s defaults; the epochs left to the library (10, or 5,000 steps).
    assert.deepEqual(await values(), ['relu', '', 'cross-entropy', 'adam', '0.001', '64', '']);
    assert.match(await text(page, '#defaults-note'), /ReLU.*softmax output with the cross-entropy.*Adam at 0\.001, batch 64/s);
    await page.click('#tutorial-button');
    // `wgpu-mlp train --tutorial`'s.
    assert.deepEqual(await values(), ['sigmoid', '', 'mse', 'sgd', '0.5', '64', '5']);
  } finally {
    await page.context().close();
  }
});

test('a browser without WebGPU gets the clear message in #error and state "error"', { timeout: 60_000 }, async () => {
  // Headless Chromium without --enable-unsafe-webgpu: navigator.gpu exists but offers no adapter.
  const plain = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  try {
    const page = await open(plain, { dataset: 'synthetic', epochs: 1, autostart: 1 });
    assert.equal(await settle(page, ['error'], 50_000), 'error');
    assert.equal(await page.evaluate(async () => (navigator.gpu ? await navigator.gpu.requestAdapter() : null)), null);
    const error = await text(page, '#error');
    console.log(`# #error without an adapter: ${error.split('\n')[0]}`);
    assert.match(error, /^this browser has no WebGPU/);
    assert.match(error, /enable-unsafe-webgpu/);
    assert.equal(await page.isVisible('#error'), true);
    assert.equal(await text(page, '#summary'), '');

    // And a browser with no navigator.gpu at all (an older browser, or a page that is not a
    // secure context).
    const context = await plain.newContext();
    await context.addInitScript(() => { Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }); });
    const bare = await context.newPage();
    bare.log = [];
    await bare.goto(url({}));
    assert.equal(await settle(bare, ['error'], 50_000), 'error');
    assert.match(await text(bare, '#error'), /^this browser has no WebGPU/);
  } finally {
    await plain.close();
  }
});

test(`the page trains the MNIST subset served from data/mnist past ${MNIST_FLOOR * 100}%`, { timeout: 300_000 }, async () => {
  const page = await open(browser, { ...MNIST, autostart: 1 }, { viewport: { width: 1240, height: 900 } });
  try {
    assert.equal(await settle(page, ['done', 'error'], 290_000), 'done');
    const summary = JSON.parse(await text(page, '#summary'));
    const accuracy = last(summary.test_accuracy);
    console.log(`# mnist subset, ${MNIST.epochs} epochs: test accuracy ${accuracy}, test loss ${last(summary.test_loss)}, `
      + `${Math.round(last(summary.samples_per_s))} samples/s`);
    assert.equal(summary.dataset, 'mnist');
    assert.ok(accuracy >= MNIST_FLOOR, `test accuracy ${accuracy} < ${MNIST_FLOOR}`);

    // Drawing a digit: a "1" (a vertical stroke) with the mouse; the bars come from the GPU.
    const box = await page.locator('#draw').boundingBox();
    await page.mouse.move(box.x + 145, box.y + 50);
    await page.mouse.down();
    for (let y = 50; y <= 230; y += 10) await page.mouse.move(box.x + 140 - (y - 50) / 20, box.y + y);
    await page.mouse.up();
    await page.waitForFunction(() => document.querySelectorAll('#bars .bar').length === 10, null, { timeout: 20_000 });
    const bars = await page.$$eval('#bars .bar', (rows) => rows.map((r) => Number(r.querySelector('.value').textContent)));
    const best = bars.indexOf(Math.max(...bars));
    console.log(`# drawn "1": probabilities ${bars.map((p) => p.toFixed(2)).join(' ')}`);
    assert.ok(Math.abs(bars.reduce((a, b) => a + b, 0) - 1) < 0.01, `softmax outputs sum to ${bars}`);
    assert.equal(best, 1, `a vertical stroke read as ${best}`);
  } finally {
    await page.context().close();
  }
});

test('W1 benchmark in the page (?bench=W1)', { timeout: 180_000 }, async () => {
  const steps = process.env.WGPU_MLP_BROWSER_BENCH ? 400 : 40;
  const workloads = process.env.WGPU_MLP_BROWSER_BENCH ? ['W1', 'W2'] : ['W1'];
  for (const workload of workloads) {
    const page = await open(browser, { bench: workload, steps: workload === 'W2' ? Math.ceil(steps / 10) : steps });
    try {
      assert.equal(await settle(page, ['done', 'error'], 170_000), 'done');
      const r = JSON.parse(await text(page, '#bench'));
      console.log(`# ${workload} in the page: ${Math.round(r.samples_per_s)} samples/s on ${r.adapter}`);
      assert.equal(r.workload, workload);
      assert.ok(r.samples_per_s > 0);
    } finally {
      await page.context().close();
    }
  }
});

test('a drawing becomes an MNIST-like input: MNIST test digits drawn 10× larger come back as they were', async () => {
  // MNIST's digits are already in their 20×20 box, centred by mass: scaled up 10× (each pixel a
  // 10×10 square), the page's preprocessing (box, area averaging, centring) gives them back.
  const images = gunzipSync(await readFile(join(repo, 'tests/data/mnist/t10k-images-idx3-ubyte.gz'))).subarray(16);
  let worst = 1;
  for (let n = 0; n < 50; n++) {
    const digit = Float32Array.from(images.subarray(n * 784, (n + 1) * 784), (v) => v / 255);
    const big = new Float32Array(280 * 280);
    for (let y = 0; y < 280; y++) for (let x = 0; x < 280; x++) big[y * 280 + x] = digit[Math.floor(y / 10) * 28 + Math.floor(x / 10)];
    const back = mnistLike(big, 280, 280);
    // Cosine similarity of the two 784-pixel images.
    let [dot, a, b] = [0, 0, 0];
    for (let i = 0; i < 784; i++) { dot += digit[i] * back[i]; a += digit[i] ** 2; b += back[i] ** 2; }
    worst = Math.min(worst, dot / Math.sqrt(a * b));
  }
  console.log(`# 50 MNIST test digits through the drawing's preprocessing: worst cosine similarity ${worst.toFixed(3)}`);
  assert.ok(worst > 0.999, `worst similarity ${worst}`);
  // Nothing drawn: all zeros.
  assert.ok(mnistLike(new Float32Array(280 * 280), 280, 280).every((v) => v === 0));
});

// ---------------------------------------------------------------------------------------------
// The model file, read here: safetensors (a little-endian u64 header length, a JSON header,
// the tensors' bytes) with wgpu-mlp's metadata, and its forward pass in f64.

function parseSafetensors(bytes) {
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8'));
  const data = bytes.subarray(8 + length);
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    assert.equal(t.dtype, 'F32', name);
    const [start, end] = t.data_offsets;
    const values = new Float32Array(end - start >> 2);
    for (let i = 0; i < values.length; i++) values[i] = data.readFloatLE(start + 4 * i);
    tensors[name] = { shape: t.shape, values };
  }
  return { metadata: header.__metadata__, tensors, data };
}

function activate(name, z) {
  switch (name) {
    case 'identity': return z;
    case 'sigmoid': return z.map((v) => 1 / (1 + Math.exp(-v)));
    case 'relu': return z.map((v) => Math.max(v, 0));
    case 'tanh': return z.map(Math.tanh);
    case 'softmax': {
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    }
    default: throw new Error(`no f64 reference for activation ${name}`);
  }
}

function forward({ metadata, tensors }, inputs) {
  const activations = metadata.activations.split(',');
  return inputs.map((x) => {
    let a = x;
    activations.forEach((activation, l) => {
      const { shape: [outputs, ins], values: w } = tensors[`${2 * l}.weight`];
      const b = tensors[`${2 * l}.bias`].values;
      assert.equal(a.length, ins);
      const z = Array.from({ length: outputs }, (_, o) => {
        let sum = b[o];
        for (let i = 0; i < ins; i++) sum += w[o * ins + i] * a[i];
        return sum;
      });
      a = activate(activation, z);
    });
    return a;
  });
}
