import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { escapeXml, lineChart, movingAverage, type Series } from '../../src/report/svg.js';
import { params } from '../util/props.js';

/**
 * A small XML well-formedness checker: tags nest and match, attributes are
 * quoted and unique, text and attribute values contain no raw < or stray &.
 * Returns the list of element names in document order.
 */
function checkXml(xml: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  let i = 0;
  let roots = 0;
  const checkText = (t: string): void => {
    if (t.includes('<')) throw new Error(`raw < in ${JSON.stringify(t)}`);
    const amp = t.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, '');
    if (amp.includes('&')) throw new Error(`stray & in ${JSON.stringify(t)}`);
  };
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    if (lt < 0) {
      if (xml.slice(i).trim() !== '') throw new Error('text after the root element');
      break;
    }
    const text = xml.slice(i, lt);
    if (stack.length === 0 && text.trim() !== '') throw new Error(`text outside the root: ${JSON.stringify(text)}`);
    checkText(text);
    const gt = xml.indexOf('>', lt);
    if (gt < 0) throw new Error('unterminated tag');
    const tag = xml.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) throw new Error(`mismatched </${name}>`);
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const m = /^([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"]*")*)\s*$/.exec(body);
    if (m === null) throw new Error(`malformed tag <${tag}>`);
    const attrs = [...m[2]!.matchAll(/([\w:.-]+)="([^"]*)"/g)];
    const seen = new Set<string>();
    for (const [, k, v] of attrs) {
      if (seen.has(k!)) throw new Error(`duplicate attribute ${k}`);
      seen.add(k!);
      checkText(v!);
    }
    if (stack.length === 0) roots++;
    names.push(m[1]!);
    if (!selfClosing) stack.push(m[1]!);
  }
  if (stack.length !== 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (roots !== 1) throw new Error(`need exactly one root element, got ${roots}`);
  return names;
}

/** Every numeric coordinate-like attribute and every number in path data is finite. */
function numbersAreFinite(svg: string): boolean {
  for (const [, , v] of svg.matchAll(/\s(x|y|x1|x2|y1|y2|cx|cy|r|width|height)="([^"]*)"/g)) {
    if (!Number.isFinite(Number(v))) return false;
  }
  for (const [, d] of svg.matchAll(/\sd="([^"]*)"/g)) {
    for (const tok of d!.split(/[ML\s]+/).filter((t) => t !== '')) if (!Number.isFinite(Number(tok))) return false;
  }
  return !/NaN|Infinity/.test(svg);
}

const base = { title: 'Training loss', xLabel: 'step', yLabel: 'loss' };

