/**
 * The experiment report: a Markdown summary with a results table, a
 * metrics.json, and SVG plots. Pure string building (browser-safe); the CLI
 * writes the files.
 */
import { lineChart, movingAverage } from './svg.js';
import { formatDuration } from './progress.js';

export interface MethodSummary {
  method: string;
  config: Record<string, unknown>;
  steps: number;
  trainSeconds: number;
  totalSeconds: number;
  medianStepMs: number;
  peakRssMB: number;
  final: { recallAt1: number; recallAt10: number; recallAt100: number; mrr: number; count: number };
  history: { step: number; time: number; trainingLoss: number; interpretableLoss: number; staleness: number }[];
  evals: { step: number; time: number; recallAt10: number }[];
}

export interface ReportMeta {
  title: string;
  command: string;
  date: string;
  machine: string;
  corpus: string;
  notes?: string[];
}

export interface Report {
  markdown: string;
  metrics: string;
  svgs: Record<string, string>;
}

const pct = (x: number): string => (Number.isFinite(x) ? (100 * x).toFixed(2) : 'n/a');
/** x.toFixed(digits), 'n/a' for non-finite; a value that rounds to zero prints without a minus sign. */
const fixed = (x: number, digits: number): string => {
  if (!Number.isFinite(x)) return 'n/a';
  const s = x.toFixed(digits);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
};

/** Keeps at most `max` evenly spaced points (always the last). */
export function downsample<T>(xs: readonly T[], max: number): T[] {
  if (xs.length <= max) return xs.slice();
  if (max <= 0) return [];
  const out: T[] = [];
  const step = xs.length / max;
  for (let i = 0; i < max; i++) out.push(xs[Math.floor(i * step)]!);
  out[out.length - 1] = xs[xs.length - 1]!;
  return out;
}

/** Mean and sample standard deviation (0 for one value). */
export function meanSd(xs: readonly number[]): { mean: number; sd: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd };
}

const seedOf = (r: MethodSummary): number | undefined =>
  typeof r.config['seed'] === 'number' ? r.config['seed'] : undefined;

/**
 * Per method, over the seeds: mean ± sd of the final metrics, and the
 * per-seed values of recall@10. Rows in the order methods first appear.
 */
export function acrossSeeds(results: readonly MethodSummary[]): string[] {
  const methods = [...new Set(results.map((r) => r.method))];
  const seeds = [...new Set(results.map(seedOf))];
  const cell = (xs: number[], f: (x: number) => string): string => {
    const { mean, sd } = meanSd(xs);
    return `${f(mean)} ± ${f(sd)}`;
  };
  // Paired differences: the seeds differ in subset and split, so per-seed differences are less noisy than the means.
  const byMethod = new Map(
    methods.map((m) => [m, new Map(results.filter((r) => r.method === m).map((r) => [seedOf(r), r.final]))]),
  );
  const pairs: string[] = [];
  for (let i = 0; i < methods.length; i++) {
    for (let j = i + 1; j < methods.length; j++) {
      const a = byMethod.get(methods[i]!)!,
        b = byMethod.get(methods[j]!)!;
      const common = seeds.filter((s) => a.has(s) && b.has(s));
      if (common.length < 2) continue;
      const d10 = common.map((s) => 100 * (a.get(s)!.recallAt10 - b.get(s)!.recallAt10));
      const dm = common.map((s) => a.get(s)!.mrr - b.get(s)!.mrr);
      const { mean, sd } = meanSd(d10);
      const m = meanSd(dm);
      pairs.push(
        `| ${methods[i]} − ${methods[j]} | ${common.length} | ${fixed(mean, 2)} ± ${fixed(sd, 2)} | ${d10.filter((x) => x > 0).length} of ${common.length} | ${fixed(m.mean, 4)} ± ${fixed(m.sd, 4)} | ${d10.map((x) => fixed(x, 2)).join(' / ')} |`,
      );
    }
  }
  return [
    `| method | seeds | recall@1 % | recall@10 % | recall@100 % | MRR | recall@10 % per seed (${seeds.join(', ')}) |`,
    '|---|---|---|---|---|---|---|',
    ...methods.map((m) => {
      const rs = results.filter((r) => r.method === m);
      const f = (k: 'recallAt1' | 'recallAt10' | 'recallAt100' | 'mrr'): number[] => rs.map((r) => r.final[k]);
      return `| ${m} | ${rs.length} | ${cell(f('recallAt1'), pct)} | ${cell(f('recallAt10'), pct)} | ${cell(f('recallAt100'), pct)} | ${cell(f('mrr'), (x) => fixed(x, 4))} | ${rs.map((r) => pct(r.final.recallAt10)).join(' / ')} |`;
    }),
    ...(pairs.length > 0
      ? [
          '',
          'Paired differences over the same seeds (first method minus second):',
          '',
          '| difference | seeds | recall@10, points | seeds where positive | MRR | recall@10 per seed, points |',
          '|---|---|---|---|---|---|',
          ...pairs,
        ]
      : []),
  ];
}

