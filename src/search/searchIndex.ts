/**
 * An exact nearest-neighbour index over embeddings: add rows with ids (and
 * optionally their texts), search a batch of queries for the k highest dot
 * products (cosine similarity for the unit-length rows of an EncoderModel).
 * Browser-safe; the two-core path is `createParallelSearch` in negcache/node.
 *
 * Scores. score(q, row) is the float32 dot product computed by the NT
 * matmul kernel: the WebAssembly SIMD kernel where it is available (float32
 * lanes), else the plain-TypeScript loops (float64 accumulation, rounded
 * once). Both compute every (query, row) dot product in the same order
 * wherever the pair sits in a block, so a score does not depend on the
 * block sizes, on which rows were searched together, on the number of
 * threads, or on the other queries of the batch. (The public `matmul` op
 * switches between the two kernels by product size; the index calls one
 * kernel for every block so that this holds.)
 *
 * Ranking: by score, descending; ties broken by insertion order (the row
 * added first ranks first). This is a strict total order, so the top k are
 * unique and the serial, blocked and parallel searches return identical
 * ids and scores. Embeddings must be finite (checked on add).
 *
 * Cost: a search of nq queries over n rows of dimension d is nq·n·d
 * multiply-adds in blocks of 256 queries × 2048 rows (a 2 MiB score block,
 * never the nq × n matrix) plus one comparison per score against the
 * query's current k-th best (a bounded heap: O(n + k log k) per query, no
 * sort of all n scores). Memory: 4·n·d bytes for the embeddings (grown by
 * doubling, so up to twice that while adding), plus the ids and texts.
 */
import { ArgumentError, ShapeError, describe } from '../errors.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { matmulNT } from '../tensor/kernels/matmul.js';
import { matmulNTWasm, wasmAvailable } from '../tensor/kernels/wasm/index.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';

/** The `negcache.format` of an index file. */
export const INDEX_FORMAT = 'negcache-index-v1';

/** Queries per score block. */
export const QUERY_BLOCK = 256;
/** Rows per score block. */
export const ROW_BLOCK = 2048;

/** One query's hits, best first. */
export interface SearchResult {
  ids: string[];
  scores: Float32Array;
  /** The hits' rows (insertion positions) in the index. */
  rows: Int32Array;
}

/** Per-query top-k candidates of a row range (what the parallel search merges). */
export interface TopKPartial {
  /** [nq · k] scores, query by query, best first; only the first counts[i] of each query's k are set. */
  scores: Float32Array;
  rows: Int32Array;
  counts: Int32Array;
  k: number;
}

/** Whether `a` (score, row) ranks below `b`: lower score, or equal score and later row. */
function worse(sa: number, ra: number, sb: number, rb: number): boolean {
  return sa < sb || (sa === sb && ra > rb);
}

/** Dot products out[m, n] = a[m, d] · b[n, d]ᵀ with one kernel for every block (see the module comment). */
function scoreBlock(
  kernel: 'wasm' | 'ts',
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  d: number,
  out: Float32Array,
): void {
  if (kernel === 'wasm') matmulNTWasm(a, b, m, n, d, out);
  else matmulNT(a, b, m, n, d, out);
}

/** Which kernel scores blocks here: 'wasm' (SIMD, float32 lanes) or 'ts' (plain loops). */
export function scoreKernel(): 'wasm' | 'ts' {
  return wasmAvailable() ? 'wasm' : 'ts';
}

/**
 * The top k rows of [rowStart, rowEnd) of `data` ([*, d] row-major) for each
 * of the nq queries in `queries` ([nq, d]), best first (score descending,
 * then row ascending). The engine of Index.search and of the parallel search's
 * workers; `kernel` picks the scoring kernel (default: the one available,
 * see scoreKernel; the parallel search passes the main thread's choice to
 * its workers). No validation (callers check).
 */
