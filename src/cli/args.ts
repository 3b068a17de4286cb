/**
 * Command-line flags: `--name value` or `--name=value`, each flag declared
 * with its kind and checked; anything unknown or malformed is a UsageError
 * (printed as a message with a non-zero exit, never a stack trace).
 */
export class UsageError extends Error {}

export type FlagKind = 'int' | 'number' | 'string' | 'bool';

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  /** Allowed values for strings. */
  choices?: readonly string[];
  min?: number;
  max?: number;
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
      out[name] = value;
      continue;
    }
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} needs a number, got "${value}"`);
    if (spec.kind === 'int' && !Number.isInteger(n))
      throw new UsageError(`--${name} needs a whole number, got "${value}"`);
    if (spec.min !== undefined && n < spec.min)
      throw new UsageError(`--${name} must be at least ${spec.min}, got ${value}`);
    if (spec.max !== undefined && n > spec.max)
      throw new UsageError(`--${name} must be at most ${spec.max}, got ${value}`);
    out[name] = n;
  }
  return out;
}

export function usageOf(command: string, summary: string, specs: Readonly<Record<string, FlagSpec>>): string {
  const lines = Object.entries(specs).map(
    ([k, s]) =>
      `  --${k}${s.kind === 'bool' ? '' : ` <${s.choices ? s.choices.join('|') : s.kind}>`}`.padEnd(34) + s.help,
  );
  return `negcache ${command}: ${summary}\n\n${lines.join('\n')}\n`;
}
