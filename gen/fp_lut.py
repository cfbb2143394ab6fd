"""Golden model of FP16/BF16 activations through the LUT array with quantized (``q``) tables.

Step by step as docs/fp-lut.md defines it and the hardware runs it:

1. :func:`fp_tables` -- per group, ``T[idx] = sum_i ±a_i`` added left to right in FP32 (RNE);
2. :func:`quantize_tables` -- per row and scale block of ``b`` groups, ``s = RNE_fp32(amax /
   Qmax)`` and ``q = clip(RNE(T / s), ±Qmax)``, ``Qmax = 2**(t-1) - 1``;
3. :func:`block_results` -- the integer array on ``q`` tables, one operation per block:
   bit-serial lookups and accumulation exactly as :func:`gen.golden.lut_mpgemm`, and twice the
   offset-corrected result ``r2`` (the 1/2 goes into the scale);
4. :func:`scale_stage` -- per output, ``acc = fused(acc + r2 * ts * ws / 2)`` over the blocks in
   FP32 (exact product, one rounding per block).

:func:`lut_q_mpgemm` chains them; :func:`q_stream` packs one array operation's beats.
The ``fp`` table format (FP tables, FP32 accumulation in every PE) has its golden model in
:mod:`gen.fp_lut_fp`; :func:`lut_fp_mpgemm` and :func:`fp_stream` are re-exported here.
Everything works on bit patterns; the vectorized steps use NumPy float32/float64 only where a
single IEEE operation (or an exactly representable quotient) gives the exact answer, and
``tests/test_fp_lut_golden.py`` checks each against ``fractions``.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from hw.fp_engine import fp_engine_cmd_layout
from hw.fp_lut_array import fp_cmd_layout
from hw.fp_precompute import fp_act_layout
from hw.layouts import ArrayPacker, pack, table_layout, weight_plane_layout

from .config import LutConfig, WeightFormat
from .fp import FP32, _term, decode, fp_format, from_float, fused_sum, round_pack, to_float
from .fp_lut_fp import fp_stream, lut_fp_mpgemm
from .golden import (_group_indices, _in_width, _packer, _tile_counts, bit_planes, lookup,
                     stored_tables, weight_codes)

__all__ = ["pad_activations", "fp_tables", "fraction_to_fp", "quantize_tables",
           "block_results", "round_scale", "scale_product_term", "scale_stage", "lut_q_mpgemm",
           "pack_fp_cmd", "pack_q_tables", "pack_scales", "q_stream", "block_k",
           "q_gemm_streams", "pack_fp_engine_cmd", "pack_fp_acts", "lut_fp_mpgemm", "fp_stream"]


def _check_fp_cfg(cfg, table_format="q"):
    if not isinstance(cfg, LutConfig):
        raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
    if cfg.table_format != table_format:
        raise ValueError(f"cfg.table_format must be {table_format!r}, not {cfg.table_format!r}")
    return cfg.act_fp


def block_k(cfg: LutConfig):
    """Activations of one scale block: ``scale_block * g``."""
    return cfg.scale_block * cfg.g


def _patterns(acts, fmt, name="acts"):
    acts = np.asarray(acts)
    if acts.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of {fmt.name} bit patterns")
    if acts.size and (acts.min() < 0 or acts.max() >= 1 << fmt.width):
        raise ValueError(f"{name} must be {fmt.width}-bit patterns of {fmt.name}")
    return acts.astype(np.int64)


def pad_activations(acts, multiple):
    """Pad K (axis 1) with +0 patterns to a multiple of ``multiple``."""
    return np.pad(acts, ((0, 0), (0, -acts.shape[1] % multiple)))


def fp_tables(acts, cfg: LutConfig):
    """Full tables ``M x G x 2**g`` of FP32 bit patterns (uint32) for ``M x K`` activation
    patterns, K padded with +0 to whole scale blocks (``q``) or steps (``fp``).

    ``T[idx] = (((±a_0) + ±a_1) + ±a_2) + ...``: ``+`` where bit ``i`` of ``idx`` is set, each
    addition one IEEE float32 addition (RNE; NumPy's float32 add is exactly that, NaNs made
    canonical afterwards).
    """
    fmt = cfg.act_fp
    if fmt is None:
        raise ValueError("fp_tables needs act_format fp16 or bf16")
    acts = _patterns(acts, fmt)
    acts = pad_activations(acts, block_k(cfg) if cfg.table_format == "q" else cfg.step_k)
    vals = to_float(acts, fmt).reshape(acts.shape[0], -1, cfg.g)             # M x G x g
    out = np.empty(vals.shape[:2] + (1 << cfg.g,), dtype=np.uint32)
    with np.errstate(all="ignore"):
        for idx in range(1 << cfg.g):
            signs = [1.0 if idx >> i & 1 else -1.0 for i in range(cfg.g)]
            t = np.float32(signs[0]) * vals[:, :, 0]
            for i in range(1, cfg.g):
                t = (t + np.float32(signs[i]) * vals[:, :, i]).astype(np.float32)
            out[:, :, idx] = from_float(t)
    return out


def fraction_to_fp(value: Fraction, fmt=FP32):
    """Bits of ``value`` rounded once (RNE) into ``fmt``: the integer part of ``|value| *
    2**-e`` with ``e`` low enough for every kept bit and the rounding bit, plus a sticky bit."""
    fmt = fp_format(fmt)
    if value == 0:
        return 0
    sign = int(value < 0)
    mag = abs(value)
    e = (mag.numerator.bit_length() - mag.denominator.bit_length()) - fmt.sig_bits - 3
    scaled = mag / Fraction(2) ** e
    q, rest = divmod(scaled.numerator, scaled.denominator)
    return round_pack(sign, (q << 1) | int(rest != 0), e - 1, fmt)


def round_scale(bits, p):
    """An FP32 pattern rounded (RNE) to ``p`` significant bits at its own exponent: the top
    ``p`` bits of its 24-bit significand field (hidden bit included) are kept; a carry moves
    into the exponent (the largest finite values round to Inf); NaN and Inf are unchanged.
    ``p = 24`` returns ``bits``. As a pattern operation this is the same for normal and
    subnormal values, and the hardware's table-scale rounding (``hw.fp_scale_stage``)."""
    bits = int(bits)
    k = 24 - p
    if k == 0 or (bits >> 23) & 0xFF == 0xFF:
        return bits
    sign, mag = bits & FP32.sign_bit, bits & ~FP32.sign_bit
    keep, low, half = mag >> k, mag & ((1 << k) - 1), 1 << (k - 1)
    return sign | (keep + int(low > half or (low == half and keep & 1))) << k


