// negcache in the browser: streams WordNet (query, document) pairs into a
// corpus, trains a dual encoder with the negative cache while plotting the
// loss on a <canvas>, then encodes every document into an exact index and
// answers the query box. Plain JavaScript, no bundler: it imports the
// library's browser-safe entry (the package's "." export) through app.mjs,
// the page logic that Node also runs (test/examples/browserApp.test.ts).
//
// Serve the repository root after `npm run build`, then open
// /examples/browser/ (optional query: ?steps=300&seed=1).
//
// window.__negcacheDemo exposes the run for test/browser/chromium.test.ts:
//   { steps, losses, smoothed, done, error, plot, curveColor, recall, searchReady, results, ... }
import { initWasm } from '../../dist/src/index.js';
import { finishTraining, loadPairs, makeTrainer } from './app.mjs';

// Compile the WebAssembly SIMD kernels (asynchronously, as a browser main thread requires).
await initWasm();

const params = new URLSearchParams(location.search);
const intParam = (name, fallback) => {
  const v = Number(params.get(name));
  return params.has(name) && Number.isInteger(v) && v > 0 ? v : fallback;
};
const STEPS = intParam('steps', 300);
const SEED = intParam('seed', 1);

const CURVE = '#1f6fd1';
const RAW = '#b8cbe6';
const canvas = document.getElementById('plot');
const statusLine = document.getElementById('status');
const ctx = canvas.getContext('2d');

// Plot frame in CSS pixels; the canvas backing store is scaled by devicePixelRatio.
const cssW = canvas.width,
  cssH = canvas.height;
const dpr = window.devicePixelRatio || 1;
canvas.style.width = `${cssW}px`;
canvas.style.height = `${cssH}px`;
canvas.width = Math.round(cssW * dpr);
canvas.height = Math.round(cssH * dpr);
const plot = { left: 56, top: 16, right: cssW - 16, bottom: cssH - 40, xMax: STEPS, yMin: 0, yMax: 1 };

const demo = {
  steps: 0,
  totalSteps: STEPS,
  /** Per step: the cache cross-entropy -log p(positive) (the interpretable loss). */
  losses: [],
  /** Per step: the training loss (the sampled-negative surrogate that is differentiated). */
  trainingLosses: [],
  /** Exponential moving average of `losses` (the plotted curve). */
  smoothed: [],
  done: false,
  error: null,
  recall: null,
  /** True once the query box answers; results: the last query's [{rank, id, text, score}]. */
  searchReady: false,
  results: [],
  documents: 0,
  /** Bytes of the data file read into the corpus. */
  bytesLoaded: 0,
  stepsPerSecond: 0,
  plot,
  curveColor: CURVE,
  /** Where step s (1-based) with value v is drawn, in CSS pixels of the canvas. */
  toCanvas(s, v) {
    const x = plot.left + ((s - 1) / Math.max(1, plot.xMax - 1)) * (plot.right - plot.left);
    const y = plot.bottom - ((v - plot.yMin) / (plot.yMax - plot.yMin)) * (plot.bottom - plot.top);
    return [x, y];
  },
};
window.__negcacheDemo = demo;

function niceStep(range, ticks) {
  const raw = range / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
}

