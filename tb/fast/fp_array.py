"""Whole FP-activation GEMMs through the emitted ``FpLutArray`` (``q`` tables, docs/fp-lut.md)
in the compiled Verilator harness of ``tb/fast``.

The harness (``tb/fast/harness.py``) drives whatever input streams the manifest lists, so the
FP array's four (``i_cmd``, ``i_table``, ``i_weight``, ``i_scale``) need no new C++: this
module only packs their beats. A GEMM ``A (M x K, FP patterns) @ W (K x N)`` is cut into
``m x n`` tiles; each tile is one array operation over the whole K, and all of them stream
back to back in one harness job. Each operation's beats come from the golden model
``gen.fp_lut.q_stream`` (command, ``q`` tables, weight planes, one scale beat per block,
expected FP32 rows); every result row is checked bit-exactly against it, and the assembled
``M x N`` result against the vectorized layer model ``gen.model.fp_gemm.q_mpgemm_fast``.

    eng = FpArrayEngine(LutConfig(act_format="fp16", table_format="q", w_bits=4, m=2, n=64,
                                  scale_block=32, k_max=1536), "build/fp_array")
    res = eng.gemm(acts, w, "int", 4, wscales)        # FP32 patterns M x N, checked
"""
from __future__ import annotations

import os
import subprocess

import numpy as np

from gen.config import LutConfig

from .harness import words
from .runner import MAGIC, FastEngine, MismatchError

__all__ = ["FpArrayEngine", "int_beats"]


def int_beats(beats, width):
    """Python-int beats of ``width`` bits -> ``(beats, ceil(width / 32))`` uint32 words."""
    nw = words(width)
    out = np.zeros((len(beats), nw), dtype="<u4")
    for i, b in enumerate(beats):
        b = int(b)
        for j in range(nw):
            out[i, j] = (b >> (32 * j)) & 0xFFFFFFFF
    return out


