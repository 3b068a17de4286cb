#!/usr/bin/env python3
"""Independent checker for negcache conformance vectors (Python 3 + numpy only).

    negcache conformance --out vectors        # write a vector set
    python3 tools/check_vectors.py vectors    # recompute every vector, report

Reads vectors/manifest.json, every <name>.json and <name>.safetensors (with
the tiny safetensors reader below), recomputes each vector's expected
outputs from its inputs with the numpy reference in this file (float64;
cache updates, top-k and the filter exactly), compares them under the
vector's tolerance and prints one line per vector:

    PASS <name>
    FAIL <name>: <reason>

and a summary. Exit code 0 when every vector passes, 1 otherwise, 2 for
bad usage or an unreadable vector set.

This file contains no negcache code: it is the reference behaviour written
again from REFERENCE.md. It is also the template for checking YOUR port
(PyTorch, JAX, ...): there is one function per vector kind, `run_<kind>(config,
inputs) -> outputs`, registered in IMPLEMENTATIONS at the bottom. Replace an
entry with a function that calls your implementation on the same inputs and
returns the same output names (see the docstring of each run_<kind> and the
vector's own .json, which lists its inputs and expected outputs). Outputs
listed in a vector's `beyondReferenceOutputs` (negcache features the
reference does not have) may be left out; every other output is required.
"""

import json
import os
import struct
import sys
import zlib

import numpy as np

FORMAT = "negcache-conformance-v1"
CRC_KEY = "negcache.crc32"
DTYPES = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "BOOL": "?"}


# ----------------------------------------------------------------------------- reading