export function topKRange(
  queries: Float32Array,
  nq: number,
  data: Float32Array,
  d: number,
  rowStart: number,
  rowEnd: number,
  k: number,
  kernel: 'wasm' | 'ts' = scoreKernel(),
): TopKPartial {
  const hs = new Float32Array(nq * k);
  const hr = new Int32Array(nq * k);
  const counts = new Int32Array(nq);
  if (k === 0 || rowEnd <= rowStart) return { scores: hs, rows: hr, counts, k };
  const scores = new Float32Array(QUERY_BLOCK * ROW_BLOCK);
  for (let q0 = 0; q0 < nq; q0 += QUERY_BLOCK) {
    const qn = Math.min(QUERY_BLOCK, nq - q0);
    const qa = queries.subarray(q0 * d, (q0 + qn) * d);
    for (let r0 = rowStart; r0 < rowEnd; r0 += ROW_BLOCK) {
      const rn = Math.min(ROW_BLOCK, rowEnd - r0);
      const out = scores.subarray(0, qn * rn);
      scoreBlock(kernel, qa, data.subarray(r0 * d, (r0 + rn) * d), qn, rn, d, out);
      selectBlock(out, qn, rn, q0, r0, k, hs, hr, counts);
    }
  }
  // Heaps to best-first lists.
  for (let qi = 0; qi < nq; qi++) sortHits(hs, hr, qi * k, counts[qi]!);
  return { scores: hs, rows: hr, counts, k };
}

/**
 * Offers the scores of one block (qn queries from q0 × rn rows from r0) to
 * the queries' heaps. Rows arrive in increasing order, so a later row with a
 * score equal to the heap's worst never enters: only s > thr can. The loop
 * is kept this small (the heap work is in keep()) so that it compiles tight.
 */
function selectBlock(
  out: Float32Array,
  qn: number,
  rn: number,
  q0: number,
  r0: number,
  k: number,
  hs: Float32Array,
  hr: Int32Array,
  counts: Int32Array,
): void {
  for (let i = 0; i < qn; i++) {
    const base = (q0 + i) * k;
    let c = counts[q0 + i]!;
    let thr = c < k ? -Infinity : hs[base]!;
    const row0 = i * rn;
    for (let j = 0; j < rn; j++) {
      const s = out[row0 + j]!;
      if (s > thr) {
        c = keep(hs, hr, base, k, c, s, r0 + j);
        thr = c < k ? -Infinity : hs[base]!;
      }
    }
    counts[q0 + i] = c;
  }
}

/**
 * Adds (s, r) to the heap of k entries at hs/hr[base ..] holding c entries
 * (a min-heap by rank: the root is the worst kept hit), replacing the root
 * when full (the caller only offers entries better than it). Returns the new count.
 */
function keep(hs: Float32Array, hr: Int32Array, base: number, k: number, c: number, s: number, r: number): number {
  if (c < k) {
    // Push and sift up.
    let p = c;
    while (p > 0) {
      const parent = (p - 1) >> 1;
      if (!worse(s, r, hs[base + parent]!, hr[base + parent]!)) break;
      hs[base + p] = hs[base + parent]!;
      hr[base + p] = hr[base + parent]!;
      p = parent;
    }
    hs[base + p] = s;
    hr[base + p] = r;
    return c + 1;
  }
  // Replace the root and sift down.
  let p = 0;
  for (;;) {
    const l = 2 * p + 1;
    if (l >= k) break;
    let m = l;
    const rr = l + 1;
    if (rr < k && worse(hs[base + rr]!, hr[base + rr]!, hs[base + l]!, hr[base + l]!)) m = rr;
    if (!worse(hs[base + m]!, hr[base + m]!, s, r)) break;
    hs[base + p] = hs[base + m]!;
    hr[base + p] = hr[base + m]!;
    p = m;
  }
  hs[base + p] = s;
  hr[base + p] = r;
  return c;
}

/** Sorts entries [base, base + c) best first (score descending, row ascending). */
function sortHits(hs: Float32Array, hr: Int32Array, base: number, c: number): void {
  const order = Array.from({ length: c }, (_, i) => i).sort((a, b) => {
    const sa = hs[base + a]!,
      sb = hs[base + b]!;
    return sa !== sb ? sb - sa : hr[base + a]! - hr[base + b]!;
  });
  const s = order.map((i) => hs[base + i]!);
  const r = order.map((i) => hr[base + i]!);
  for (let i = 0; i < c; i++) {
    hs[base + i] = s[i]!;
    hr[base + i] = r[i]!;
  }
}

