"""Golden model of the LUT array with ``fp`` tables (docs/fp-lut.md section 5).

FP16/BF16 activations, tables kept in the activation format, an FP32 accumulator in every PE
(the costly variant, as the LUT Tensor Core authors' released RTL does). Bit-exact mirror of
``hw/fp_table_array.py``; every function works on bit patterns with Python integers (gen.fp).

For an ``M x K`` activation tile ``a`` (patterns of the activation format), a ``K x N`` weight
tile of one format at ``w`` bits and ``N`` weight scales ``ws`` (activation format)::

    T[r, j, idx] = FP32 sum of +-a[r, j*g + i] (+ where bit i of idx is 1), left to right, RNE
    E[r, j, idx] = RNE_act(T[r, j, idx])          stored: idx < 2**(g-1) (symmetric) or all;
                                                 mirrored half: E[~idx] with the sign flipped
    acc = +0;  for j: for b = w-1 .. 0:  acc = fused2(acc + E[r, j, idx_jb(c)] * 2**b)
    S   = +0;  for j:                    S   = fused2(S - E[r, j, 0])
    res = acc                                       (binary)
        = fused3(acc/2 - S/2)                       (int, ternary)
        = fused3(acc/2 + S * 2**(w-1) - S/2)        (uint)
    R[r, c] = RNE_fp32(res * ws[c])

``fused2`` is the two-term fused adder of gen.fp (``fp_add``'s 27-bit frame); it is correctly
rounded here although an entry may be subnormal (a term with leading zeros): every entry, and
so every ``acc`` and ``S``, lies on the grid of the activation format's smallest subnormal
(``2**-24`` FP16, ``2**-133`` BF16), so when the entry has the larger top every bit of
``acc`` is inside the frame. ``fused3`` is ``gen.fp.fused_sum`` with the dot product's frame
(``dot_window``, 32 bits). All multiplications by powers of two are exact exponent changes of
the terms.
"""
from __future__ import annotations

import numpy as np

from .config import LutConfig, WeightFormat
from .fp import FP32, decode, default_window, dot_window, fp_mul, fused_sum, round_pack

__all__ = ["check_fp_config", "to_fp32", "round_to", "fp32_tables", "fp_entries",
           "stored_fp_tables", "fp_lookup", "entry_term", "acc_add", "correction",
           "lut_fp_mpgemm", "pack_fp_tables", "pack_weight_scales", "fp_stream",
           "fp_gemm_streams"]


def check_fp_config(cfg):
    """``cfg`` if it is a LutConfig with ``fp`` tables this model (and the array) supports."""
    if not isinstance(cfg, LutConfig):
        raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
    if cfg.table_format != "fp":
        raise ValueError(f"table_format must be 'fp', not {cfg.table_format!r}")
    if cfg.tables_per_pe != 1:
        raise ValueError(f"tables_per_pe must be 1 with fp tables, not {cfg.tables_per_pe}")
    return cfg


def _patterns(x, fmt, name):
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold {fmt.name} bit patterns (integers), not {x.dtype}")
    x = x.astype(np.int64)
    if x.size and (x.min() < 0 or x.max() >= 1 << fmt.width):
        raise ValueError(f"{name} must be {fmt.width}-bit patterns of {fmt.name}")
    return x


def to_fp32(bits, fmt):
    """The pattern ``bits`` of ``fmt`` as FP32 bits (exact; NaN becomes FP32's canonical)."""
    return round_to(bits, fmt, FP32)


def round_to(bits, fmt_in, fmt_out):
    """``bits`` of ``fmt_in`` rounded once (RNE) into ``fmt_out``; NaN -> canonical NaN, Inf
    and zeros keep their sign."""
    kind, sign, sig, e_lsb = decode(int(bits), fmt_in)
    if kind == "nan":
        return fmt_out.qnan
    if kind == "inf":
        return fmt_out.inf | (sign << (fmt_out.width - 1))
    return round_pack(sign, sig, e_lsb, fmt_out)


def _neg(bits, fmt):
    return bits ^ fmt.sign_bit


def _add2(a, b):
    """FP32 ``a + b``, correctly rounded (``gen.fp.fp_add``'s circuit)."""
    return fused_sum([_fp_term(a, FP32), _fp_term(b, FP32)], FP32, default_window(FP32))


