/**
 * CacheClassificationLoss rejects bad input with a typed error whose message
 * names the op and the argument; the caches passed in are deep-equal
 * (dataSync of every tensor) to their snapshot after every throw.
 */
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  CacheClassificationLoss,
  DTypeError,
  NonFiniteError,
  Rng,
  ShapeError,
  scatterRows,
  tensor,
  zeros,
  type CacheClassificationLossOptions,
  type CacheLossCallOptions,
  type DocNetwork,
  type NegativeCache,
  type Tensor,
} from '../../src/index.js';
import { snapshotCaches } from '../util/cacheModel.js';

const doc: DocNetwork = (f) => f.feat!;

function caches(): Record<string, NegativeCache> {
  return {
    src: {
      data: {
        emb: tensor([
          [1, 0],
          [0, 1],
          [1, 1],
          [0, 0],
        ]),
        feat: tensor([
          [1, 0],
          [0, 1],
          [1, 1],
          [0, 0],
        ]),
        id: tensor([1, 2, 3, 4], 'int32'),
      },
      age: zeros([4], 'int32'),
      valid: tensor([true, true, true, false]),
    },
  };
}

const q = tensor([
  [1, 0],
  [0, 1],
  [1, 1],
]);
const p = tensor([
  [0, 1],
  [1, 0],
  [1, 1],
]);
const base: CacheClassificationLossOptions = { embeddingKey: 'emb', dataKeys: ['feat'], rng: new Rng(0) };

type ErrClass = typeof ArgumentError | typeof ShapeError | typeof DTypeError;
interface Case {
  name: string;
  opts?: Partial<CacheClassificationLossOptions>;
  q?: Tensor;
  p?: Tensor;
  cache?: (c: Record<string, NegativeCache>) => unknown;
  call?: CacheLossCallOptions;
  doc?: DocNetwork;
  cls: ErrClass;
  msg: RegExp;
}

const cases: Case[] = [
  {
    name: 'wrong embedding width',
    cache: (c) => ({ src: { ...c.src!, data: { ...c.src!.data, emb: zeros([4, 3]) } } }),
    cls: ShapeError,
    msg: /^CacheClassificationLoss: cache\.src\.data\.emb is \[4,3\]; need \[cacheSize, 2\] to match the query dimension 2/,
  },
  {
    name: 'topK not dividing the cache size',
    opts: { topK: 3 },
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: topK = 3 does not divide the cache size 4/,
  },
  {
    name: 'retrievalFn index out of range',
    opts: { retrievalFn: () => tensor([[0], [4], [0]], 'int32') },
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: retrievalFn returned index 4 for query 1; need 0 <= index < 4/,
  },
  {
    name: 'retrievalFn negative index',
    opts: { retrievalFn: () => tensor([[-1], [0], [0]], 'int32') },
    cls: ArgumentError,
    msg: /retrievalFn returned index -1 for query 0/,
  },
  {
    name: 'retrievalFn index out of range of the topK candidates',
    opts: { topK: 2, retrievalFn: () => tensor([[0], [2], [0]], 'int32') },
    cls: ArgumentError,
    msg: /retrievalFn returned index 2 for query 1; need 0 <= index < 2/,
  },
  {
    name: 'retrievalFn of the wrong shape',
    opts: { retrievalFn: () => tensor([0, 0, 0], 'int32') },
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: retrievalFn must return int32 \[3, 1\] indices/,
  },
  {
    name: 'empty batch',
    q: zeros([0, 2]),
    p: zeros([0, 2]),
    cls: ShapeError,
    msg: /^CacheClassificationLoss: the batch is empty/,
  },
  {
    name: 'queries and positives of different shapes',
    p: zeros([2, 2]),
    cls: ShapeError,
    msg: /^CacheClassificationLoss: queryEmbeddings is \[3,2\] but posDocEmbeddings is \[2,2\]/,
  },
  {
    name: 'int queries',
    q: zeros([3, 2], 'int32'),
    cls: DTypeError,
    msg: /^CacheClassificationLoss: queryEmbeddings must be float, got int32/,
  },
  {
    name: 'positiveIds missing with falseNegativeKey',
    opts: { falseNegativeKey: 'id' },
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: falseNegativeKey is "id", so positiveIds must be an int32 \[3\] tensor/,
  },
  {
    name: 'positiveIds of the wrong length',
    opts: { falseNegativeKey: 'id' },
    call: { positiveIds: tensor([1, 2], 'int32') },
    cls: ArgumentError,
    msg: /positiveIds must be an int32 \[3\] tensor .*got a \[2\] int32 tensor/,
  },
  {
    name: 'positiveIds without falseNegativeKey',
    call: { positiveIds: tensor([1, 2, 3], 'int32') },
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: positiveIds was given but the loss has no falseNegativeKey/,
  },
  {
    name: 'falseNegativeKey holding floats',
    opts: { falseNegativeKey: 'feat' },
    call: { positiveIds: tensor([1, 2, 3], 'int32') },
    cls: DTypeError,
    msg: /^CacheClassificationLoss: falseNegativeKey "feat" must hold int32 ids/,
  },
  {
    name: 'a data key missing from the cache',
    opts: { dataKeys: ['tokens'] },
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: cache\.src\.data has no key "tokens"/,
  },
  {
    name: 'no embedding in the cache',
    opts: { embeddingKey: 'vec' },
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: cache\.src\.data has no embedding "vec"/,
  },
  {
    name: 'an empty record of caches',
    cache: () => ({}),
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: cache must be a non-empty record of caches/,
  },
  {
    name: 'a bare cache instead of a record',
    cache: (c) => c.src,
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: cache\.\w+ must be a NegativeCache/,
  },
  {
    name: 'a data key with the wrong row count',
    cache: (c) => ({ src: { ...c.src!, data: { ...c.src!.data, feat: zeros([3, 2]) } } }),
    cls: ShapeError,
    msg: /^CacheClassificationLoss: cache\.src\.data\.feat has 3 rows but the embeddings have 4/,
  },
  {
    name: 'valid flags of the wrong length',
    cache: (c) => ({ src: { ...c.src!, valid: tensor([true]) } }),
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: cache\.src\.valid must be a bool \[4\] tensor/,
  },
  {
    name: 'a doc network returning the wrong shape',
    doc: () => zeros([3, 5]),
    cls: ShapeError,
    msg: /^CacheClassificationLoss: docNetwork must return float embeddings \[3, 2\]/,
  },
  {
    name: 'a doc network that is not a function',
    doc: 42 as unknown as DocNetwork,
    cls: ArgumentError,
    msg: /^CacheClassificationLoss: docNetwork must be a function/,
  },
];

