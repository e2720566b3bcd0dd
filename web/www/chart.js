// Line charts on a canvas: one point per epoch, a few labelled ticks, drawn at the screen's
// pixel density.

/**
 * Draws `series` ([{values, color}]) against epochs 1..`epochs` on `canvas`.
 * Options: `min`, `max` (the y range; from the data when omitted), `format(v)` for tick labels.
 */
export function drawChart(canvas, series, { epochs = 1, min, max, format = String } = {}) {
  const ratio = window.devicePixelRatio || 1;
  if (!canvas.dataset.cssHeight) canvas.dataset.cssHeight = canvas.height;
  // As wide as the page lays it out (the width attribute until then), as high as its attribute.
  const width = canvas.clientWidth || canvas.width;
  const height = Number(canvas.dataset.cssHeight);
  canvas.style.height = `${height}px`;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext('2d');
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);

  const values = series.flatMap((s) => s.values).filter(Number.isFinite);
  let low = min ?? (values.length ? Math.min(...values) : 0);
  let high = max ?? (values.length ? Math.max(...values) : 1);
  if (min === undefined && low > 0 && low < high * 0.5) low = 0; // start at 0 unless that flattens the curve
  if (!(high > low)) { high = low + (Math.abs(low) || 1); }
  if (max === undefined) high += (high - low) * 0.05;

  const left = 48;
  const right = 10;
  const top = 10;
  const bottom = 24;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const x = (epoch) => left + (epochs <= 1 ? plotWidth / 2 : ((epoch - 1) / (epochs - 1)) * plotWidth);
  const y = (v) => top + (1 - (v - low) / (high - low)) * plotHeight;

  context.font = '11px system-ui, sans-serif';
  context.lineWidth = 1;
  context.strokeStyle = '#d4d4d8';
  context.fillStyle = '#52525b';
  context.textAlign = 'right';
  context.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const v = low + ((high - low) * i) / 4;
    const py = Math.round(y(v)) + 0.5;
    context.beginPath();
    context.moveTo(left, py);
    context.lineTo(width - right, py);
    context.stroke();
    context.fillText(format(v), left - 6, py);
  }
  context.textAlign = 'center';
  context.textBaseline = 'top';
  const every = Math.max(1, Math.ceil(epochs / 10));
  for (let epoch = 1; epoch <= epochs; epoch += every) {
    context.fillText(String(epoch), x(epoch), height - bottom + 6);
  }

  for (const { values: points, color } of series) {
    context.strokeStyle = color;
    context.fillStyle = color;
    context.lineWidth = 2;
    context.beginPath();
    points.forEach((v, i) => {
      if (i === 0) context.moveTo(x(i + 1), y(v));
      else context.lineTo(x(i + 1), y(v));
    });
    context.stroke();
    points.forEach((v, i) => {
      context.beginPath();
      context.arc(x(i + 1), y(v), 2.5, 0, 2 * Math.PI);
      context.fill();
    });
  }
}
