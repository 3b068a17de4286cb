/**
 * Command-line flags: `--name value` or `--name=value`, each flag declared
 * with its kind and checked; anything unknown or malformed is a UsageError
 * (printed as a message with a non-zero exit, never a stack trace).
 *
 * Numbers are decimal: `int` flags take digits only (an optional leading
 * minus), so `0x10`, `1e3`, `1_000` and `10.0` are refused rather than
 * guessed at; `number` flags take decimal notation with an optional fraction
 * and exponent (`0.003`, `3e-3`), never hex, `Infinity` or `NaN`. String
 * flags must not be empty. Flags that set a TrainConfig field take their
 * range from the field's spec (`flagOf`), so the CLI accepts exactly what the
 * library accepts.
 */
import { describeField, type FieldSpec } from '../train/config.js';

export class UsageError extends Error {}

export type FlagKind = 'int' | 'number' | 'string' | 'bool';

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  /** Allowed values for strings. */
  choices?: readonly string[];
  /** Smallest allowed value (refused itself with minOpen). */
  min?: number;
  minOpen?: boolean;
  /** Largest allowed value (Infinity: no limit). */
  max?: number;
}

/** The flag for a config field: its kind and range from the field's spec. */
export function flagOf(spec: FieldSpec, help: string): FlagSpec {
  switch (spec.kind) {
    case 'int':
      return { kind: 'int', help, min: spec.min, max: spec.max };
    case 'number':
      return { kind: 'number', help, min: spec.min, ...(spec.minOpen ? { minOpen: true } : {}), max: spec.max };
    case 'choice':
      return { kind: 'string', help, choices: spec.choices };
    case 'bool':
      return { kind: 'string', help, choices: ['true', 'false'] };
  }
}

const INT_TEXT = /^-?\d+$/;
const NUMBER_TEXT = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** The range of a numeric flag in words, as the library says it ("an integer in [1, 65536]"). */
function rangeOf(spec: FlagSpec): string {
  const min = spec.min ?? -Infinity;
  const max = spec.max ?? Infinity;
  if (spec.kind === 'int') return max === Infinity ? `an integer >= ${min}` : describeField({ kind: 'int', min, max });
  if (min === -Infinity && max === Infinity) return 'a finite number';
  return describeField({ kind: 'number', min, ...(spec.minOpen ? { minOpen: true as const } : {}), max });
}

function parseNumber(name: string, value: string, spec: FlagSpec): number {
  const decimal = NUMBER_TEXT.test(value);
  if (spec.kind === 'int' && !INT_TEXT.test(value))
    throw new UsageError(
      decimal && Number.isInteger(Number(value))
        ? `--${name} needs a whole number written in digits (like 1000), got "${value}"`
        : `--${name} needs a whole number, got "${value}"`,
    );
  if (spec.kind === 'number' && !decimal)
    throw new UsageError(`--${name} needs a decimal number (like 0.01 or 1e-3), got "${value}"`);
  const n = Number(value);
  const inRange =
    Number.isFinite(n) &&
    (spec.kind !== 'int' || Number.isSafeInteger(n)) &&
    (spec.min === undefined || (spec.minOpen ? n > spec.min : n >= spec.min)) &&
    (spec.max === undefined || n <= spec.max);
  if (!inRange) throw new UsageError(`--${name} must be ${rangeOf(spec)}, got ${value}`);
  return n;
}

export function parseFlags(
  argv: readonly string[],
  specs: Readonly<Record<string, FlagSpec>>,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"; flags look like --name value`);
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    // Own properties only: "--constructor" or "--toString" must be unknown flags, not Object.prototype members.
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (!spec) {
      const known = Object.keys(specs)
        .map((k) => `--${k}`)
        .join(', ');
      throw new UsageError(`unknown flag --${name}; known flags: ${known}`);
    }
    if (Object.hasOwn(out, name)) throw new UsageError(`--${name} is given twice`);
    if (spec.kind === 'bool') {
      if (value === undefined) {
        out[name] = true;
        continue;
      }
      if (value !== 'true' && value !== 'false') throw new UsageError(`--${name} takes true or false, got "${value}"`);
      out[name] = value === 'true';
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`--${name} needs a value (${spec.help})`);
    }
    if (spec.kind === 'string') {
      if (spec.choices && !spec.choices.includes(value))
        throw new UsageError(`--${name} must be one of ${spec.choices.join(', ')}, got "${value}"`);
      if (value.length === 0) throw new UsageError(`--${name} needs a non-empty value (${spec.help})`);
      out[name] = value;
      continue;
    }
    out[name] = parseNumber(name, value, spec);
  }
  return out;
}

export function usageOf(command: string, summary: string, specs: Readonly<Record<string, FlagSpec>>): string {
  const heads = Object.entries(specs).map(
    ([k, s]) => `  --${k}${s.kind === 'bool' ? '' : ` <${s.choices ? s.choices.join('|') : s.kind}>`}`,
  );
  // one column for the help texts, two spaces right of the longest flag
  const width = Math.max(0, ...heads.map((h) => h.length)) + 2;
  const lines = Object.values(specs).map((s, i) => heads[i]!.padEnd(width) + s.help);
  return `negcache ${command}: ${summary}\n\n${lines.join('\n')}\n`;
}
