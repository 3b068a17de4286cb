/**
 * The experiment report: the Markdown results table (one row per method),
 * the plot list, metrics.json (valid JSON, non-finite numbers as null,
 * history downsampled with its last point kept) and downsample itself.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  acrossSeeds,
  buildReport,
  downsample,
  meanSd,
  type MethodSummary,
  type ReportMeta,
} from '../../src/report/report.js';
import { params } from '../util/props.js';

function summary(method: string, n: number, opts: { cache?: boolean; evals?: number } = {}): MethodSummary {
  const history = Array.from({ length: n }, (_, i) => ({
    step: i + 1,
    time: (i + 1) * 0.01,
    trainingLoss: 3 / (1 + i),
    interpretableLoss: 4 / (1 + i),
    staleness: opts.cache ? 0.1 / (1 + i) : NaN,
  }));
  const evals = Array.from({ length: opts.evals ?? 3 }, (_, i) => ({
    step: i * 10,
    time: i * 0.1,
    recallAt10: 0.1 * i,
  }));
  return {
    method,
    config: { method, batch: 32, lr: 0.02, timeBudgetSeconds: Infinity, topK: undefined },
    steps: n,
    trainSeconds: n * 0.01,
    totalSeconds: n * 0.01 + 0.5,
    medianStepMs: 10,
    peakRssMB: 123.4,
    final: { recallAt1: 0.25, recallAt10: 0.5, recallAt100: 0.875, mrr: 0.33333, count: 40 },
    history,
    evals,
  };
}

const meta: ReportMeta = {
  title: 'negcache: test report',
  command: 'negcache compare --steps 5',
  date: '2024-01-01T00:00:00.000Z',
  machine: '2 × cpu',
  corpus: 'synthetic, 300 documents',
};

describe('buildReport', () => {
  const results = [summary('cache', 1200, { cache: true }), summary('inbatch', 40), summary('full', 3, { evals: 0 })];
  const r = buildReport(results, { ...meta, notes: ['equal steps'] });

  it('the Markdown has the header, one table row per method, notes, every plot and the configurations', () => {
    const md = r.markdown;
    expect(md.startsWith('# negcache: test report\n')).toBe(true);
    expect(md).toContain('- Command: `negcache compare --steps 5`');
    expect(md).toContain(
      '| method | steps | recall@1 % | recall@10 % | recall@100 % | MRR | median step ms | train time | total time | peak RSS MB |',
    );
    const rows = md.split('\n').filter((l) => /^\| (cache|inbatch|full) \|/.test(l));
    expect(rows.map((l) => l.split('|')[1]!.trim())).toEqual(['cache', 'inbatch', 'full']);
    expect(rows[0]).toMatch(
      /^\| cache \| 1200 \| 25\.00 \| 50\.00 \| 87\.50 \| 0\.3333 \| 10\.0 \| .+ \| .+ \| 123 \|$/,
    );
    expect(rows[2]).toMatch(/^\| full \| 3 \| /);
    expect(md).toContain('## Notes\n\n- equal steps');
    for (const name of Object.keys(r.svgs)) expect(md).toContain(`![${name}](${name})`);
    expect(md).toContain('- cache: `{"method":"cache","batch":32,"lr":0.02,"timeBudgetSeconds":null}`');
  });

  it('produces the expected plots, each an SVG document', () => {
    expect(Object.keys(r.svgs).sort()).toEqual([
      'interpretable_loss.svg',
      'loss.svg',
      'recall10_steps.svg',
      'recall10_time.svg',
      'staleness.svg',
    ]);
    for (const [name, svg] of Object.entries(r.svgs)) {
      expect(svg.startsWith('<svg') || svg.startsWith('<?xml'), name).toBe(true);
      expect(svg.trimEnd().endsWith('</svg>'), name).toBe(true);
    }
    expect(r.svgs['loss.svg']).toContain('cache: training loss');
  });

  it('no staleness plot without a cache method; no notes section without notes', () => {
    const noCache = buildReport([summary('inbatch', 10)], meta);
    expect(Object.keys(noCache.svgs).sort()).toEqual([
      'interpretable_loss.svg',
      'loss.svg',
      'recall10_steps.svg',
      'recall10_time.svg',
    ]);
    expect(noCache.markdown).not.toContain('staleness.svg');
    expect(noCache.markdown).not.toContain('## Notes');
  });

  it('metrics.json parses, has no NaN/Infinity (they become null) and downsamples the history keeping the last point', () => {
    expect(r.metrics).not.toMatch(/NaN|Infinity/);
    const m = JSON.parse(r.metrics) as {
      meta: ReportMeta;
      results: {
        method: string;
        config: Record<string, unknown>;
        history: { step: number; staleness: number | null }[];
        evals: unknown[];
        final: unknown;
        steps: number;
      }[];
    };
    expect(m.meta).toEqual({ ...meta, notes: ['equal steps'] });
    expect(m.results.map((x) => x.method)).toEqual(['cache', 'inbatch', 'full']);
    const [cache, inbatch, full] = m.results;
    expect(cache!.history).toHaveLength(500);
    expect(cache!.history[0]!.step).toBe(1);
    expect(cache!.history.at(-1)!.step).toBe(1200);
    expect(inbatch!.history).toHaveLength(40);
    expect(inbatch!.history.every((h) => h.staleness === null)).toBe(true);
    expect(cache!.config['timeBudgetSeconds']).toBeNull();
    expect(full!.evals).toEqual([]);
    expect(full!.final).toEqual(results[2]!.final);
    expect(full!.steps).toBe(3);
  });

  it('non-finite summary numbers stay out of the JSON and show as n/a in the table', () => {
    const s = summary('cache', 5, { cache: true });
    s.final = { recallAt1: NaN, recallAt10: NaN, recallAt100: NaN, mrr: NaN, count: 0 };
    s.medianStepMs = NaN;
    const rep = buildReport([s], meta);
    expect(rep.markdown).toMatch(/^\| cache \| 5 \| n\/a \| n\/a \| n\/a \| n\/a \| n\/a \|/m);
    expect(rep.markdown).not.toContain('NaN');
    const m = JSON.parse(rep.metrics) as { results: { final: Record<string, unknown>; medianStepMs: unknown }[] };
    expect(m.results[0]!.final).toEqual({ recallAt1: null, recallAt10: null, recallAt100: null, mrr: null, count: 0 });
    expect(m.results[0]!.medianStepMs).toBeNull();
  });
});

describe('downsample', () => {
  it('short inputs are copied unchanged', () => {
    const xs = [1, 2, 3];
    const d = downsample(xs, 5);
    expect(d).toEqual([1, 2, 3]);
    expect(d).not.toBe(xs);
    expect(downsample([], 3)).toEqual([]);
  });

  it('hand-made: 10 points to 4 are indices 0, 2, 5 and the last', () => {
    expect(downsample([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 4)).toEqual([0, 2, 5, 9]);
    expect(downsample([0, 1, 2], 1)).toEqual([2]);
  });

  it('property: at most max points, increasing original order, first and last kept', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 2, max: 600 }), (n, max) => {
        const xs = Array.from({ length: n }, (_, i) => i);
        const d = downsample(xs, max);
        expect(d.length).toBe(Math.min(n, max));
        for (let i = 1; i < d.length; i++) expect(d[i]!).toBeGreaterThan(d[i - 1]!);
        if (n > 0) {
          expect(d[0]).toBe(0);
          expect(d.at(-1)).toBe(n - 1);
        }
      }),
      params(60),
    );
  });
});

describe('downsample edge cases', () => {
  it('keeps nothing for max 0 and everything when the input is short', () => {
    expect(downsample([1, 2, 3], 0)).toEqual([]);
    expect(downsample([1, 2, 3], 5)).toEqual([1, 2, 3]);
    expect(downsample([1, 2, 3, 4, 5, 6], 2)).toEqual([1, 6]);
  });
});

describe('several seeds', () => {
  const withSeed = (method: string, seed: number, r10: number, mrr: number): MethodSummary => {
    const s = summary(method, 10);
    return { ...s, config: { ...s.config, seed }, final: { ...s.final, recallAt10: r10, mrr } };
  };
  const runs = [
    withSeed('cache', 0, 0.05, 0.03),
    withSeed('inbatch', 0, 0.04, 0.02),
    withSeed('cache', 1, 0.03, 0.01),
    withSeed('inbatch', 1, 0.02, 0.02),
  ];

  it('meanSd: mean and sample standard deviation', () => {
    expect(meanSd([2, 4, 4, 4, 5, 5, 7, 9])).toEqual({ mean: 5, sd: Math.sqrt(32 / 7) });
    expect(meanSd([3])).toEqual({ mean: 3, sd: 0 });
  });

  it('acrossSeeds: one row per method with mean ± sd and the per-seed recall@10', () => {
    const rows = acrossSeeds(runs);
    expect(rows[0]).toBe(
      '| method | seeds | recall@1 % | recall@10 % | recall@100 % | MRR | recall@10 % per seed (0, 1) |',
    );
    // cache recall@10: 5 % and 3 % -> mean 4.00, sd sqrt(2) = 1.41; MRR 0.03 and 0.01 -> 0.0200 ± 0.0141
    expect(rows[2]).toBe('| cache | 2 | 25.00 ± 0.00 | 4.00 ± 1.41 | 87.50 ± 0.00 | 0.0200 ± 0.0141 | 5.00 / 3.00 |');
    expect(rows[3]).toBe('| inbatch | 2 | 25.00 ± 0.00 | 3.00 ± 1.41 | 87.50 ± 0.00 | 0.0200 ± 0.0000 | 4.00 / 2.00 |');
    // Paired: cache − inbatch recall@10 is +1 point on both seeds (sd 0); MRR +0.01 and -0.01.
    expect(rows.find((l) => l.startsWith('| cache − inbatch'))).toBe(
      '| cache − inbatch | 2 | 1.00 ± 0.00 | 2 of 2 | 0.0000 ± 0.0141 | 1.00 / 1.00 |',
    );
    expect(rows.filter((l) => l.includes(' − '))).toHaveLength(1);
  });

  it('the report has a seed column, the across-seeds table, and plots of the first seed only', () => {
    const r = buildReport(runs, meta);
    expect(r.markdown).toContain('| method | seed | steps |');
    expect(r.markdown.split('\n').filter((l) => /^\| (cache|inbatch) \| [01] \| 10 \|/.test(l))).toHaveLength(4);
    expect(r.markdown).toContain('## Across seeds (mean ± sample standard deviation)');
    expect(r.markdown).toContain('The plots show seed 0.');
    expect((r.svgs['recall10_steps.svg']!.match(/cache/g) ?? []).length).toBe(
      (buildReport(runs.slice(0, 2), meta).svgs['recall10_steps.svg']!.match(/cache/g) ?? []).length,
    );
    expect(JSON.parse(r.metrics).results).toHaveLength(4);
    // One seed: no seed column, no across-seeds table.
    const one = buildReport(runs.slice(0, 2), meta).markdown;
    expect(one).not.toContain('| seed |');
    expect(one).not.toContain('Across seeds');
  });
});
