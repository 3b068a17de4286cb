import { ArgumentError } from '../errors.js';

/**
 * A seeded pseudo-random generator: xoshiro128** (Blackman & Vigna, 2018),
 * 128 bits of state, period 2^128 - 1, seeded through splitmix32 so that
 * nearby seeds give unrelated streams. Every random draw in negcache comes
 * from one of these, passed in explicitly; nothing reads Math.random.
 *
 * The generator is the one mutable object in the library: each draw advances
 * its state. Same seed, same sequence of calls -> same bits, on every engine
 * (all arithmetic is 32-bit integer arithmetic through Math.imul and >>> 0).
 */
export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  constructor(seed: number) {
    if (typeof seed !== 'number' || !Number.isInteger(seed) || !Number.isSafeInteger(seed)) {
      throw new ArgumentError('Rng', `seed must be a safe integer, got ${String(seed)}`);
    }
    // splitmix32 over the low and high 32 bits of the seed.
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x9e3779b9);
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32 random bits as an unsigned integer in [0, 2^32). */
  nextUint32(): number {
    const s0 = this.s0,
      s1 = this.s1,
      s2 = this.s2,
      s3 = this.s3;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    let n2 = s2 ^ s0;
    let n3 = s3 ^ s1;
    const n1 = s1 ^ n2;
    const n0 = s0 ^ n3;
    n2 ^= t;
    n3 = rotl(n3, 11);
    this.s0 = n0 | 0;
    this.s1 = n1 | 0;
    this.s2 = n2 | 0;
    this.s3 = n3 | 0;
    return r;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /**
   * Uniform strictly inside (0, 1): (k + 0.5) / 2^32 for a random 32-bit k.
   * Never 0 or 1, so -log(-log(u)) (Gumbel noise) and log(u) are always finite.
   */
  uniformOpen(): number {
    return (this.nextUint32() + 0.5) / 4294967296;
  }

  /** An integer uniform in [0, n), unbiased (rejection sampling), n <= 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) {
      throw new ArgumentError('Rng.int', `n must be an integer in [1, 2^32], got ${String(n)}`);
    }
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** A standard normal draw (Box-Muller on two open uniforms; one draw per call). */
  normal(): number {
    const u1 = this.uniformOpen();
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Standard Gumbel noise G = -log(-log(U)), U strictly inside (0, 1). */
  gumbel(): number {
    return -Math.log(-Math.log(this.uniformOpen()));
  }

  /** A copy of the 128-bit state (for checkpoints). */
  getState(): Uint32Array {
    return Uint32Array.of(this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0);
  }

  /** Restores a state captured with getState (for resuming). */
  setState(state: ArrayLike<number>): void {
    if (
      state === null ||
      typeof state !== 'object' ||
      state.length !== 4 ||
      !Array.from(state).every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32)
    ) {
      const got = state !== null && typeof state === 'object' ? JSON.stringify(Array.from(state)) : String(state);
      throw new ArgumentError('Rng.setState', `state must be 4 unsigned 32-bit integers, got ${got}`);
    }
    if (Array.from(state).every((v) => v === 0)) {
      throw new ArgumentError('Rng.setState', 'state must not be all zero (xoshiro128** would emit zeros forever)');
    }
    this.s0 = state[0]! | 0;
    this.s1 = state[1]! | 0;
    this.s2 = state[2]! | 0;
    this.s3 = state[3]! | 0;
  }

  static fromState(state: ArrayLike<number>): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  /** An independent copy with the same state. */
  clone(): Rng {
    return Rng.fromState(this.getState());
  }

  /**
   * Splits off an independent child stream, advancing this generator by one
   * draw: the child is seeded from 64 fresh bits. Use it to give each replica,
   * layer or worker its own generator.
   */
  split(): Rng {
    const hi = this.nextUint32();
    const lo = this.nextUint32();
    return new Rng(hi * 2 ** 21 + (lo >>> 11));
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export function rng(seed: number): Rng {
  return new Rng(seed);
}

export function isRng(x: unknown): x is Rng {
  return x instanceof Rng;
}
