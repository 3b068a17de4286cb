/**
 * EmbeddingTable: a large [vocab, dim] parameter that is read and updated a
 * few rows at a time. It owns its storage and is the one mutable parameter
 * store in negcache: copying a 2^18 × 64 table on every step (as a
 * functional update would) costs more than the step itself. `rows(ids)`
 * returns a COPY of the requested rows as an ordinary immutable tensor, so
 * the autodiff never sees the mutable storage; optimisers write back
 * through `applyRows`. `snapshot()`/`load()` serve checkpoints.
 *
 * Storage. The values live in a HeapArray: in the WebAssembly kernels'
 * memory where they are available, so the optimisers' SIMD kernels update
 * the touched rows in place (src/tensor/kernels/sparse.ts), else in an
 * ordinary Float32Array. `data` is a view of it; read it afresh each time
 * (the view is re-created when the wasm memory grows), and do not keep it
 * beyond the table's lifetime.
 */
import { ArgumentError, ShapeError, describe, fmtShape } from '../errors.js';
import { Rng } from '../tensor/random.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { HeapArray, gatherRows } from '../tensor/kernels/sparse.js';

export class EmbeddingTable {
  readonly vocab: number;
  readonly dim: number;
  /** @internal The values (wasm memory where available); optimisers update it in place. */
  readonly storage: HeapArray;

  constructor(vocab: number, dim: number, init: { rng: Rng; std?: number } | Float32Array) {
    if (!Number.isInteger(vocab) || vocab < 1 || !Number.isInteger(dim) || dim < 1 || vocab * dim > 2 ** 31 - 1) {
      throw new ArgumentError(
        'EmbeddingTable',
        `vocab and dim must be positive integers with vocab*dim < 2^31, got ${describe(vocab)} × ${describe(dim)}`,
      );
    }
    this.vocab = vocab;
    this.dim = dim;
    if (init instanceof Float32Array) {
      if (init.length !== vocab * dim)
        throw new ShapeError('EmbeddingTable', `initial values have ${init.length} entries; need ${vocab * dim}`);
      this.storage = HeapArray.from(init);
    } else {
      if (!(init?.rng instanceof Rng))
        throw new ArgumentError('EmbeddingTable', `init must be {rng, std?} with a seeded Rng, got ${describe(init)}`);
      if (init.std !== undefined && (typeof init.std !== 'number' || !Number.isFinite(init.std) || init.std < 0)) {
        throw new ArgumentError('EmbeddingTable', `init.std must be a finite number >= 0, got ${describe(init.std)}`);
      }
      const std = init.std ?? 1 / Math.sqrt(dim);
      this.storage = new HeapArray(vocab * dim);
      const data = this.storage.data;
      for (let i = 0; i < data.length; i++) data[i] = std * init.rng.normal();
    }
  }

  /** Frees the table's wasm memory now (see HeapArray.release); the table is unusable afterwards. */
  release(): void {
    this.storage.release();
  }

  /** The [vocab, dim] values, row-major (a view: see the module comment). */
  get data(): Float32Array {
    return this.storage.data;
  }

  /** A copy of rows `ids` as a [ids.length, dim] float32 tensor. */
  rows(ids: Int32Array): Tensor {
    checkIds('EmbeddingTable.rows', ids);
    const dim = this.dim;
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r]!;
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocab))
        throw new ArgumentError(
          'EmbeddingTable.rows',
          `ids[${r}] = ${id} is out of range; need 0 <= id < ${this.vocab}`,
        );
    }
    // The copy runs in wasm where the table lives there (gatherRows: many rows' misses in flight at once).
    const out = gatherRows(this.storage, ids instanceof Int32Array ? ids : Int32Array.from(ids), dim);
    return wrap(out, [ids.length, dim], 'float32');
  }

  /** Overwrites rows `ids` with `values` [ids.length, dim]. Used by optimisers. */
  applyRows(ids: Int32Array, values: Float32Array): void {
    checkIds('EmbeddingTable.applyRows', ids);
    if (!(values instanceof Float32Array))
      throw new ArgumentError('EmbeddingTable.applyRows', `values must be a Float32Array, got ${describe(values)}`);
    if (values.length !== ids.length * this.dim)
      throw new ShapeError(
        'EmbeddingTable.applyRows',
        `values has ${values.length} entries; need ${ids.length} × ${this.dim}`,
      );
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r]!;
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocab))
        throw new ArgumentError(
          'EmbeddingTable.applyRows',
          `ids[${r}] = ${id} is out of range; need 0 <= id < ${this.vocab}`,
        );
    }
    const data = this.data;
    for (let r = 0; r < ids.length; r++)
      data.set(values.subarray(r * this.dim, (r + 1) * this.dim), ids[r]! * this.dim);
  }

  /** The whole table as an immutable tensor (a copy). */
  snapshot(): Tensor {
    return wrap(this.data.slice(), [this.vocab, this.dim], 'float32');
  }

  /** Replaces the contents from a [vocab, dim] float32 tensor. */
  load(t: Tensor): void {
    if (!isTensor(t) || t.dtype !== 'float32' || t.shape[0] !== this.vocab || t.shape[1] !== this.dim || t.rank !== 2) {
      throw new ShapeError(
        'EmbeddingTable.load',
        `need a float32 [${this.vocab}, ${this.dim}] tensor, got ${isTensor(t) ? `${fmtShape(t.shape)} ${t.dtype}` : describe(t)}`,
      );
    }
    this.data.set(unsafeData(t) as Float32Array);
  }
}

/** Row ids: an Int32Array or an array of numbers (each is range-checked by the caller). */
function checkIds(op: string, ids: unknown): void {
  if (!(ids instanceof Int32Array) && !Array.isArray(ids))
    throw new ArgumentError(op, `ids must be an Int32Array of row ids, got ${describe(ids)}`);
}
