"""Better W4 weights for the same engine: asymmetric uint4 with per-group zero points, clipping
searched against the calibration inputs, GPTQ with activation order, AWQ-style input-channel
scaling. The engine still multiplies INT8 activations by 4-bit weights; everything new is
float-side arithmetic around each K-group GEMM.

For one linear layer ``y = x @ W + b`` (``W``: K x N, in x out), a K-group ``K_j`` of ``group``
rows and an output channel ``c``:

* **input-channel scaling** (AWQ, Lin et al., MLSys 2024, arXiv 2306.00978, Sec. 3.2): a positive
  factor ``t[k]`` per input channel, ``x @ W = (x / t) @ (t[:, None] * W)``. Salient input
  channels (large ``E|x_k|``) get their weight rows scaled up, so rounding hurts them less.
  ``t = E|x_k|^alpha`` (normalized), ``alpha`` searched on the calibration inputs for the least
  output error. The division ``x / t`` happens where the activations are quantized (the float
  side already divides each token by its scale there); in this post-LayerNorm model it cannot be
  folded into the LayerNorm's gamma, because the residual branch reads the same LayerNorm output;
* **asymmetric weights**: ``t[k] W[k, c] ~ s[j, c] * (q[k, c] - z[j, c])`` with ``q`` uint4
  (0..15) and an *integer* zero point ``z`` in 0..15 per group and channel. With INT8 activations
  ``qa`` and their row scale ``sa`` (of ``x / t``), per group the engine computes the exact
  ``P_j = qa[:, K_j] @ q[K_j, :]`` (weight format ``uint``), and the float side subtracts the
  zero point times the group's activation sum, still an exact integer:

      qa[:, K_j] @ (q - z)[K_j, :] = P_j - z[j, None, :] * S_j[:, None]
      S_j = sum_{k in K_j} qa[:, k]    (one sum per token and group)
      y = sa[:, None] * sum_j s[j] * (P_j - z[j] * S_j) + b

  (the zero-point correction of an integer GEMM, as in Jacob et al., CVPR 2018, eq. 7);
* **clipping**: the range of each group is shrunk by a ratio searched per group and channel for
  the least *activation-weighted* squared error ``sum_k E[x_k^2] (W - W_q)[k, c]^2`` (the
  diagonal of the layer's output error); symmetric schemes keep int4 -8..7;
* **GPTQ** (Frantar et al., ICLR 2023, arXiv 2210.17323, Algorithm 1 with the lazy block
  updates of Sec. 3): rows quantized one at a time, each row's error spread over the rows not yet
  quantized through the inverse Hessian's Cholesky factor. ``act_order`` quantizes the rows in
  order of decreasing ``H_kk`` (the "act-order" heuristic of the GPTQ reference release); the
  group scales and zero points are then fixed from the weights before GPTQ starts ("static
  groups"), so that each K-group stays a contiguous slice, one engine GEMM.

Calibration inputs come from ``gen.model.gptq.CALIBRATION``, never the evaluation sentences.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["W4Weights", "group_grid", "quantize_w4", "awq_scales", "dequantize",
           "grouped_product"]

_RATIOS = np.linspace(0.3, 1.0, 36)     # clipping ratios tried per group (1.0: full range)


@dataclass
class W4Weights:
    """``t[k] W[k, c] ~ scales[k // group, c] * (q[k, c] - zeros[k // group, c])``; ``q`` in
    0..15 (``asym``) or -8..7 with ``zeros == 0``; ``chan`` = ``t`` (activation divisor)."""
    q: np.ndarray
    scales: np.ndarray
    zeros: np.ndarray
    chan: np.ndarray
    asym: bool

    @property
    def group(self):
        return self.q.shape[0] // self.scales.shape[0]

    @property
    def fmt(self):
        return "uint" if self.asym else "int"


def dequantize(wq: W4Weights):
    """The float weight the scheme stands for (``W ~ dequantize``), chan scaling undone."""
    g = wq.group
    return (wq.q - np.repeat(wq.zeros, g, axis=0)) * np.repeat(wq.scales, g, axis=0) \
        / wq.chan[:, None]


def grouped_product(qa, wq: W4Weights, products=None):
    """``sum_j s[j] * (qa[:, K_j] @ (q - z)[K_j])`` as the engine path computes it: ``products``
    are the integer GEMMs ``P_j = qa[:, K_j] @ q[K_j]`` (computed here in int64 if None); the
    zero point is removed with the group's activation sums."""
    g = wq.group
    acc = 0.0
    for j in range(wq.scales.shape[0]):
        k = slice(j * g, (j + 1) * g)
        p = qa[:, k] @ wq.q[k] if products is None else products[j]
        corr = wq.zeros[j][None, :] * qa[:, k].sum(axis=1)[:, None]     # exact integers
        acc = acc + wq.scales[j][None, :] * (p - corr)
    return acc


def group_grid(w, asym, h=None, bits=4, ratios=_RATIOS):
    """Scale and zero point per column of one group ``w`` (rows x N) for the least weighted
    squared error ``sum_k h[k] (w - s (q - z))[k]^2`` over clipping ratios ``ratios``.
    ``h=None``: plain squared error."""
    h = np.ones(w.shape[0]) if h is None else h
    n = w.shape[1]
    best = np.full(n, np.inf)
    s_best, z_best = np.ones(n), np.zeros(n)
    if asym:
        lo_all, hi_all = np.minimum(w.min(axis=0), 0.0), np.maximum(w.max(axis=0), 0.0)
    else:
        amax = np.abs(w).max(axis=0)
    top = (1 << bits) - 1
    for r in ratios:
        if asym:
            s = (hi_all - lo_all) * r / top
            s = np.where(s > 0, s, 1.0)
            z = np.clip(np.rint(-lo_all * r / s), 0, top)
            q = np.clip(np.rint(w / s) + z, 0, top)
        else:
            qmax = (1 << (bits - 1)) - 1
            s = amax * r / qmax
            s = np.where(s > 0, s, 1.0)
            z = np.zeros(n)
            q = np.clip(np.rint(w / s), -qmax - 1, qmax)
        err = h @ (w - (q - z) * s) ** 2
        better = err < best
        best[better], s_best[better], z_best[better] = err[better], s[better], z[better]
    return s_best, z_best


def _round(w, s, z, asym, bits=4):
    if asym:
        return np.clip(np.rint(w / s) + z, 0, (1 << bits) - 1)
    qmax = (1 << (bits - 1)) - 1
    return np.clip(np.rint(w / s), -qmax - 1, qmax)


def _rtn(w, group, asym, h):
    k, n = w.shape
    q = np.zeros((k, n))
    scales, zeros = np.zeros((k // group, n)), np.zeros((k // group, n))
    for j in range(k // group):
        rows = slice(j * group, (j + 1) * group)
        scales[j], zeros[j] = group_grid(w[rows], asym, h[rows])
        q[rows] = _round(w[rows], scales[j], zeros[j], asym)
    return q, scales, zeros


def _gptq(w, x, group, asym, act_order, damp=0.01):
    """GPTQ of ``w`` (K x N) for inputs ``x``; returns ``(q, scales, zeros)``."""
    block = group * max(1, 128 // group)    # whole groups: a group's rows are up to date
    w = np.array(w, dtype=np.float64)
    k, n = w.shape
    hess = x.T @ x
    dead = np.diag(hess) == 0
    hess[dead, dead] = 1.0
    w[dead] = 0.0
    hdiag = np.diag(hess).copy()
    hess += damp * np.mean(np.diag(hess)) * np.eye(k)
    perm = np.argsort(-hdiag, kind="stable") if act_order else np.arange(k)
    scales, zeros = np.zeros((k // group, n)), np.zeros((k // group, n))
    if act_order:                       # static groups: fixed before the rows move
        for j in range(k // group):
            rows = slice(j * group, (j + 1) * group)
            scales[j], zeros[j] = group_grid(w[rows], asym, hdiag[rows])
    wp, hp = w[perm], hess[np.ix_(perm, perm)]
    u = np.linalg.cholesky(np.linalg.inv(hp)).T       # upper: H^-1 = U^T U
    q = np.zeros((k, n))
    for b0 in range(0, k, block):
        b1 = min(b0 + block, k)
        errs = np.zeros((b1 - b0, n))
        for i in range(b0, b1):
            row = perm[i]
            j = row // group
            if not act_order and row % group == 0:
                rows = slice(row, row + group)
                scales[j], zeros[j] = group_grid(wp[i:i + group], asym, hdiag[rows])
            qi = _round(wp[i], scales[j], zeros[j], asym)
            q[row] = qi
            e = (wp[i] - (qi - zeros[j]) * scales[j]) / u[i, i]
            wp[i + 1:b1] -= np.outer(u[i, i + 1:b1], e)
            errs[i - b0] = e
        wp[b1:] -= u[b0:b1, b1:].T @ errs
    return q, scales, zeros


def awq_scales(w, x, group, asym, act, grid=21):
    """Per-input-channel factors ``t = mean|x_k|^alpha`` (normalized to geometric mean 1),
    ``alpha`` in 0..1 chosen for the least output error of the round-to-nearest weights with
    the activation quantizer ``act`` applied to ``x / t``."""
    mean_abs = np.abs(x).mean(axis=0)
    mean_abs = np.where(mean_abs > 0, mean_abs, mean_abs[mean_abs > 0].min())
    ref = x @ w
    best, t_best = np.inf, np.ones(w.shape[0])
    for alpha in np.linspace(0.0, 1.0, grid):
        t = mean_abs ** alpha
        t = t / np.exp(np.log(t).mean())
        xs = x / t
        q, s, z = _rtn(w * t[:, None], group, asym, (xs ** 2).mean(axis=0))
        qa, sa = act.quantize(xs)
        wq = W4Weights(q.astype(np.int64), s, z.astype(np.int64), t, asym)
        err = np.linalg.norm(grouped_product(qa, wq) * sa[:, None] - ref)
        if err < best:
            best, t_best = err, t
    return t_best


def quantize_w4(w, x=None, group=128, asym=True, gptq=False, act_order=False, awq=False,
                act=None, damp=0.01):
    """4-bit weights of ``w`` (K x N) for calibration inputs ``x`` (rows x K; needed for
    ``gptq``/``awq`` and for the activation-weighted clipping; None: plain squared error)."""
    k = w.shape[0]
    if k % group:
        raise ValueError(f"K = {k} is not a multiple of the weight group {group}")
    if (gptq or awq) and x is None:
        raise ValueError("gptq and awq need calibration inputs x")
    t = np.ones(k)
    if awq:
        if act is None:
            from .quant import Int8PerToken
            act = Int8PerToken()
        t = awq_scales(w, x, group, asym, act)
    ws = w * t[:, None]
    xs = None if x is None else x / t
    if gptq:
        q, s, z = _gptq(ws, xs, group, asym, act_order, damp)
    else:
        h = np.ones(k) if xs is None else (xs ** 2).mean(axis=0)
        q, s, z = _rtn(ws, group, asym, h)
    return W4Weights(q.astype(np.int64), s, z.astype(np.int64), t, asym)


# --- schemes and the encoder backend --------------------------------------------------------

from .quant import QuantBackend  # noqa: E402  (the schemes are in quant.py: W4Scheme)


class W4Backend(QuantBackend):
    """:class:`gen.model.quant.QuantBackend` for :class:`W4Scheme`: activations divided by the
    input-channel factors before INT8 quantization, one engine GEMM per K-group (weight format
    ``uint`` when asymmetric), zero points removed with the group activation sums."""

    def __init__(self, encoder, scheme, gemm, act=None, calibration=None):
        if calibration is None:
            raise ValueError(f"scheme {scheme.name} needs calibration inputs")
        super().__init__(encoder, scheme, gemm, act, calibration)

    def weights(self, layer, name):
        key = (layer, name)
        if key not in self._w:
            w, b = self.encoder.weight(layer, name)
            sch = self.scheme
            wq = quantize_w4(w, self.calibration[key], sch.group, sch.asym, sch.gptq,
                             sch.act_order, sch.awq, self.act, sch.damp)
            self._w[key] = (w, wq, b)
        return self._w[key]

    def __call__(self, layer, names, x):
        from tb.fast.runner import GemmJob

        from .encoder import SHORT
        jobs, spans, acts = [], [], []
        for name in names:
            _, wq, _ = self.weights(layer, name)
            qa, sa = self.act.quantize(x / wq.chan)
            acts.append((qa, sa))
            first, g = len(jobs), wq.group
            for j in range(wq.scales.shape[0]):
                k = slice(j * g, (j + 1) * g)
                jobs.append(GemmJob(qa[:, k], wq.q[k], wq.fmt, 4,
                                    name=f"layer{layer}.{SHORT[name]}.k{j}"))
            spans.append((first, len(jobs)))
        results = self.gemm(jobs)
        out = []
        for name, (j0, j1), (qa, sa) in zip(names, spans, acts):
            w, wq, b = self.weights(layer, name)
            y = grouped_product(qa, wq, [results[j][0] for j in range(j0, j1)]) \
                * sa[:, None] + b
            out.append(self._record(layer, name, x, w, b, y, results[j0:j1]))
        return out
