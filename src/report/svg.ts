import { ArgumentError, describe } from '../errors.js';

/**
 * A dependency-free SVG line chart for training reports (loss curves,
 * recall@k over steps). Output is a standalone SVG document (it can be
 * written to a .svg file or inlined in HTML): title, axes with numeric tick
 * labels, gridlines, a legend and one colour per series.
 *
 * Robustness: points whose x or y is NaN, ±Infinity or of magnitude above
 * 1e300 (or y <= 0 with logY) are skipped and break the line there; a run of
 * a single point is drawn as a dot; a constant or single-point range is
 * padded so it sits mid-chart; a chart with no drawable points shows empty
 * axes with "no data".
 */

/** One line. Points are drawn in the given order. */
export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Pixels, default 720 (at least 200). */
  width?: number;
  /** Pixels, default 420 (at least 150). */
  height?: number;
  /** Logarithmic y axis (decades); non-positive y values are skipped. */
  logY?: boolean;
}

/** Tableau 10: distinct, colour-blind-friendly hues. Series beyond 10 reuse them with dashes. */
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];
const DASHES = ['', '6 3', '2 3', '8 3 2 3'];

/**
 * Escapes text for XML content and attribute values (& < > " '), and drops
 * characters XML 1.0 forbids (control characters other than tab, LF, CR, and
 * lone surrogates), so any string yields well-formed output.
 */
export function escapeXml(s: string): string {
  return String(s)
    .replace(
      /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
      '',
    )
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/**
 * Trailing moving average: point i becomes [x_i, mean of the finite y among
 * points max(0, i - window + 1) .. i] (NaN if none are finite). x values are
 * kept; the output has the same length as the input.
 */
export function movingAverage(points: ReadonlyArray<readonly [number, number]>, window: number): [number, number][] {
  if (!Array.isArray(points))
    throw new ArgumentError('movingAverage', `points must be an array of [x, y], got ${describe(points)}`);
  if (!Number.isInteger(window) || window < 1) {
    throw new ArgumentError('movingAverage', `window must be a positive integer, got ${describe(window)}`);
  }
  const n = points.length;
  // Prefix sums of the finite y values and of their count.
  const sum = new Float64Array(n + 1);
  const cnt = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    const y = points[i]![1];
    const ok = Number.isFinite(y);
    sum[i + 1] = sum[i]! + (ok ? y : 0);
    cnt[i + 1] = cnt[i]! + (ok ? 1 : 0);
  }
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    const j = Math.max(0, i - window + 1);
    const c = cnt[i + 1]! - cnt[j]!;
    out.push([points[i]![0], c > 0 ? (sum[i + 1]! - sum[j]!) / c : NaN]);
  }
  return out;
}

interface Axis {
  lo: number;
  hi: number;
  ticks: number[];
  labels: string[];
  minor: number[];
}

function niceNum(x: number, round: boolean): number {
  const e = Math.floor(Math.log10(x));
  const f = x / 10 ** e;
  let nf: number;
  if (round) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nf * 10 ** e;
}

function fmtNumber(v: number, step: number): string {
  if (v === 0 || Math.abs(v) < step * 1e-9) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) {
    const digits = Math.max(0, Math.min(6, Math.ceil(Math.log10(a / step))));
    return v
      .toExponential(digits)
      .replace(/\.?0+e/, 'e')
      .replace('e+', 'e');
  }
  const decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

/**
 * The narrowest span an axis shows, the mirror of the 1e300 cap on values:
 * with spans of at least 1e-300 the tick step stays near 1e-301, whose
 * power of ten is a normal double, so the step, the ticks and the pixel
 * mapping stay finite. (A subnormal span such as [0, 5e-324], or a constant
 * 5e-324 whose 10 % padding underflows to 0, would make niceNum divide by
 * 10 ** -324 = 0.)
 */
const MIN_SPAN = 1e-300;

function linearAxis(lo: number, hi: number, maxTicks: number): Axis {
  if (!(hi - lo > Math.max(Math.abs(lo), Math.abs(hi)) * 1e-9) || hi - lo < MIN_SPAN) {
    // Constant (or numerically constant, or narrower than MIN_SPAN) range: centre it.
    // pad >= MIN_SPAN > (hi - lo) / 2 in the last case, so every point stays inside.
    const mid = (lo + hi) / 2;
    const pad = mid !== 0 ? Math.max(Math.abs(mid) * 0.1, MIN_SPAN) : 1;
    lo = mid - pad;
    hi = mid + pad;
  }
  const step = niceNum(niceNum(hi - lo, false) / Math.max(1, maxTicks - 1), true);
  const nlo = Math.floor(lo / step + 1e-9) * step;
  const nhi = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  const count = Math.round((nhi - nlo) / step);
  if (!(count >= 1 && count <= 50)) {
    return { lo, hi, ticks: [lo, hi], labels: [fmtNumber(lo, hi - lo), fmtNumber(hi, hi - lo)], minor: [] };
  }
  for (let i = 0; i <= count; i++) ticks.push(nlo + i * step);
  return { lo: nlo, hi: nhi, ticks, labels: ticks.map((t) => fmtNumber(t, step)), minor: [] };
}