def _fp_term(bits, fmt, e_shift=0):
    kind, sign, sig, e_lsb = decode(int(bits), fmt)
    return (kind, sign, sig, e_lsb + e_shift, fmt.sig_bits)


def fp32_tables(acts, cfg):
    """FP32 tables ``M x G x 2**g`` of an ``M x K`` tile of activation patterns (K padded with +0
    to whole groups): ``T[idx] = (((+-a_0) + +-a_1) + +-a_2) ...``, each ``+`` RNE in FP32."""
    check_fp_config(cfg)
    act, g = cfg.act_fp, cfg.g
    acts = _patterns(acts, act, "acts")
    if acts.ndim != 2:
        raise ValueError(f"acts must be M x K, not of shape {acts.shape}")
    acts = np.pad(acts, ((0, 0), (0, -acts.shape[1] % g)))
    rows, k = acts.shape
    out = np.zeros((rows, k // g, 1 << g), dtype=np.int64)
    for r in range(rows):
        for j in range(k // g):
            a = [to_fp32(x, act) for x in acts[r, j * g:(j + 1) * g]]
            # partial sums over the low i bits of idx, extended one activation at a time: the
            # left-to-right order of every T[idx], each prefix computed once
            partial = [_neg(a[0], FP32), a[0]]
            for i in range(1, g):
                partial = ([_add2(p, _neg(a[i], FP32)) for p in partial]
                           + [_add2(p, a[i]) for p in partial])
            out[r, j] = partial
    return out


def fp_entries(tables, cfg):
    """The full tables rounded once into the activation format: ``E = RNE_act(T)``."""
    act = check_fp_config(cfg).act_fp
    flat = [round_to(int(t), FP32, act) for t in np.asarray(tables).reshape(-1)]
    return np.array(flat, dtype=np.int64).reshape(np.shape(tables))


def stored_fp_tables(entries, cfg):
    """What ``i_table`` carries: the index-MSB = 0 half (symmetric) or every entry."""
    return entries[..., : entries.shape[-1] // 2] if cfg.symmetric else entries


def fp_lookup(stored, idx, cfg):
    """Entry ``idx`` of one stored table as the PE reads it: symmetric tables give
    ``E[~idx]`` with the sign bit flipped for an index with MSB 1."""
    g = cfg.g
    if not cfg.symmetric:
        return int(stored[idx])
    low = (1 << (g - 1)) - 1
    if idx >> (g - 1) & 1:
        return _neg(int(stored[~idx & low]), cfg.act_fp)
    return int(stored[idx & low])


def entry_term(bits, fmt, plane=0):
    """An entry as a fused-sum term, times ``2**plane`` (its exponent increased, exact)."""
    kind, sign, sig, e_lsb = decode(int(bits), fmt)
    return (kind, sign, sig, e_lsb + plane, fmt.sig_bits)


def acc_add(acc, entry, fmt, plane=0):
    """One PE step: FP32 ``acc + entry * 2**plane`` rounded once (``entry`` of ``fmt``)."""
    return fused_sum([_fp_term(acc, FP32), entry_term(entry, fmt, plane)], FP32,
                     default_window(FP32))


_ZERO = ("zero", 0, 0, 0, FP32.sig_bits)


def correction(acc, s, fmt, w_bits):
    """A result before its weight scale, from the PE's ``acc`` and the row's ``S`` (FP32):
    binary ``acc``; int/ternary ``fused(acc/2 - S/2)``; uint ``fused(acc/2 + S*2**(w-1) -
    S/2)`` (one rounding, ``dot_window`` frame)."""
    fmt = WeightFormat.parse(fmt)
    if fmt is WeightFormat.BINARY:
        return int(acc)
    terms = [_fp_term(acc, FP32, -1), _fp_term(_neg(int(s), FP32), FP32, -1),
             _fp_term(s, FP32, w_bits - 1) if fmt is WeightFormat.UINT else _ZERO]
    return fused_sum(terms, FP32, dot_window(FP32))


def _indices(codes, w_bits, g):
    """``w x G x N`` plane indices (planes MSB first) of ``K x N`` codes, K a multiple of g."""
    k, n = codes.shape
    planes = np.stack([(codes >> b) & 1 for b in range(w_bits - 1, -1, -1)])
    return np.einsum("wjgn,g->wjn", planes.reshape(w_bits, k // g, g, n), 1 << np.arange(g))


def lut_fp_mpgemm(acts, w, fmt, w_bits, cfg, wscales, trace=None):
    """FP32 result bits ``M x N`` of ``acts @ w`` scaled per column by ``wscales``, as the
    ``fp``-table array computes them (module docstring).

    ``acts``: ``M x K`` activation patterns (``cfg.act_format``); ``w``: ``K x N`` integer
    weight values of ``fmt`` at ``w_bits``; ``wscales``: ``N`` patterns of the activation
    format. K is padded with +0 activations (and weight code 0: any code gives the same
    result). ``trace`` (a dict) receives ``acc`` (``M x N`` lists of every accumulator value),
    ``sums`` (``M`` lists of every ``S``) and ``unscaled`` (``M x N`` results before the weight
    scale).
    """
    from .golden import weight_codes
    check_fp_config(cfg)
    act = cfg.act_fp
    fmt = cfg.check_op(fmt, w_bits)
    acts = _patterns(acts, act, "acts")
    codes = weight_codes(np.asarray(w), fmt, w_bits)
    if acts.ndim != 2 or codes.ndim != 2 or acts.shape[1] != codes.shape[0]:
        raise ValueError(f"acts (M x K) and w (K x N) do not match: {acts.shape}, {codes.shape}")
    wscales = _patterns(wscales, act, "wscales")
    rows, n = acts.shape[0], codes.shape[1]
    if wscales.shape != (n,):
        raise ValueError(f"wscales must hold N = {n} patterns, not of shape {wscales.shape}")
    codes = np.pad(codes, ((0, -codes.shape[0] % cfg.g), (0, 0)))
    stored = stored_fp_tables(fp_entries(fp32_tables(acts, cfg), cfg), cfg)
    idx = _indices(codes, w_bits, cfg.g)
    groups = stored.shape[1]
    out = np.zeros((rows, n), dtype=np.uint64)
    if trace is not None:
        trace.update(acc=[[[] for _ in range(n)] for _ in range(rows)],
                     sums=[[] for _ in range(rows)], unscaled=np.zeros((rows, n), np.uint64))
    for r in range(rows):
        s = 0
        for j in range(groups):
            s = acc_add(s, _neg(fp_lookup(stored[r, j], 0, cfg), act), act)
            if trace is not None:
                trace["sums"][r].append(s)
        for c in range(n):
            acc = 0
            for j in range(groups):
                for i, plane in enumerate(range(w_bits - 1, -1, -1)):
                    acc = acc_add(acc, fp_lookup(stored[r, j], int(idx[i, j, c]), cfg), act,
                                  plane)
                    if trace is not None:
                        trace["acc"][r][c].append(acc)
            res = correction(acc, s, fmt, w_bits)
            if trace is not None:
                trace["unscaled"][r, c] = res
            out[r, c] = fp_mul(res, int(wscales[c]), FP32, FP32, act)
    return out


def pack_fp_tables(cfg, acts):
    """``i_table`` beats of an ``m x K`` tile: per group, row ``r``'s stored table at
    ``[r * table_row_width]``, entry ``e`` at ``[e * 16 +: 16]`` (``hw.layouts.table_layout``)."""
    from hw.layouts import ArrayPacker, table_layout
    check_fp_config(cfg)
    acts = _patterns(acts, cfg.act_fp, "acts")
    if acts.shape[0] != cfg.m:
        raise ValueError(f"an activation tile must have m = {cfg.m} rows, not {acts.shape[0]}")
    stored = stored_fp_tables(fp_entries(fp32_tables(acts, cfg), cfg), cfg)   # m x G x E
    packer = ArrayPacker(table_layout(cfg))
    return [packer.pack(stored[:, j]) for j in range(stored.shape[1])]


def pack_weight_scales(cfg, wscales):
    """The ``i_scale`` beat of an ``fp``-table operation: ``ws[c]`` at ``[c * 16 +: 16]``
    (``table_scale_width`` is 0 for ``fp`` tables)."""
    act = check_fp_config(cfg).act_fp
    wscales = _patterns(wscales, act, "wscales")
    if wscales.shape != (cfg.n,):
        raise ValueError(f"wscales must hold n = {cfg.n} patterns, not of shape {wscales.shape}")
    return sum(int(s) << (cfg.table_scale_width + c * act.width) for c, s in enumerate(wscales))


def fp_stream(cfg, acts, w, fmt, w_bits, wscales):
    """One operation of the ``fp``-table array: ``(cmd, table_beats, weight_beats,
    scale_beats, expected)``; ``scale_beats`` is a list of one beat (taken with ``cmd``),
    ``expected`` the ``m x n`` FP32 result bits."""
    from .golden import pack_cmd, pack_weight_planes
    check_fp_config(cfg)
    acts = _patterns(acts, cfg.act_fp, "acts")
    w = np.asarray(w)
    groups = -(-acts.shape[1] // cfg.g)
    return (pack_cmd(cfg, fmt, w_bits, groups), pack_fp_tables(cfg, acts),
            pack_weight_planes(cfg, w, fmt, w_bits), [pack_weight_scales(cfg, wscales)],
            lut_fp_mpgemm(acts, w, fmt, w_bits, cfg, wscales))


def fp_gemm_streams(cfg, acts, w, fmt, w_bits, wscales):
    """Everything the ``fp``-table engine (``hw.fp_table_engine``) needs for ``A (M x K) @
    W (K x N)`` with ``N`` weight scales, padded to whole tiles: rows of +0 activations, weight
    columns of the format's smallest value (binary has no 0) with scale +0.

    Every result is one array operation over all of K, and ``lut_fp_mpgemm`` computes each
    ``(r, c)`` from row ``r`` and column ``c`` alone, so the expected results are
    ``lut_fp_mpgemm`` of the whole padded matrices. Returns a dict: ``cmd`` (the engine's
    ``i_cmd`` beat) and its ``fields``; ``tables``: per row block, per group (``i_table``);
    ``weights``: per row block, per column block, per group, ``w`` planes MSB first;
    ``wscales``: per row block, per column block, one beat of the ``n`` scales (``i_wscale``);
    ``rows``: result beats in engine order; ``expected``: the padded ``M' x N'`` FP32
    patterns; ``shape``: ``(M, N)``.
    """
    from .golden import pack_engine_cmd, pack_weight_planes
    check_fp_config(cfg)
    act = cfg.act_fp
    fmt = cfg.check_op(fmt, w_bits)
    acts = _patterns(acts, act, "acts")
    w = np.asarray(w)
    wscales = _patterns(wscales, act, "wscales")
    if acts.ndim != 2 or w.ndim != 2 or acts.shape[1] != w.shape[0]:
        raise ValueError(f"acts (M x K) and w (K x N) do not match: {acts.shape}, {w.shape}")
    if not 1 <= acts.shape[1] <= cfg.k_max:
        raise ValueError(f"K must be in 1..{cfg.k_max} (k_max), not {acts.shape[1]}")
    rows, cols = acts.shape[0], w.shape[1]
    if wscales.shape != (cols,):
        raise ValueError(f"wscales must hold N = {cols} patterns, not of shape {wscales.shape}")
    m_tiles, n_tiles = -(-rows // cfg.m), -(-cols // cfg.n)
    acts = np.pad(acts, ((0, m_tiles * cfg.m - rows), (0, 0)))
    w = np.pad(w, ((0, 0), (0, n_tiles * cfg.n - cols)),
               constant_values=fmt.value_range(w_bits)[0])
    wscales = np.pad(wscales, (0, n_tiles * cfg.n - cols))
    expected = lut_fp_mpgemm(acts, w, fmt, w_bits, cfg, wscales)
    groups = -(-acts.shape[1] // cfg.g)
    out = {"cmd": pack_engine_cmd(cfg, fmt, w_bits, groups, m_tiles, n_tiles),
           "fields": {"format": fmt, "w_bits": w_bits, "groups": groups,
                      "m_tiles": m_tiles, "n_tiles": n_tiles},
           "tables": [], "weights": [], "wscales": [], "rows": [], "expected": expected,
           "shape": (rows, cols)}
    for mi in range(m_tiles):
        rs = slice(mi * cfg.m, (mi + 1) * cfg.m)
        out["tables"] += pack_fp_tables(cfg, acts[rs])
        for ni in range(n_tiles):
            cs = slice(ni * cfg.n, (ni + 1) * cfg.n)
            out["weights"] += pack_weight_planes(cfg, w[:, cs], fmt, w_bits)
            out["wscales"].append(pack_weight_scales(cfg, wscales[cs]))
            out["rows"] += [sum(int(x) << (32 * c) for c, x in enumerate(row))
                            for row in expected[rs, cs]]
    return out