function draw() {
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, cssW, cssH);
  const max = demo.losses.length ? Math.max(...demo.losses) : 1;
  plot.yMax = Math.max(1, Math.ceil(max * 1.1));
  const { left, top, right, bottom } = plot;

  // Grid, ticks and labels.
  ctx.font = '12px system-ui, sans-serif';
  ctx.fillStyle = '#555';
  ctx.strokeStyle = '#eee';
  ctx.lineWidth = 1;
  const yStep = niceStep(plot.yMax - plot.yMin, 5);
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let v = plot.yMin; v <= plot.yMax + 1e-9; v += yStep) {
    const [, y] = demo.toCanvas(1, v);
    ctx.beginPath();
    ctx.moveTo(left, Math.round(y) + 0.5);
    ctx.lineTo(right, Math.round(y) + 0.5);
    ctx.stroke();
    ctx.fillText(String(+v.toFixed(2)), left - 6, y);
  }
  const xStep = niceStep(plot.xMax, 6);
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (let s = xStep; s <= plot.xMax; s += xStep) {
    const [x] = demo.toCanvas(s, 0);
    ctx.beginPath();
    ctx.moveTo(Math.round(x) + 0.5, top);
    ctx.lineTo(Math.round(x) + 0.5, bottom);
    ctx.stroke();
    ctx.fillText(String(s), x, bottom + 6);
  }
  ctx.fillText('step', (left + right) / 2, bottom + 22);
  ctx.save();
  ctx.translate(14, (top + bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle';
  ctx.fillText('loss', 0, 0);
  ctx.restore();

  // The curves: raw per-step loss (light) under its moving average.
  const line = (values, color, width) => {
    if (values.length === 0) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.lineJoin = 'round';
    ctx.beginPath();
    values.forEach((v, i) => {
      const [x, y] = demo.toCanvas(i + 1, v);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  };
  line(demo.losses, RAW, 1);
  line(demo.smoothed, CURVE, 2.5);

  // The axes, over the curves.
  ctx.strokeStyle = '#333';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left + 0.5, top);
  ctx.lineTo(left + 0.5, bottom + 0.5);
  ctx.lineTo(right, bottom + 0.5);
  ctx.stroke();
}

function setStatus(text) {
  statusLine.textContent = text;
}

function fail(e) {
  demo.error = String((e && e.stack) || e);
  setStatus(`error: ${demo.error}`);
  throw e;
}

const queryBox = document.getElementById('query');
const resultsList = document.getElementById('results');

/** Shows the top documents for the query box's text. */
function showResults(search) {
  const text = queryBox.value.trim();
  demo.results = text === '' ? [] : search(text, 10);
  resultsList.replaceChildren(
    ...demo.results.map((r) => {
      const li = document.createElement('li');
      li.textContent = `${r.text} `;
      const meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = `${r.id} · ${r.score.toFixed(3)}`;
      li.append(meta);
      return li;
    }),
  );
}

try {
  setStatus('loading the WordNet pairs…');
  const response = await fetch('../data/wordnet-pairs.jsonl');
  if (!response.ok) throw new Error(`fetching ../data/wordnet-pairs.jsonl: HTTP ${response.status}`);
  // Count the bytes the corpus was built from (the browser test compares them with the file).
  const counted = response.body.pipeThrough(
    new TransformStream({
      transform(chunk, out) {
        demo.bytesLoaded += chunk.byteLength;
        out.enqueue(chunk);
      },
    }),
  );
  const { corpus } = await loadPairs(counted);
  const trainer = makeTrainer(corpus, { steps: STEPS, seed: SEED });
  const t0 = performance.now();
  let ema = null;
  const frame = () => {
    try {
      // Train for about one frame's worth of time, then draw.
      const until = performance.now() + 14;
      while (demo.steps < STEPS && performance.now() < until) {
        const r = trainer.step();
        demo.steps++;
        demo.losses.push(r.interpretableLoss);
        demo.trainingLosses.push(r.trainingLoss);
        ema = ema === null ? r.interpretableLoss : 0.9 * ema + 0.1 * r.interpretableLoss;
        demo.smoothed.push(ema);
      }
      demo.stepsPerSecond = demo.steps / ((performance.now() - t0) / 1000);
      draw();
      const last = demo.losses[demo.losses.length - 1];
      const line = `step ${demo.steps}/${STEPS} · ${demo.stepsPerSecond.toFixed(0)} steps/s · cache cross-entropy ${last === undefined ? '–' : last.toFixed(3)} (smoothed ${ema === null ? '–' : ema.toFixed(3)})`;
      if (demo.steps < STEPS) {
        setStatus(line);
        requestAnimationFrame(frame);
      } else {
        const { recall: r, search, documents } = finishTraining(trainer, corpus);
        demo.recall = r;
        demo.documents = documents;
        setStatus(
          `${line}\ndone: held-out recall@1 ${r.recallAt1.toFixed(3)}, recall@10 ${r.recallAt10.toFixed(3)}, MRR ${r.mrr.toFixed(3)} over ${r.count} queries`,
        );
        queryBox.disabled = false;
        queryBox.placeholder = `type a definition, e.g. "work together on a project" (${documents} documents)`;
        queryBox.addEventListener('input', () => showResults(search));
        demo.searchReady = true;
        demo.done = true;
      }
    } catch (e) {
      fail(e);
    }
  };
  requestAnimationFrame(frame);
} catch (e) {
  fail(e);
}