describe('CacheClassificationLoss.call validation', () => {
  it.each(cases)('$name → $cls.name naming the argument; caches unchanged', (c) => {
    const cs = caches();
    const cacheArg = (c.cache ? c.cache(cs) : cs) as Record<string, NegativeCache>;
    const before = snapshotCaches(cs);
    const loss = new CacheClassificationLoss({ ...base, ...c.opts } as CacheClassificationLossOptions);
    let err: unknown;
    try {
      loss.call(c.doc ?? doc, c.q ?? q, c.p ?? p, cacheArg, c.call);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(c.cls);
    expect((err as Error).message).toMatch(c.msg);
    expect(snapshotCaches(cs)).toEqual(before);
  });
});

describe('CacheClassificationLoss: non-finite scores', () => {
  it('NaN or +Infinity scores reach the sampler and are rejected with NonFiniteError (gumbel, categorical, with topK)', () => {
    const bad = tensor([
      [1, 0],
      [NaN, 1],
      [1, 1],
    ]);
    for (const opts of [{ sampler: 'gumbel' as const }, { sampler: 'categorical' as const }, { topK: 2 }]) {
      const cs = caches();
      const before = snapshotCaches(cs);
      const loss = new CacheClassificationLoss({ ...base, rng: new Rng(1), ...opts });
      expect(() => loss.call(doc, bad, p, cs)).toThrow(NonFiniteError);
      // the unfused path rejects the score, the fused path (the default here) the query itself
      expect(() => loss.call(doc, bad, p, cs)).toThrow(
        /^(gumbelMaxRetrieval|categoricalRetrieval): scores\[1, \d\] is NaN|^CacheClassificationLoss: queryEmbeddings\[1, 0\] is NaN/,
      );
      const unfused = new CacheClassificationLoss({ ...base, rng: new Rng(1), ...opts, fused: false });
      expect(() => unfused.call(doc, bad, p, cs)).toThrow(
        /^(gumbelMaxRetrieval|categoricalRetrieval): scores\[1, \d\] is NaN/,
      );
      expect(snapshotCaches(cs)).toEqual(before);
    }
    const inf = new CacheClassificationLoss({ ...base, maskEmptySlots: false });
    expect(() =>
      inf.call(
        doc,
        tensor([
          [Infinity, 0],
          [0, 1],
          [1, 1],
        ]),
        p,
        caches(),
      ),
    ).toThrow(NonFiniteError);
    // a NaN in the cache is caught by its effect on the fused scan's statistics, naming the row
    const cs = caches();
    const emb = cs['src']!.data['emb']!;
    const poisoned = {
      ...cs,
      src: {
        ...cs['src']!,
        data: { ...cs['src']!.data, emb: scatterRows(emb, tensor([0], 'int32'), tensor([[NaN, 0]])) },
      },
    };
    const fusedLoss = new CacheClassificationLoss({ ...base, rng: new Rng(1), maskEmptySlots: false });
    expect(() =>
      fusedLoss.call(
        doc,
        tensor([
          [1, 0],
          [0, 1],
          [1, 1],
        ]),
        p,
        poisoned,
      ),
    ).toThrow(/cached embedding row 0 .* holds NaN/);
  });
});

describe('CacheClassificationLoss constructor validation', () => {
  it('needs a generator or a retrieval function, and known options', () => {
    expect(() => new CacheClassificationLoss({ embeddingKey: 'emb', dataKeys: ['feat'] })).toThrow(ArgumentError);
    expect(() => new CacheClassificationLoss({ embeddingKey: 'emb', dataKeys: ['feat'] })).toThrow(
      /^CacheClassificationLoss: needs a seeded generator: pass rng/,
    );
    expect(
      () => new CacheClassificationLoss({ ...base, topk: 2 } as unknown as CacheClassificationLossOptions),
    ).toThrow(/^CacheClassificationLoss: unknown option "topk"/);
    expect(() => new CacheClassificationLoss({ ...base, topK: 0 })).toThrow(
      /^CacheClassificationLoss: topK must be a positive integer, got 0/,
    );
    expect(() => new CacheClassificationLoss({ ...base, sampler: 'uniform' as never })).toThrow(
      /sampler must be 'gumbel' or 'categorical'/,
    );
    expect(() => new CacheClassificationLoss({ ...base, reducer: 'sum' as never })).toThrow(
      /reducer must be 'mean', 'none' or a function/,
    );
    expect(() => new CacheClassificationLoss({ ...base, embeddingKey: '' })).toThrow(
      /embeddingKey must be a non-empty string/,
    );
    expect(() => new CacheClassificationLoss({ ...base, maskEmptySlots: 1 as never })).toThrow(
      /maskEmptySlots must be true or false/,
    );
  });
});