/**
 * Merges the best-first partials of disjoint row ranges into the top k of
 * their union (score descending, row ascending).
 */
export function mergeTopK(parts: readonly TopKPartial[], nq: number, k: number): TopKPartial {
  const scores = new Float32Array(nq * k);
  const rows = new Int32Array(nq * k);
  const counts = new Int32Array(nq);
  const pos = new Int32Array(parts.length);
  for (let q = 0; q < nq; q++) {
    pos.fill(0);
    let c = 0;
    while (c < k) {
      let best = -1;
      for (let p = 0; p < parts.length; p++) {
        const part = parts[p]!;
        if (pos[p]! >= part.counts[q]!) continue;
        const o = q * part.k + pos[p]!;
        if (best < 0) {
          best = p;
          continue;
        }
        const b = parts[best]!;
        const ob = q * b.k + pos[best]!;
        if (worse(b.scores[ob]!, b.rows[ob]!, part.scores[o]!, part.rows[o]!)) best = p;
      }
      if (best < 0) break;
      const b = parts[best]!;
      const ob = q * b.k + pos[best]!;
      scores[q * k + c] = b.scores[ob]!;
      rows[q * k + c] = b.rows[ob]!;
      pos[best]!++;
      c++;
    }
    counts[q] = c;
  }
  return { scores, rows, counts, k };
}

export interface IndexOptions {
  /**
   * Keep the embeddings in a SharedArrayBuffer (default false), so that
   * Node's parallel search hands them to its worker without a copy.
   * Browsers have SharedArrayBuffer only on cross-origin-isolated pages.
   */
  shared?: boolean;
}

export interface AddOptions {
  /** The rows' texts, stored for display (`negcache search` prints them); default none. */
  texts?: readonly (string | null)[];
}

/** An exact inner-product index (see the module comment). */
export class Index {
  readonly dim: number;
  readonly shared: boolean;
  /** Metadata read from an index file (e.g. `negcache.model`), or set before saving. */
  metadata: Record<string, string> = {};
  private data: Float32Array;
  private count = 0;
  private readonly idList: string[] = [];
  private readonly textList: (string | null)[] = [];
  private readonly rowById = new Map<string, number>();
  /** Bumped by every add (lets the parallel search notice a changed index). */
  private changes = 0;

  constructor(dim: number, opts: IndexOptions = {}) {
    if (!Number.isInteger(dim) || dim < 1 || dim > 65536)
      throw new ArgumentError('Index', `dim must be an integer in [1, 65536], got ${describe(dim)}`);
    if (opts === null || typeof opts !== 'object')
      throw new ArgumentError('Index', `options must be {shared?}, got ${describe(opts)}`);
    if (opts.shared === true && typeof SharedArrayBuffer === 'undefined')
      throw new ArgumentError('Index', 'shared: true needs SharedArrayBuffer (Node, or a cross-origin-isolated page)');
    this.dim = dim;
    this.shared = opts.shared === true;
    this.data = this.allocate(0);
  }

  private allocate(rows: number): Float32Array {
    const n = rows * this.dim;
    return this.shared ? new Float32Array(new SharedArrayBuffer(4 * n)) : new Float32Array(n);
  }

  /** Number of rows. */
  get size(): number {
    return this.count;
  }

  /** A counter that changes whenever rows are added. */
  get version(): number {
    return this.changes;
  }

  /** The embeddings, [size · dim] row-major: a view of the index's storage. Do not write to it. */
  embeddings(): Float32Array {
    return this.data.subarray(0, this.count * this.dim);
  }

  /** The id of a row. */
  id(row: number): string {
    return this.idList[this.checkRow('Index.id', row)]!;
  }

  /** The stored text of a row, or null. */
  text(row: number): string | null {
    return this.textList[this.checkRow('Index.text', row)]!;
  }

  /** The row of an id, or -1. */
  rowOf(id: string): number {
    return this.rowById.get(id) ?? -1;
  }

  private checkRow(op: string, row: number): number {
    if (!Number.isInteger(row) || row < 0 || row >= this.count)
      throw new ArgumentError(op, `row must be an integer in [0, ${this.count}), got ${describe(row)}`);
    return row;
  }

