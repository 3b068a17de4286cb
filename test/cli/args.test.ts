/**
 * parseFlags: `--name value` and `--name=value`; everything unknown or
 * malformed is a UsageError whose message names the flag and the problem.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageError, parseFlags, usageOf, type FlagSpec } from '../../src/cli/args.js';
import { params } from '../util/props.js';

const SPECS: Record<string, FlagSpec> = {
  steps: { kind: 'int', help: 'maximum steps', min: 1 },
  lr: { kind: 'number', help: 'learning rate', min: 0, max: 10 },
  shift: { kind: 'number', help: 'any number' },
  sampler: { kind: 'string', help: 'sampler', choices: ['gumbel', 'categorical'] },
  out: { kind: 'string', help: 'folder' },
  quiet: { kind: 'bool', help: 'no progress' },
  'max-docs': { kind: 'int', help: 'subset', min: 10, max: 100 },
  rate: { kind: 'number', help: 'positive', min: 0, minOpen: true },
};

function usageError(argv: string[]): string {
  try {
    parseFlags(argv, SPECS);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error(`parseFlags accepted ${JSON.stringify(argv)}`);
}

describe('parseFlags accepts', () => {
  it('--name value and --name=value for every kind', () => {
    expect(parseFlags(['--steps', '5', '--lr=0.5', '--sampler', 'gumbel', '--out=a=b', '--quiet'], SPECS)).toEqual({
      steps: 5,
      lr: 0.5,
      sampler: 'gumbel',
      out: 'a=b',
      quiet: true,
    });
    expect(parseFlags(['--steps=5', '--lr', '0.5'], SPECS)).toEqual({ steps: 5, lr: 0.5 });
    expect(parseFlags(['--quiet=false'], SPECS)).toEqual({ quiet: false });
    expect(parseFlags(['--quiet=true'], SPECS)).toEqual({ quiet: true });
    expect(parseFlags(['--max-docs', '10'], SPECS)).toEqual({ 'max-docs': 10 });
    expect(parseFlags(['--max-docs', '100'], SPECS)).toEqual({ 'max-docs': 100 });
    expect(parseFlags(['--shift', '-3.5'], SPECS)).toEqual({ shift: -3.5 });
    expect(parseFlags(['--shift=1e3'], SPECS)).toEqual({ shift: 1000 });
    expect(parseFlags(['--shift=.5', '--lr', '5.'], SPECS)).toEqual({ shift: 0.5, lr: 5 });
    expect(parseFlags(['--shift=-2.5E-3', '--steps', '007'], SPECS)).toEqual({ shift: -0.0025, steps: 7 });
    expect(parseFlags(['--steps', '9007199254740991'], SPECS)).toEqual({ steps: 9007199254740991 });
    expect(parseFlags([], SPECS)).toEqual({});
  });

  it('property: both spellings give the same result', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1e6 }),
        fc.double({ min: 0, max: 10, noNaN: true }),
        fc.constantFrom('gumbel', 'categorical'),
        (steps, lr, sampler) => {
          const spaced = parseFlags(['--steps', String(steps), '--lr', String(lr), '--sampler', sampler], SPECS);
          const joined = parseFlags([`--steps=${steps}`, `--lr=${lr}`, `--sampler=${sampler}`], SPECS);
          expect(joined).toEqual(spaced);
          expect(spaced).toEqual({ steps, lr, sampler });
        },
      ),
      params(50),
    );
  });
});

describe('parseFlags rejects, with a UsageError naming the problem', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'an unknown flag',
      ['--nope', '1'],
      /^unknown flag --nope; known flags: --steps, --lr, --shift, --sampler, --out, --quiet, --max-docs, --rate$/,
    ],
    ['an unknown flag with =', ['--nope=1'], /^unknown flag --nope;/],
    ['Object.prototype names', ['--constructor', '1'], /^unknown flag --constructor;/],
    ['toString', ['--toString=1'], /^unknown flag --toString;/],
    ['__proto__', ['--__proto__', '1'], /^unknown flag --__proto__;/],
    ['a bare argument', ['train'], /^unexpected argument "train"; flags look like --name value$/],
    ['a single-dash flag', ['-steps', '3'], /^unexpected argument "-steps"/],
    ['a missing value at the end', ['--steps'], /^--steps needs a value \(maximum steps\)$/],
    ['a missing value before the next flag', ['--lr', '--quiet'], /^--lr needs a value \(learning rate\)$/],
    ['a non-number', ['--steps', 'abc'], /^--steps needs a whole number, got "abc"$/],
    ['a non-number for a number', ['--lr', 'abc'], /^--lr needs a decimal number \(like 0\.01 or 1e-3\), got "abc"$/],
    ['an empty number', ['--lr='], /^--lr needs a decimal number .*, got ""$/],
    ['a blank number', ['--lr', '  '], /^--lr needs a decimal number .*, got "  "$/],
    ['a padded number', ['--lr', ' 5'], /^--lr needs a decimal number .*, got " 5"$/],
    ['a padded int', ['--steps', '5 '], /^--steps needs a whole number, got "5 "$/],
    ['NaN', ['--shift', 'NaN'], /^--shift needs a decimal number .*, got "NaN"$/],
    ['Infinity', ['--shift', 'Infinity'], /^--shift needs a decimal number .*, got "Infinity"$/],
    ['an overflowing number', ['--shift', '1e400'], /^--shift must be a finite number, got 1e400$/],
    ['hex for an int', ['--steps', '0x10'], /^--steps needs a whole number, got "0x10"$/],
    ['octal for an int', ['--steps', '0o17'], /^--steps needs a whole number, got "0o17"$/],
    ['binary for an int', ['--steps', '0b101'], /^--steps needs a whole number, got "0b101"$/],
    ['hex for a number', ['--lr', '0x1'], /^--lr needs a decimal number .*, got "0x1"$/],
    [
      'an exponent for an int',
      ['--steps', '1e3'],
      /^--steps needs a whole number written in digits \(like 1000\), got "1e3"$/,
    ],
    ['a point for an int', ['--steps', '10.0'], /^--steps needs a whole number written in digits .*, got "10\.0"$/],
    ['underscores', ['--steps', '1_000'], /^--steps needs a whole number, got "1_000"$/],
    ['a plus sign', ['--steps', '+5'], /^--steps needs a whole number, got "\+5"$/],
    ['a fraction for an int', ['--steps', '2.5'], /^--steps needs a whole number, got "2\.5"$/],
    ['an int beyond 2^53', ['--steps', '9007199254740993'], /^--steps must be an integer >= 1, got 9007199254740993$/],
    ['a value under min', ['--steps', '0'], /^--steps must be an integer >= 1, got 0$/],
    ['a negative value under min', ['--lr=-0.1'], /^--lr must be a number in \[0, 10\], got -0\.1$/],
    ['a value over max', ['--max-docs', '101'], /^--max-docs must be an integer in \[10, 100\], got 101$/],
    ['an exclusive minimum', ['--rate', '0'], /^--rate must be a number > 0, got 0$/],
    ['an empty string', ['--out', ''], /^--out needs a non-empty value \(folder\)$/],
    ['an empty string with =', ['--out='], /^--out needs a non-empty value \(folder\)$/],
    ['a duplicate flag', ['--steps', '1', '--steps=2'], /^--steps is given twice$/],
    ['a duplicate bool', ['--quiet', '--quiet'], /^--quiet is given twice$/],
    ['a bad choice', ['--sampler', 'bad'], /^--sampler must be one of gumbel, categorical, got "bad"$/],
    ['a bad bool value', ['--quiet=yes'], /^--quiet takes true or false, got "yes"$/],
  ];
  for (const [name, argv, msg] of cases) {
    it(`${name}: ${argv.join(' ')}`, () => {
      expect(usageError(argv)).toMatch(msg);
    });
  }
});

describe('usageOf', () => {
  it('lists every flag with its kind or choices and help', () => {
    const u = usageOf('train', 'train one method', SPECS);
    expect(u.startsWith('negcache train: train one method\n')).toBe(true);
    expect(u).toMatch(/--steps <int>\s+maximum steps/);
    expect(u).toMatch(/--sampler <gumbel\|categorical>\s+sampler/);
    expect(u).toMatch(/--quiet\s+no progress/);
    expect(u).not.toMatch(/--quiet </);
  });

  it('keeps the help texts in one column, at least two spaces right of the longest flag', () => {
    const specs: Record<string, FlagSpec> = {
      ...SPECS,
      'a-very-long-flag-name-indeed': { kind: 'string', choices: ['first-choice', 'second-choice'], help: 'long one' },
    };
    const lines = usageOf('train', 'x', specs)
      .split('\n')
      .filter((l) => l.startsWith('  --'));
    const cols = lines
      .map((l) => /^ {2}--\S+(?: <[^>]+>)?( {2,})/.exec(l))
      .map((m) => (m ? m.index + m[0].length : -1));
    expect(cols.every((c) => c > 0 && c === cols[0])).toBe(true);
  });
});