function fmtPow10(k: number): string {
  if (k >= -4 && k <= 5) return k >= 0 ? String(10 ** k) : (10 ** k).toFixed(-k);
  return `1e${k}`;
}

/** A log10 axis in exponent space: lo, hi and ticks are exponents. */
function logAxis(lo: number, hi: number, maxTicks: number): Axis {
  let a = Math.floor(lo + 1e-9);
  let b = Math.ceil(hi - 1e-9);
  if (b <= a) b = a + 1;
  const every = Math.max(1, Math.ceil((b - a) / Math.max(1, maxTicks - 1)));
  a = Math.floor(a / every) * every;
  b = Math.ceil(b / every) * every;
  const ticks: number[] = [];
  for (let k = a; k <= b; k += every) ticks.push(k);
  const minor: number[] = [];
  if (every === 1 && b - a <= 4) {
    for (let k = a; k < b; k++) for (let m = 2; m <= 9; m++) minor.push(k + Math.log10(m));
  }
  return { lo: a, hi: b, ticks, labels: ticks.map(fmtPow10), minor };
}

const f2 = (v: number): string => {
  const s = v.toFixed(2);
  return s === '-0.00' ? '0.00' : s;
};

/** Renders a line chart as a standalone SVG string. */
export function lineChart(opts: LineChartOptions): string {
  const op = 'lineChart';
  if (typeof opts !== 'object' || opts === null)
    throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
  const { title, xLabel, yLabel, series } = opts;
  for (const [k, v] of [
    ['title', title],
    ['xLabel', xLabel],
    ['yLabel', yLabel],
  ] as const) {
    if (typeof v !== 'string') throw new ArgumentError(op, `${k} must be a string, got ${describe(v)}`);
  }
  if (!Array.isArray(series))
    throw new ArgumentError(op, `series must be an array of { name, points }, got ${describe(series)}`);
  series.forEach((s, i) => {
    if (typeof s !== 'object' || s === null || typeof s.name !== 'string' || !Array.isArray(s.points)) {
      throw new ArgumentError(op, `series[${i}] must be { name: string, points: [x, y][] }, got ${describe(s)}`);
    }
    s.points.forEach((p, j) => {
      if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'number' || typeof p[1] !== 'number') {
        throw new ArgumentError(op, `series[${i}].points[${j}] must be a pair of numbers [x, y], got ${describe(p)}`);
      }
    });
  });
  const width = opts.width ?? 720;
  const height = opts.height ?? 420;
  if (typeof width !== 'number' || !Number.isFinite(width) || width < 200) {
    throw new ArgumentError(op, `width must be a finite number >= 200, got ${describe(width)}`);
  }
  if (typeof height !== 'number' || !Number.isFinite(height) || height < 150) {
    throw new ArgumentError(op, `height must be a finite number >= 150, got ${describe(height)}`);
  }
  const logY = opts.logY ?? false;

  // Drawable points in data space (y in log10 space when logY).
  // |values| above 1e300 are skipped too: ranges between them would overflow.
  const usable = (x: number, y: number): boolean => Math.abs(x) <= 1e300 && Math.abs(y) <= 1e300 && (!logY || y > 0);
  let xmin = Infinity,
    xmax = -Infinity,
    ymin = Infinity,
    ymax = -Infinity;
  for (const s of series) {
    for (const [x, y] of s.points) {
      if (!usable(x, y)) continue;
      const yy = logY ? Math.log10(y) : y;
      if (x < xmin) xmin = x;
      if (x > xmax) xmax = x;
      if (yy < ymin) ymin = yy;
      if (yy > ymax) ymax = yy;
    }
  }
  const empty = !(xmin <= xmax);
  if (empty) {
    xmin = 0;
    xmax = 1;
    ymin = 0;
    ymax = 1;
  }

  const labelChars = Math.min(28, Math.max(0, ...series.map((s) => s.name.length)));
  const legendW = series.length > 0 ? Math.min(Math.round(width * 0.35), 40 + labelChars * 7) : 0;
  const left = 72,
    right = 16 + legendW,
    top = 44,
    bottom = 54;
  const pw = Math.max(40, width - left - right);
  const ph = Math.max(40, height - top - bottom);
  const xAxis = linearAxis(xmin, xmax, Math.max(2, Math.min(10, Math.floor(pw / 80))));
  const yTicks = Math.max(2, Math.min(10, Math.floor(ph / 50)));
  const yAxis = logY ? logAxis(ymin, ymax, yTicks) : linearAxis(ymin, ymax, yTicks);
  const px = (x: number): number => left + ((x - xAxis.lo) / (xAxis.hi - xAxis.lo)) * pw;
  const py = (y: number): number => top + ph - ((y - yAxis.lo) / (yAxis.hi - yAxis.lo)) * ph;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f2(width)}" height="${f2(height)}" viewBox="0 0 ${f2(width)} ${f2(height)}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<title>${escapeXml(title)}</title>`);
  out.push(`<rect x="0" y="0" width="${f2(width)}" height="${f2(height)}" fill="#ffffff"/>`);
  out.push(
    `<text x="${f2(width / 2)}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
  );

  // Gridlines and ticks.
  out.push('<g stroke="#e6e6e6" stroke-width="1">');
  for (const m of yAxis.minor)
    out.push(`<line x1="${f2(left)}" y1="${f2(py(m))}" x2="${f2(left + pw)}" y2="${f2(py(m))}" stroke="#f3f3f3"/>`);
  for (const t of xAxis.ticks)
    out.push(`<line x1="${f2(px(t))}" y1="${f2(top)}" x2="${f2(px(t))}" y2="${f2(top + ph)}"/>`);
  for (const t of yAxis.ticks)
    out.push(`<line x1="${f2(left)}" y1="${f2(py(t))}" x2="${f2(left + pw)}" y2="${f2(py(t))}"/>`);
  out.push('</g>');
  out.push(`<rect x="${f2(left)}" y="${f2(top)}" width="${f2(pw)}" height="${f2(ph)}" fill="none" stroke="#333333"/>`);
  out.push('<g fill="#333333">');
  xAxis.ticks.forEach((t, i) => {
    out.push(
      `<line x1="${f2(px(t))}" y1="${f2(top + ph)}" x2="${f2(px(t))}" y2="${f2(top + ph + 5)}" stroke="#333333"/>`,
    );
    out.push(
      `<text x="${f2(px(t))}" y="${f2(top + ph + 18)}" text-anchor="middle">${escapeXml(xAxis.labels[i]!)}</text>`,
    );
  });
  yAxis.ticks.forEach((t, i) => {
    out.push(`<line x1="${f2(left - 5)}" y1="${f2(py(t))}" x2="${f2(left)}" y2="${f2(py(t))}" stroke="#333333"/>`);
    out.push(`<text x="${f2(left - 8)}" y="${f2(py(t) + 4)}" text-anchor="end">${escapeXml(yAxis.labels[i]!)}</text>`);
  });
  out.push('</g>');
  out.push(`<text x="${f2(left + pw / 2)}" y="${f2(height - 12)}" text-anchor="middle">${escapeXml(xLabel)}</text>`);
  out.push(
    `<text x="16" y="${f2(top + ph / 2)}" text-anchor="middle" transform="rotate(-90 16 ${f2(top + ph / 2)})">${escapeXml(yLabel)}</text>`,
  );
  if (empty) {
    out.push(
      `<text x="${f2(left + pw / 2)}" y="${f2(top + ph / 2)}" text-anchor="middle" fill="#888888">no data</text>`,
    );
  }

  // Series.
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
    const dashAttr = dash ? ` stroke-dasharray="${dash}"` : '';
    const runs: [number, number][][] = [];
    let cur: [number, number][] = [];
    for (const [x, y] of s.points) {
      if (!usable(x, y)) {
        if (cur.length > 0) runs.push(cur);
        cur = [];
        continue;
      }
      cur.push([px(x), py(logY ? Math.log10(y) : y)]);
    }
    if (cur.length > 0) runs.push(cur);
    out.push(`<g data-series="${escapeXml(s.name)}">`);
    const lines = runs.filter((r) => r.length > 1);
    if (lines.length > 0) {
      const d = lines.map((r) => r.map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${f2(x)} ${f2(y)}`).join(' ')).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"${dashAttr}/>`);
    }
    for (const r of runs) {
      if (r.length === 1) out.push(`<circle cx="${f2(r[0]![0])}" cy="${f2(r[0]![1])}" r="3" fill="${color}"/>`);
    }
    out.push('</g>');
  });

  // Legend.
  if (series.length > 0) {
    const lx = left + pw + 14;
    out.push('<g>');
    series.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length]!;
      const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
      const y = top + 8 + i * 18;
      if (y > top + ph) return;
      const name = s.name.length > 28 ? s.name.slice(0, 27) + '…' : s.name;
      out.push(
        `<line x1="${f2(lx)}" y1="${f2(y)}" x2="${f2(lx + 22)}" y2="${f2(y)}" stroke="${color}" stroke-width="3"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
      );
      out.push(`<text x="${f2(lx + 28)}" y="${f2(y + 4)}">${escapeXml(name)}</text>`);
    });
    out.push('</g>');
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