  /**
   * Appends rows: `embeddings` is a float32 [ids.length, dim] tensor (e.g.
   * from encodeDocuments) or a Float32Array of ids.length · dim values. Ids
   * must be unique strings (within the call and against the index); values
   * must be finite. Validates everything before adding anything.
   */
  add(ids: readonly string[], embeddings: Tensor | Float32Array, opts: AddOptions = {}): void {
    const op = 'Index.add';
    if (!Array.isArray(ids)) throw new ArgumentError(op, `ids must be an array of strings, got ${describe(ids)}`);
    const values = floats(op, 'embeddings', embeddings, this.dim);
    if (values.length !== ids.length * this.dim)
      throw new ShapeError(
        op,
        `embeddings hold ${values.length / this.dim} rows of dimension ${this.dim} but ids has ${ids.length} entries`,
      );
    if (opts === null || typeof opts !== 'object')
      throw new ArgumentError(op, `options must be {texts?}, got ${describe(opts)}`);
    const texts = opts.texts;
    if (texts !== undefined) {
      if (!Array.isArray(texts) || texts.length !== ids.length)
        throw new ArgumentError(
          op,
          `texts must be an array of ${ids.length} strings (or nulls), got ${describe(texts)}`,
        );
      for (let i = 0; i < texts.length; i++)
        if (texts[i] !== null && typeof texts[i] !== 'string')
          throw new ArgumentError(op, `texts[${i}] must be a string or null, got ${describe(texts[i])}`);
    }
    const fresh = new Set<string>();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (typeof id !== 'string') throw new ArgumentError(op, `ids[${i}] must be a string, got ${describe(id)}`);
      if (this.rowById.has(id) || fresh.has(id))
        throw new ArgumentError(
          op,
          `ids[${i}] = ${JSON.stringify(id)} is already in the index${this.rowById.has(id) ? ` (row ${this.rowById.get(id)})` : ''}; ids must be unique`,
        );
      fresh.add(id);
    }
    for (let i = 0; i < values.length; i++)
      if (!Number.isFinite(values[i]!))
        throw new ArgumentError(
          op,
          `embeddings row ${Math.floor(i / this.dim)} holds ${values[i]}; every value must be finite`,
        );
    const need = (this.count + ids.length) * this.dim;
    if (need > this.data.length) {
      const grown = this.allocate(Math.max(this.count + ids.length, 2 * (this.data.length / this.dim), 64));
      grown.set(this.data.subarray(0, this.count * this.dim));
      this.data = grown;
    }
    this.data.set(values, this.count * this.dim);
    for (let i = 0; i < ids.length; i++) {
      this.rowById.set(ids[i]!, this.count + i);
      this.idList.push(ids[i]!);
      this.textList.push(texts ? (texts[i] ?? null) : null);
    }
    this.count += ids.length;
    this.changes++;
  }

  /**
   * The k best rows for each query (float32 [nq, dim] tensor, or a
   * Float32Array of nq · dim values), best first; fewer than k when the
   * index holds fewer rows.
   */
  search(queries: Tensor | Float32Array, k: number): SearchResult[] {
    const { q, nq, kk } = this.checkSearch('Index.search', queries, k);
    return this.results(topKRange(q, nq, this.data, this.dim, 0, this.count, kk), nq);
  }

  /** @internal Validates search arguments: the query values, their count, and k clipped to the size. */
  checkSearch(op: string, queries: Tensor | Float32Array, k: number): { q: Float32Array; nq: number; kk: number } {
    const q = floats(op, 'queries', queries, this.dim);
    for (let i = 0; i < q.length; i++)
      if (!Number.isFinite(q[i]!))
        throw new ArgumentError(
          op,
          `queries row ${Math.floor(i / this.dim)} holds ${q[i]}; every value must be finite`,
        );
    if (!Number.isInteger(k) || k < 1) throw new ArgumentError(op, `k must be a positive integer, got ${describe(k)}`);
    return { q, nq: q.length / this.dim, kk: Math.min(k, this.count) };
  }

  /** @internal Turns a merged partial into per-query results. */
  results(p: TopKPartial, nq: number): SearchResult[] {
    const out: SearchResult[] = [];
    for (let i = 0; i < nq; i++) {
      const c = p.counts[i]!;
      const rows = p.rows.slice(i * p.k, i * p.k + c);
      out.push({ ids: Array.from(rows, (r) => this.idList[r]!), scores: p.scores.slice(i * p.k, i * p.k + c), rows });
    }
    return out;
  }

  /** The index as a safetensors file's tensors and metadata (see docs/model-format.md). */
  toFile(): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
    const hasTexts = this.textList.some((t) => t !== null);
    return {
      tensors: { embeddings: wrap(this.embeddings().slice(), [this.count, this.dim], 'float32') },
      metadata: {
        ...this.metadata,
        'negcache.format': INDEX_FORMAT,
        'negcache.ids': JSON.stringify(this.idList),
        ...(hasTexts ? { 'negcache.texts': JSON.stringify(this.textList) } : {}),
      },
    };
  }

  /** Builds an index from an index file's tensors and metadata (what decodeIndex decodes). */
  static fromFile(
    file: { tensors: Record<string, Tensor>; metadata: Record<string, string> },
    opts: IndexOptions = {},
  ): Index {
    const op = 'loadIndex';
    const meta = file?.metadata ?? {};
    if (meta['negcache.format'] !== INDEX_FORMAT)
      throw new ArgumentError(
        op,
        `not a negcache index file (negcache.format is ${describe(meta['negcache.format'])}; need "${INDEX_FORMAT}")`,
      );
    const emb = file.tensors['embeddings'];
    if (!isTensor(emb) || emb.dtype !== 'float32' || emb.rank !== 2)
      throw new ArgumentError(op, `the tensor "embeddings" must be float32 [n, dim], got ${describe(emb)}`);
    const parse = (key: string): unknown => {
      try {
        return JSON.parse(meta[key]!);
      } catch {
        throw new ArgumentError(op, `the metadata "${key}" is not valid JSON`);
      }
    };
    const ids = parse('negcache.ids');
    if (!Array.isArray(ids) || ids.length !== emb.shape[0])
      throw new ArgumentError(op, `the metadata "negcache.ids" must list ${emb.shape[0]} ids, got ${describe(ids)}`);
    const texts = meta['negcache.texts'] !== undefined ? parse('negcache.texts') : undefined;
    const index = new Index(emb.shape[1]!, opts);
    index.add(
      ids as string[],
      unsafeData(emb) as Float32Array,
      texts !== undefined ? { texts: texts as string[] } : {},
    );
    const { ['negcache.format']: _f, ['negcache.ids']: _i, ['negcache.texts']: _t, ...rest } = meta;
    index.metadata = rest;
    return index;
  }
}