describe('escapeXml', () => {
  it('escapes the five XML specials and drops invalid characters', () => {
    expect(escapeXml(`a<b>&"c'`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;');
    expect(escapeXml('bell\u0007 tab\t ok')).toBe('bell tab\t ok');
    expect(escapeXml('x\ud800y\ud83d\ude00')).toBe('xy\ud83d\ude00');
  });
});

describe('lineChart', () => {
  it('draws a well-formed chart with title, labels, ticks and a legend entry per series', () => {
    const svg = lineChart({
      ...base,
      series: [
        {
          name: 'cache loss',
          points: [
            [0, 2.5],
            [100, 1.2],
            [200, 0.8],
            [300, 0.65],
          ],
        },
        {
          name: 'in-batch <baseline> & co',
          points: [
            [0, 2.6],
            [100, 1.6],
            [200, 1.1],
            [300, 0.9],
          ],
        },
      ],
    });
    const names = checkXml(svg);
    expect(names[0]).toBe('svg');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('>Training loss</text>');
    expect(svg).toContain('>step</text>');
    expect(svg).toContain('>loss</text>');
    expect(svg).toContain('>cache loss</text>');
    expect(svg).toContain('>in-batch &lt;baseline&gt; &amp; co</text>');
    expect(names.filter((n) => n === 'path').length).toBe(2);
    // Distinct colours.
    const strokes = [...svg.matchAll(/<path [^>]*stroke="(#[0-9a-f]{6})"/g)].map((m) => m[1]);
    expect(new Set(strokes).size).toBe(2);
    // Tick labels: the x axis spans 0..300 with round numbers.
    expect(svg).toContain('>0</text>');
    expect(svg).toContain('>300</text>');
    expect(svg).toMatch(/>0\.5<\/text>|>1\.0<\/text>|>1<\/text>/);
    expect(numbersAreFinite(svg)).toBe(true);
  });

  it('skips NaN and infinite points and breaks the line there', () => {
    const svg = lineChart({
      ...base,
      series: [
        {
          name: 's',
          points: [
            [0, 1],
            [1, NaN],
            [2, 3],
            [3, 4],
            [Infinity, 2],
            [5, -Infinity],
            [6, 2],
          ],
        },
      ],
    });
    checkXml(svg);
    expect(numbersAreFinite(svg)).toBe(true);
    const d = /<path d="([^"]*)"/.exec(svg)![1]!;
    expect(d.match(/M/g)!.length).toBe(1); // only [2,3]-[3,4] is a line
    expect(svg.match(/<circle /g)!.length).toBe(2); // [0,1] and [6,2] are isolated dots
  });

  it('handles a single point, constant series, empty series and no series', () => {
    const cases: Series[][] = [
      [{ name: 'one', points: [[5, 7]] }],
      [
        {
          name: 'flat',
          points: [
            [0, 3],
            [1, 3],
            [2, 3],
          ],
        },
      ],
      [
        {
          name: 'zero',
          points: [
            [0, 0],
            [0, 0],
          ],
        },
      ],
      [
        { name: 'empty', points: [] },
        { name: 'nan', points: [[NaN, NaN]] },
      ],
      [],
    ];
    for (const series of cases) {
      for (const logY of [false, true]) {
        const svg = lineChart({ ...base, series, logY });
        checkXml(svg);
        expect(numbersAreFinite(svg)).toBe(true);
        for (const s of series) expect(svg).toContain(`>${s.name}</text>`);
      }
    }
    expect(lineChart({ ...base, series: [] })).toContain('no data');
    expect(lineChart({ ...base, series: [{ name: 'one', points: [[5, 7]] }] })).toContain('<circle ');
  });

  it('log scale labels decades and skips non-positive values', () => {
    const svg = lineChart({
      ...base,
      logY: true,
      series: [
        {
          name: 'loss',
          points: [
            [0, 100],
            [1, 10],
            [2, 0.5],
            [3, 0],
            [4, -1],
            [5, 0.02],
          ],
        },
      ],
    });
    checkXml(svg);
    expect(numbersAreFinite(svg)).toBe(true);
    for (const lbl of ['0.01', '0.1', '1', '10', '100']) expect(svg).toContain(`>${lbl}</text>`);
  });

  it('is well-formed with finite coordinates for arbitrary data and names', () => {
    const val = fc.oneof(
      fc.double({ noNaN: false }),
      fc.double({ min: -1e6, max: 1e6, noNaN: true }),
      fc.constantFrom(NaN, Infinity, -Infinity, 0, 1e-300, 1e300),
    );
    const series = fc.array(
      fc.record({
        name: fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !/NaN|Infinity/.test(s)),
        points: fc.array(fc.tuple(val, val), { maxLength: 15 }),
      }),
      { maxLength: 13 },
    );
    fc.assert(
      fc.property(
        series,
        fc.boolean(),
        fc.string({ maxLength: 20 }).filter((s) => !/NaN|Infinity/.test(s)),
        (ss, logY, title) => {
          const svg = lineChart({ title, xLabel: 'x', yLabel: 'y', series: ss, logY });
          checkXml(svg);
          expect(numbersAreFinite(svg)).toBe(true);
        },
      ),
      // A subnormal y (found by seed -966473702): its 10 % padding underflowed to 0 and the axis to NaN.
      { ...params(150), examples: [[[{ name: '', points: [[0, 5e-324]] }], false, '']] },
    );
  });

  it('draws subnormal and tiny values inside a finite plot', () => {
    const cases: [number, number][][] = [
      [[0, 5e-324]],
      [[5e-324, 1]],
      [
        [0, 0],
        [1, 5e-324],
      ],
      [
        [0, -5e-324],
        [5e-324, 5e-324],
      ],
      [
        [0, 1e-305],
        [1, 3e-305],
      ],
      [[-2.2250738585072014e-308, 2.2250738585072014e-308]],
    ];
    for (const points of cases) {
      for (const logY of [false, true]) {
        const svg = lineChart({ ...base, series: [{ name: 's', points }], logY });
        checkXml(svg);
        expect(numbersAreFinite(svg), `${JSON.stringify(points)} logY=${logY}`).toBe(true);
        const frame = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"/.exec(svg)!;
        const [x0, y0, w, h] = frame.slice(1).map(Number) as [number, number, number, number];
        const drawn = [
          ...[...svg.matchAll(/<circle cx="([^"]+)" cy="([^"]+)"/g)].map((m) => [Number(m[1]), Number(m[2])]),
          ...[...svg.matchAll(/<path d="([^"]+)"/g)].flatMap((m) =>
            [...m[1]!.matchAll(/[ML]([-\d.]+) ([-\d.]+)/g)].map((c) => [Number(c[1]), Number(c[2])]),
          ),
        ];
        const expected = points.filter(([, y]) => !logY || y > 0).length;
        expect(drawn).toHaveLength(expected);
        for (const [x, y] of drawn) {
          expect(x).toBeGreaterThanOrEqual(x0);
          expect(x).toBeLessThanOrEqual(x0 + w);
          expect(y).toBeGreaterThanOrEqual(y0);
          expect(y).toBeLessThanOrEqual(y0 + h);
        }
      }
    }
  });

  it('validates its options', () => {
    expect(() => lineChart({ ...base, series: 'x' as unknown as Series[] })).toThrow(ArgumentError);
    expect(() =>
      lineChart({ ...base, series: [{ name: 'a', points: [[1]] as unknown as [number, number][] }] }),
    ).toThrow(/series\[0\]\.points\[0\]/);
    expect(() => lineChart({ ...base, series: [], width: NaN })).toThrow(/width/);
    expect(() => lineChart({ ...base, title: 3 as unknown as string, series: [] })).toThrow(/title/);
  });
});

