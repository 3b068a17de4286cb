"""numpy side of the benchmarks (bench/step.ts, bench/matmul.ts).

  python3 numpy_step.py b d n f runs
      The negative-cache forward step in numpy, written straightforwardly:
      all-pairs scores (scale * Q C^T), Gumbel-max sampling over the cache,
      probPos from the softmax over [s_pos, scores], the sampled items'
      features through a linear doc network, training loss, interpretable
      loss, staleness (forward only).
  python3 numpy_step.py sgemm m n k nt|nn runs
      One float32 product, C = A B^T (nt: A [m,k], B [n,k]) or A B (nn:
      A [m,k], B [k,n]), OpenBLAS sgemm; GFLOP/s = 2 m n k / time.

Prints one JSON line: median and spread in ms (and gflops for sgemm), and
numpy's BLAS configuration. Threads: numpy uses OpenBLAS's default (all
cores) unless OPENBLAS_NUM_THREADS is set in the environment, which must
happen before numpy is imported (the callers set it per process)."""
import json
import sys
import time

import numpy as np


def blas_info():
    try:
        from threadpoolctl import threadpool_info
        return [{k: v for k, v in x.items() if k in ("internal_api", "num_threads", "architecture")} for x in threadpool_info()]
    except Exception:
        return "threadpoolctl not installed"


def timed(fn, runs):
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return {"median": ts[len(ts) // 2], "min": ts[0], "max": ts[-1], "runs": runs}


if sys.argv[1] == "sgemm":
    m, n, k = (int(x) for x in sys.argv[2:5])
    kind, runs = sys.argv[5], int(sys.argv[6])
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    if kind == "nt":
        bt = rng.standard_normal((n, k), dtype=np.float32)
        r = timed(lambda: a @ bt.T, runs)
    else:
        b = rng.standard_normal((k, n), dtype=np.float32)
        r = timed(lambda: a @ b, runs)
    r["gflops"] = 2 * m * n * k / r["median"] / 1e6
    r.update({"numpy": np.__version__, "blas": blas_info()})
    print(json.dumps(r))
    sys.exit(0)

b, d, n, f, runs = (int(x) for x in sys.argv[1:6])
scale = 20.0
rng = np.random.default_rng(0)
q = rng.standard_normal((b, d), dtype=np.float32) * 0.1
p = rng.standard_normal((b, d), dtype=np.float32) * 0.1
cache_emb = rng.standard_normal((n, d), dtype=np.float32) * 0.1
cache_feat = rng.standard_normal((n, f), dtype=np.float32) * 0.1
w = rng.standard_normal((f, d), dtype=np.float32) * 0.1


def step():
    scores = scale * (q @ cache_emb.T)                      # [b, n]
    u = rng.random((b, n), dtype=np.float32)
    u = np.clip(u, 1e-7, 1 - 1e-7)
    idx = np.argmax(scores - np.log(-np.log(u)), axis=1)    # Gumbel-max
    s_pos = scale * np.sum(q * p, axis=1)
    m = np.maximum(scores.max(axis=1), s_pos)
    lse = m + np.log(np.exp(s_pos - m) + np.exp(scores - m[:, None]).sum(axis=1))
    log_prob_pos = s_pos - lse
    prob_pos = np.exp(log_prob_pos)
    fresh = cache_feat[idx] @ w                             # doc network on the sampled items
    s_neg = scale * np.sum(q * fresh, axis=1)
    training = np.mean((1 - prob_pos) * (s_neg - s_pos))
    interpretable = np.mean(-log_prob_pos)
    err = cache_emb[idx] - fresh
    stale = np.mean((err ** 2).sum(axis=1) / (fresh ** 2).sum(axis=1))
    return training, interpretable, stale


r = timed(step, runs)
r.update({"numpy": np.__version__, "blas": blas_info()})
print(json.dumps(r))