/** The values of a float32 tensor of rank 2 with `dim` columns, or of a Float32Array whose length is a multiple of dim. */
function floats(op: string, name: string, x: Tensor | Float32Array, dim: number): Float32Array {
  if (isTensor(x)) {
    if (x.dtype !== 'float32' || x.rank !== 2 || x.shape[1] !== dim)
      throw new ShapeError(op, `${name} must be a float32 [n, ${dim}] tensor, got ${describe(x)}`);
    return unsafeData(x) as Float32Array;
  }
  if (!(x instanceof Float32Array))
    throw new ArgumentError(op, `${name} must be a float32 tensor or a Float32Array, got ${describe(x)}`);
  if (x.length % dim !== 0)
    throw new ShapeError(op, `${name} has ${x.length} values, not a multiple of the dimension ${dim}`);
  return x;
}

/** The bytes of an index file (safetensors: `embeddings` plus ids and texts in the metadata). */
export function encodeIndex(index: Index): Uint8Array {
  if (!(index instanceof Index))
    throw new ArgumentError('encodeIndex', `index must be an Index, got ${describe(index)}`);
  const f = index.toFile();
  return encodeSafetensors(f.tensors, f.metadata);
}

/** Loads an index file's bytes. */
export function decodeIndex(bytes: Uint8Array, opts: IndexOptions = {}): Index {
  if (!(bytes instanceof Uint8Array))
    throw new ArgumentError('loadIndex', `bytes must be a Uint8Array, got ${describe(bytes)}`);
  const { tensors, metadata } = decodeSafetensors(bytes);
  return Index.fromFile({ tensors, metadata }, opts);
}
