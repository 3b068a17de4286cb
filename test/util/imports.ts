/**
 * A small scanner of ES module imports for the tests that walk the source
 * graph (test/browser/nodeBuiltins.test.ts: the browser-safe entry;
 * test/layers.test.ts: layering and cycles). It blanks comments and
 * literals first, so imports inside strings or comments are not seen.
 */

/**
 * Blanks comments and the contents of string / template / regex literals
 * (keeping quotes and line structure), so that later scans see only code.
 * Returns the code and the string literals in order with their positions.
 */
export function stripSource(src: string): { code: string; strings: { value: string; at: number }[] } {
  let out = '';
  const strings: { value: string; at: number }[] = [];
  let i = 0;
  let lastSignificant = '';
  let lastWord = '';
  const n = src.length;
  const regexAllowedAfter = new Set([
    '',
    '(',
    ',',
    '=',
    ':',
    '[',
    '!',
    '&',
    '|',
    '?',
    '{',
    '}',
    ';',
    '+',
    '-',
    '*',
    '%',
    '<',
    '>',
    '~',
    '^',
  ]);
  const regexKeywords = new Set([
    'return',
    'typeof',
    'instanceof',
    'in',
    'of',
    'new',
    'delete',
    'void',
    'throw',
    'case',
    'do',
    'else',
    'yield',
    'await',
  ]);
  // Template literal nesting: each entry counts open braces inside a ${ } expression.
  const templateDepth: number[] = [];
  const readString = (quote: string): void => {
    const start = i;
    i++;
    let value = '';
    while (i < n && src[i] !== quote && src[i] !== '\n') {
      if (src[i] === '\\') {
        value += src[i]! + (src[i + 1] ?? '');
        i += 2;
        continue;
      }
      value += src[i];
      i++;
    }
    if (src[i] === quote) i++; // (an unterminated string stops at the line end)
    strings.push({ value, at: out.length });
    out += quote + ' '.repeat(Math.max(0, i - start - 2)) + quote;
    lastSignificant = quote;
    lastWord = '';
  };
  // Reads template characters until the closing backtick or a `${`.
  const readTemplateChunk = (): void => {
    while (i < n) {
      const ch = src[i]!;
      if (ch === '\\') {
        out += '  ';
        i += 2;
        continue;
      }
      if (ch === '`') {
        out += '`';
        i++;
        lastSignificant = '`';
        lastWord = '';
        return;
      }
      if (ch === '$' && src[i + 1] === '{') {
        out += '${';
        i += 2;
        templateDepth.push(0);
        lastSignificant = '{';
        lastWord = '';
        return;
      }
      out += ch === '\n' ? '\n' : ' ';
      i++;
    }
  };
  while (i < n) {
    const ch = src[i]!;
    const next = src[i + 1];
    if (ch === '/' && next === '/') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    if (ch === '/' && next === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
      continue;
    }
    if (ch === "'" || ch === '"') {
      readString(ch);
      continue;
    }
    if (ch === '`') {
      out += '`';
      i++;
      readTemplateChunk();
      continue;
    }
    if (templateDepth.length > 0 && (ch === '{' || ch === '}')) {
      const top = templateDepth.length - 1;
      if (ch === '{') templateDepth[top]!++;
      else if (templateDepth[top] === 0) {
        templateDepth.pop();
        out += '}';
        i++;
        readTemplateChunk();
        continue;
      } else templateDepth[top]!--;
    }
    if (ch === '/' && (regexAllowedAfter.has(lastSignificant) || regexKeywords.has(lastWord))) {
      // A regular expression literal: skip to its closing slash (respecting classes and escapes), then its flags.
      let j = i + 1;
      let inClass = false;
      while (j < n && src[j] !== '\n') {
        if (src[j] === '\\') {
          j += 2;
          continue;
        }
        if (src[j] === '[') inClass = true;
        else if (src[j] === ']') inClass = false;
        else if (src[j] === '/' && !inClass) break;
        j++;
      }
      if (src[j] !== '/') {
        // No closing slash on this line: it was a division after all.
        out += ch;
        lastSignificant = '/';
        i++;
        continue;
      }
      j++;
      while (j < n && /[a-z]/i.test(src[j]!)) j++;
      out += '/' + ' '.repeat(Math.max(0, j - i - 2)) + '/';
      i = j;
      lastSignificant = '/';
      lastWord = '';
      continue;
    }
    out += ch;
    if (/[A-Za-z0-9_$]/.test(ch)) {
      lastWord = /[A-Za-z0-9_$]/.test(src[i - 1] ?? '') ? lastWord + ch : ch;
      lastSignificant = 'w';
    } else if (!/\s/.test(ch)) {
      // After `)`, `]` or a TypeScript non-null assertion (`x!`), a slash divides.
      const nonNull = ch === '!' && /[\w$)\]]/.test(src[i - 1] ?? '');
      lastSignificant = ch === ')' || ch === ']' || nonNull ? ')' : ch;
      lastWord = '';
    }
    i++;
  }
  return { code: out, strings };
}

export interface ImportRef {
  specifier: string;
  dynamic: boolean;
  typeOnly: boolean;
}

/** Static imports/re-exports, side-effect imports and dynamic import() of a module. */
export function importsOf(src: string): { imports: ImportRef[]; nonLiteralDynamic: number; code: string } {
  const { code, strings } = stripSource(src);
  const stringAt = new Map(strings.map((s) => [s.at, s.value]));
  const imports: ImportRef[] = [];
  // `import ... from 'x'`, `export ... from 'x'`, `import 'x'`: find each statement start, then its quoted specifier.
  const statement = /(^|[;\n}])\s*(import|export)\b(\s+type\b)?([^;'"`]*?)(\bfrom\s*)?(['"])/g;
  let m: RegExpExecArray | null;
  while ((m = statement.exec(code)) !== null) {
    const quoteAt = m.index + m[0].length - 1;
    const value = stringAt.get(quoteAt);
    if (value === undefined) continue;
    const head = m[4] ?? '';
    if (m[2] === 'export' && !m[5]) continue; // e.g. export const s = '...'
    if (m[2] === 'import' && !m[5] && head.trim() !== '') continue; // import x = ... (not ESM)
    const braces = /\{([^}]*)\}/.exec(head);
    const allTypeSpecifiers =
      braces !== null &&
      !/^\s*[\w$]/.test(head.replace(braces[0], '').replace(/,/g, '')) &&
      braces[1]!
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .every((s) => s.startsWith('type '));
    imports.push({ specifier: value, dynamic: false, typeOnly: m[3] !== undefined || allTypeSpecifiers });
  }
  let nonLiteralDynamic = 0;
  const dynamic = /(?<![\w$.])import\s*\(\s*(['"`]?)/g;
  while ((m = dynamic.exec(code)) !== null) {
    const quoteAt = m.index + m[0].length - 1;
    const value = m[1] === "'" || m[1] === '"' ? stringAt.get(quoteAt) : undefined;
    if (value === undefined) nonLiteralDynamic++;
    else imports.push({ specifier: value, dynamic: true, typeOnly: false });
  }
  return { imports, nonLiteralDynamic, code };
}
