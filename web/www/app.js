// The page: plain ES modules, no framework. The wasm module (pkg/wgpu_mlp_web.js, built by
// scripts/build-web.sh) does the work on the GPU; this file reads the form and the query
// parameters, fetches data, draws curves and bars, and keeps the automation contract:
//
//   ?dataset=synthetic|mnist|fashion-mnist &layers=784,128,10 &hidden= &leaky_slope= &output= &loss=
//   &optimizer= &lr= &batch= &epochs= &seed= (&train= &test= for the synthetic set) &autostart=1
//   ?gradcheck=1   ?checks=1   ?bench=W1|W2 (&steps=N)
//
// document.body.dataset.state: "loading" → "ready" (adapter known, idle) → "training" / "checking"
// → "done" (training or the asked-for checks finished) or "error" (#error holds the message).
// #summary: the one-line JSON summary (as `wgpu-mlp train --json`); #gradcheck, #checks, #bench:
// the JSON of the respective call.

import { drawChart } from './chart.js';
import { digitInput } from './digit.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const FASHION = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};

let wasm = null;       // the module's exports
let gpu = null;        // wasm Gpu
let session = null;    // wasm Session: the model trained or loaded
let model = null;      // { inputs, outputs, classes: [names], label }
let training = false;
let stopAsked = false;
let sessionQueue = Promise.resolve(); // one operation at a time on `session`
const rawData = new Map();            // dataset name → the four IDX files' bytes, fetched once

// ---------------------------------------------------------------------------------------------
// State, errors

const stateHistory = [];

function setState(state) {
  if (document.body.dataset.state !== state) stateHistory.push(state);
  document.body.dataset.state = state;
  const idle = state === 'ready' || state === 'done' || state === 'error';
  const haveGpu = gpu !== null;
  $('train-button').disabled = !haveGpu || !idle;
  $('stop-button').disabled = state !== 'training';
  for (const id of ['gradcheck-button', 'checks-button', 'bench-w1', 'bench-w2']) $(id).disabled = !haveGpu || !idle;
  $('load').disabled = !haveGpu || !idle;
  $('load-label').classList.toggle('disabled', !haveGpu || !idle);
  $('save').disabled = !haveGpu || !idle || session === null;
}

function message(error) {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  try { return JSON.stringify(error); } catch { return String(error); }
}

const NO_WEBGPU_HELP = `
<p>WebGPU is on by default in Chrome and Edge 113+ on Windows, macOS and ChromeOS (and Chrome 121+ on
Android 12+), in Safari 26+ (macOS, iOS, iPadOS and visionOS 26) and in Firefox 141+ on Windows
(Firefox 145+ on macOS with Apple silicon).</p>
<ul>
<li>Chrome or Chromium on Linux: open <code>chrome://flags/#enable-unsafe-webgpu</code>, enable it (and
<code>#enable-vulkan</code>), restart; or start it with <code>--enable-unsafe-webgpu --enable-features=Vulkan</code>.</li>
<li>Firefox elsewhere: set <code>dom.webgpu.enabled</code> to true in <code>about:config</code> (or use Firefox Nightly).</li>
<li>Safari before 26: Develop › Feature Flags › WebGPU.</li>
<li>A browser with GPU acceleration turned off (or in a VM without a GPU) offers no adapter: turn
hardware acceleration on (Chrome: Settings › System).</li>
</ul>
<p>WebGPU is only offered to secure pages: <code>https://</code>, or <code>http://localhost</code> /
<code>http://127.0.0.1</code>.</p>`;

function showError(error) {
  const text = message(error);
  console.error(error);
  const box = $('error');
  box.replaceChildren();
  const p = document.createElement('p');
  p.className = 'message';
  p.textContent = text;
  box.append(p);
  if (/no WebGPU/i.test(text)) {
    const help = document.createElement('div');
    help.className = 'help';
    help.innerHTML = NO_WEBGPU_HELP;
    if (!window.isSecureContext) {
      const insecure = document.createElement('p');
      insecure.textContent = `This page (${location.origin}) is not a secure context, so the browser hides WebGPU from it.`;
      help.prepend(insecure);
    }
    box.append(help);
  }
  box.hidden = false;
  setState('error');
}

