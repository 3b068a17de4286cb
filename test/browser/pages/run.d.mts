/** Types of run.mjs (plain JavaScript, loaded unchanged by the browser page and by the Node test). */
export interface DeterminismConfig {
  steps: number;
  numDocs: number;
  vocab: number;
  featureBuckets: number;
  dim: number;
  batch: number;
  cacheSize: number;
  scale: number;
  lr: number;
  seed: number;
  sampler: 'gumbel' | 'categorical';
}
export interface DeterminismResult {
  config: DeterminismConfig;
  /** Per step: the float32 bits (8 hex digits) of the training loss. */
  trainingLoss: string[];
  /** Per step: the float64 bits (16 hex digits, two little-endian words) of the interpretable loss metric. */
  interpretableLoss: string[];
  /** Per step: the float64 bits of the staleness metric. */
  staleness: string[];
  /** Per step: the sampled cache index of every query of the batch. */
  indices: number[][];
  /** Final parameters and cache, each as the hex of its float32 / int32 words. */
  params: Record<string, string>;
  /** FNV-1a digest of everything above. */
  digest: string;
  lastInterpretableLoss: number;
}
export declare const DETERMINISM_CONFIG: Readonly<DeterminismConfig>;
export declare function bitsHex(array: Float32Array | Float64Array | Int32Array): string;
export declare function digest(hex: string): string;
export declare function runDeterminism(overrides?: Partial<DeterminismConfig>): DeterminismResult;
