"""Whole FP-activation GEMMs through the emitted ``FpTableEngine`` (``fp`` tables: entries in
the activation format, an FP32 accumulator per PE; docs/fp-lut.md) in the compiled Verilator
harness of ``tb/fast``.

The same path as the ``q`` engine (``tb.fast.fp_engine``): Python packs every stream of a GEMM
in bulk with NumPy, one harness process runs a batch, the FP32 result rows are checked
bit-exactly after the run. The four input streams:

* ``i_cmd``: one beat (``gen.golden.pack_engine_cmd``: the array's command over all of K, then
  ``m_tiles``, ``n_tiles``);
* ``i_table``: per row block, per group, the ``m`` rows' stored tables, entries
  ``RNE_act(T[idx])`` (``gen.model.fp_gemm.full_tables`` rounded by ``to_act_bits``);
* ``i_weight``: per column block, per group, ``w`` bit-planes MSB first; ``i_wscale``: per
  column block one beat of the ``n`` weight scales. Both are stored once for one row block and
  replayed for every row block, as the engine reads them.

``tests/test_fast_fp_table_engine.py`` checks every beat against
``gen.fp_lut_fp.fp_gemm_streams``. After the run the ``M x N`` FP32 patterns are compared with
``gen.fp_lut_fp.lut_fp_mpgemm`` (``golden="lut"``: the hardware's algorithm step by step, in
Python) or ``gen.model.fp_gemm.fp_mpgemm_fast`` (``golden="fast"``, the same bits with NumPy,
for model-sized GEMMs), and ``o_cycles`` with the span the harness saw.

    eng = FastFpTableEngine(LutConfig(act_format="fp16", table_format="fp", m=2, n=8,
                                      w_bits=4, k_max=384), "build/fast_fpt")
    (r,) = eng.run([FpGemmJob(acts, w, "int", 4, wscales)])     # wscales: N patterns
"""
from __future__ import annotations

import numpy as np

from gen.config import LutConfig
from gen.golden import (_group_indices, bit_planes, pack_engine_cmd,
                        stored_tables, weight_codes)

from .fp_engine import FastFpEngineBase, FpGemmJob, check_operands, int_words
from .runner import pack_fields

__all__ = ["FastFpTableEngine", "fp_table_engine_beats", "FpGemmJob"]


def _check_cfg(cfg):
    if not isinstance(cfg, LutConfig):
        raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
    if cfg.table_format != "fp":
        raise ValueError(f"table_format must be 'fp' for the fp-table engine, not "
                         f"{cfg.table_format!r}")
    return cfg


def _wscales(wscales, cols, width):
    ws = np.asarray(wscales, dtype=np.int64)
    if ws.shape != (cols,):
        raise ValueError(f"wscales must hold N = {cols} patterns, not of shape {ws.shape}")
    if ws.size and (ws.min() < 0 or ws.max() >= 1 << width):
        raise ValueError(f"wscales must be {width}-bit patterns")
    return ws


