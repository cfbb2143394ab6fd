"""Whole FP-activation GEMMs through the emitted ``FpLutEngine`` (``q`` tables, docs/fp-lut.md)
in the compiled Verilator harness of ``tb/fast``.

The same path as the integer engine (``tb.fast.runner``): Python packs every stream of every
GEMM in bulk with NumPy, one harness process runs a whole batch, the FP32 result rows are read
back and checked bit-exactly after the run. The harness is generated from the manifest, so the
FP engine's five input streams need only their beats:

* ``i_cmd``: one beat (``gen.fp_lut.pack_fp_engine_cmd``);
* ``i_table``: per row block, per step, the ``m`` rows' stored ``q`` tables (``t``-bit
  entries); ``i_tscale``: per row block, per scale block, the ``m`` FP32 table scales;
* ``i_weight``: per column block, per step, ``w`` bit-planes MSB first; ``i_wscale``: per
  column block, per scale block, the ``n`` weight scales (activation format). Both are stored
  once for one row block and replayed for every row block, as the engine reads them.

The tables and table scales come from ``gen.model.fp_gemm`` (the NumPy twin of the golden
model ``gen.fp_lut``, bit-exact with it: ``tests/test_fp_layer.py``);
``tests/test_fast_fp_engine.py`` checks every beat against ``gen.fp_lut.q_gemm_streams``.
The check after the run compares the ``M x N`` FP32 patterns with ``gen.fp_lut.lut_q_mpgemm``
(``golden="lut"``, the hardware's algorithm step by step with every width checked) or
``gen.model.fp_gemm.q_mpgemm_fast`` (``golden="fast"``, for model-sized GEMMs), and
``o_cycles`` with the span the harness saw.

    eng = FastFpEngine(LutConfig(act_format="fp16", table_format="q", scale_block=32,
                                 w_bits=4, k_max=1536), "build/fast_fp")
    (r,) = eng.run([FpGemmJob(acts, w, "int", 4, wscales)])    # r.result: FP32 patterns
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen.config import LutConfig
from gen.golden import _group_indices, bit_planes, ideal_cycles, stored_tables, weight_codes

from .runner import FastEngine, MismatchError, pack_fields

__all__ = ["FpGemmJob", "FastFpEngine", "FastFpEngineBase", "fp_engine_beats", "int_words",
           "fp32_bits", "utilization_rows", "check_operands"]

#: the canonical FP32 NaN (docs/fp.md)
_QNAN = np.uint32(0x7FC00000)


def int_words(value, width):
    """One beat given as a Python int -> ``(1, ceil(width / 32))`` uint32 words, LSB first."""
    nw = -(-width // 32)
    return np.array([[(int(value) >> (32 * i)) & 0xFFFFFFFF for i in range(nw)]], dtype="<u4")


def fp32_bits(x):
    """float32 values -> bit patterns (uint32), every NaN canonical."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(np.isnan(x), _QNAN, x.view(np.uint32))


