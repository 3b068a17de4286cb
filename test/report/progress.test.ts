import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { ProgressReporter, formatDuration, formatMetric, formatProgress } from '../../src/report/progress.js';

describe('formatDuration', () => {
  it('formats seconds, minutes, hours and days', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(0.4)).toBe('0s');
    expect(formatDuration(45)).toBe('45s');
    expect(formatDuration(59.6)).toBe('1m00s');
    expect(formatDuration(267)).toBe('4m27s');
    expect(formatDuration(3599)).toBe('59m59s');
    expect(formatDuration(3600)).toBe('1h00m');
    expect(formatDuration(7530)).toBe('2h05m');
    expect(formatDuration(86400 * 3 + 3600 * 4 + 59)).toBe('3d04h');
  });

  it('prints ? for meaningless durations', () => {
    expect(formatDuration(NaN)).toBe('?');
    expect(formatDuration(Infinity)).toBe('?');
    expect(formatDuration(-1)).toBe('?');
  });
});

describe('formatProgress', () => {
  it('formats the full line', () => {
    expect(
      formatProgress({
        step: 1200,
        totalSteps: 5000,
        stepsPerSec: 14.2,
        etaSeconds: 267,
        metrics: { loss: 0.123, interp: 2.345, stale: 0.012 },
      }),
    ).toBe('step 1200/5000  14.2 steps/s  ETA 4m27s  loss 0.123  interp 2.345  stale 0.012');
  });

  it('leaves out missing fields', () => {
    expect(formatProgress({ step: 3 })).toBe('step 3');
    expect(formatProgress({ step: 3, stepsPerSec: 2.5 })).toBe('step 3  2.50 steps/s');
    expect(formatProgress({ step: 3, stepsPerSec: 1234.4, metrics: {} })).toBe('step 3  1234 steps/s');
    expect(formatProgress({ step: 3, stepsPerSec: NaN })).toBe('step 3');
    expect(() => formatProgress({} as { step: number })).toThrow(ArgumentError);
  });

  it('formats metric values readably', () => {
    expect(formatMetric(0)).toBe('0.000');
    expect(formatMetric(-1.5)).toBe('-1.500');
    expect(formatMetric(0.00001234)).toBe('1.23e-5');
    expect(formatMetric(123456789)).toBe('1.23e+8');
    expect(formatMetric(NaN)).toBe('nan');
    expect(formatMetric(Infinity)).toBe('inf');
    expect(formatMetric(-Infinity)).toBe('-inf');
  });
});

function fake(isTTY: boolean, extra: Partial<ConstructorParameters<typeof ProgressReporter>[0]> = {}) {
  let t = 0;
  const out: string[] = [];
  const rep = new ProgressReporter({ totalSteps: 100, isTTY, write: (s) => out.push(s), now: () => t, ...extra });
  return { rep, out, at: (ms: number) => void (t = ms) };
}

describe('ProgressReporter on a terminal', () => {
  it('rewrites one line, throttled, with rate and ETA from the fake clock', () => {
    const { rep, out, at } = fake(true);
    at(0);
    rep.update(0, { loss: 2 });
    expect(out).toEqual(['\r\x1b[2Kstep 0/100  loss 2.000']);
    at(50);
    rep.update(1, { loss: 1.9 });
    expect(out.length).toBe(1); // within the 0.1 s redraw interval
    at(1000);
    rep.update(10, { loss: 1.5 });
    expect(out[1]).toBe('\r\x1b[2Kstep 10/100  10.0 steps/s  ETA 9s  loss 1.500');
    expect(out.every((s) => !s.includes('\n'))).toBe(true);
    rep.log('checkpoint saved');
    expect(out[2]).toBe('\r\x1b[2Kcheckpoint saved\nstep 10/100  10.0 steps/s  ETA 9s  loss 1.500');
    at(1020);
    rep.update(100, { loss: 0.5 }); // last step: always drawn
    expect(out[3]).toMatch(/^\r\x1b\[2Kstep 100\/100 .* ETA 0s  loss 0\.500$/);
    rep.finish();
    expect(out[4]).toMatch(/^\r\x1b\[2Kstep 100\/100 .*\n$/);
    rep.finish();
    expect(out.length).toBe(5);
  });

  it('measures the rate over a recent window', () => {
    const { rep, at } = fake(true, { rateWindowSeconds: 10, totalSteps: 10_000 });
    // 1 step/s for 60 s, then 10 steps/s for 30 s.
    let step = 0;
    for (let s = 0; s <= 60; s++) {
      at(s * 1000);
      rep.update((step = s));
    }
    for (let s = 1; s <= 30; s++) {
      at((60 + s) * 1000);
      rep.update((step += 10));
    }
    expect(rep.state()!.stepsPerSec).toBeCloseTo(10, 6);
    expect(rep.state()!.etaSeconds).toBeCloseTo((10_000 - step) / 10, 6);
  });
});

describe('ProgressReporter in a log file (not a terminal)', () => {
  it('prints plain lines on the first update, every interval, and on the last step', () => {
    const { rep, out, at } = fake(false, { intervalSeconds: 10 });
    at(0);
    rep.update(0);
    for (let s = 1; s <= 100; s++) {
      at(s * 250); // 4 steps/s
      rep.update(s, { loss: 1 / s });
    }
    rep.finish();
    expect(out.every((s) => s.endsWith('\n') && !s.includes('\r') && !s.includes('\x1b'))).toBe(true);
    expect(out.map((s) => s.trimEnd().split('  ')[0])).toEqual([
      'step 0/100',
      'step 40/100',
      'step 80/100',
      'step 100/100',
    ]);
    expect(out[1]).toBe('step 40/100  4.00 steps/s  ETA 15s  loss 0.025\n');
    expect(out[3]).toBe('step 100/100  4.00 steps/s  ETA 0s  loss 0.010\n');
  });

  it('also prints every intervalSteps steps, and finish prints the last state once', () => {
    const { rep, out, at } = fake(false, { intervalSteps: 25, totalSteps: undefined });
    for (let s = 0; s <= 60; s++) {
      at(s);
      rep.update(s);
    }
    expect(out.map((s) => s.trimEnd().split('  ')[0])).toEqual(['step 0', 'step 25', 'step 50']);
    rep.finish();
    expect(out[3]!.startsWith('step 60  ')).toBe(true);
    rep.log('done');
    expect(out[4]).toBe('done\n');
  });

  it('validates options', () => {
    expect(() => new ProgressReporter({ isTTY: false, write: 3 as unknown as (s: string) => void })).toThrow(/write/);
    expect(() => new ProgressReporter({ isTTY: 'yes' as unknown as boolean, write: () => {} })).toThrow(/isTTY/);
    expect(() => new ProgressReporter({ isTTY: false, write: () => {}, intervalSeconds: 0 })).toThrow(
      /intervalSeconds/,
    );
    const r = new ProgressReporter({ isTTY: false, write: () => {} });
    expect(() => r.update(-1)).toThrow(ArgumentError);
  });
});
