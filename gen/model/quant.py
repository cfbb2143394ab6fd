"""Quantized linear layers for the encoder: INT8 activations, low-bit weights, integer GEMMs
on the golden model or on the emitted engine RTL (``tb.fast``).

For one linear layer ``y = x @ W + b`` (``x`` tokens x K):

* activations: per token (row), symmetric INT8, ``x[r] ~ qa[r] * sa[r]``
  (``gen.model_layer.quantize_activations_per_token``);
* weights: ``W[k, c] ~ qw[k, c] * sw[k // group, c]`` (``quantize_weights_grouped``): W4 with
  a scale per 128 rows of K and output channel (round-to-nearest, MSE-searched clipping), W2 and
  ternary with one scale per output channel;
* the engine computes only integers. Each K-group of the weights is its own engine GEMM
  ``P_j = qa[:, K_j] @ qw[K_j, :]`` (exact), and the float side combines them:
  ``y = sa[:, None] * sum_j sw[j] * P_j + b``. Per-channel schemes are one GEMM of the full K.

The activation format is an object with ``quantize(x) -> (ints, row scales)`` and ``a_bits``;
an FP16-activation mode (FP16 activations, quantized tables) would be another format object
whose GEMMs run on an FP engine build: the backend dispatches on ``act.kind`` (only ``"int"``
exists today).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from gen.golden import reference_mpgemm
from gen.model_layer import quantize_activations_per_token, quantize_weights_grouped

from .encoder import SHORT

__all__ = ["Scheme", "W4Scheme", "SCHEMES", "Int8PerToken", "GoldenGemm", "RtlGemm", "QuantBackend"]


@dataclass(frozen=True)
class Scheme:
    """A weight quantization: format, runtime weight bits, scale group along K (None: per
    output channel)."""
    name: str
    fmt: str
    w_bits: int
    group: int | None = None
    gptq: bool = False            # GPTQ error feedback on calibration inputs (gen.model.gptq)

    @property
    def calibrated(self):
        """Whether the quantizer needs calibration inputs (``backend(calibration=...)``)."""
        return self.gptq

    @property
    def calibration_text(self):
        """The calibration sentences (never the evaluation set)."""
        from .gptq import CALIBRATION
        return CALIBRATION

    def backend(self, encoder, gemm, act=None, calibration=None):
        """The encoder backend that runs this scheme."""
        return QuantBackend(encoder, self, gemm, act, calibration)


SCHEMES = {s.name: s for s in (
    Scheme("w4g128", "int", 4, 128), Scheme("w2", "int", 2), Scheme("ternary", "ternary", 2),
    Scheme("w4g128-gptq", "int", 4, 128, True), Scheme("w2-gptq", "int", 2, None, True),
    Scheme("ternary-gptq", "ternary", 2, None, True))}


@dataclass(frozen=True)
class Int8PerToken:
    a_bits: int = 8
    kind: str = "int"
    label: str = "INT8 per token"

    def quantize(self, x):
        return quantize_activations_per_token(x, self.a_bits)


class GoldenGemm:
    """Integer GEMMs on ``gen.golden.reference_mpgemm`` (no cycles)."""

    def __call__(self, jobs):
        return [(reference_mpgemm(j.a, j.w), None, None) for j in jobs]


class RtlGemm:
    """Integer GEMMs on the emitted engine through a :class:`tb.fast.runner.FastEngine`; every
    result is checked bit-exactly (``golden``: ``"reference"`` or ``"lut"``, see GemmJob)."""

    def __init__(self, engine, golden="reference", pause=0.0, seed=1):
        self.engine, self.golden, self.pause, self.seed = engine, golden, pause, seed
        self.sim_cycles = 0
        self.sim_s = 0.0
        self.wall_s = 0.0

    def __call__(self, jobs):
        for j in jobs:
            j.golden = self.golden
        t0 = time.perf_counter()
        res = self.engine.run(jobs, pause_in=self.pause, pause_out=self.pause, seed=self.seed)
        self.wall_s += time.perf_counter() - t0
        self.sim_s += self.engine.last_sim_s
        self.sim_cycles += sum(r.sim_cycles for r in res)
        return [(r.result, r.cycles, r.ideal) for r in res]


class QuantBackend:
    """Encoder backend: quantize, run the integer GEMMs on ``gemm``, dequantize.

    ``stats[(layer, name)]``: engine cycles, ideal cycles, GEMM count, shape; ``outputs``: the
    float outputs (for the per-layer error against the float model); ``local_error``: relative
    error of each layer against the float layer on the *same* input (this layer's own error)."""

    def __init__(self, encoder, scheme: Scheme, gemm, act=None, calibration=None):
        self.encoder, self.scheme, self.gemm = encoder, scheme, gemm
        if scheme.gptq and calibration is None:
            raise ValueError(f"scheme {scheme.name} needs calibration inputs")
        self.calibration = calibration
        self.act = act or Int8PerToken()
        if self.act.kind != "int":
            raise ValueError(f"activation format {self.act.kind!r} has no engine yet")
        self._w: dict = {}
        self.stats: dict = {}
        self.outputs: dict = {}
        self.local_error: dict = {}

    def weights(self, layer, name):
        key = (layer, name)
        if key not in self._w:
            w, b = self.encoder.weight(layer, name)
            if self.scheme.gptq:
                from .gptq import gptq
                q, s = gptq(w, self.calibration[key], self.scheme.fmt, self.scheme.w_bits,
                            self.scheme.group)
            else:
                q, s = quantize_weights_grouped(w, self.scheme.fmt, self.scheme.w_bits,
                                                self.scheme.group)
            self._w[key] = (w, q, s, b)
        return self._w[key]

    def __call__(self, layer, names, x):
        from tb.fast.runner import GemmJob
        qa, sa = self.act.quantize(x)
        jobs, spans = [], []
        for name in names:
            _, q, s, _ = self.weights(layer, name)
            group = q.shape[0] // s.shape[0]
            first = len(jobs)
            for j in range(s.shape[0]):
                k = slice(j * group, (j + 1) * group)
                jobs.append(GemmJob(qa[:, k], q[k], self.scheme.fmt, self.scheme.w_bits,
                                    name=f"layer{layer}.{SHORT[name]}.k{j}"))
            spans.append((first, len(jobs)))
        results = self.gemm(jobs)
        out = []
        for name, (j0, j1) in zip(names, spans):
            w, q, s, b = self.weights(layer, name)
            acc = sum(results[j][0] * s[j - j0][None, :] for j in range(j0, j1))
            y = acc * sa[:, None] + b
            out.append(self._record(layer, name, x, w, b, y, results[j0:j1]))
        return out

    def _record(self, layer, name, x, w, b, y, results):
        """Keep the layer's output ``y``, its error against the float ``x @ w + b`` and the
        cycles of its engine GEMMs (``results``: ``(result, cycles, ideal)``, cycles None on
        the golden path); returns ``y``."""
        ref = x @ w + b
        cyc = [r[1] for r in results]
        self.stats[(layer, name)] = {
            "gemms": len(results), "shape": [int(x.shape[0]), int(w.shape[0]), int(w.shape[1])],
            "cycles": None if None in cyc else int(sum(cyc)),
            "ideal": None if None in cyc else int(sum(r[2] for r in results))}
        self.local_error[(layer, name)] = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
        self.outputs[(layer, name)] = y
        return y


@dataclass(frozen=True)
class W4Scheme(Scheme):
    """A W4 scheme of ``gen.model.w4``: ``asym`` uint4 + zero points, ``act_order`` GPTQ,
    ``awq`` input-channel scaling; always calibrated (the clipping is activation-weighted)."""
    asym: bool = True
    act_order: bool = False
    awq: bool = False
    label: str = ""
    damp: float = 0.01            # GPTQ Hessian damping, a fraction of the mean diagonal
    extra_calibration: bool = False   # 48 calibration sentences instead of 24

    @property
    def calibrated(self):
        return True

    @property
    def calibration_text(self):
        from .gptq import CALIBRATION, CALIBRATION_EXTRA
        return CALIBRATION + CALIBRATION_EXTRA if self.extra_calibration else CALIBRATION

    def backend(self, encoder, gemm, act=None, calibration=None):
        from .w4 import W4Backend
        return W4Backend(encoder, self, gemm, act, calibration)


def _w4(name, group, label, asym=True, gptq=False, act_order=False, awq=False, damp=0.01,
        extra=False):
    return W4Scheme(name, "uint" if asym else "int", 4, group, gptq, asym, act_order, awq, label,
                    damp, extra)


W4_SCHEMES = {s.name: s for s in (
    _w4("w4g128-asym", 128, "W4 uint + zero point RTN, per 128 K x channel"),
    _w4("w4g64-asym", 64, "W4 uint + zero point RTN, per 64 K x channel"),
    _w4("w4g128-asym-gptq", 128, "W4 uint + zero point GPTQ act-order, per 128 K x channel",
        gptq=True, act_order=True),
    _w4("w4g128-awq", 128, "W4 uint + zero point, AWQ scaling, RTN, per 128 K x channel",
        awq=True),
    _w4("w4g128-asym-gptq-cal48", 128, "W4 uint + zero point, GPTQ act-order damp 0.3, "
        "48 calibration sentences, per 128 K x channel", gptq=True, act_order=True, damp=0.3,
        extra=True),
    _w4("w4g32-awq-gptq-cal48", 32, "W4 uint + zero point, AWQ scaling, GPTQ act-order damp "
        "0.3, 48 calibration sentences, per 32 K x channel", gptq=True, act_order=True,
        awq=True, damp=0.3, extra=True),
    _w4("w4g32-asym-gptq-cal48", 32, "W4 uint + zero point, GPTQ act-order damp 0.3, "
        "48 calibration sentences, per 32 K x channel", gptq=True, act_order=True, damp=0.3,
        extra=True),
)}

SCHEMES.update(W4_SCHEMES)