export function buildReport(all: readonly MethodSummary[], meta: ReportMeta): Report {
  const seeds = [...new Set(all.map(seedOf))];
  const multi = seeds.length > 1;
  // With several seeds the plots show the first seed's runs; the tables show every run.
  const results = multi ? all.filter((r) => seedOf(r) === seeds[0]) : all;
  const smooth = (pts: [number, number][]): [number, number][] =>
    movingAverage(pts, Math.max(1, Math.floor(pts.length / 50)));
  const svgs: Record<string, string> = {};
  svgs['loss.svg'] = lineChart({
    title: 'Training loss over steps (moving average)',
    xLabel: 'step',
    yLabel: 'loss',
    series: results.map((r) => ({
      name: `${r.method}: training loss`,
      points: smooth(r.history.map((h) => [h.step, h.trainingLoss])),
    })),
  });
  svgs['interpretable_loss.svg'] = lineChart({
    title: 'Interpretable loss over steps (cache: -log probPos over the cache; others: their softmax cross-entropy)',
    xLabel: 'step',
    yLabel: 'loss',
    series: results.map((r) => ({
      name: r.method,
      points: smooth(r.history.map((h) => [h.step, h.interpretableLoss])),
    })),
  });
  const cache = results.filter((r) => r.history.some((h) => Number.isFinite(h.staleness)));
  if (cache.length > 0) {
    svgs['staleness.svg'] = lineChart({
      title: 'Staleness of the sampled cache embeddings: ||cached - fresh||² / ||fresh||²',
      xLabel: 'step',
      yLabel: 'staleness',
      logY: true,
      series: cache.map((r) => ({
        name: r.method,
        points: smooth(r.history.filter((h) => h.staleness > 0).map((h) => [h.step, h.staleness])),
      })),
    });
  }
  svgs['recall10_time.svg'] = lineChart({
    title: 'Recall@10 on held-out queries over training time',
    xLabel: 'training seconds',
    yLabel: 'recall@10',
    series: results.map((r) => ({ name: r.method, points: r.evals.map((e) => [e.time, e.recallAt10]) })),
  });
  svgs['recall10_steps.svg'] = lineChart({
    title: 'Recall@10 on held-out queries over steps',
    xLabel: 'step',
    yLabel: 'recall@10',
    series: results.map((r) => ({ name: r.method, points: r.evals.map((e) => [e.step, e.recallAt10]) })),
  });

  const rows = all.map(
    (r) =>
      `| ${r.method}${multi ? ` | ${String(seedOf(r))}` : ''} | ${r.steps} | ${pct(r.final.recallAt1)} | ${pct(r.final.recallAt10)} | ${pct(r.final.recallAt100)} | ${fixed(r.final.mrr, 4)} | ${fixed(r.medianStepMs, 1)} | ${formatDuration(r.trainSeconds)} | ${formatDuration(r.totalSeconds)} | ${r.peakRssMB.toFixed(0)} |`,
  );
  const md = [
    `# ${meta.title}`,
    '',
    `- Command: \`${meta.command}\``,
    `- Date: ${meta.date}`,
    `- Machine: ${meta.machine}`,
    `- Data: ${meta.corpus}`,
    '',
    '## Results (held-out queries, exact retrieval over all documents)',
    '',
    `| method |${multi ? ' seed |' : ''} steps | recall@1 % | recall@10 % | recall@100 % | MRR | median step ms | train time | total time | peak RSS MB |`,
    `|---|${multi ? '---|' : ''}---|---|---|---|---|---|---|---|---|`,
    ...rows,
    '',
    ...(multi ? ['## Across seeds (mean ± sample standard deviation)', '', ...acrossSeeds(all), ''] : []),
    'Recall@k: share of held-out queries whose own synset ranks in the top k among all documents (ties counted against it).',
    'Train time excludes evaluation; total time includes the periodic recall evaluations. Peak RSS is the largest resident set size sampled while the method ran (the process is shared, so it includes the corpus).',
    '',
    ...(meta.notes && meta.notes.length > 0 ? ['## Notes', '', ...meta.notes.map((n) => `- ${n}`), ''] : []),
    '## Plots',
    '',
    ...(multi ? [`The plots show seed ${String(seeds[0])}.`, ''] : []),
    ...Object.keys(svgs).map((name) => `![${name}](${name})`),
    '',
    '## Configuration',
    '',
    ...all.map((r) => `- ${r.method}: \`${JSON.stringify(r.config)}\``),
    '',
  ].join('\n');
  const metrics = JSON.stringify(
    {
      meta,
      results: all.map((r) => ({
        method: r.method,
        config: r.config,
        steps: r.steps,
        trainSeconds: r.trainSeconds,
        totalSeconds: r.totalSeconds,
        medianStepMs: r.medianStepMs,
        peakRssMB: r.peakRssMB,
        final: r.final,
        evals: r.evals,
        history: downsample(r.history, 500),
      })),
    },
    (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v),
    2,
  );
  return { markdown: md, metrics, svgs };
}
