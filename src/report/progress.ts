import { ArgumentError, describe } from '../errors.js';

/**
 * Training progress lines such as
 *   step 1200/5000  14.2 steps/s  ETA 4m27s  loss 0.123  interp 2.345  stale 0.012
 * The formatting is pure; {@link ProgressReporter} decides when to write and
 * how (one rewritten line on a terminal, periodic plain lines otherwise)
 * through an injected `write` function and clock, so it runs in a browser,
 * in Node and in tests alike.
 */

/** What one progress line shows. Missing fields are left out. */
export interface ProgressState {
  step: number;
  totalSteps?: number;
  stepsPerSec?: number;
  etaSeconds?: number;
  /** Named values in insertion order, e.g. { loss: 0.123, interp: 2.345 }. */
  metrics?: Record<string, number>;
}

/**
 * A duration for humans: 0s, 45s, 4m27s, 2h05m, 3d04h (rounded to the second;
 * the smaller unit is zero-padded). Negative, NaN or infinite -> "?".
 */
export function formatDuration(seconds: number): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return '?';
  const t = Math.round(seconds);
  const pad = (v: number): string => String(v).padStart(2, '0');
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${pad(t % 60)}s`;
  if (t < 86400) return `${Math.floor(t / 3600)}h${pad(Math.floor((t % 3600) / 60))}m`;
  return `${Math.floor(t / 86400)}d${pad(Math.floor((t % 86400) / 3600))}h`;
}

/**
 * A metric value: 3 decimals for magnitudes in [1e-3, 1e5) (and 0),
 * otherwise 3 significant digits in exponent form (1.23e-5, 4.56e+7);
 * NaN -> "nan", ±Infinity -> "inf" / "-inf".
 */
export function formatMetric(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  const a = Math.abs(v);
  if (a === 0 || (a >= 1e-3 && a < 1e5)) return v.toFixed(3);
  return v.toExponential(2);
}

/** Formats one progress line (two spaces between fields, no newline). */
export function formatProgress(state: ProgressState): string {
  if (typeof state !== 'object' || state === null || typeof state.step !== 'number') {
    throw new ArgumentError('formatProgress', `state must be { step, ... }, got ${describe(state)}`);
  }
  const parts: string[] = [];
  parts.push(state.totalSteps !== undefined ? `step ${state.step}/${state.totalSteps}` : `step ${state.step}`);
  if (state.stepsPerSec !== undefined && Number.isFinite(state.stepsPerSec)) {
    const r = state.stepsPerSec;
    parts.push(`${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)} steps/s`);
  }
  if (state.etaSeconds !== undefined) parts.push(`ETA ${formatDuration(state.etaSeconds)}`);
  if (state.metrics !== undefined) {
    for (const [k, v] of Object.entries(state.metrics)) parts.push(`${k} ${formatMetric(v)}`);
  }
  return parts.join('  ');
}

/** Options of {@link ProgressReporter}. */
export interface ProgressReporterOptions {
  /** Total number of steps, if known (enables ETA). */
  totalSteps?: number;
  /** True when writing to a terminal: one line is rewritten in place. */
  isTTY: boolean;
  /** Sink for output text (e.g. s => process.stderr.write(s)). */
  write: (s: string) => void;
  /** Clock in milliseconds (default performance.now / Date.now). */
  now?: () => number;
  /** Non-TTY: print a line at least this often, in seconds (default 10). */
  intervalSeconds?: number;
  /** Non-TTY: also print every this many steps (default: never by count). */
  intervalSteps?: number;
  /** TTY: redraw at most this often, in seconds (default 0.1). */
  redrawSeconds?: number;
  /** Steps/s is measured over roughly this many recent seconds (default 30). */
  rateWindowSeconds?: number;
}

const CLEAR = '\r\x1b[2K';

function defaultNow(): number {
  const p = (globalThis as { performance?: { now(): number } }).performance;
  return p !== undefined ? p.now() : Date.now();
}

/**
 * Reports training progress. Call {@link update} every step (cheap when it
 * decides not to write), {@link log} for messages that must not be clobbered
 * by the progress line, and {@link finish} at the end.
 *
 * TTY mode rewrites a single line (`\r` + erase-line) at most every
 * `redrawSeconds`, and always on the last step. Non-TTY mode writes a full
 * line with `\n` on the first update, then whenever `intervalSeconds` have
 * passed or `intervalSteps` steps were made since the last line, and on the
 * last step.
 */
export class ProgressReporter {
  private readonly totalSteps: number | undefined;
  private readonly isTTY: boolean;
  private readonly write: (s: string) => void;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly intervalSteps: number;
  private readonly redrawMs: number;
  private readonly windowMs: number;
  /** Recent (time, step) samples, at most one per second, for the rate. */
  private samples: { t: number; step: number }[] = [];
  private lastWriteT = -Infinity;
  private lastWriteStep = -1;
  private lastLine = '';
  private lineOpen = false; // TTY: a progress line is on screen without a newline
  private lastState: ProgressState | undefined;
  private finished = false;

  constructor(opts: ProgressReporterOptions) {
    const op = 'ProgressReporter';
    if (typeof opts !== 'object' || opts === null)
      throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
    if (typeof opts.write !== 'function')
      throw new ArgumentError(op, `write must be a function, got ${describe(opts.write)}`);
    if (typeof opts.isTTY !== 'boolean')
      throw new ArgumentError(op, `isTTY must be a boolean, got ${describe(opts.isTTY)}`);
    if (opts.totalSteps !== undefined && (!Number.isInteger(opts.totalSteps) || opts.totalSteps < 0)) {
      throw new ArgumentError(op, `totalSteps must be a non-negative integer, got ${describe(opts.totalSteps)}`);
    }
    const pos = (name: string, v: number | undefined, dflt: number): number => {
      const x = v ?? dflt;
      if (typeof x !== 'number' || !(x > 0))
        throw new ArgumentError(op, `${name} must be a positive number, got ${describe(x)}`);
      return x;
    };
    this.totalSteps = opts.totalSteps;
    this.isTTY = opts.isTTY;
    this.write = opts.write;
    this.now = opts.now ?? defaultNow;
    this.intervalMs = pos('intervalSeconds', opts.intervalSeconds, 10) * 1000;
    this.intervalSteps = pos('intervalSteps', opts.intervalSteps, Infinity);
    this.redrawMs = pos('redrawSeconds', opts.redrawSeconds, 0.1) * 1000;
    this.windowMs = pos('rateWindowSeconds', opts.rateWindowSeconds, 30) * 1000;
  }

  /** The state shown at the most recent update (rate and ETA included). */
  state(): ProgressState | undefined {
    return this.lastState;
  }

  /**
   * Records that `step` steps are done, with current metric values; writes
   * if due. `etaSeconds` overrides the step-count ETA (for time budgets).
   */
  update(step: number, metrics?: Record<string, number>, etaSeconds?: number): void {
    if (!Number.isInteger(step) || step < 0) {
      throw new ArgumentError('ProgressReporter.update', `step must be a non-negative integer, got ${describe(step)}`);
    }
    const t = this.now();
    const last = this.samples[this.samples.length - 1];
    if (last === undefined || t - last.t >= 1000 || step < last.step) {
      if (last !== undefined && step < last.step) this.samples = [];
      this.samples.push({ t, step });
    }
    while (this.samples.length > 2 && t - this.samples[1]!.t >= this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const state: ProgressState = { step };
    if (this.totalSteps !== undefined) state.totalSteps = this.totalSteps;
    if (t > first.t && step > first.step) {
      state.stepsPerSec = ((step - first.step) * 1000) / (t - first.t);
      if (this.totalSteps !== undefined) state.etaSeconds = Math.max(0, this.totalSteps - step) / state.stepsPerSec;
    }
    if (etaSeconds !== undefined) state.etaSeconds = etaSeconds;
    if (metrics !== undefined) state.metrics = { ...metrics };
    this.lastState = state;

    const isLast = this.totalSteps !== undefined && step >= this.totalSteps;
    if (this.isTTY) {
      if (isLast || t - this.lastWriteT >= this.redrawMs) this.emit(t, step);
    } else if (
      this.lastWriteStep < 0 ||
      isLast ||
      t - this.lastWriteT >= this.intervalMs ||
      step - this.lastWriteStep >= this.intervalSteps
    ) {
      if (step !== this.lastWriteStep || formatProgress(state) !== this.lastLine) this.emit(t, step);
    }
  }

  /** Writes a message on its own line without losing the progress line. */
  log(message: string): void {
    if (this.isTTY && this.lineOpen) {
      this.write(CLEAR + message + '\n' + this.lastLine);
    } else {
      this.write(message + '\n');
    }
  }

  /** Writes the final state (if not already shown) and ends the line. Idempotent. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const s = this.lastState;
    if (this.isTTY) {
      if (s !== undefined) {
        const line = formatProgress(s);
        this.write(CLEAR + line + '\n');
      } else if (this.lineOpen) {
        this.write('\n');
      }
      this.lineOpen = false;
    } else if (s !== undefined && formatProgress(s) !== this.lastLine) {
      this.write(formatProgress(s) + '\n');
    }
  }

  private emit(t: number, step: number): void {
    const line = formatProgress(this.lastState!);
    if (this.isTTY) {
      this.write(CLEAR + line);
      this.lineOpen = true;
    } else {
      this.write(line + '\n');
    }
    this.lastLine = line;
    this.lastWriteT = t;
    this.lastWriteStep = step;
  }
}