def fp_table_engine_beats(cfg: LutConfig, acts, w, fmt, w_bits, wscales):
    """Every beat of one ``fp``-table engine GEMM ``A (M x K patterns) @ W (K x N)`` with ``N``
    weight scales, packed to words, padded to whole tiles as ``gen.fp_lut_fp.fp_gemm_streams``
    pads (rows of +0, columns of the format's smallest value with scale +0): ``cmd`` (1 beat),
    ``tables`` (all row blocks), ``weights`` and ``wscales`` (ONE row block: the engine reads
    them ``m_tiles`` times), ``m_tiles``, ``n_tiles``, ``groups``."""
    from gen.model.fp_gemm import full_tables, to_act_bits
    _check_cfg(cfg)
    fmt = cfg.check_op(fmt, w_bits)
    act = cfg.act_fp
    acts, w = check_operands(cfg, acts, w, k_min=1)
    rows, cols = acts.shape[0], w.shape[1]
    m, n = cfg.m, cfg.n
    m_tiles, n_tiles = -(-rows // m), -(-cols // n)
    ws = np.pad(_wscales(wscales, cols, act.width), (0, n_tiles * n - cols))
    acts = np.pad(acts, ((0, m_tiles * m - rows), (0, 0)))
    with np.errstate(invalid="ignore", over="ignore"):         # Inf - Inf: NaN, as the golden
        tables = full_tables(acts.astype(np.uint16), cfg, cfg.g)         # M' x G x 2**g
    # NaN entries canonical, as the golden's RNE_act (to_act_bits keeps FP16 NaN payloads)
    entries = np.where(np.isnan(tables), act.qnan,
                       to_act_bits(tables, cfg.act_format).astype(np.int64))
    groups = tables.shape[1]
    w = np.pad(w, ((0, 0), (0, n_tiles * n - cols)), constant_values=fmt.value_range(w_bits)[0])
    codes = np.pad(weight_codes(w, fmt, w_bits), ((0, groups * cfg.g - w.shape[0]), (0, 0)))
    # i_table: per row block and group, row r's stored entries (table_layout)
    stored = stored_tables(entries, cfg.symmetric)
    t = stored.reshape(m_tiles, m, groups, -1).transpose(0, 2, 1, 3)
    # i_weight: per column block, group and plane (MSB first), column c's g-bit index
    idx = _group_indices(bit_planes(codes, w_bits), cfg.step_k)           # w x G x N'
    idx = idx.reshape(w_bits, groups, n_tiles, n).transpose(2, 1, 0, 3)
    cmd = pack_engine_cmd(cfg, fmt, w_bits, groups, m_tiles, n_tiles)
    return {"cmd": int_words(cmd, cfg.fp_engine_cmd_width),
            "tables": pack_fields(t.reshape(m_tiles * groups, -1), cfg.entry_width),
            "weights": pack_fields(idx.reshape(-1, n), cfg.pe_index_width),
            "wscales": pack_fields(ws.reshape(n_tiles, n), act.width),
            "m_tiles": m_tiles, "n_tiles": n_tiles, "groups": groups}


class FastFpTableEngine(FastFpEngineBase):
    """The emitted ``FpTableEngine`` of an ``fp`` config, compiled once with the generated
    harness; :meth:`run` takes :class:`~tb.fast.fp_engine.FpGemmJob` (``wscales``: ``N``
    patterns) and returns ``GemmResult`` with ``result`` the FP32 patterns (uint32 ``M x N``).
    :meth:`gemm` runs one GEMM and keeps the totals ``op_cycles``, ``ideal`` and
    ``sim_cycles`` (as ``tb.fast.fp_array.FpArrayEngine``, for ``gen.model.fp_layer``)."""

    table_format = "fp"
    engine = "FpTableEngine"
    per_gemm = ("i_cmd", "i_table")
    per_tile = ("i_weight", "i_wscale")

    def __init__(self, cfg: LutConfig, workdir, opt="-O2"):
        super().__init__(cfg, workdir, opt=opt)
        self.op_cycles = self.ideal = self.sim_cycles = 0

    def beats(self, job):
        return fp_table_engine_beats(self.cfg, job.a, job.w, job.fmt, job.w_bits, job.wscales)

    def expected(self, job):
        """The golden FP32 patterns of a job (``M x N`` uint32)."""
        a = np.asarray(job.a, dtype=np.int64)
        ws = _wscales(job.wscales, job.w.shape[1], self.cfg.act_fp.width)
        if job.golden == "lut":
            from gen.fp_lut_fp import lut_fp_mpgemm
            return lut_fp_mpgemm(a, job.w, job.fmt, job.w_bits, self.cfg, ws).astype(np.uint32)
        if job.golden == "fast":
            from gen.model.fp_gemm import fp_mpgemm_fast
            return fp_mpgemm_fast(a, job.w, job.fmt, job.w_bits, self.cfg, ws)
        raise ValueError(f"golden must be 'lut' or 'fast', not {job.golden!r}")

    def gemm(self, acts, w, fmt, w_bits, wscales, pause=0.0, seed=1):
        """FP32 patterns ``M x N`` of one GEMM from the RTL, checked against
        ``gen.model.fp_gemm.fp_mpgemm_fast``; adds its cycles to the totals."""
        (r,) = self.run([FpGemmJob(np.asarray(acts, dtype=np.int64), np.asarray(w), fmt,
                                   w_bits, np.asarray(wscales, dtype=np.int64),
                                   golden="fast")], pause_in=pause, pause_out=pause, seed=seed)
        self.op_cycles += r.cycles
        self.ideal += r.ideal
        self.sim_cycles += r.sim_cycles
        return r.result
