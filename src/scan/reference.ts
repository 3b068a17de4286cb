/**
 * The reference implementation of the fused cache scan (contract.ts): plain
 * and slow, the full score row of each query, then the statistics exactly
 * as the contract states them. The fast implementations are tested against it.
 */
import { gumbelAt } from './noise.js';
import { SCAN_BLOCK, inverseCdf, validateScanArgs, type FusedScanArgs, type FusedScanResult } from './contract.js';

/**
 * The reference: for each query, the full score row (float64 dot product
 * rounded to float32, times f32(scale), rounded), exclusions set to
 * -Infinity, then the statistics exactly as the contract states them.
 */
export function fusedScanReference(args: FusedScanArgs): FusedScanResult {
  const sh = validateScanArgs(args, 'fusedScanReference');
  const { b, d, n, k, groupSize, S } = sh;
  const { queries, cache, sampler } = args;
  const max = new Float32Array(b);
  const logSumExp = new Float64Array(b);
  const sample = sampler === 'none' ? undefined : new Int32Array(b * S);
  const sampleScore = sampler === 'none' ? undefined : new Float32Array(b * S);
  const softmaxMean = sh.mean ? new Float32Array(b * d) : undefined;
  const groupMax = k > 0 ? new Float32Array(b * k) : undefined;
  const groupArg = k > 0 ? new Int32Array(b * k) : undefined;
  const row = new Float32Array(n);
  for (let i = 0; i < b; i++) {
    // 1. the full score row
    for (let j = 0; j < n; j++) {
      const excluded =
        (args.rowValid !== undefined && args.rowValid[j] === 0) ||
        (args.rowIds !== undefined && args.rowIds[j] === args.queryExcludeIds![i]);
      if (excluded) {
        row[j] = -Infinity;
        continue;
      }
      let dot = 0;
      for (let p = 0; p < d; p++) dot += queries[i * d + p]! * cache[j * d + p]!;
      row[j] = sh.scale32 * Math.fround(dot);
    }
    // 2. candidates: every row, or the k group maxima
    let candScore: Float32Array = row;
    let candIndex: (c: number) => number = (c) => c;
    if (k > 0) {
      const gm = new Float32Array(k).fill(-Infinity);
      const ga = new Int32Array(k).fill(-1);
      for (let j = 0; j < n; j++) {
        const g = Math.floor(j / groupSize);
        if (row[j]! > gm[g]!) {
          gm[g] = row[j]!;
          ga[g] = j;
        }
      }
      groupMax!.set(gm, i * k);
      groupArg!.set(ga, i * k);
      candScore = gm;
      candIndex = (c) => ga[c]!;
    }
    const count = candScore.length;
    // 3. max and logSumExp
    let m = -Infinity;
    for (let c = 0; c < count; c++) if (candScore[c]! > m) m = candScore[c]!;
    max[i] = m;
    let total = 0;
    if (m === -Infinity) {
      logSumExp[i] = -Infinity;
    } else {
      for (let c = 0; c < count; c++) total += Math.exp(candScore[c]! - m);
      logSumExp[i] = m + Math.log(total);
    }
    // 4. the softmax mean, Σ_c π_c · cache row of candidate c, in float64
    if (softmaxMean && m !== -Infinity) {
      const mu = new Float64Array(d);
      for (let c = 0; c < count; c++) {
        if (candScore[c] === -Infinity) continue;
        const pi = Math.exp(candScore[c]! - m) / total;
        const j = candIndex(c);
        for (let p = 0; p < d; p++) mu[p] += pi * cache[j * d + p]!;
      }
      softmaxMean.set(mu, i * d);
    }
    // 5. the samples: draw t uses keys[t] ('gumbel') or the uniforms of "query i·S + t" ('categorical')
    if (sampler === 'none') continue;
    for (let t = 0; t < S; t++) {
      const v = i * S + t; // the draw's slot, and its uniforms' query index
      let pick = -1;
      if (m !== -Infinity && sampler === 'gumbel') {
        const k0 = sh.keys[2 * t]!,
          k1 = sh.keys[2 * t + 1]!;
        let best = -Infinity;
        for (let c = 0; c < count; c++) {
          if (candScore[c] === -Infinity) continue;
          const key = Math.fround(candScore[c]! + gumbelAt(k0, k1, i, candIndex(c)));
          if (key > best) {
            best = key;
            pick = c;
          }
        }
      } else if (m !== -Infinity && k > 0) {
        // categorical over the group maxima: inverse CDF with one uniform
        pick = inverseCdf(candScore, 0, count, m, args.uniforms![v]! * total);
      } else if (m !== -Infinity) {
        // categorical: the blockwise race
        const perQuery = 2 * sh.blocks;
        let bestKey = -Infinity;
        for (let beta = 0; beta < sh.blocks; beta++) {
          const lo = beta * SCAN_BLOCK,
            hi = Math.min(n, lo + SCAN_BLOCK);
          let mb = -Infinity;
          for (let j = lo; j < hi; j++) if (row[j]! > mb) mb = row[j]!;
          if (mb === -Infinity) continue;
          let sb = 0;
          for (let j = lo; j < hi; j++) sb += Math.exp(row[j]! - mb);
          const u1 = args.uniforms![v * perQuery + 2 * beta]!;
          const u2 = args.uniforms![v * perQuery + 2 * beta + 1]!;
          const key = mb + Math.log(sb) - Math.log(-Math.log(u1));
          if (key > bestKey) {
            bestKey = key;
            pick = inverseCdf(row, lo, hi, mb, u2 * sb);
          }
        }
      }
      sample![v] = pick < 0 ? -1 : candIndex(pick);
      sampleScore![v] = pick < 0 ? -Infinity : candScore[pick]!;
    }
  }
  const out: FusedScanResult = { max, logSumExp };
  if (softmaxMean) out.softmaxMean = softmaxMean;
  if (sample) {
    out.sample = sample;
    out.sampleScore = sampleScore!;
  }
  if (groupMax) {
    out.groupMax = groupMax;
    out.groupArg = groupArg!;
  }
  return out;
}

/** First index c in [lo, hi) whose running Σ exp(s_c - m) exceeds target (the last positive one if rounding leaves it short). */