def quantize_tables(tables, cfg: LutConfig):
    """``(q, scales)``: ``q`` int64 ``M x G x 2**g`` and the FP32 ``scales`` (uint32
    ``M x blocks``) of FP32 ``tables`` (``M x G x 2**g``, G a multiple of ``scale_block``).

    Per row and block: ``s = RNE_fp32(amax / Qmax)`` (exact quotient, one rounding), then
    rounded to ``scale_sig_bits`` bits (:func:`round_scale`; nothing at 24),
    ``q = clip(RNE(T / s), -Qmax, Qmax)``; ``amax = 0`` gives ``s = +0, q = 0``; a block with
    an Inf or NaN entry gets the canonical NaN scale and ``q = 0``.
    """
    _check_fp_cfg(cfg)
    tables = np.asarray(tables, dtype=np.uint32)
    rows, groups, entries = tables.shape
    b, qmax = cfg.scale_block, cfg.table_max
    if groups % b:
        raise ValueError(f"tables must hold whole scale blocks of {b} groups, not {groups}")
    vals = tables.view(np.float32).astype(np.float64).reshape(rows, groups // b, b * entries)
    q = np.zeros(vals.shape, dtype=np.int64)
    scales = np.zeros(vals.shape[:2], dtype=np.uint32)
    for r in range(rows):
        for k in range(vals.shape[1]):
            block = vals[r, k]
            if not np.all(np.isfinite(block)):
                scales[r, k] = FP32.qnan
                continue
            amax = float(np.max(np.abs(block)))
            s_bits = round_scale(fraction_to_fp(Fraction(amax) / qmax, FP32),
                                 cfg.scale_sig_bits)
            scales[r, k] = s_bits
            s = float(np.uint32(s_bits).view(np.float32))
            if s == 0.0:
                continue
            # T and s are FP32, so T / s is a quotient of 24-bit significands: float64 rounds
            # it without ever landing on a half-integer that the exact quotient is not (the
            # gap to one is >= 2**-25, float64's half-ulp below 2**16 is <= 2**-37)
            q[r, k] = np.clip(np.rint(block / s), -qmax, qmax).astype(np.int64)
    return q.reshape(rows, groups, entries), scales


def block_results(q, codes, fmt, w_bits, cfg: LutConfig):
    """``r2`` (int64 ``M x N x blocks``): the integer array on ``q`` tables, one operation per
    scale block, twice the offset-corrected result (``2 acc`` for binary, else ``acc + corr``
    with ``S = -sum q[0]``, ``corr = -S`` or ``(2**w - 1) S`` for uint).

    ``codes``: ``K x N`` weight codes, K = G * g (padded). Widths are checked against ``cfg``.
    """
    fmt = WeightFormat.parse(fmt)
    c, g, b = cfg.tables_per_pe, cfg.g, cfg.scale_block
    stored = stored_tables(q, cfg.symmetric)                              # M x G x E
    _in_width("table entry", stored, cfg.entry_width)
    idx = _group_indices(bit_planes(codes, w_bits), g)                    # w x G x N
    rows, groups, n = q.shape[0], idx.shape[1], idx.shape[2]
    shifted = cfg.accumulation == "shifted"
    out = np.zeros((rows, n, groups // b), dtype=np.int64)
    for k in range(groups // b):
        acc = np.zeros((rows, n), dtype=np.int64)
        s = np.zeros((rows, 1), dtype=np.int64)
        for j in range(k * b // c, (k + 1) * b // c):      # the block's steps
            p = np.zeros((rows, n), dtype=np.int64)
            for bit in range(w_bits - 1, -1, -1):          # planes, MSB first
                tree = np.zeros((rows, n), dtype=np.int64)
                for t in range(j * c, (j + 1) * c):
                    tree += lookup(stored[:, t, None, :].repeat(n, axis=1),
                                   idx[w_bits - 1 - bit, t][None, :], g, cfg.symmetric)
                _in_width("adder tree", tree, cfg.tree_width)
                if shifted:
                    acc = acc + (tree << bit)
                    _in_width("accumulator", acc, cfg.acc_width)
                else:
                    p = (p << 1) + tree
                    _in_width("partial", p, cfg.partial_width)
            if not shifted:
                acc = acc + p
                _in_width("accumulator", acc, cfg.acc_width)
            s = s - stored[:, j * c:(j + 1) * c, 0].sum(axis=1, keepdims=True)
            _in_width("activation sum", s, cfg.sum_width)
        if fmt is WeightFormat.BINARY:
            r2 = 2 * acc
        elif fmt is WeightFormat.UINT:
            r2 = acc + ((1 << w_bits) - 1) * s
        else:
            r2 = acc - s
        _in_width("result", r2, cfg.result_width)
        out[:, :, k] = r2
    return out


def scale_product_term(r2, ts, ws, cfg: LutConfig):
    """The exact term ``r2 * ts * ws / 2`` of the FP stage as ``gen.fp.fused_sum`` takes it:
    ``(kind, sign, sig, e_lsb, scale_product_width)``, ``ts`` first rounded to
    ``scale_sig_bits`` bits (:func:`round_scale`) and taken as a ``scale_sig_bits``-bit
    significand."""
    act = cfg.act_fp
    k = 24 - cfg.scale_sig_bits
    kt, st, mt, et = decode(round_scale(ts, cfg.scale_sig_bits), FP32)
    mt, et = mt >> k, et + k                      # exact: the low k bits are zero
    kw, sw, mw, ew = decode(int(ws), act)
    r2 = int(r2)
    sign = st ^ sw ^ int(r2 < 0)
    width = cfg.scale_product_width
    zero = r2 == 0 or "zero" in (kt, kw)
    if "nan" in (kt, kw) or ("inf" in (kt, kw) and zero):
        return ("nan", 0, 0, 0, width)
    if "inf" in (kt, kw):
        return ("inf", sign, 0, 0, width)
    if zero:
        return ("zero", sign, 0, 0, width)
    return ("finite", sign, abs(r2) * mt * mw, et + ew - 1, width)


def scale_stage(r2, tscales, wscales, cfg: LutConfig):
    """FP32 results (uint32 ``M x N``): per output ``acc = +0``, then for each block
    ``acc = fused_sum([r2 * ts * ws / 2, acc], FP32, scale_window)``.

    ``r2``: ``M x N x blocks``; ``tscales``: FP32 ``M x blocks``; ``wscales``: activation-format
    patterns ``N x blocks``.
    """
    rows, n, blocks = r2.shape
    out = np.zeros((rows, n), dtype=np.uint32)
    window = cfg.scale_window
    for r in range(rows):
        for c in range(n):
            acc = 0
            for k in range(blocks):
                term = scale_product_term(r2[r, c, k], tscales[r, k], wscales[c, k], cfg)
                acc = fused_sum([term, _term(acc, FP32)], FP32, window)
            out[r, c] = acc
    return out


def wscale_patterns(wscales, n, blocks, fmt):
    """``N x blocks`` weight-scale patterns of ``fmt`` (one per channel repeated over the
    blocks when given as ``N``); ValueError on another shape or out-of-range patterns."""
    ws = np.asarray(wscales, dtype=np.int64)
    if ws.ndim == 1:
        ws = np.repeat(ws[:, None], blocks, axis=1)
    if ws.shape != (n, blocks):
        raise ValueError(f"wscales must be N x blocks = {n} x {blocks} (or N), not {ws.shape}")
    if ws.size and (ws.min() < 0 or ws.max() >= 1 << fmt.width):
        raise ValueError(f"wscales must be {fmt.width}-bit patterns of {fmt.name}")
    return ws


def _prepare(acts, w, fmt, w_bits, cfg):
    act = _check_fp_cfg(cfg)
    fmt = cfg.check_op(fmt, w_bits)
    acts = _patterns(acts, act)
    w = np.asarray(w, dtype=np.int64)
    if acts.shape[1] != w.shape[0]:
        raise ValueError(f"acts is {acts.shape} and W is {w.shape}: their K differ")
    if acts.shape[1] > cfg.k_max:
        raise ValueError(f"K must be at most k_max = {cfg.k_max}, not {acts.shape[1]}")
    codes = weight_codes(w, fmt, w_bits)
    codes = np.pad(codes, ((0, -codes.shape[0] % block_k(cfg)), (0, 0)))
    return act, fmt, acts, codes


def lut_q_mpgemm(acts, w, fmt, w_bits, cfg: LutConfig, wscales, trace=None):
    """``A (M x K, FP patterns) @ (W (K x N) * weight scales)`` with ``q`` tables, as the
    hardware computes it: FP32 bit patterns (uint32 ``M x N``).

    ``wscales``: per output channel and scale block (``N x blocks``), or per channel (``N``).
    ``trace``, if a dict, receives ``tables``, ``q``, ``tscales``, ``r2``.
    """
    act, fmt, acts, codes = _prepare(acts, w, fmt, w_bits, cfg)
    tables = fp_tables(acts, cfg)
    q, tscales = quantize_tables(tables, cfg)
    r2 = block_results(q, codes, fmt, w_bits, cfg)
    ws = wscale_patterns(wscales, codes.shape[1], r2.shape[2], act)
    if trace is not None:
        trace.update(tables=tables, q=q, tscales=tscales, r2=r2)
    return scale_stage(r2, tscales, ws, cfg)


# -- stream beats (docs/fp-lut.md, "Ports") -------------------------------------------------

def pack_fp_cmd(cfg: LutConfig, fmt, w_bits, blocks):
    """One FP ``i_cmd`` beat (:func:`hw.fp_lut_array.fp_cmd_layout`): ``format`` [1:0], ``w``
    (``plane_width`` bits), ``blocks``."""
    return pack(fp_cmd_layout(cfg), _fp_cmd_fields(cfg, fmt, w_bits, blocks))


def _fp_cmd_fields(cfg, fmt, w_bits, blocks):
    fmt = cfg.check_op(fmt, w_bits)
    if not 1 <= blocks <= cfg.blocks_max:
        raise ValueError(f"blocks must be in 1..{cfg.blocks_max}, not {blocks}")
    return {"format": fmt, "w_bits": w_bits, "blocks": blocks}


def pack_q_tables(cfg: LutConfig, q):
    """``i_table`` beats of ``q`` tables (``m x G x 2**g``): one per step, the integer array's
    table layout with ``t``-bit entries."""
    stored = stored_tables(q, cfg.symmetric)
    c = cfg.tables_per_pe
    stored = stored.reshape(cfg.m, -1, c, stored.shape[-1])
    if c == 1:
        stored = stored[:, :, 0, :]
    packer = _packer(cfg, table_layout)
    return [packer.pack(stored[:, j]) for j in range(stored.shape[1])]


def pack_fp_acts(cfg: LutConfig, acts):
    """``i_act`` beats of the FP precompute (:func:`hw.fp_precompute.fp_act_layout`) for
    ``m x K`` activation patterns: one per group, K padded with +0 to whole scale blocks."""
    acts = pad_activations(_patterns(acts, cfg.act_fp), block_k(cfg))
    if acts.shape[0] != cfg.m:
        raise ValueError(f"an activation tile must have m = {cfg.m} rows, not {acts.shape[0]}")
    packer = ArrayPacker(fp_act_layout(cfg))
    g = cfg.g
    return [packer.pack(acts[:, j * g:(j + 1) * g]) for j in range(acts.shape[1] // g)]


def _pack_weight_codes(cfg, codes, w_bits):
    idx = _group_indices(bit_planes(codes, w_bits), cfg.step_k)
    packer = _packer(cfg, weight_plane_layout)
    return [packer.pack(idx[b, j]) for j in range(idx.shape[1]) for b in range(w_bits)]


def pack_scales(cfg: LutConfig, tscales, wscales):
    """``i_scale`` beats, one per block: ``ts[r]`` (FP32) at ``[32 r +: 32]``, then ``ws[c]``
    at ``[table_scale_width + c * act.width +: act.width]``."""
    aw = cfg.act_fp.width
    beats = []
    for k in range(tscales.shape[1]):
        beat = sum(int(tscales[r, k]) << (32 * r) for r in range(cfg.m))
        beat |= sum(int(wscales[c, k]) << (cfg.table_scale_width + c * aw)
                    for c in range(cfg.n))
        beats.append(beat)
    return beats


def q_stream(cfg: LutConfig, acts, w, fmt, w_bits, wscales):
    """One ``FpLutArray`` operation: ``(cmd, table beats, weight beats, scale beats,
    expected)``, expected the ``m x n`` FP32 bit patterns. ``acts``: ``m x K`` patterns,
    ``w``: ``K x n`` weight values."""
    act, fmt, acts, codes = _prepare(acts, w, fmt, w_bits, cfg)
    if acts.shape[0] != cfg.m or codes.shape[1] != cfg.n:
        raise ValueError(f"a tile is m x K and K x n = {cfg.m} x K and K x {cfg.n}, not "
                         f"{acts.shape} and {w.shape}")
    trace: dict = {}
    expected = lut_q_mpgemm(acts, w, fmt, w_bits, cfg, wscales, trace)
    blocks = trace["r2"].shape[2]
    ws = wscale_patterns(wscales, cfg.n, blocks, act)
    return (pack_fp_cmd(cfg, fmt, w_bits, blocks), pack_q_tables(cfg, trace["q"]),
            _pack_weight_codes(cfg, codes, w_bits), pack_scales(cfg, trace["tscales"], ws),
            expected)


def pack_fp_engine_cmd(cfg: LutConfig, fmt, w_bits, blocks, m_tiles, n_tiles):
    """One FP engine ``i_cmd`` beat (:func:`hw.fp_engine.fp_engine_cmd_layout`): the FP array's
    command, then ``m_tiles`` and ``n_tiles``."""
    return pack(fp_engine_cmd_layout(cfg), {"cmd": _fp_cmd_fields(cfg, fmt, w_bits, blocks),
                                            **_tile_counts(cfg, m_tiles, n_tiles)})


def q_gemm_streams(cfg: LutConfig, acts, w, fmt, w_bits, wscales):
    """Everything the FP engine needs for ``A (M x K) @ W (K x N)`` with ``q`` tables, padded
    to whole tiles (rows of +0 activations, weight columns of the format's smallest value and
    scale +0).

    Returns a dict: ``cmd`` (the engine's ``i_cmd`` beat) and its ``fields``; ``tables``: per
    row block, per step (``i_table``);
    ``tscales``: per row block, per scale block, the ``m`` FP32 table scales (``m x 32`` bits,
    row ``r`` at ``[32 r +: 32]``); ``weights``: per row block, per column block, per step,
    ``w`` planes MSB first; ``wscales``: per row block, per column block, per scale block, the
    ``n`` weight scales (``ws[c]`` at ``[c * act.width +: act.width]``); with
    ``cfg.precompute`` also ``acts``: per row block, per group, the ``m x g`` activation
    patterns (:func:`pack_fp_acts`, the precompute engine's ``i_act``); ``expected``: the
    padded ``M' x N'`` FP32 patterns; ``rows``: result beats in engine order; ``shape``.
    """
    act, fmt, acts, codes = _prepare(acts, w, fmt, w_bits, cfg)
    rows, cols = acts.shape[0], codes.shape[1]
    m_tiles, n_tiles = -(-rows // cfg.m), -(-cols // cfg.n)
    acts = np.pad(acts, ((0, m_tiles * cfg.m - rows), (0, 0)))
    codes = np.pad(codes, ((0, 0), (0, n_tiles * cfg.n - cols)))
    q, tscales = quantize_tables(fp_tables(acts, cfg), cfg)
    r2 = block_results(q, codes, fmt, w_bits, cfg)
    blocks = r2.shape[2]
    ws = wscale_patterns(wscales, cols, blocks, act)
    ws = np.pad(ws, ((0, n_tiles * cfg.n - cols), (0, 0)))
    expected = scale_stage(r2, tscales, ws, cfg)
    aw = act.width
    out: dict = {"cmd": pack_fp_engine_cmd(cfg, fmt, w_bits, blocks, m_tiles, n_tiles),
                 "fields": {"format": fmt, "w_bits": w_bits, "blocks": blocks,
                            "m_tiles": m_tiles, "n_tiles": n_tiles},
                 "tables": [], "tscales": [], "weights": [], "wscales": [], "rows": [],
                 "acts": [],
                 "expected": expected, "shape": (rows, cols)}
    for mi in range(m_tiles):
        rs = slice(mi * cfg.m, (mi + 1) * cfg.m)
        out["tables"] += pack_q_tables(cfg, q[rs])
        if cfg.precompute:
            out["acts"] += pack_fp_acts(cfg, acts[rs])
        out["tscales"] += [sum(int(tscales[rs][r, k]) << (32 * r) for r in range(cfg.m))
                           for k in range(blocks)]
        for ni in range(n_tiles):
            cs = slice(ni * cfg.n, (ni + 1) * cfg.n)
            out["weights"] += _pack_weight_codes(cfg, codes[:, cs], w_bits)
            out["wscales"] += [sum(int(ws[cs][c, k]) << (c * aw) for c in range(cfg.n))
                               for k in range(blocks)]
            out["rows"] += [sum(int(x) << (32 * c) for c, x in enumerate(row))
                            for row in expected[rs, cs]]
    return out