describe('movingAverage', () => {
  it('averages the trailing window of finite values', () => {
    const pts: [number, number][] = [
      [0, 1],
      [1, 3],
      [2, NaN],
      [3, 5],
      [4, 7],
    ];
    expect(movingAverage(pts, 2)).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 5],
      [4, 6],
    ]);
    expect(movingAverage(pts, 1).map((p) => p[1])).toEqual([1, 3, NaN, 5, 7]);
    expect(movingAverage([], 3)).toEqual([]);
    expect(() => movingAverage(pts, 0)).toThrow(ArgumentError);
  });

  it('matches a direct computation', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: -100, max: 100 }), fc.constant(NaN)), { maxLength: 40 }),
        fc.integer({ min: 1, max: 10 }),
        (ys, w) => {
          const pts = ys.map((y, i) => [i, y] as [number, number]);
          const got = movingAverage(pts, w);
          ys.forEach((_, i) => {
            const win = ys.slice(Math.max(0, i - w + 1), i + 1).filter((v) => Number.isFinite(v));
            const want = win.length ? win.reduce((a, b) => a + b, 0) / win.length : NaN;
            if (Number.isNaN(want)) expect(got[i]![1]).toBeNaN();
            else expect(got[i]![1]).toBeCloseTo(want, 9);
            expect(got[i]![0]).toBe(i);
          });
        },
      ),
      params(150),
    );
  });
});