function clearError() {
  $('error').hidden = true;
  $('error').replaceChildren();
}

// ---------------------------------------------------------------------------------------------
// The adapter

function mib(bytes) {
  return bytes >= 1 << 20 ? `${Math.round(bytes / (1 << 20))} MiB` : `${bytes} B`;
}

function showAdapter(info) {
  const l = info.limits || {};
  const name = info.name || `${info.vendor || '?'} ${info.architecture || ''}`.trim() + ' (the browser hides its name)';
  const el = $('adapter');
  el.replaceChildren();
  const strong = document.createElement('strong');
  strong.textContent = name;
  el.append('Adapter: ', strong,
    ` — ${info.backend}, ${info.deviceType}${info.isCpu ? ' (software: it gets the CPU adapters\' kernels)' : ''}`
    + (info.vendor || info.architecture ? `; vendor ${info.vendor || '?'}, architecture ${info.architecture || '?'}` : ''));
  const limits = document.createElement('span');
  limits.className = 'limits';
  limits.textContent = `limits: storage binding ${mib(l.maxStorageBufferBindingSize)}, buffer ${mib(l.maxBufferSize)}, `
    + `${l.maxComputeInvocationsPerWorkgroup} invocations per workgroup (x ≤ ${l.maxComputeWorkgroupSizeX}), `
    + `${l.maxStorageBuffersPerShaderStage} storage buffers per stage`
    + (l.maxComputeWorkgroupStorageSize ? `, ${l.maxComputeWorkgroupStorageSize / 1024} KiB workgroup memory` : '')
    + (info.matmul ? `; matmul kernel: ${info.matmul}` : '');
  const features = document.createElement('details');
  const title = document.createElement('summary');
  const list = info.features || [];
  title.textContent = `${list.length} feature${list.length === 1 ? '' : 's'}${list.includes('subgroups') || list.includes('subgroup') ? ', subgroups among them' : ''}`;
  features.append(title, list.join(', ') || 'none');
  el.append(document.createElement('br'), limits, features);
  el.classList.add('ok');
}

// ---------------------------------------------------------------------------------------------
// Settings: the query parameters fill the form, the form makes the settings

const FIELDS = ['dataset', 'train', 'test', 'layers', 'hidden', 'leaky_slope', 'output', 'loss', 'optimizer', 'lr', 'batch', 'epochs', 'seed'];

function paramsIntoForm() {
  const form = $('settings');
  for (const name of FIELDS) {
    if (!params.has(name)) continue;
    const field = form.elements[name];
    const value = params.get(name);
    if (field.tagName === 'SELECT' && ![...field.options].some((o) => o.value === value)) {
      // A value the page has no option for still goes to the library, which judges it.
      const option = document.createElement('option');
      option.value = option.textContent = value;
      field.append(option);
    }
    field.value = value;
  }
  // Sensible partners for the loss when the URL names only the loss.
  showDatasetFields();
}

// The tutorial's network (`wgpu-mlp train --tutorial`): the defaults before the task's.
const TUTORIAL = { hidden: 'sigmoid', output: '', loss: 'mse', optimizer: 'sgd', lr: '0.5', batch: '64', epochs: '5' };

function fillForm(values) {
  const form = $('settings');
  for (const [name, value] of Object.entries(values)) form.elements[name].value = value;
  showActivationFields();
}

function showDatasetFields() {
  const dataset = $('dataset').value;
  document.querySelectorAll('.synthetic-only').forEach((el) => { el.hidden = dataset !== 'synthetic'; });
  document.querySelectorAll('.files-only').forEach((el) => { el.hidden = dataset !== 'files'; });
  showActivationFields();
}

