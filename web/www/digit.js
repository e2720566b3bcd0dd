// A drawing to a 28×28 input the way MNIST's digits were made: the ink's bounding box scaled
// (keeping its aspect ratio, by area averaging) to fit a 20×20 box, then placed in the 28×28
// field so that its centre of mass is at the field's centre. Values in [0, 1], bright on dark.

export const SIDE = 28;
const BOX = 20;

/** For each of `to` cells over [0, from): the source cells it covers and their weights (sum 1). */
function areaWeights(from, to) {
  const scale = from / to;
  const weights = [];
  for (let j = 0; j < to; j++) {
    const start = j * scale;
    const end = (j + 1) * scale;
    const cells = [];
    for (let i = Math.floor(start); i < Math.min(from, Math.ceil(end)); i++) {
      const overlap = Math.min(end, i + 1) - Math.max(start, i);
      if (overlap > 0) cells.push([i, overlap / scale]);
    }
    weights.push(cells);
  }
  return weights;
}

/**
 * Area-averages the `width`×`height` region at (`x0`, `y0`) of `grey` (row stride `stride`) to
 * `toWidth`×`toHeight`.
 */
export function resample(grey, stride, x0, y0, width, height, toWidth, toHeight) {
  const columns = areaWeights(width, toWidth);
  const rows = areaWeights(height, toHeight);
  const across = new Float32Array(height * toWidth);
  for (let y = 0; y < height; y++) {
    const row = (y0 + y) * stride + x0;
    for (let j = 0; j < toWidth; j++) {
      let sum = 0;
      for (const [i, w] of columns[j]) sum += grey[row + i] * w;
      across[y * toWidth + j] = sum;
    }
  }
  const out = new Float32Array(toWidth * toHeight);
  for (let k = 0; k < toHeight; k++) {
    for (let j = 0; j < toWidth; j++) {
      let sum = 0;
      for (const [i, w] of rows[k]) sum += across[i * toWidth + j] * w;
      out[k * toWidth + j] = sum;
    }
  }
  return out;
}

/**
 * `grey`: `width`×`height` values in [0, 1] (ink bright). Returns the 28×28 input as a
 * Float32Array; all zeros when nothing is drawn.
 */
export function mnistLike(grey, width, height) {
  const out = new Float32Array(SIDE * SIDE);
  let [left, top, right, bottom] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (grey[y * width + x] > 0) {
        if (x < left) left = x;
        if (x > right) right = x;
        if (y < top) top = y;
        if (y > bottom) bottom = y;
      }
    }
  }
  if (right < 0) return out;
  const boxWidth = right - left + 1;
  const boxHeight = bottom - top + 1;
  const scale = BOX / Math.max(boxWidth, boxHeight);
  const toWidth = Math.max(1, Math.round(boxWidth * scale));
  const toHeight = Math.max(1, Math.round(boxHeight * scale));
  const small = resample(grey, width, left, top, boxWidth, boxHeight, toWidth, toHeight);

  let mass = 0;
  let cx = 0;
  let cy = 0;
  for (let y = 0; y < toHeight; y++) {
    for (let x = 0; x < toWidth; x++) {
      const v = small[y * toWidth + x];
      mass += v;
      cx += v * (x + 0.5);
      cy += v * (y + 0.5);
    }
  }
  cx /= mass;
  cy /= mass;
  // MNIST's centre of mass is at pixel (14, 14) counted from 0 (measured on its test set: 14.0
  // and 13.99 on average), i.e. at 14.5 in the pixel-centre coordinates used here.
  const dx = Math.round(SIDE / 2 + 0.5 - cx);
  const dy = Math.round(SIDE / 2 + 0.5 - cy);
  for (let y = 0; y < toHeight; y++) {
    const ty = y + dy;
    if (ty < 0 || ty >= SIDE) continue;
    for (let x = 0; x < toWidth; x++) {
      const tx = x + dx;
      if (tx < 0 || tx >= SIDE) continue;
      out[ty * SIDE + tx] = Math.min(1, small[y * toWidth + x]);
    }
  }
  return out;
}

/** The MNIST-like input of a canvas's ImageData (white ink on black: the red channel). */
export function digitInput(imageData, width, height) {
  const grey = new Float32Array(width * height);
  for (let i = 0; i < grey.length; i++) grey[i] = imageData.data[i * 4] / 255;
  return mnistLike(grey, width, height);
}
