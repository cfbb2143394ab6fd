"""FP16 activations on the FP engine: the encoder's linear layers through ``FpLutEngine``
(``q`` tables, docs/fp-lut.md), on the golden model or on the emitted RTL (``tb.fast``).

For one linear layer ``y = x @ W + b`` (``x`` tokens x K):

* activations: ``x`` rounded once to FP16 (or BF16), **no activation quantization**; the
  tables ``T = sum ±a`` are built in FP32 and quantized to ``t``-bit integers with one FP32
  scale per row and scale block of ``b`` groups (``b * g`` activations);
* weights: the same schemes and quantizers as the INT8 path (``gen.model.quant``: RTN or GPTQ,
  ``W[k, c] ~ qw[k, c] * sw[k // group, c]``), the scales rounded to the activation format
  (the FP stage multiplies by ``ws`` in that format). The engine takes one weight scale per
  output channel and scale block, so a weight group must be a whole number of scale blocks:
  ``ws[block, c] = sw[block * b * g // group, c]`` (per-channel schemes repeat theirs);
* the engine does the whole GEMM with the scales inside: ``y = A @ (qw * ws)`` in FP32 (one
  engine GEMM per layer, every K-group included), then ``+ b`` in float64.

``FpQuantBackend`` keeps ``QuantBackend``'s bookkeeping (stats, outputs, local error) and its
weight quantization, so the report of ``gen.model`` does not change.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

from .encoder import SHORT
from .fp_gemm import q_mpgemm_fast, to_act_bits
from .quant import QuantBackend

__all__ = ["FpTables", "default_scale_block", "FpGoldenGemm", "FpQuantBackend",
           "block_wscales"]

#: scale block (groups) for per-channel weights: 32 groups = 128 activations at g = 4, the block
#: of a w4g128 layer, so one build serves per-128 and per-channel scales
B_CHANNEL = 32


def default_scale_block(schemes, g=4):
    """The largest scale block (groups) that divides every grouped scheme's weight group and
    :data:`B_CHANNEL`: one engine build serves all of ``schemes``."""
    b = B_CHANNEL
    for s in schemes:
        if s.group:
            b = gcd(b, s.group // g) if s.group % g == 0 else 0
    return b


@dataclass(frozen=True)
class FpTables:
    """The activation format of the FP path: ``act_format`` patterns, ``q`` tables of
    ``table_bits`` with one FP32 scale per row and ``scale_block`` groups."""
    act_format: str = "fp16"
    table_bits: int = 8
    scale_block: int = B_CHANNEL
    kind: str = "fp"

    @property
    def label(self):
        return (f"{self.act_format.upper()} (no activation quantization), q tables t = "
                f"{self.table_bits}, one FP32 table scale per row and {self.scale_block} "
                f"groups")


def block_wscales(s_bits, k, block_k):
    """``N x blocks`` weight scales of one GEMM: each scale block takes its weight group's
    scale (``s_bits``: groups x N patterns, groups = 1 for per-channel scales)."""
    group = k // s_bits.shape[0]
    if s_bits.shape[0] > 1 and group % block_k:
        raise ValueError(f"the weight group of {group} rows is not a whole number of scale "
                         f"blocks of {block_k} activations")
    blocks = -(-k // block_k)
    return s_bits[np.minimum(np.arange(blocks) * block_k // group, s_bits.shape[0] - 1)].T


class FpGoldenGemm:
    """FP GEMMs on ``gen.model.fp_gemm.q_mpgemm_fast`` (bit-exact with ``gen.fp_lut``; no
    cycles)."""

    def __init__(self, cfg):
        self.cfg = cfg

    def __call__(self, jobs):
        return [(q_mpgemm_fast(j.a, j.w, j.fmt, j.w_bits, self.cfg, j.wscales), None, None)
                for j in jobs]


class FpQuantBackend(QuantBackend):
    """Encoder backend: FP16 activations, quantized weights with FP16 scales, one FP engine
    GEMM per linear layer on ``gemm`` (:class:`FpGoldenGemm` or ``gen.model.quant.RtlGemm``
    around a ``tb.fast.fp_engine.FastFpEngine``), FP32 results."""

    def __init__(self, encoder, scheme, gemm, act: FpTables, g=4, calibration=None):
        super().__init__(encoder, scheme, gemm, calibration=calibration)
        self.act, self.block_k = act, act.scale_block * g

    def __call__(self, layer, names, x):
        from tb.fast.fp_engine import FpGemmJob
        xb = to_act_bits(x, self.act.act_format)
        jobs = []
        for name in names:
            _, q, s, _ = self.weights(layer, name)
            s_bits = to_act_bits(s, self.act.act_format)
            jobs.append(FpGemmJob(xb, q, self.scheme.fmt, self.scheme.w_bits,
                                  block_wscales(s_bits, q.shape[0], self.block_k),
                                  name=f"layer{layer}.{SHORT[name]}", golden="fast"))
        results = self.gemm(jobs)
        out = []
        for name, (res, cyc, ideal) in zip(names, results):
            w, _, _, b = self.weights(layer, name)
            y = np.asarray(res, dtype=np.uint32).view(np.float32).astype(np.float64) + b
            out.append(self._record(layer, name, x, w, b, y, [(res, cyc, ideal)]))
        return out