// The slope field only where the hidden layers are leaky ReLU.
function showActivationFields() {
  const leaky = $('settings').elements.hidden.value === 'leaky-relu';
  document.querySelectorAll('.leaky-only').forEach((el) => { el.hidden = !leaky; });
}

function integer(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: ${JSON.stringify(value)} is not a whole number`);
  return n;
}

function readSettings() {
  const f = $('settings').elements;
  const layers = f.layers.value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const lr = Number(f.lr.value);
  if (f.lr.value.trim() === '' || !Number.isFinite(lr)) throw new Error(`lr: ${JSON.stringify(f.lr.value)} is not a number`);
  const settings = {
    layers: layers.map((s) => integer('layers', s)),
    hidden: f.hidden.value,
    loss: f.loss.value,
    optimizer: f.optimizer.value,
    lr,
    batch: integer('batch', f.batch.value),
    // Empty: the library's default, 10 epochs or more to make 5,000 steps.
    epochs: f.epochs.value.trim() === '' ? null : integer('epochs', f.epochs.value),
    seed: integer('seed', f.seed.value),
    augment: f.augment.checked ? 'affine,elastic' : null,
  };
  if (f.output.value) settings.output = f.output.value;
  if (f.hidden.value === 'leaky-relu') {
    const slope = Number(f.leaky_slope.value);
    if (f.leaky_slope.value.trim() === '' || !Number.isFinite(slope)) throw new Error(`leaky_slope: ${JSON.stringify(f.leaky_slope.value)} is not a number`);
    settings.leaky_slope = slope;
  }
  return settings;
}

// ---------------------------------------------------------------------------------------------
// Data

async function fetchIdx(dataset, file) {
  const tried = [];
  for (const name of [`${file}.gz`, file]) {
    const url = `data/${dataset}/${name}`;
    tried.push(url);
    let response;
    try {
      response = await fetch(url);
    } catch (e) {
      throw new Error(`could not fetch ${url}: ${message(e)}`);
    }
    if (response.ok) return new Uint8Array(await response.arrayBuffer());
    if (response.status !== 404) throw new Error(`could not fetch ${url}: HTTP ${response.status} ${response.statusText}`);
  }
  throw new Error(`${tried.join(' and ')} are not on this server: put the ${dataset} IDX files in data/${dataset}/ `
    + `beside index.html (wgpu-mlp download --dataset ${dataset} fetches them), or pick them from your disk`);
}

async function serverData(dataset) {
  if (!rawData.has(dataset)) {
    const entries = await Promise.all(Object.entries(IDX_FILES).map(async ([key, file]) => [key, await fetchIdx(dataset, file)]));
    rawData.set(dataset, Object.fromEntries(entries));
  }
  return rawData.get(dataset);
}

async function diskData() {
  const files = [...$('idx-files').files];
  const found = {};
  const patterns = {
    trainImages: /train.*images|images.*train/i,
    trainLabels: /train.*labels|labels.*train/i,
    testImages: /(t10k|test).*images|images.*(t10k|test)/i,
    testLabels: /(t10k|test).*labels|labels.*(t10k|test)/i,
  };
  for (const file of files) {
    for (const [key, pattern] of Object.entries(patterns)) {
      if (pattern.test(file.name) && !found[key]) { found[key] = file; break; }
    }
  }
  const missing = Object.keys(patterns).filter((k) => !found[k]);
  if (missing.length) {
    throw new Error(`pick the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, `
      + `t10k-labels-idx1-ubyte, .gz or raw); missing: ${missing.map((k) => IDX_FILES[k]).join(', ')}`);
  }
  const entries = await Promise.all(Object.entries(found).map(async ([key, file]) => [key, new Uint8Array(await file.arrayBuffer())]));
  return Object.fromEntries(entries);
}

/** The Data object for the form's data set, and the dataset name to record. */
async function loadData() {
  const f = $('settings').elements;
  const dataset = f.dataset.value;
  if (dataset === 'synthetic') {
    const train = integer('train', f.train.value);
    const test = integer('test', f.test.value);
    const seed = integer('seed', f.seed.value);
    return { data: wasm.Data.synthetic(train, test, seed), name: 'synthetic' };
  }
  setProgress(0, `loading ${dataset === 'files' ? 'the files' : `data/${dataset}`}…`);
  const raw = dataset === 'files' ? await diskData() : await serverData(dataset);
  const data = wasm.Data.fromIdx(raw.trainImages, raw.trainLabels, raw.testImages, raw.testLabels);
  // Files from disk are recorded as MNIST unless their name says Fashion-MNIST.
  const name = dataset === 'files'
    ? ([...$('idx-files').files].some((file) => /fashion/i.test(file.name)) ? 'fashion-mnist' : 'mnist')
    : dataset;
  return { data, name };
}

function classNames(dataset, outputs) {
  return Array.from({ length: outputs }, (_, i) => (dataset === 'fashion-mnist' && outputs === 10 ? FASHION[i] : String(i)));
}

// ---------------------------------------------------------------------------------------------
// Progress, curves, the epoch table

const history = { epochs: 0, train: [], test: [], accuracy: [], speed: [] };

function setProgress(fraction, text) {
  $('progress').value = fraction;
  $('progress-text').textContent = text;
}

function drawCharts() {
  const x = Math.max(history.epochs, history.train.length, 1);
  drawChart($('chart-loss'), [
    { values: history.train, color: '#2563eb' },
    { values: history.test, color: '#ea580c' },
  ], { epochs: x, format: (v) => v.toPrecision(2) });
  drawChart($('chart-accuracy'), [{ values: history.accuracy, color: '#16a34a' }],
    { epochs: x, min: 0, max: 1, format: (v) => `${Math.round(v * 100)}%` });
  drawChart($('chart-speed'), [{ values: history.speed, color: '#7c3aed' }],
    { epochs: x, min: 0, format: (v) => (v >= 1e4 ? `${Math.round(v / 1e3)}k` : v >= 10 ? String(Math.round(v)) : v.toPrecision(2)) });
}

function resetHistory(epochs) {
  Object.assign(history, { epochs, train: [], test: [], accuracy: [], speed: [] });
  $('epochs').tBodies[0].replaceChildren();
  drawCharts();
}

function addEpoch(r) {
  history.train.push(r.train_loss);
  history.test.push(r.test_loss);
  history.accuracy.push(r.test_accuracy);
  history.speed.push(r.samples_per_s);
  drawCharts();
  const row = $('epochs').tBodies[0].insertRow();
  for (const v of [r.epoch, r.train_loss.toFixed(5), r.test_loss.toFixed(5), `${(r.test_accuracy * 100).toFixed(2)}%`,
    Math.round(r.samples_per_s), r.seconds.toFixed(1)]) row.insertCell().textContent = v;
}

// ---------------------------------------------------------------------------------------------
// Training

/** Runs `operation(session)` after the session's other operations (the module allows one at a time). */
function useSession(operation) {
  const result = sessionQueue.then(() => operation(session));
  sessionQueue = result.catch(() => {});
  return result;
}

function replaceSession(next, nextModel) {
  if (session) session.free();
  session = next;
  model = nextModel;
  $('model').textContent = nextModel ? nextModel.label : '';
  clearBars();
  requestPredict();
}

async function train() {
  clearError();
  $('summary').textContent = '';
  stopAsked = false;
  training = true;
  setState('training');
  try {
    await useSession(async () => {
      const settings = readSettings();
      const { data, name } = await loadData();
      let next;
      const info = data.info();
      try {
        next = wasm.Session.create(gpu, data, { ...settings, dataset: name });
      } finally {
        data.free();
      }
      const outputs = settings.layers[settings.layers.length - 1];
      replaceSession(next, {
        inputs: settings.layers[0],
        outputs,
        classes: classNames(name, outputs),
        label: `model: [${settings.layers}] ${settings.hidden}→${settings.output || 'auto'} ${settings.loss}, `
          + `${settings.optimizer} lr ${settings.lr}, batch ${settings.batch}, on ${name} (${info.train} train / ${info.test} test)`,
      });
      const { epochs } = session.settings();
      resetHistory(epochs);
      for (let epoch = 1; epoch <= epochs && !stopAsked; epoch++) {
        setProgress(0, `epoch ${epoch}/${epochs}`);
        const r = await session.trainEpoch((samples, total, runningLoss) => {
          setProgress(total ? samples / total : 0,
            `epoch ${epoch}/${epochs}: ${samples}/${total} samples, running loss ${Number(runningLoss).toFixed(5)}`);
        });
        addEpoch(r);
        setProgress(1, `epoch ${r.epoch}: test accuracy ${(r.test_accuracy * 100).toFixed(2)}%, ${Math.round(r.samples_per_s)} samples/s`);
      }
      $('summary').textContent = session.summary();
      if (stopAsked) setProgress($('progress').value, `stopped after epoch ${history.train.length}`);
    });
    training = false;
    setState('done');
  } catch (e) {
    training = false;
    showError(e);
  }
  requestPredict();
}

// ---------------------------------------------------------------------------------------------
// Save and load

function download(bytes, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function save() {
  clearError();
  try {
    const bytes = await useSession(() => session.saveModel());
    download(bytes, 'model.safetensors');
  } catch (e) {
    showError(e);
  }
}

/** The metadata of a safetensors file (its JSON header's __metadata__), or {} if it has none. */
function safetensorsMetadata(bytes) {
  if (bytes.length < 8) return {};
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = Number(view.getBigUint64(0, true));
  if (length > bytes.length - 8) return {};
  try {
    return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))).__metadata__ || {};
  } catch {
    return {};
  }
}

async function load(file) {
  clearError();
  setState('checking');
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const meta = safetensorsMetadata(bytes);
    const next = await useSession(() => wasm.Session.fromModel(gpu, bytes));
    const sizes = (meta.sizes || '').split(',').map(Number).filter((n) => n > 0);
    const outputs = sizes.length ? sizes[sizes.length - 1] : 10;
    const dataset = meta.dataset || 'mnist';
    await useSession(() => replaceSession(next, {
      inputs: sizes.length ? sizes[0] : 784,
      outputs,
      classes: classNames(dataset, outputs),
      label: `model: ${file.name}` + (meta.sizes ? ` [${meta.sizes}] ${meta.activations} ${meta.loss}` : '')
        + (meta.epochs ? `, ${meta.epochs} epochs` : '') + (meta.dataset ? ` on ${meta.dataset}` : ''),
    }));
    setState('ready');
  } catch (e) {
    showError(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Drawing and the probabilities

const draw = $('draw');
const drawContext = draw.getContext('2d', { willReadFrequently: true });
let lastPoint = null;

function clearDrawing() {
  drawContext.fillStyle = '#000';
  drawContext.fillRect(0, 0, draw.width, draw.height);
  requestPredict();
}

function canvasPoint(event) {
  const rect = draw.getBoundingClientRect();
  return [(event.clientX - rect.left) * (draw.width / rect.width), (event.clientY - rect.top) * (draw.height / rect.height)];
}

function stroke(from, to) {
  drawContext.strokeStyle = '#fff';
  drawContext.fillStyle = '#fff';
  drawContext.lineWidth = 18;
  drawContext.lineCap = 'round';
  drawContext.lineJoin = 'round';
  drawContext.beginPath();
  drawContext.moveTo(from[0], from[1]);
  drawContext.lineTo(to[0], to[1]);
  drawContext.stroke();
}

draw.addEventListener('pointerdown', (event) => {
  event.preventDefault();
  draw.setPointerCapture(event.pointerId);
  lastPoint = canvasPoint(event);
  stroke(lastPoint, lastPoint);
  requestPredict();
});
draw.addEventListener('pointermove', (event) => {
  if (lastPoint === null) return;
  event.preventDefault();
  // Coalesced events keep fast strokes smooth where the browser merges moves.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const point = canvasPoint(e);
    stroke(lastPoint, point);
    lastPoint = point;
  }
  requestPredict();
});
for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) {
  draw.addEventListener(type, () => { lastPoint = null; });
}

function drawPreview(pixels) {
  const preview = $('preview').getContext('2d');
  const image = preview.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(pixels[i] * 255);
    image.data.set([v, v, v, 255], i * 4);
  }
  preview.putImageData(image, 0, 0);
}

// The first training image as epochs 1–6 of a run with this seed deform it, side by side.
async function previewDeformations() {
  clearError();
  try {
    const seed = integer('seed', $('settings').elements.seed.value);
    const { data } = await loadData();
    try {
      const canvas = $('augment-preview').getContext('2d');
      for (let epoch = 1; epoch <= 6; epoch++) {
        const pixels = data.deformedTrainImage(0, 'affine,elastic', epoch, seed);
        const image = canvas.createImageData(28, 28);
        for (let i = 0; i < 784; i++) {
          const v = Math.round(pixels[i] * 255);
          image.data.set([v, v, v, 255], i * 4);
        }
        canvas.putImageData(image, (epoch - 1) * 30, 0);
      }
    } finally {
      data.free();
      setProgress(0, '');
    }
  } catch (error) {
    showError(error);
  }
}
$('augment-preview-button').addEventListener('click', previewDeformations);

function clearBars(note = 'Train a model or load one to see its probabilities.') {
  const bars = $('bars');
  bars.replaceChildren();
  const p = document.createElement('p');
  p.className = 'note';
  p.textContent = note;
  bars.append(p);
}

function showBars(probabilities, classes) {
  const bars = $('bars');
  let best = 0;
  probabilities.forEach((p, i) => { if (p > probabilities[best]) best = i; });
  bars.replaceChildren();
  probabilities.forEach((p, i) => {
    const row = document.createElement('div');
    row.className = 'bar' + (i === best ? ' best' : '');
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = classes[i] ?? String(i);
    const track = document.createElement('span');
    track.className = 'track';
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    track.append(fill);
    const value = document.createElement('span');
    value.className = 'value';
    value.textContent = p.toFixed(3);
    row.append(label, track, value);
    bars.append(row);
  });
}

let predictWanted = false;
let predicting = false;

function requestPredict() {
  predictWanted = true;
  if (!predicting) predictLoop();
}

async function predictLoop() {
  predicting = true;
  try {
    while (predictWanted) {
      predictWanted = false;
      // One frame between predictions: moves in between are merged.
      await new Promise((resolve) => requestAnimationFrame(resolve));
      const pixels = digitInput(drawContext.getImageData(0, 0, draw.width, draw.height), draw.width, draw.height);
      drawPreview(pixels);
      if (!session || !model) continue;
      if (training) { clearBars('Training… the probabilities come back when it ends.'); continue; }
      if (model.inputs !== 784) { clearBars(`This model takes ${model.inputs} inputs, not a 28×28 image.`); continue; }
      if (!pixels.some((v) => v > 0)) { clearBars('Draw a digit.'); continue; }
      try {
        const probabilities = await useSession(() => session.predict(pixels));
        showBars(Array.from(probabilities), model.classes);
      } catch (e) {
        clearBars(`prediction failed: ${message(e)}`);
      }
    }
  } finally {
    predicting = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Checks and benchmarks

async function runGradcheck() {
  $('gradcheck').textContent = '';
  const r = await wasm.gradcheck(gpu);
  // The contract: {"worst_gpu_cpu": …, "ok": …}; the library's detail is shown beside it.
  $('gradcheck').textContent = JSON.stringify({ worst_gpu_cpu: r.worst_gpu_cpu, ok: r.ok });
  $('gradcheck-text').textContent = `${r.ok ? 'ok' : 'FAILED'}: worst GPU − CPU gradient difference ${Number(r.worst_gpu_cpu).toPrecision(3)}× `
    + `its tolerance (passes below 1)${r.detail ? `; ${r.detail}` : ''}`;
  return r;
}

async function runKernelChecks() {
  $('checks').textContent = '';
  const results = await wasm.runChecks(gpu);
  $('checks').textContent = JSON.stringify(results);
  const failed = results.filter((r) => !r.ok);
  $('checks-text').textContent = failed.length
    ? `${failed.length} of ${results.length} checks FAILED: ${failed.map((r) => r.name).join(', ')}`
    : `all ${results.length} checks pass`;
  return results;
}

async function runBench(workload, steps) {
  $('bench').textContent = '';
  const r = await wasm.bench(gpu, workload, steps);
  $('bench').textContent = JSON.stringify(r);
  return r;
}

async function asChecking(task) {
  clearError();
  setState('checking');
  try {
    await task();
    setState('done');
  } catch (e) {
    showError(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Start

function wire() {
  $('settings').addEventListener('submit', (event) => { event.preventDefault(); train(); });
  $('tutorial-button').addEventListener('click', () => fillForm(TUTORIAL));
  $('dataset').addEventListener('change', showDatasetFields);
  $('settings').elements.hidden.addEventListener('change', showActivationFields);
  $('stop-button').addEventListener('click', () => { stopAsked = true; $('stop-button').disabled = true; });
  $('save').addEventListener('click', save);
  $('load').addEventListener('change', (event) => {
    const file = event.target.files[0];
    event.target.value = '';
    if (file) load(file);
  });
  $('clear').addEventListener('click', clearDrawing);
  window.addEventListener('resize', drawCharts);
  $('gradcheck-button').addEventListener('click', () => asChecking(runGradcheck));
  $('checks-button').addEventListener('click', () => asChecking(runKernelChecks));
  $('bench-w1').addEventListener('click', () => asChecking(() => runBench('W1', 200)));
  $('bench-w2').addEventListener('click', () => asChecking(() => runBench('W2', 20)));
}

async function main() {
  wire();
  paramsIntoForm();
  clearDrawing();
  clearBars();
  drawCharts();
  setState('loading');
  try {
    wasm = await import('./pkg/wgpu_mlp_web.js');
    await wasm.default();
  } catch (e) {
    $('adapter').textContent = 'The WebAssembly module did not load.';
    showError(new Error(`could not load the WebAssembly module (pkg/wgpu_mlp_web.js): ${message(e)}; `
      + 'build the page with scripts/build-web.sh and serve target/web'));
    return;
  }
  try {
    gpu = await wasm.Gpu.request();
  } catch (e) {
    $('adapter').textContent = 'No WebGPU adapter: this browser cannot run the page.';
    $('adapter').classList.add('bad');
    showError(e);
    return;
  }
  showAdapter(gpu.info());
  setState('ready');

  // The automation contract: checks first, then a benchmark, then training.
  const tasks = [];
  if (params.get('checks') === '1') tasks.push(runKernelChecks);
  if (params.get('gradcheck') === '1') tasks.push(runGradcheck);
  if (params.has('bench')) {
    const workload = params.get('bench');
    const steps = params.has('steps') ? integer('steps', params.get('steps')) : (workload === 'W2' ? 20 : 200);
    tasks.push(() => runBench(workload, steps));
  }
  if (tasks.length) await asChecking(async () => { for (const task of tasks) await task(); });
  if (params.get('autostart') === '1' && document.body.dataset.state !== 'error') await train();
}

// For scripts and tests (page.evaluate): the module, the device, the current session, and the
// queue that keeps one operation at a time on it.
window.wgpuMlp = {
  get wasm() { return wasm; },
  get gpu() { return gpu; },
  get session() { return session; },
  get states() { return [...stateHistory]; },
  useSession,
};

main();