def read_safetensors(path):
    """Tensors of a safetensors file: {name: numpy array}.

    Layout: 8-byte little-endian header length N, N bytes of JSON header
    {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
    then the raw little-endian data. When the metadata carries negcache's
    CRC-32 (of the whole file with its 8 hex digits replaced by "00000000"),
    it is verified.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("header length %d beyond the end of the file" % n)
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    crc = meta.get(CRC_KEY)
    if crc is not None:
        at = raw.find(crc.encode("ascii"), 8, 8 + n)
        zeroed = raw[:at] + b"00000000" + raw[at + 8 :]
        if at < 0 or "%08x" % zlib.crc32(zeroed) != crc:
            raise ValueError("CRC-32 mismatch: the file is corrupted")
    data = raw[8 + n :]
    out = {}
    for name, info in header.items():
        dt = DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError("%s: unsupported dtype %s" % (name, info["dtype"]))
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        arr = np.frombuffer(data[begin:end], dtype=dt)
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError("%s: %d values for shape %s" % (name, arr.size, shape))
        out[name] = arr.reshape(shape).copy()
    return out


def load_vector(folder, entry):
    """(meta, inputs, expected) of one manifest entry."""
    with open(os.path.join(folder, entry["json"]), "r", encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError("format %r, need %r" % (meta.get("format"), FORMAT))
    tensors = read_safetensors(os.path.join(folder, meta["tensors"]))
    inputs = {k: tensors["inputs/" + k] for k in meta["inputs"]}
    expected = {k: tensors["expected/" + k] for k in meta["expected"]}
    return meta, inputs, expected


# ----------------------------------------------------------------------------- shared maths


def f64(a):
    return np.asarray(a, dtype=np.float64)


def logsumexp_rows(x):
    """logsumexp over the last axis; -inf for a row with nothing finite."""
    m = np.max(x, axis=-1, keepdims=True)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        s = np.log(np.sum(np.exp(x - safe), axis=-1)) + safe[..., 0]
    return np.where(np.isfinite(m[..., 0]), s, -np.inf)


def transform(config):
    """(T, T') of the score transform named by config["transform"]."""
    t = config["transform"]
    if t["kind"] == "identity":
        return (lambda s: s), (lambda s: np.ones_like(s))
    if t["kind"] == "scale":
        c = float(t["scale"])
        return (lambda s: c * s), (lambda s: np.full_like(s, c))
    if t["kind"] == "tanh":
        return np.tanh, (lambda s: 1.0 - np.tanh(s) ** 2)
    raise ValueError("unknown transform %r" % t["kind"])


def top_k_groups(scores, k):
    """Approximate top-k: per row, the max of each of k consecutive groups (first on ties) and its column."""
    b, n = scores.shape
    g = n // k
    grouped = scores.reshape(b, k, g)
    arg = np.argmax(grouped, axis=2)  # first maximum; a group of all -inf gives its first column
    values = np.take_along_axis(grouped, arg[:, :, None], axis=2)[:, :, 0]
    return values, arg + np.arange(k)[None, :] * g


def loss_terms(q, p, W, feat_sel, emb_sel, cand, has_neg, T, dT, reducer, cot):
    """The loss for retrieved items (their features and cached embeddings), with gradients.

    q, p [b, d]; W [F, d]; feat_sel [b, F]; emb_sel [b, d]; cand [b, m] the
    scores probPos runs over (-inf excluded). trainingLoss_i = (1 - pp_i)(T(q_i.f_i) - T(q_i.p_i)),
    f_i = feat_sel_i @ W, pp_i = softmax([s+_i, cand_i])_0 held constant. The
    gradients are those of sum(w * trainingLoss) with w = cot (reducer none)
    or cot / b (mean).
    """
    b = q.shape[0]
    v = np.sum(q * p, axis=1)
    s_pos = T(v)
    lse = logsumexp_rows(np.concatenate([s_pos[:, None], cand], axis=1))
    log_pp = s_pos - lse
    pp = np.exp(log_pp)
    fresh = feat_sel @ W
    u = np.sum(q * fresh, axis=1)
    s_neg = T(u)
    training = (1.0 - pp) * (s_neg - s_pos)
    err = np.sum((emb_sel - fresh) ** 2, axis=1)
    nrm = np.sum(fresh**2, axis=1)
    defined = has_neg & (nrm > 0)
    stale = np.where(defined, err / np.where(defined, nrm, 1.0), 0.0)
    w = np.broadcast_to(f64(cot), (b,)) / (b if reducer == "mean" else 1)
    a = w * (1.0 - pp)
    grad_q = (a * dT(u))[:, None] * fresh - (a * dT(v))[:, None] * p
    grad_p = -(a * dT(v))[:, None] * q
    grad_W = feat_sel.T @ ((a * dT(u))[:, None] * q)
    red = (lambda x: np.mean(x)) if reducer == "mean" else (lambda x: x)
    return {
        "trainingLoss": red(training),
        "interpretableLoss": red(-log_pp),
        "staleness": red(stale),
        "probPos": pp,
        "hasNegative": has_neg,
        "fresh": fresh,
        "grad/queries": grad_q,
        "grad/positives": grad_p,
        "grad/W": grad_W,
    }


# ----------------------------------------------------------------------------- one function per kind


def run_cache_update(config, inputs):
    """updateCache over config["steps"]: outputs step<i>/data/<key>, step<i>/age, step<i>/valid."""
    keys = list(config["specs"].keys())
    use_lru = config["useLru"]
    data = {k: inputs["initial/data/" + k].copy() for k in keys}
    age = inputs["initial/age"].astype(np.int64)
    size = age.shape[0]
    valid = inputs["initial/valid"].copy() if "initial/valid" in inputs else np.ones(size, dtype=bool)
    out = {}
    for i, step in enumerate(config["steps"]):
        p = "step%d/" % i
        refresh = step["refresh"]
        if refresh is not None:
            idx = inputs[p + "updatedItemIndices"]
            mask = inputs[p + "updatedItemMask"] if refresh["mask"] else np.ones(len(idx), dtype=bool)
            for r in range(len(idx)):  # in order: a repeated index keeps its last unmasked row
                if not mask[r]:
                    continue
                for k in refresh["keys"]:
                    data[k][idx[r]] = inputs[p + "updatedItemData/" + k][r]
                if use_lru:
                    age[idx[r]] = -1
                if refresh["keys"]:
                    valid[idx[r]] = True
        n = step["newItems"]
        if n > 0:
            slots = sorted(range(size), key=lambda j: (-age[j], j))[:n]  # oldest first, ties to the smaller index
            mask = inputs[p + "newItemsMask"] if step["newItemsMask"] else np.ones(n, dtype=bool)
            k_next = 0
            for r in range(n):
                if not mask[r]:
                    continue
                slot = slots[k_next]
                k_next += 1
                for k in keys:
                    data[k][slot] = inputs[p + "newItems/" + k][r]
                age[slot] = -1
                valid[slot] = True
        age = age + 1
        for k in keys:
            out[p + "data/" + k] = data[k].copy()
        out[p + "age"] = age.astype(np.int32)
        out[p + "valid"] = valid.copy()
    return out


def _argmax_rows(values):
    """First arg-max per row as int32 [b, 1]; 0 for a row of -inf."""
    return np.argmax(values, axis=1).astype(np.int32)[:, None]


def run_retrieval_max_score(config, inputs):
    """indices [b, 1]: the first arg-max of each row of scores."""
    return {"indices": _argmax_rows(f64(inputs["scores"]))}


def run_retrieval_gumbel(config, inputs):
    """indices [b, 1]: the first arg-max of invTemp * scores + noise, -inf scores skipped."""
    s = f64(inputs["scores"])
    with np.errstate(invalid="ignore"):
        v = np.where(s == -np.inf, -np.inf, float(config["invTemp"]) * s + f64(inputs["noise"]))
    return {"indices": _argmax_rows(v)}


def run_approx_top_k(config, inputs):
    """values [b, k] and indices [b, k] of the approximate top-k."""
    values, idx = top_k_groups(inputs["scores"], int(config["k"]))
    return {"values": values, "indices": idx.astype(np.int32)}


def run_cache_loss(config, inputs):
    """CacheClassificationLoss for the fixed retrieval `retrieved`; see the kind's doc in the vector's .json."""
    T, dT = transform(config)
    sources = config["sources"]
    get = lambda s, k: inputs.get("cache/%s/%s" % (s, k))
    emb = np.concatenate([f64(get(s, "emb")) for s in sources])
    feat = np.concatenate([f64(get(s, "feat")) for s in sources])
    sizes = [get(s, "emb").shape[0] for s in sources]
    q, p, W = f64(inputs["queries"]), f64(inputs["positives"]), f64(inputs["W"])
    b, n = q.shape[0], emb.shape[0]
    excluded = np.zeros((b, n), dtype=bool)
    if config["maskEmptySlots"] and any(get(s, "valid") is not None for s in sources):
        valid = np.concatenate(
            [get(s, "valid") if get(s, "valid") is not None else np.ones(z, dtype=bool) for s, z in zip(sources, sizes)]
        )
        excluded |= ~valid[None, :]
    if config["falseNegativeKey"] is not None:
        ids = np.concatenate([get(s, config["falseNegativeKey"]).reshape(-1) for s in sources])
        excluded |= ids[None, :] == inputs["positiveIds"][:, None]
    scores = np.where(excluded, -np.inf, T(q @ emb.T))
    if config["topK"] is not None:
        cand, cand_idx = top_k_groups(scores, int(config["topK"]))
    else:
        cand, cand_idx = scores, np.broadcast_to(np.arange(n), (b, n))
    j = cand_idx[np.arange(b), inputs["retrieved"][:, 0]]
    has_neg = np.any(np.isfinite(cand), axis=1)
    out = loss_terms(q, p, W, feat[j], emb[j], cand, has_neg, T, dT, config["reducer"], inputs["cotangent"])
    fresh = out.pop("fresh")
    out["retrievedIndices"] = j.astype(np.int32)
    start = 0
    for s, z in zip(sources, sizes):
        out["refresh/%s/indices" % s] = (j - start).astype(np.int32)
        out["refresh/%s/mask" % s] = has_neg & (j >= start) & (j < start + z)
        out["refresh/%s/emb" % s] = fresh
        start += z
    return out


def run_cache_loss_estimators(config, inputs):
    """The estimator options (numNegatives S, inBatchNegatives, queryGradient) for fixed draws; see docs/estimators.md.

    Per query i, with the constant softmax weights w+ (positive), w_b (in-batch negatives), w_c (cache mass) of
    [s+_i, s_ib, cache candidates]: trainingLoss_i = w_c * mean_m T(q_i . f_im) + sum_b w_b s_ib - (1 - w+) s+_i,
    f_im = feat[j_im] @ W. With queryGradient 'exact' the sampled scores give q no gradient and q gets
    w_c * sum_j pi_j T'(q_i . c_j) c_j over the candidates instead.
    """
    T, dT = transform(config)
    sources = config["sources"]
    get = lambda s, k: inputs.get("cache/%s/%s" % (s, k))
    emb = np.concatenate([f64(get(s, "emb")) for s in sources])
    feat = np.concatenate([f64(get(s, "feat")) for s in sources])
    sizes = [get(s, "emb").shape[0] for s in sources]
    q, p, W = f64(inputs["queries"]), f64(inputs["positives"]), f64(inputs["W"])
    b, n = q.shape[0], emb.shape[0]
    S = int(config["numNegatives"])
    in_batch = bool(config["inBatchNegatives"])
    exact = config["queryGradient"] == "exact"
    fnk = config["falseNegativeKey"]
    pos_ids = inputs["positiveIds"] if fnk is not None else None
    excluded = np.zeros((b, n), dtype=bool)
    if config["maskEmptySlots"] and any(get(s, "valid") is not None for s in sources):
        valid = np.concatenate(
            [get(s, "valid") if get(s, "valid") is not None else np.ones(z, dtype=bool) for s, z in zip(sources, sizes)]
        )
        excluded |= ~valid[None, :]
    if fnk is not None:
        ids = np.concatenate([get(s, fnk).reshape(-1) for s in sources])
        excluded |= ids[None, :] == pos_ids[:, None]
        if in_batch:  # cached copies of the batch's positives take part fresh, as in-batch negatives
            excluded |= np.isin(ids, pos_ids)[None, :]
    u_cache = q @ emb.T
    scores = np.where(excluded, -np.inf, T(u_cache))
    if config["topK"] is not None:
        cand, cand_idx = top_k_groups(scores, int(config["topK"]))
    else:
        cand, cand_idx = scores, np.broadcast_to(np.arange(n), (b, n))
    has_neg = np.any(np.isfinite(cand), axis=1)
    j = np.stack([cand_idx[np.arange(b), inputs["retrieved"][:, m]] for m in range(S)], axis=1)  # [b, S]
    v = np.sum(q * p, axis=1)
    s_pos = T(v)
    u_b = q @ p.T
    allowed_b = np.zeros((b, b), dtype=bool)
    if in_batch:
        allowed_b = ~np.eye(b, dtype=bool)
        if fnk is not None:
            allowed_b &= pos_ids[None, :] != pos_ids[:, None]
    s_b = np.where(allowed_b, T(u_b), -np.inf)
    log_z = logsumexp_rows(np.concatenate([s_pos[:, None], s_b, cand], axis=1))
    pp = np.exp(s_pos - log_z)
    w_b = np.exp(s_b - log_z[:, None])
    w_c = np.sum(np.exp(cand - log_z[:, None]), axis=1)
    fresh = feat[j] @ W  # [b, S, d]
    u_neg = np.einsum("id,isd->is", q, fresh)
    s_neg = T(u_neg)
    training = w_c * np.mean(s_neg, axis=1) + np.sum(w_b * np.where(allowed_b, T(u_b), 0.0), axis=1) - (1 - pp) * s_pos
    err = np.sum((emb[j] - fresh) ** 2, axis=2)
    nrm = np.sum(fresh**2, axis=2)
    defined = has_neg[:, None] & (nrm > 0)
    stale = np.mean(np.where(defined, err / np.where(defined, nrm, 1.0), 0.0), axis=1)
    wt = np.broadcast_to(f64(inputs["cotangent"]), (b,)) / (b if config["reducer"] == "mean" else 1)
    # d/d(q, p, W) of sum_i wt_i * trainingLoss_i
    a_neg = (wt * w_c / S)[:, None] * dT(u_neg)  # [b, S]
    a_b = (wt[:, None] * w_b) * np.where(allowed_b, dT(u_b), 0.0)  # [b, b]
    a_pos = wt * (1 - pp) * dT(v)
    grad_q = a_b @ p - a_pos[:, None] * p
    if exact:
        pi = np.exp(cand - logsumexp_rows(cand)[:, None])  # softmax over the candidates (rows without one: none)
        pi = np.where(has_neg[:, None], pi, 0.0)
        rows = emb[cand_idx]  # [b, width, d]
        deriv = dT(np.take_along_axis(u_cache, cand_idx, axis=1))
        grad_q += (wt * w_c)[:, None] * np.einsum("iw,iw,iwd->id", pi, deriv, rows)
    else:
        grad_q += np.einsum("is,isd->id", a_neg, fresh)
    grad_p = a_b.T @ q - a_pos[:, None] * q
    grad_W = np.einsum("isf,isd->fd", feat[j], a_neg[:, :, None] * q[:, None, :])
    red = (lambda x: np.mean(x)) if config["reducer"] == "mean" else (lambda x: x)
    out = {
        "trainingLoss": red(training),
        "interpretableLoss": red(log_z - s_pos),
        "staleness": red(stale),
        "probPos": pp,
        "hasNegative": has_neg,
        "retrievedIndices": (j if S > 1 else j[:, 0]).astype(np.int32),
        "grad/queries": grad_q,
        "grad/positives": grad_p,
        "grad/W": grad_W,
    }
    flat_j = j.reshape(-1)
    flat_valid = np.repeat(has_neg, S)
    start = 0
    for s, z in zip(sources, sizes):
        out["refresh/%s/indices" % s] = (flat_j - start).astype(np.int32)
        out["refresh/%s/mask" % s] = flat_valid & (flat_j >= start) & (flat_j < start + z)
        out["refresh/%s/emb" % s] = fresh.reshape(b * S, -1)
        start += z
    return out


def run_sharded_loss(config, inputs):
    """DistributedCacheClassificationLoss for fixed local and shard picks, per replica."""
    T, dT = transform(config)
    R, b = int(config["replicas"]), int(config["batch"])
    fnk = config["falseNegativeKey"]
    q_all = np.concatenate([f64(inputs["replica%d/queries" % r]) for r in range(R)])
    ids_all = np.concatenate([inputs["replica%d/positiveIds" % r] for r in range(R)]) if fnk else None
    W = f64(inputs["W"])
    weights, picked = [], []  # per shard t: w_t [R*b], local item j_t [R*b]
    for t in range(R):
        emb_t = f64(inputs["shard%d/emb" % t])
        scores = T(q_all @ emb_t.T)
        excluded = np.zeros(scores.shape, dtype=bool)
        if config["maskEmptySlots"] and ("shard%d/valid" % t) in inputs:
            excluded |= ~inputs["shard%d/valid" % t][None, :]
        if fnk:
            excluded |= inputs["shard%d/%s" % (t, fnk)].reshape(-1)[None, :] == ids_all[:, None]
        scores = np.where(excluded, -np.inf, scores)
        if config["topK"] is not None:
            cand, cand_idx = top_k_groups(scores, int(config["topK"]) // R)
        else:
            cand, cand_idx = scores, np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        weights.append(logsumexp_rows(cand))
        picked.append(cand_idx[np.arange(R * b), inputs["replica%d/localRetrieved" % t][:, 0]])
    out = {}
    for r in range(R):
        g = r * b + np.arange(b)
        w = np.stack([weights[t][g] for t in range(R)], axis=1)  # [b, R]
        shard = inputs["replica%d/shardRetrieved" % r][:, 0]
        item = np.array([picked[shard[i]][g[i]] for i in range(b)])
        feat_sel = np.stack([f64(inputs["shard%d/feat" % shard[i]])[item[i]] for i in range(b)])
        emb_sel = np.stack([f64(inputs["shard%d/emb" % shard[i]])[item[i]] for i in range(b)])
        has_neg = np.any(np.isfinite(w), axis=1)
        terms = loss_terms(
            f64(inputs["replica%d/queries" % r]),
            f64(inputs["replica%d/positives" % r]),
            W,
            feat_sel,
            emb_sel,
            w,
            has_neg,
            T,
            dT,
            config["reducer"],
            inputs["replica%d/cotangent" % r],
        )
        terms.pop("fresh")
        terms["shardWeights"] = w
        terms["selectedReplica"] = shard.astype(np.int32)
        terms["retrievedIndices"] = item.astype(np.int32)
        for k, v in terms.items():
            out["replica%d/%s" % (r, k)] = v
    return out


def run_is_in_cache(config, inputs):
    """mask [n]: true where no counted cache row equals the new item on every key."""
    keys = config["keys"]
    rows = np.concatenate([inputs["cache/" + k].reshape(inputs["cache/" + k].shape[0], -1).astype(np.int64) for k in keys], axis=1)
    items = np.concatenate(
        [inputs["newItems/" + k].reshape(inputs["newItems/" + k].shape[0], -1).astype(np.int64) for k in keys], axis=1
    )
    counted = np.ones(rows.shape[0], dtype=bool)
    if config["ignoreEmptySlots"] and "cache/valid" in inputs:
        counted = inputs["cache/valid"]
    equal = np.all(items[:, None, :] == rows[None, :, :], axis=2) & counted[None, :]
    return {"mask": ~np.any(equal, axis=1)}


# >>> YOUR PORT HERE: replace an entry with a function that runs your implementation
# on (config, inputs) and returns {output name: array} with the vector's output names.
IMPLEMENTATIONS = {
    "cache_update": run_cache_update,
    "retrieval_max_score": run_retrieval_max_score,
    "retrieval_gumbel": run_retrieval_gumbel,
    "approx_top_k": run_approx_top_k,
    "cache_loss": run_cache_loss,
    "cache_loss_estimators": run_cache_loss_estimators,
    "sharded_loss": run_sharded_loss,
    "is_in_cache": run_is_in_cache,
}


# ----------------------------------------------------------------------------- comparing and reporting


def compare(meta, expected, got):
    """Reasons the outputs differ from the expected ones (empty: pass)."""
    problems = []
    tol = meta["tolerance"]
    for name, want in expected.items():
        if name not in got:
            if name not in meta["beyondReferenceOutputs"]:
                problems.append("%s: missing" % name)
            continue
        g = np.asarray(got[name])
        if tuple(g.shape) != tuple(want.shape):
            problems.append("%s: shape %s, expected %s" % (name, tuple(g.shape), tuple(want.shape)))
            continue
        if want.dtype.kind == "f":
            x, y = f64(g).reshape(-1), f64(want).reshape(-1)
            with np.errstate(invalid="ignore"):
                ok = (x == y) | (np.abs(x - y) <= tol["atol"] + tol["rtol"] * np.abs(y))
        else:
            x, y = g.astype(np.int64).reshape(-1), want.astype(np.int64).reshape(-1)
            ok = x == y
        if not np.all(ok):
            i = int(np.argmin(ok))
            problems.append("%s[%d]: got %r, expected %r" % (name, i, x[i].item(), y[i].item()))
    return problems


def main(argv):
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python3 tools/check_vectors.py DIR   (DIR written by: negcache conformance --out DIR)")
        return 2
    folder = argv[0]
    try:
        with open(os.path.join(folder, "manifest.json"), "r", encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        print("cannot read %s: %s" % (os.path.join(folder, "manifest.json"), e))
        return 2
    if manifest.get("format") != FORMAT:
        print("manifest format %r, need %r" % (manifest.get("format"), FORMAT))
        return 2
    passed = failed = 0
    for entry in manifest["vectors"]:
        name = entry["name"]
        try:
            meta, inputs, expected = load_vector(folder, entry)
            run = IMPLEMENTATIONS.get(meta["kind"])
            if run is None:
                problems = ["no implementation for kind %r" % meta["kind"]]
            else:
                problems = compare(meta, expected, run(meta["config"], inputs))
        except Exception as e:  # a broken vector or implementation fails that vector, not the run
            problems = ["%s: %s" % (type(e).__name__, e)]
        if problems:
            failed += 1
            print("FAIL %s: %s" % (name, "; ".join(problems[:3])))
        else:
            passed += 1
            print("PASS %s" % name)
    print("%d passed, %d failed (of %d vectors, format %s)" % (passed, failed, passed + failed, FORMAT))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