def check_operands(cfg, acts, w, k_min=0):
    """``acts`` (M x K activation-format patterns) and ``W`` (K x N) of one FP engine GEMM as
    int64 arrays; ValueError unless the shapes match, ``k_min <= K <= k_max`` and every
    activation is a pattern of the format."""
    act = cfg.act_fp
    acts = np.asarray(acts, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if acts.ndim != 2 or w.ndim != 2 or acts.shape[1] != w.shape[0]:
        raise ValueError(f"acts {acts.shape} and W {w.shape} must be M x K and K x N")
    if not k_min <= acts.shape[1] <= cfg.k_max:
        raise ValueError(f"K must be in {k_min}..{cfg.k_max} (k_max), not {acts.shape[1]}")
    if acts.size and (acts.min() < 0 or acts.max() >= 1 << act.width):
        raise ValueError(f"acts must be {act.width}-bit patterns of {act.name}")
    return acts, w


def fp_engine_beats(cfg: LutConfig, acts, w, fmt, w_bits, wscales):
    """Every beat of one FP engine GEMM ``A (M x K FP patterns) @ W (K x N)``, packed to words,
    padded to whole tiles (rows of +0, columns of weight code 0 with scale +0):
    ``cmd`` (1 beat), ``tables`` and ``tscales`` (all row blocks), ``acts`` (all row blocks:
    the ``i_act`` beats of the precompute engine instead), ``weights`` and ``wscales``
    (ONE row block: the engine re-reads them ``m_tiles`` times), and ``m_tiles``, ``n_tiles``,
    ``steps``, ``blocks``, ``wscales_full`` (the ``N x blocks`` patterns)."""
    from gen.fp_lut import block_k, pack_fp_engine_cmd, wscale_patterns
    from gen.model.fp_gemm import full_tables, quantize_tables_fast
    if cfg.table_format != "q":
        raise ValueError(f"table_format must be 'q' for the FP engine, not {cfg.table_format!r}")
    fmt = cfg.check_op(fmt, w_bits)
    act = cfg.act_fp
    acts, w = check_operands(cfg, acts, w)
    rows, cols = acts.shape[0], w.shape[1]
    m, n, c = cfg.m, cfg.n, cfg.tables_per_pe
    m_tiles, n_tiles = -(-rows // m), -(-cols // n)
    acts = np.pad(acts, ((0, m_tiles * m - rows), (0, 0)))
    with np.errstate(invalid="ignore", over="ignore"):         # Inf - Inf: NaN, as the golden
        tables = full_tables(acts.astype(np.uint16), cfg, block_k(cfg))   # M' x G x 2**g
    q, ts = quantize_tables_fast(tables, cfg)
    groups = tables.shape[1]
    blocks, steps = groups // cfg.scale_block, groups // c
    ws = wscale_patterns(wscales, cols, blocks, act)
    ws_pad = np.pad(ws, ((0, n_tiles * n - cols), (0, 0)))
    # K padded with code 0 under +0 activations, columns with code 0 (as gen.fp_lut pads)
    codes = np.pad(weight_codes(w, fmt, w_bits),
                   ((0, groups * cfg.g - w.shape[0]), (0, n_tiles * n - cols)))
    # i_table: per row block and step, row r's c tables of E entries (table_layout)
    stored = stored_tables(q, cfg.symmetric)
    t = stored.reshape(m_tiles, m, steps, c, -1).transpose(0, 2, 1, 3, 4)
    # i_weight: per column block, step and plane (MSB first), column c's step_k-bit index
    idx = _group_indices(bit_planes(codes, w_bits), cfg.step_k)          # w x steps x N'
    idx = idx.reshape(w_bits, steps, n_tiles, n).transpose(2, 1, 0, 3)
    tsb = fp32_bits(ts).reshape(m_tiles, m, blocks).transpose(0, 2, 1)
    wsb = ws_pad.reshape(n_tiles, n, blocks).transpose(0, 2, 1)
    cmd = pack_fp_engine_cmd(cfg, fmt, w_bits, blocks, m_tiles, n_tiles)
    # i_act (precompute): per row block and group, row r's activation i at field r*g + i,
    # K padded with +0 to whole scale blocks (gen.fp_lut.pack_fp_acts)
    a = np.pad(acts, ((0, 0), (0, groups * cfg.g - acts.shape[1])))
    a = a.reshape(m_tiles, m, groups, cfg.g).transpose(0, 2, 1, 3)
    return {"cmd": int_words(cmd, cfg.fp_engine_cmd_width),
            "acts": pack_fields(a.reshape(m_tiles * groups, -1), act.width),
            "tables": pack_fields(t.reshape(m_tiles * steps, -1), cfg.entry_width),
            "tscales": np.ascontiguousarray(tsb.reshape(m_tiles * blocks, m), dtype="<u4"),
            "weights": pack_fields(idx.reshape(-1, n), cfg.pe_index_width),
            "wscales": pack_fields(wsb.reshape(n_tiles * blocks, n), act.width),
            "m_tiles": m_tiles, "n_tiles": n_tiles, "steps": steps, "blocks": blocks,
            "wscales_full": ws}


@dataclass
class FpGemmJob:
    """``A (M x K) @ (W (K x N) * weight scales)`` on the FP engine: ``a`` activation-format
    bit patterns, ``w`` weight values of ``fmt`` at ``w_bits``, ``wscales`` activation-format
    patterns per output channel and scale block (``N x blocks``) or per channel (``N``).
    ``golden``: ``"lut"`` checks against ``gen.fp_lut.lut_q_mpgemm`` (step by step, every width
    checked), ``"fast"`` against ``gen.model.fp_gemm.q_mpgemm_fast`` (the same bits, NumPy)."""
    a: np.ndarray
    w: np.ndarray
    fmt: str = "int"
    w_bits: int = 4
    wscales: np.ndarray | None = None
    name: str = ""
    golden: str = "lut"


class FastFpEngineBase(FastEngine):
    """What the fast runners of the FP engines share: the emitted engine of a config checked
    for its table format and input streams, the FP32 result rows unpacked into ``M x N``, the
    bit-exact check against :meth:`expected` and of ``o_cycles`` against the harness' span.

    A subclass names its ``table_format``, its ``engine`` class name and its ``per_gemm`` and
    ``per_tile`` input streams, and gives :meth:`beats` (the packed streams of one job) and
    :meth:`expected` (the golden FP32 patterns of one job)."""

    table_format = ""
    engine = ""
    #: input streams sent once per GEMM, and once per row block (replayed ``m_tiles`` times)
    per_gemm: tuple[str, ...] = ()
    per_tile: tuple[str, ...] = ()

    def __init__(self, cfg: LutConfig, workdir, opt="-O2"):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        if cfg.table_format != self.table_format:
            raise ValueError(f"table_format must be {self.table_format!r} for the "
                             f"{self.engine}, not {cfg.table_format!r}")
        super().__init__(cfg, workdir, top="engine", opt=opt)
        names = sorted(s for s, _ in self.inputs)
        want = sorted(self.per_gemm + self.per_tile)
        if names != want:
            raise ValueError(f"an {self.engine} has {', '.join(want)}, not {names}")

    def beats(self, job):
        """The packed beats of one job (``cmd``, one entry per input stream, ``m_tiles``,
        ``n_tiles``), as ``fp_engine_beats`` returns them."""
        raise NotImplementedError

    def expected(self, job):
        """The golden FP32 patterns of a job (``M x N`` uint32)."""
        raise NotImplementedError

    def job_beats(self, job):
        if job.wscales is None:
            raise ValueError(f"{job.name or 'FP GEMM'}: wscales are required")
        b = self.beats(job)
        mt = b["m_tiles"]
        # the beats of stream i_<x> are b["cmd"] for the command, else b["<x>s"]
        key = {s: "cmd" if s == "i_cmd" else s[2:] + "s" for s in self.per_gemm + self.per_tile}
        b["streams"] = {**{s: (b[key[s]], 1) for s in self.per_gemm},
                        **{s: (b[key[s]], mt) for s in self.per_tile}}
        b["want"] = mt * b["n_tiles"] * self.cfg.m
        b["ideal"] = ideal_cycles(self.cfg, job.a.shape[0], job.w.shape[1], job.a.shape[1],
                                  job.w_bits)
        return b

    def decode(self, job, beats, rows):
        cfg = self.cfg
        res = rows[:, : cfg.n].astype(np.uint32)            # FP32 R[c] at [32 c +: 32]
        res = res.reshape(beats["m_tiles"], beats["n_tiles"], cfg.m, cfg.n)
        res = res.transpose(0, 2, 1, 3).reshape(beats["m_tiles"] * cfg.m, -1)
        return res[: job.a.shape[0], : job.w.shape[1]]

    def check(self, job, r, span):
        want = self.expected(job)
        if r.result.shape != want.shape or not np.array_equal(r.result, want):
            bad = (int((r.result != want).sum()) if r.result.shape == want.shape else "all")
            raise MismatchError(f"{job.name or 'FP GEMM'} {job.a.shape}x{job.w.shape} "
                                f"{job.fmt}{job.w_bits}: RTL differs from the golden model "
                                f"({job.golden}) in {bad} results")
        if r.cycles != span:
            raise MismatchError(f"{job.name}: o_cycles {r.cycles}, the harness saw {span} edges")


class FastFpEngine(FastFpEngineBase):
    """The emitted ``FpLutEngine`` of a ``q`` config, compiled once with the generated harness;
    :meth:`run` takes :class:`FpGemmJob` and returns ``GemmResult`` with ``result`` the FP32
    bit patterns (uint32 ``M x N``)."""

    table_format = "q"
    engine = "FpLutEngine"
    per_gemm: tuple[str, ...] = ("i_cmd", "i_table", "i_tscale")
    per_tile = ("i_weight", "i_wscale")

    def __init__(self, cfg: LutConfig, workdir, opt="-O2"):
        if isinstance(cfg, LutConfig) and cfg.precompute:
            # the hardware precompute takes the activations instead of tables and scales
            self.per_gemm = ("i_cmd", "i_act")
        super().__init__(cfg, workdir, opt=opt)

    def beats(self, job):
        return fp_engine_beats(self.cfg, job.a, job.w, job.fmt, job.w_bits, job.wscales)

    def expected(self, job):
        """The golden FP32 patterns of a job (``M x N`` uint32)."""
        from gen.fp_lut import wscale_patterns
        blocks = -(-job.a.shape[1] // (self.cfg.scale_block * self.cfg.g))
        wscales = wscale_patterns(job.wscales, job.w.shape[1], blocks, self.cfg.act_fp)
        a = np.asarray(job.a, dtype=np.int64)
        if job.golden == "lut":
            from gen.fp_lut import lut_q_mpgemm
            return lut_q_mpgemm(a, job.w, job.fmt, job.w_bits, self.cfg, wscales)
        if job.golden == "fast":
            from gen.model.fp_gemm import q_mpgemm_fast
            return q_mpgemm_fast(a, job.w, job.fmt, job.w_bits, self.cfg, wscales)
        raise ValueError(f"golden must be 'lut' or 'fast', not {job.golden!r}")


def utilization_rows(eng, shapes, w_list, seed=7):
    """One full-rate GEMM per shape ``(M, K, N)`` and ``w`` on a fast FP engine ``eng``
    (random activations of its format, ``int`` weights, one weight scale per column), every
    result checked bit-exactly against the fast golden: ``[{shape, w, cycles, ideal,
    utilization}]`` with ``cycles`` the engine's ``o_cycles`` and ``ideal`` = ``M*N*K*w /
    (m*n*g)`` over whole tiles."""
    from gen.golden import random_weights
    from gen.model.fp_gemm import to_act_bits
    act = eng.cfg.act_format
    rng = np.random.default_rng(seed)
    rows = []
    for shape in shapes:
        m_, k, n_ = shape
        for w in w_list:
            a = to_act_bits(rng.standard_normal((m_, k)), act).astype(np.int64)
            ws = to_act_bits(rng.uniform(0.01, 0.02, n_), act).astype(np.int64)
            job = FpGemmJob(a, random_weights(rng, (k, n_), "int", w), "int", w, ws,
                            name=f"{m_}x{k}x{n_} w{w}", golden="fast")
            (r,) = eng.run([job])
            rows.append({"shape": list(shape), "w": w, "cycles": int(r.cycles),
                         "ideal": int(r.ideal), "utilization": r.ideal / r.cycles})
    return rows