class FpArrayEngine(FastEngine):
    """The emitted ``FpLutArray`` of a ``q`` config, compiled once with the generated harness."""

    def __init__(self, cfg: LutConfig, workdir, opt="-O2"):
        if cfg.table_format != "q":
            raise ValueError(f"table_format must be 'q' for the FP array, not "
                             f"{cfg.table_format!r}")
        super().__init__(cfg, workdir, top="array", opt=opt)
        names = [s for s, _ in self.inputs]
        if sorted(names) != ["i_cmd", "i_scale", "i_table", "i_weight"]:
            raise ValueError(f"an FpLutArray has i_cmd, i_table, i_weight, i_scale, not {names}")
        self.sim_cycles = 0
        self.op_cycles = 0
        self.ideal = 0

    def _tiles(self, acts, w, fmt, w_bits, wscales):
        """Per tile ``(rows slice, cols slice, q_stream(...))``; rows padded with +0
        activations, columns with the format's lowest weight (their results are dropped)."""
        from gen.config import WeightFormat
        from gen.fp_lut import q_stream
        cfg = self.cfg
        lo = WeightFormat.parse(fmt).value_range(w_bits)[0]
        m_rows, n_cols = acts.shape[0], w.shape[1]
        for r0 in range(0, m_rows, cfg.m):
            a = acts[r0:r0 + cfg.m]
            a = np.pad(a, ((0, cfg.m - a.shape[0]), (0, 0)))
            for c0 in range(0, n_cols, cfg.n):
                wt = w[:, c0:c0 + cfg.n]
                st = wscales[c0:c0 + cfg.n]
                pad = cfg.n - wt.shape[1]
                wt = np.pad(wt, ((0, 0), (0, pad)), constant_values=lo)
                st = np.pad(st, ((0, pad), (0, 0)), constant_values=0x3C00)
                yield (slice(r0, min(r0 + cfg.m, m_rows)), slice(c0, min(c0 + cfg.n, n_cols)),
                       q_stream(cfg, a, wt, fmt, w_bits, st))

    def _job(self, ops, pause, seed):
        """One harness job streaming every operation back to back: each input stream carries
        the concatenation of the operations' beats (the array takes the next command while it
        finishes the last), the sink expects ``m`` rows per operation."""
        data = {"i_cmd": [op[0] for op in ops], "i_table": [b for op in ops for b in op[1]],
                "i_weight": [b for op in ops for b in op[2]],
                "i_scale": [b for op in ops for b in op[3]]}
        limit = (8 * len(data["i_weight"]) + 20 * len(data["i_scale"]) + 200 * len(ops)
                 + 10_000) / (1 - pause) ** 2
        parts = [np.array([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, int(pause * 65536),
                           int(pause * 65536), min(int(limit), 0xFFFFFFFF),
                           self.cfg.m * len(ops)], dtype="<u4")]
        for name, width in self.inputs:
            beats = int_beats(data[name], width)
            parts += [np.array([len(beats), 1], dtype="<u4"), beats.ravel()]
        return parts

    def gemm(self, acts, w, fmt, w_bits, wscales, pause=0.0, seed=1, fast_check=True):
        """FP32 patterns ``M x N`` of ``acts @ (w * wscales)`` from the RTL (``wscales``:
        ``N x blocks`` activation-format patterns), every tile checked against
        ``gen.fp_lut``; with ``fast_check`` the whole result also against ``q_mpgemm_fast``."""
        cfg = self.cfg
        acts = np.asarray(acts, dtype=np.int64)
        w = np.asarray(w, dtype=np.int64)
        wscales = np.asarray(wscales, dtype=np.int64)
        tiles = list(self._tiles(acts, w, fmt, w_bits, wscales))
        parts = [np.array([MAGIC, 1], dtype="<u4")] + self._job([t[2] for t in tiles], pause,
                                                                seed)
        jfile = self.workdir / f"fpjobs.{os.getpid()}.bin"
        rfile = self.workdir / f"fpresults.{os.getpid()}.bin"
        np.concatenate(parts).tofile(jfile)
        try:
            proc = subprocess.run([str(self.binary), str(jfile), str(rfile)],
                                  capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"harness failed ({proc.returncode}): "
                                   f"{proc.stderr.strip()}")
            self.last_sim_s = float(proc.stdout.split()[1])
            raw = np.fromfile(rfile, dtype="<u4")
        finally:
            jfile.unlink(missing_ok=True)
            rfile.unlink(missing_ok=True)
        if raw[0] != MAGIC or raw[1] != 1:
            raise RuntimeError("harness wrote a bad result file")
        span, sim = int(raw[2]), int(raw[3])
        ow = words(self.output[1])
        pos = 4 + len(self.scalars)
        rows_all = raw[pos: pos + len(tiles) * cfg.m * ow].reshape(len(tiles), cfg.m, ow)
        out = np.zeros((acts.shape[0], w.shape[1]), dtype=np.uint32)
        for i, (rs, cs, op) in enumerate(tiles):
            rows = rows_all[i, :, : cfg.n].astype(np.uint32)      # FP32 R[r, c] at [32 c +: 32]
            want = np.asarray(op[4], dtype=np.uint32)
            if not np.array_equal(rows, want):
                bad = np.argwhere(rows != want)
                raise MismatchError(f"tile {i} (rows {rs.start}.., cols {cs.start}..): "
                                    f"{len(bad)} results differ from gen.fp_lut")
            out[rs, cs] = rows[: rs.stop - rs.start, : cs.stop - cs.start]
            self.ideal += len(op[2])             # one weight plane of one step per cycle
        self.sim_cycles += sim
        self.op_cycles += span
        if fast_check:
            from gen.model.fp_gemm import q_mpgemm_fast
            if not np.array_equal(out, q_mpgemm_fast(acts, w, fmt, w_bits, cfg, wscales)):
                raise MismatchError("the RTL GEMM differs from gen.model.fp_gemm")
        return out
