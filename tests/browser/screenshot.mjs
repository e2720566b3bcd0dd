// docs/web-screenshot.png: the page after training the MNIST subset (6 epochs), with a "7" drawn
// on the canvas and its probabilities. Run by `WGPU_MLP_SCREENSHOT=docs/web-screenshot.png
// scripts/test-browser.sh` after the tests (the page must be served with data/mnist).
//
//   WGPU_MLP_WEB_URL=http://127.0.0.1:PORT/ node tests/browser/screenshot.mjs OUT.png

import { chromium } from 'playwright-core';

const [out] = process.argv.slice(2);
const base = process.env.WGPU_MLP_WEB_URL;
if (!out || !base) {
  console.error('usage: WGPU_MLP_WEB_URL=… node screenshot.mjs OUT.png');
  process.exit(2);
}
const query = new URLSearchParams({
  dataset: 'mnist', layers: '784,64,10', hidden: 'relu', loss: 'cross-entropy', optimizer: 'adam',
  lr: '0.002', batch: '32', epochs: '6', seed: '42', autostart: '1',
});
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--enable-unsafe-webgpu'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(`${base}?${query}`);
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: 600_000, polling: 500 });
  if (await page.evaluate(() => document.body.dataset.state) === 'error') throw new Error(await page.textContent('#error'));
  // A "7": a bar along the top, then down to the left.
  const box = await page.locator('#draw').boundingBox();
  const path = [[75, 62], [140, 58], [205, 60], [185, 110], [160, 165], [138, 225]];
  await page.mouse.move(box.x + path[0][0], box.y + path[0][1]);
  await page.mouse.down();
  for (let i = 1; i < path.length; i++) {
    await page.mouse.move(box.x + path[i][0], box.y + path[i][1], { steps: 8 });
  }
  await page.mouse.up();
  await page.waitForFunction(() => document.querySelectorAll('#bars .bar').length === 10, null, { timeout: 30_000 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: out, fullPage: true });
  console.log(`screenshot: ${out}; ${await page.textContent('#summary')}`);
} finally {
  await browser.close();
}
