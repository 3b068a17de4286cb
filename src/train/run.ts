/** The run loop: train until a step or time budget, evaluating and checkpointing along the way. */
import { ArgumentError, checkOptions, describe, optionRules } from '../errors.js';
import type { Corpus } from '../data/corpus.js';
import type { FusedScanArgs, FusedScanResult } from '../scan/contract.js';
import type { DualEncoder } from './model.js';
import { evaluate, type EvalResult } from './evaluate.js';
import {
  BUDGET_FIELDS,
  describeField,
  fieldAccepts,
  resumeMismatches,
  type FieldSpec,
  type TrainConfig,
} from './config.js';
import type { BlockRunner } from '../tensor/kernels/scoreBlocks.js';
import { Trainer } from './trainer.js';
import {
  checkpointConfig,
  checkpointOf,
  checkpointRun,
  restoreTrainerState,
  type Checkpoint,
  type EvalRecord,
  type StepRecord,
} from './checkpoint.js';

export type { Checkpoint, EvalRecord, StepRecord };

export interface TrainResult {
  config: TrainConfig;
  history: StepRecord[];
  evals: EvalRecord[];
  final: EvalResult;
  steps: number;
  trainSeconds: number;
  medianStepMs: number;
  model: DualEncoder;
}

export interface TrainHooks {
  onStep?: (r: StepRecord) => void;
  onEval?: (r: EvalRecord) => void;
  /** Clock in milliseconds (default performance.now). */
  now?: () => number;
}

/** Picks `count` evaluation queries deterministically (every k-th held-out query). */
export function evalSubset(testQueries: Int32Array, count: number): Int32Array {
  if (testQueries.length <= count) return testQueries;
  const step = testQueries.length / count;
  return Int32Array.from({ length: count }, (_, i) => testQueries[Math.floor(i * step)]!);
}

export interface TrainOptions extends TrainHooks {
  /** Continue from a checkpoint taken with the same corpus and config. */
  resume?: Checkpoint;
  /** Call onCheckpoint every this many steps (and after the last step). */
  checkpointEvery?: number;
  onCheckpoint?: (c: Checkpoint) => void;
  /** The fused cache scan to use (see Trainer's constructor). */
  scanner?: (args: FusedScanArgs) => FusedScanResult;
  /** Runs the full softmax's block passes and the evaluations' ranking (see Trainer's constructor, evaluate). */
  runner?: BlockRunner;
}

/** What `checkpointEvery` accepts (0 = never); the CLI's --checkpoint-every is derived from it. */
export const CHECKPOINT_EVERY: FieldSpec = { kind: 'int', min: 0, max: 2 ** 31 - 1 };

/** train()'s options: the function hooks checked by the schema, the others (null) below. */
const OPTIONS = {
  resume: null,
  checkpointEvery: null,
  onCheckpoint: optionRules.function,
  onStep: optionRules.function,
  onEval: optionRules.function,
  now: optionRules.function,
  scanner: optionRules.function,
  runner: null,
} as const;

/** The hooks and checkpoint options of train(), checked before anything runs. */
function checkHooks(hooks: unknown): asserts hooks is TrainOptions {
  const op = 'train';
  checkOptions(op, hooks, OPTIONS, { required: true });
  const h = hooks as Record<string, unknown>;
  const runner = h['runner'] as Partial<BlockRunner> | undefined;
  if (runner !== undefined && (runner === null || typeof runner !== 'object' || typeof runner.rank !== 'function'))
    throw new ArgumentError(op, `runner must be a BlockRunner, got ${describe(runner)}`);
  const every = h['checkpointEvery'];
  if (every !== undefined && !fieldAccepts(CHECKPOINT_EVERY, every))
    throw new ArgumentError(
      op,
      `checkpointEvery must be ${describeField(CHECKPOINT_EVERY)} (0 = never), got ${describe(every)}`,
    );
  const r = h['resume'] as Partial<Checkpoint> | undefined;
  if (r !== undefined) {
    if (
      r === null ||
      typeof r !== 'object' ||
      r.tensors === null ||
      typeof r.tensors !== 'object' ||
      r.metadata === null ||
      typeof r.metadata !== 'object'
    ) {
      throw new ArgumentError(
        op,
        `resume must be a checkpoint {tensors, metadata} (from onCheckpoint or loadSafetensorsSync), got ${describe(r)}`,
      );
    }
  }
}

