/**
 * negcache runs unchanged in a real browser: headless Chromium, driven by
 * playwright-core, loads the built library from a static server on
 * 127.0.0.1 and
 *  a. runs a seeded negative-cache training (test/browser/pages/run.mjs)
 *     whose losses, sampled indices and final parameters are bit-identical
 *     to the same module run here in Node;
 *  b. runs the example page examples/browser/, whose loss plot is checked on
 *     a screenshot (decoded here) and on the canvas itself, then types a
 *     definition into its query box and checks the list of top documents.
 * No page may log a console error, throw, or fail a request.
 *
 * Needs `npm run build` (npm test builds first) and a Chromium, found by
 * test/browser/chromiumPath.ts in this order: NEGCACHE_CHROMIUM, Debian's
 * /usr/bin/chromium when present, else the one inside the devDependency
 * @sparticuz/chromium (inflated once into node_modules/.cache), so
 * `npm ci && npm test` needs no root and no system packages. Without any of
 * them the tests fail, they do not skip. NEGCACHE_BROWSER_SCREENSHOT=<file.png>
 * keeps the example's screenshot.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startStaticServer, type StaticServer } from '../../examples/browser/serve.mjs';
import { findChromium } from './chromiumPath.js';
import type { DeterminismResult } from './pages/run.mjs';
import { decodePng } from './png.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// No network: the page loads only from 127.0.0.1, and nothing may phone home (background updates, sync, QUIC probes).
// --no-sandbox: the npm Chromium has no setuid sandbox helper, and CI runs as root.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

let server: StaticServer | null = null;
let browser: Browser | null = null;
let starting: Promise<{ server: StaticServer; browser: Browser }> | null = null;

/** The server and browser, started once; fails with what to install when something is missing. */
function environment(): Promise<{ server: StaticServer; browser: Browser }> {
  starting ??= (async () => {
    if (!existsSync(join(ROOT, 'dist/src/index.js')))
      throw new Error('dist/src/index.js is missing: run `npm run build` first (npm test builds first)');
    const t0 = performance.now();
    const found = await findChromium(ROOT);
    const t1 = performance.now();
    server = await startStaticServer({ root: ROOT });
    browser = await chromium.launch({
      executablePath: found.executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      env: { ...process.env, ...found.env },
      timeout: 30_000,
    });
    console.log(
      `chromium ${browser.version()} from ${found.source}: found in ${(t1 - t0).toFixed(0)} ms, launched in ${(performance.now() - t1).toFixed(0)} ms; serving ${ROOT} at ${server.url}`,
    );
    return { server, browser };
  })();
  return starting;
}

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/** A fresh page that records console errors, uncaught exceptions and failed requests. */
async function openPage(b: Browser): Promise<{ page: Page; problems: string[] }> {
  const page = await b.newPage({ viewport: { width: 860, height: 720 }, deviceScaleFactor: 1 });
  const problems: string[] = [];
  // The browser must never load the Node-only code.
  page.on('request', (r) => {
    if (/\/dist\/src\/(node|cli)\//.test(r.url())) problems.push(`loaded Node-only code: ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.stack ?? e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText ?? '?'})`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  return { page, problems };
}

/** Index of the first differing element, or -1. */
function firstDifference<T>(a: readonly T[], b: readonly T[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) return i;
  return -1;
}

describe('negcache in headless Chromium', () => {
  it('trains bit-identically to Node: losses, sampled indices and final parameters', async () => {
    const { server, browser } = await environment();
    const { page, problems } = await openPage(browser);
    const t0 = performance.now();
    await page.goto(`${server.url}/test/browser/pages/determinism.html`);
    await page.waitForFunction('window.__determinism !== undefined', null, { timeout: 50_000, polling: 100 });
    expect(await page.evaluate('window.__wasm'), 'initWasm() resolved true in Chromium (WebAssembly SIMD)').toBe(true);
    const inBrowser = (await page.evaluate('window.__determinism')) as {
      ok: boolean;
      ms: number;
      result: DeterminismResult;
      error?: string;
    };
    const userAgent = (await page.evaluate('navigator.userAgent')) as string;
    const tBrowser = performance.now() - t0;
    await page.close();
    expect(inBrowser.error ?? '').toBe('');
    expect(inBrowser.ok).toBe(true);
    expect(userAgent).toMatch(/Chrome\//);

    const { runDeterminism } = await import('./pages/run.mjs');
    const t1 = performance.now();
    const inNode = runDeterminism();
    const tNode = performance.now() - t1;
    console.log(
      `determinism: browser run ${inBrowser.ms.toFixed(0)} ms (page ${tBrowser.toFixed(0)} ms), node run ${tNode.toFixed(0)} ms; digests ${inBrowser.result.digest} / ${inNode.digest}`,
    );

    const b = inBrowser.result,
      n = inNode;
    expect(b.config).toEqual(n.config);
    // The run is not degenerate: every step recorded, real sampling, and the model learned.
    expect(n.trainingLoss).toHaveLength(n.config.steps);
    expect(n.indices).toHaveLength(n.config.steps);
    expect(new Set(n.indices.flat()).size).toBeGreaterThan(100);
    expect(new Set(n.trainingLoss).size).toBeGreaterThan(n.config.steps / 2);
    expect(n.lastInterpretableLoss).toBeLessThan(1);
    // Bit for bit, step by step (hex of the IEEE-754 words), then the final parameters and cache.
    for (const key of ['trainingLoss', 'interpretableLoss', 'staleness', 'indices'] as const) {
      const at = firstDifference(b[key] as unknown[], n[key] as unknown[]);
      expect(
        at,
        `${key} first differs at step ${at}: browser ${JSON.stringify(b[key][at])} vs node ${JSON.stringify(n[key][at])}`,
      ).toBe(-1);
    }
    expect(Object.keys(b.params).sort()).toEqual(Object.keys(n.params).sort());
    for (const [name, hex] of Object.entries(n.params)) {
      const other = b.params[name]!;
      expect(other.length, `${name}: length`).toBe(hex.length);
      let word = -1;
      for (let i = 0; i < hex.length; i += 8)
        if (hex.slice(i, i + 8) !== other.slice(i, i + 8)) {
          word = i / 8;
          break;
        }
      expect(
        word,
        `${name} first differs at element ${word}: browser 0x${other.slice(word * 8, word * 8 + 8)} vs node 0x${hex.slice(word * 8, word * 8 + 8)}`,
      ).toBe(-1);
    }
    expect(b.digest).toBe(n.digest);
    expect(problems).toEqual([]);
  });

  it('runs the example page: trains live and plots the loss curve on the canvas', async () => {
    const { server, browser } = await environment();
    const { page, problems } = await openPage(browser);
    const total = 300;
    const t0 = performance.now();
    await page.goto(`${server.url}/examples/browser/?steps=${total}`);
    // Live: the page reports progress before it is done.
    await page.waitForFunction(
      'window.__negcacheDemo && (window.__negcacheDemo.steps > 0 || window.__negcacheDemo.error)',
      null,
      { timeout: 20_000, polling: 50 },
    );
    const early = (await page.evaluate(
      '({ steps: window.__negcacheDemo.steps, done: window.__negcacheDemo.done, status: document.getElementById("status").textContent })',
    )) as { steps: number; done: boolean; status: string };
    expect(early.done).toBe(false);
    expect(early.steps).toBeLessThan(total);
    expect(early.status).toMatch(/^step \d+\/300/);
    await page.waitForFunction('window.__negcacheDemo.done || window.__negcacheDemo.error', null, {
      timeout: 50_000,
      polling: 100,
    });
    const tTrain = performance.now() - t0;
    const state = (await page.evaluate(`(() => {
      const d = window.__negcacheDemo;
      const c = document.getElementById('plot');
      const r = c.getBoundingClientRect();
      return {
        steps: d.steps, done: d.done, error: d.error, losses: d.losses, smoothed: d.smoothed, plot: d.plot,
        curveColor: d.curveColor, recall: d.recall, status: document.getElementById('status').textContent,
        canvas: { x: r.left + c.clientLeft, y: r.top + c.clientTop, width: c.clientWidth, height: c.clientHeight, backing: [c.width, c.height] },
      };
    })()`)) as {
      steps: number;
      done: boolean;
      error: string | null;
      losses: number[];
      smoothed: number[];
      plot: { left: number; top: number; right: number; bottom: number; xMax: number; yMin: number; yMax: number };
      curveColor: string;
      recall: { recallAt10: number } | null;
      status: string;
      canvas: { x: number; y: number; width: number; height: number; backing: [number, number] };
    };
    expect(state.error).toBe(null);
    expect(state.done).toBe(true);
    expect(state.steps).toBe(total);
    expect(state.losses).toHaveLength(total);
    expect(state.losses.every(Number.isFinite)).toBe(true);
    expect(state.status).toMatch(/done: held-out recall@1 [\d.]+, recall@10 [\d.]+/);
    // The page trains on the WordNet pairs (1 800 documents; chance recall@10 is 0.0056); Node reaches 0.19 on the
    // same seed (test/examples/browserApp.test.ts runs the page logic).
    // It learned: the smoothed cache cross-entropy ends far below its peak (the cache fills first, then the loss falls).
    const peak = Math.max(...state.smoothed);
    expect(peak).toBeGreaterThan(1);
    expect(state.smoothed[total - 1]!).toBeLessThan(0.5 * peak);
    expect(state.recall!.recallAt10).toBeGreaterThan(0.1);

    // The screenshot: decode it and look for the curve where the page says it drew it.
    const shot = await page.screenshot({ fullPage: true, scale: 'css', type: 'png' });
    const keep = process.env['NEGCACHE_BROWSER_SCREENSHOT'];
    if (keep) writeFileSync(keep, shot);
    const img = decodePng(shot);
    expect(img.width).toBe(860);
    const hex = state.curveColor.replace('#', '');
    const curve = [0, 2, 4].map((k) => parseInt(hex.slice(k, k + 2), 16));
    const isCurve = (r: number, g: number, b: number): boolean =>
      Math.abs(r - curve[0]!) <= 40 && Math.abs(g - curve[1]!) <= 40 && Math.abs(b - curve[2]!) <= 40;
    const { plot, canvas } = state;
    const pixel = (cx: number, cy: number): [number, number, number] => {
      const x = Math.round(canvas.x + cx),
        y = Math.round(canvas.y + cy);
      if (x < 0 || y < 0 || x >= img.width || y >= img.height) return [255, 255, 255];
      const i = (y * img.width + x) * 4;
      return [img.rgba[i]!, img.rgba[i + 1]!, img.rgba[i + 2]!];
    };
    let inside = 0,
      outside = 0,
      white = 0,
      area = 0;
    const columns = new Set<number>();
    for (let cy = 0; cy < canvas.height; cy++) {
      for (let cx = 0; cx < canvas.width; cx++) {
        const [r, g, b] = pixel(cx, cy);
        const inPlot = cx >= plot.left - 3 && cx <= plot.right + 3 && cy >= plot.top - 3 && cy <= plot.bottom + 3;
        if (inPlot) {
          area++;
          if (r > 240 && g > 240 && b > 240) white++;
        }
        if (!isCurve(r, g, b)) continue;
        if (inPlot) {
          inside++;
          columns.add(cx);
        } else outside++;
      }
    }
    // The curve spans the whole x range (every step is drawn), stays inside the axes, and the plot is mostly background.
    expect(outside).toBe(0);
    expect(inside).toBeGreaterThan(plot.right - plot.left);
    let covered = 0;
    for (let cx = Math.ceil(plot.left) + 2; cx <= Math.floor(plot.right) - 2; cx++) if (columns.has(cx)) covered++;
    expect(covered / (Math.floor(plot.right) - Math.ceil(plot.left) - 3)).toBeGreaterThan(0.97);
    expect(white / area).toBeGreaterThan(0.7);
    // At every 15th step, the curve passes within 3 px of where the page's mapping puts the smoothed loss.
    const toCanvas = (s: number, v: number): [number, number] => [
      plot.left + ((s - 1) / Math.max(1, plot.xMax - 1)) * (plot.right - plot.left),
      plot.bottom - ((v - plot.yMin) / (plot.yMax - plot.yMin)) * (plot.bottom - plot.top),
    ];
    const missing: string[] = [];
    for (let s = 1; s <= total; s += s === 1 ? 14 : 15) {
      const [x, y] = toCanvas(s, state.smoothed[s - 1]!);
      let hit = false;
      for (let dy = -3; dy <= 3 && !hit; dy++)
        for (let dx = -3; dx <= 3 && !hit; dx++) hit = isCurve(...pixel(x + dx, y + dy));
      if (!hit) missing.push(`step ${s} at (${x.toFixed(1)}, ${y.toFixed(1)})`);
    }
    expect(missing).toEqual([]);
    // The axes are drawn: a dark vertical line at plot.left and a horizontal one at plot.bottom.
    const dark = (p: [number, number, number]): boolean => p[0] < 100 && p[1] < 100 && p[2] < 100;
    let axisY = 0,
      axisX = 0;
    for (let cy = Math.ceil(plot.top); cy < plot.bottom; cy++)
      if (dark(pixel(plot.left, cy)) || dark(pixel(plot.left + 1, cy))) axisY++;
    for (let cx = Math.ceil(plot.left); cx < plot.right; cx++)
      if (dark(pixel(cx, plot.bottom)) || dark(pixel(cx, plot.bottom + 1))) axisX++;
    expect(axisY / (plot.bottom - plot.top)).toBeGreaterThan(0.9);
    expect(axisX / (plot.right - plot.left)).toBeGreaterThan(0.9);

    // The canvas itself agrees (getImageData on its backing store, here 1:1 with CSS pixels).
    expect(canvas.backing).toEqual([canvas.width, canvas.height]);
    const inCanvas = (await page.evaluate(`(() => {
      const c = document.getElementById('plot');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const [r0, g0, b0] = ${JSON.stringify(curve)};
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - r0) <= 40 && Math.abs(d[i + 1] - g0) <= 40 && Math.abs(d[i + 2] - b0) <= 40) n++;
      return n;
    })()`)) as number;
    expect(inCanvas).toBeGreaterThan(plot.right - plot.left);
    expect(inside / inCanvas).toBeGreaterThan(0.8);
    expect(inside / inCanvas).toBeLessThan(1.25);
    // The query box: type a training definition, see its document first in a list of ten.
    expect(await page.evaluate('window.__negcacheDemo.searchReady')).toBe(true);
    await page.fill('#query', 'work together on a common enterprise of project');
    await page.waitForFunction('document.querySelectorAll("#results li").length === 10', null, { timeout: 10_000 });
    const listed = (await page.evaluate(
      '[...document.querySelectorAll("#results li")].map((li) => li.textContent)',
    )) as string[];
    const results = (await page.evaluate('window.__negcacheDemo.results')) as {
      id: string;
      text: string;
      score: number;
    }[];
    expect(results).toHaveLength(10);
    expect(results[0]).toMatchObject({ id: 'v02421408', text: 'collaborate, join forces, cooperate, get together' });
    expect(listed[0]).toMatch(/^collaborate, join forces, cooperate, get together v02421408 · 0\.\d{3}$/);
    for (let i = 0; i < 10; i++) expect(listed[i]).toContain(results[i]!.id);
    await page.fill('#query', '');
    await page.waitForFunction('document.querySelectorAll("#results li").length === 0', null, { timeout: 10_000 });
    console.log(
      `example page: ${total} steps trained and plotted in ${tTrain.toFixed(0)} ms; ${inside} curve pixels in the screenshot, ${inCanvas} in the canvas; ${state.status.split('\n').pop()}; query box: ${listed[0]}`,
    );
    // The page built its corpus from the whole data file.
    const dataFile = join(ROOT, 'examples/data/wordnet-pairs.jsonl');
    expect(await page.evaluate('window.__negcacheDemo.bytesLoaded')).toBe(statSync(dataFile).size);
    await page.close();
    // In some full-suite runs (never alone, nor under synthetic CPU load) Chromium reports the data file's fetch
    // as net::ERR_ABORTED after its body was read to the end; the byte count above shows nothing was lost, so that
    // one report is not a problem. Every other failed request, error or Node-only load is.
    const benign = `request failed: ${server.url}/examples/data/wordnet-pairs.jsonl (net::ERR_ABORTED)`;
    const aborted = problems.filter((p) => p === benign).length;
    if (aborted > 0)
      console.log(`example page: the data file's fetch was reported aborted after all its bytes were read`);
    expect(problems.filter((p) => p !== benign)).toEqual([]);
  });
});
