"""The per-token draw, compiled: one call picks the next token from the logits.

In NumPy the same draw is about a dozen array calls, and right after a GRU step each costs
about 2 µs (the step has just evicted NumPy's code and data from the caches) and slows the next
step too: 18 µs a token plus 10-15 µs on the step, a sixth of the loop. Compiled by numba it is
one call of about 5 µs (docs/PERFORMANCE.md). The signature is fixed, so the first import
compiles it (about 2.5 s) and writes numba's cache beside this file; later imports load it.
"""

from __future__ import annotations

import math

import numpy as np

try:
    import numba
except ImportError as e:  # pragma: no cover - numba is in requirements.txt
    raise ImportError("sampling needs numba: pip install numba==0.68.1") from e

NO_IDS = np.zeros(0, dtype=np.int64)

# logits (B, V), row, allowed ids, banned (V,), u, u_greedy, temperature, top_k, top_p,
# greedy_mix, recent ids, repetition penalty
SIGNATURE = "int64(float32[:, ::1], int64, int64[::1], uint8[::1], float64, float64, float64, " \
            "int64, float64, float64, int64[::1], float64)"


@numba.njit(SIGNATURE, cache=True)
def draw(logits, row, allowed, banned, u, u_greedy, temperature, top_k, top_p, greedy_mix,
         recent, penalty):
    """The next token of `row`: among the `allowed` ids that are not `banned`, with the
    repetition penalty on ids in `recent`, greedy when temperature is 0 or u_greedy < greedy_mix,
    else drawn by inverse CDF with `u` from the top-k / top-p nucleus at this temperature."""
    n = allowed.shape[0]
    ids = np.empty(n, np.int64)
    z = np.empty(n, np.float64)
    penalize = penalty != 1.0
    seen = np.zeros(banned.shape[0] if penalize else 0, np.bool_)  # nothing to allocate without
    if penalize:
        for t in recent:
            seen[t] = True
    k = 0
    for i in range(n):
        t = allowed[i]
        if banned[t]:
            continue
        x = float(logits[row, t])
        if penalize and seen[t]:  # as CTRL: shrink a positive logit, grow a negative one
            x = x / penalty if x > 0.0 else x * penalty
        ids[k], z[k] = t, x
        k += 1
    if k == 1:
        return ids[0]
    z = z[:k]
    if temperature <= 0.0 or u_greedy < greedy_mix:
        return ids[np.argmax(z)]
    order = np.argsort(-z, kind="mergesort")  # descending; ties keep id order
    cum = np.empty(k, np.float64)
    top, total = z[order[0]], 0.0
    for i in range(k):
        total += math.exp((z[order[i]] - top) / temperature)
        cum[i] = total
    keep = min(k, top_k) if top_k > 0 else k
    if top_p < 1.0:  # the smallest set holding top_p of the mass, crossing token included
        keep = min(keep, np.searchsorted(cum, top_p * total) + 1)
    j = np.searchsorted(cum[:keep], u * cum[keep - 1], side="right")
    return ids[order[min(j, keep - 1)]]