/** Trains with the given config until `steps` or the time budget, evaluating along the way. */
export function train(corpus: Corpus, config: TrainConfig, hooks: TrainOptions = {}): TrainResult {
  checkHooks(hooks);
  const now = hooks.now ?? (() => performance.now());
  const trainer = new Trainer(corpus, config, {
    ...(hooks.scanner !== undefined ? { scanner: hooks.scanner } : {}),
    ...(hooks.runner !== undefined ? { runner: hooks.runner } : {}),
  });
  const evalOpts = hooks.runner !== undefined ? { runner: hooks.runner } : {};
  let history: StepRecord[] = [];
  let evals: EvalRecord[] = [];
  let trainMs = 0;
  if (hooks.resume) {
    const saved = checkpointConfig(hooks.resume);
    const diff = resumeMismatches(saved, trainer.config);
    if (diff.length > 0) {
      const { field, saved: was, now: is } = diff[0]!;
      throw new ArgumentError(
        'train',
        `cannot resume: the checkpoint was trained with ${field} = ${String(was)}, this run has ${String(is)} ` +
          `(only ${BUDGET_FIELDS.join(', ')} may change on resume)`,
      );
    }
    restoreTrainerState(trainer, hooks.resume.tensors);
    const run = checkpointRun(hooks.resume, trainer.stepCount);
    history = run.history;
    evals = run.evals;
    trainMs = 1000 * run.trainSeconds;
    if (trainer.stepCount >= config.steps)
      throw new ArgumentError(
        'train',
        `nothing to train: the checkpoint is at step ${trainer.stepCount} and steps is ${config.steps}; need steps > ${trainer.stepCount} to continue`,
      );
    if (run.trainSeconds >= config.timeBudgetSeconds)
      throw new ArgumentError(
        'train',
        `nothing to train: the checkpoint has ${run.trainSeconds} s of training and timeBudgetSeconds is ${config.timeBudgetSeconds}; need a larger budget to continue`,
      );
  }
  const subset = evalSubset(corpus.testQueries, config.evalQueries);
  let nextEval =
    config.evalEverySeconds > 0
      ? evals.length > 0
        ? evals[evals.length - 1]!.time + config.evalEverySeconds
        : 0
      : Infinity;
  const doEval = (): void => {
    const r = evaluate(trainer.model, corpus, subset, undefined, evalOpts);
    const rec = { ...r, step: trainer.stepCount, time: trainMs / 1000 };
    evals.push(rec);
    hooks.onEval?.(rec);
  };
  const every = hooks.checkpointEvery ?? 0;
  while (trainer.stepCount < config.steps && trainMs / 1000 < config.timeBudgetSeconds) {
    const byTime = trainMs / 1000 >= nextEval;
    if (byTime) nextEval += config.evalEverySeconds;
    if (
      byTime ||
      (config.evalEverySteps > 0 &&
        trainer.stepCount % config.evalEverySteps === 0 &&
        evals.at(-1)?.step !== trainer.stepCount)
    )
      doEval();
    const t0 = now();
    const r = trainer.step();
    const dt = now() - t0;
    trainMs += dt;
    const rec: StepRecord = { step: trainer.stepCount, time: trainMs / 1000, stepMs: dt, ...r };
    history.push(rec);
    hooks.onStep?.(rec);
    if (every > 0 && trainer.stepCount % every === 0)
      hooks.onCheckpoint?.(checkpointOf(trainer, history, evals, trainMs / 1000));
  }
  if (every > 0 && trainer.stepCount % every !== 0)
    hooks.onCheckpoint?.(checkpointOf(trainer, history, evals, trainMs / 1000));
  if ((config.evalEverySeconds > 0 || config.evalEverySteps > 0) && evals.at(-1)?.step !== trainer.stepCount) doEval();
  const final = evaluate(trainer.model, corpus, corpus.testQueries, undefined, evalOpts);
  // The optimiser's moments (twice the tables' size, in wasm memory) are not part of the result: free them now.
  trainer.optimizer.release();
  const sorted = history.map((h) => h.stepMs).sort((a, b) => a - b);
  return {
    config: trainer.config,
    history,
    evals,
    final,
    steps: trainer.stepCount,
    trainSeconds: trainMs / 1000,
    medianStepMs: sorted.length ? sorted[Math.floor(sorted.length / 2)]! : NaN,
    model: trainer.model,
  };
}
