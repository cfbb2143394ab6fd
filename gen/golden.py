"""NumPy golden models of LUT mpGEMM, and the packing of operands into stream beats.

Two models:

* :func:`reference_mpgemm` -- the plain product ``A @ W`` in int64;
* :func:`lut_mpgemm` -- the LUT algorithm exactly as ``hw/`` runs it, step by step:
  weight values -> offset codes -> bit-planes -> per-group tables of signed sums -> lookups
  (index MSB selects a negation when the table is symmetric) -> bit-serial partial, MSB first
  -> accumulate -> offset correction with the activation sum.

Loop order (docs/interface.md): groups outer, bit-planes inner. For each group ``j``::

    p = 0
    for b in w-1 .. 0:            # MSB first, one plane per cycle
        p = (p << 1) + T_j[idx_jb]
    acc += p
    S   += -T_j[0]               # index 0 = all weights -1, so T[0] = -sum(a)

and at the end, with ``S = sum(a)`` over the reduction::

    int, ternary: result = (acc - S) / 2
    uint:         result = (acc + (2**w - 1) * S) / 2
    binary:       result = acc

The identity behind it: for a code ``q`` with bits ``q_b`` and ``p_b = 2*q_b - 1``,
``q = (sum_b 2**b p_b + 2**w - 1) / 2``; a signed ``s`` runs as ``q = s + 2**(w-1)``.
"""
from __future__ import annotations

import functools

import numpy as np

from hw.layouts import (ArrayPacker, act_layout, cmd_layout, code_layout, engine_cmd_layout,
                        pack, result_row_layout, table_layout, unpack, weight_plane_layout)

from .config import LutConfig, WeightFormat

__all__ = ["reference_mpgemm", "weight_codes", "random_weights", "random_activations",
           "pad_k", "build_tables", "stored_tables", "lookup", "lut_mpgemm", "bit_planes",
           "pack_tables", "pack_weight_planes", "pack_cmd", "unpack_results", "unpack_cmd",
           "tile_stream", "pack_activations", "pack_weight_codes", "mac_stream",
           "pack_engine_cmd", "gemm_streams", "ideal_cycles"]


def _ints(x, name):
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, not {x.dtype}")
    return x.astype(np.int64)


def reference_mpgemm(a, w):
    """``A @ W`` in int64: the plain reference every other model is checked against."""
    return _ints(a, "a") @ _ints(w, "w")


def _check_weights(w, fmt, w_bits):
    lo, hi = fmt.value_range(w_bits)
    if w.size and (w.min() < lo or w.max() > hi):
        raise ValueError(f"{fmt.label} weights with w_bits = {w_bits} must be in {lo}..{hi}")
    if fmt is WeightFormat.BINARY and np.any(w == 0):
        raise ValueError("binary weights must be -1 or +1, not 0")


def weight_codes(w, fmt, w_bits):
    """Unsigned ``w_bits`` codes ``q`` whose bit-planes the hardware consumes.

    int/ternary: ``q = s + 2**(w-1)`` (two's complement with the MSB flipped); uint: ``q``;
    binary: ``q = (s + 1) / 2`` (bit 1 means +1).
    """
    fmt = WeightFormat.parse(fmt)
    w = _ints(w, "w")
    if not fmt.allows(w_bits):
        raise ValueError(f"weight format {fmt.label} cannot run with w_bits = {w_bits}")
    _check_weights(w, fmt, w_bits)
    if fmt in (WeightFormat.INT, WeightFormat.TERNARY):
        return w + (1 << (w_bits - 1))
    if fmt is WeightFormat.UINT:
        return w.copy()
    return (w + 1) // 2


def random_weights(rng, shape, fmt, w_bits):
    """Random weight *values* of a format."""
    fmt = WeightFormat.parse(fmt)
    if fmt is WeightFormat.BINARY:
        return rng.choice(np.array([-1, 1], dtype=np.int64), size=shape)
    lo, hi = fmt.value_range(w_bits)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def random_activations(rng, shape, a_bits):
    return rng.integers(-(1 << (a_bits - 1)), 1 << (a_bits - 1), size=shape, dtype=np.int64)


def pad_k(a, w, g):
    """Zero-pad the reduction of ``a`` (M x K) and ``w`` (K x N) to a multiple of ``g``.

    Padded activations are 0, so they add nothing whatever their weight code.
    """
    k = a.shape[1]
    kp = -(-k // g) * g
    a = np.pad(a, ((0, 0), (0, kp - k)))
    w = np.pad(w, ((0, kp - k), (0, 0)))
    return a, w


def build_tables(a, g):
    """Full tables ``T[r, j, idx] = sum_i a[r, j*g+i] * (+1 if bit i of idx else -1)``.

    ``a`` is M x K with K a multiple of ``g``; the result is M x (K/g) x 2**g, int64.
    """
    a = _ints(a, "a")
    rows, k = a.shape
    if k % g:
        raise ValueError(f"K must be a multiple of g = {g} here (use pad_k), not {k}")
    groups = a.reshape(rows, k // g, g)
    idx = np.arange(1 << g)
    signs = np.where((idx[:, None] >> np.arange(g)[None, :]) & 1, 1, -1)   # 2**g x g
    return np.einsum("rjg,eg->rje", groups, signs)


def stored_tables(tables, symmetric):
    """What the hardware stores: the index-MSB = 0 half (indices 0 .. 2**(g-1)-1) or all."""
    if not symmetric:
        return tables
    return tables[..., : tables.shape[-1] // 2]


def lookup(stored, idx, g, symmetric):
    """Table lookup as the PE does it.

    Symmetric: ``T[idx] = T[idx]`` when the MSB is 0, else ``-T[~idx]`` (the low ``g-1`` bits
    inverted). ``stored`` is ... x E, ``idx`` broadcasts against its leading axes.
    """
    idx = np.asarray(idx, dtype=np.int64)
    if not symmetric:
        return np.take_along_axis(stored, idx[..., None], axis=-1)[..., 0]
    msb = (idx >> (g - 1)) & 1
    low_mask = (1 << (g - 1)) - 1
    sel = np.where(msb == 1, ~idx & low_mask, idx & low_mask)
    e = np.take_along_axis(stored, sel[..., None], axis=-1)[..., 0]
    return np.where(msb == 1, -e, e)


def bit_planes(codes, w_bits):
    """Planes of ``codes``, MSB first: ``w_bits x ...`` of 0/1."""
    return np.stack([(codes >> b) & 1 for b in range(w_bits - 1, -1, -1)])


def _group_indices(planes, g):
    """Per plane and group, the g-bit index of each column: (w, K, N) -> (w, K/g, N)."""
    w, k, n = planes.shape
    bits = planes.reshape(w, k // g, g, n)
    return np.einsum("wjgn,g->wjn", bits, 1 << np.arange(g))


def _in_width(name, x, width):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if np.any(x < lo) or np.any(x > hi):
        raise OverflowError(f"{name} leaves its {width}-bit range: {x.min()}..{x.max()}")


def lut_mpgemm(a, w, fmt, w_bits, cfg: LutConfig, trace=None):
    """The LUT algorithm of ``hw/``: ``A (M x K) @ W (K x N)`` for any M, N and K <= k_max.

    K is zero-padded to whole steps of ``c*g`` (``c = tables_per_pe``); each step looks up
    one entry in each of its ``c`` tables per plane and sums them (the PE's adder tree).
    ``partial`` accumulation: ``p = (p << 1) + tree`` over the planes, then ``acc += p``;
    ``shifted``: ``acc += tree << b`` per plane. Planes MSB first either way.

    Every intermediate is checked against its width in ``cfg`` (an ``OverflowError`` means the
    config's width derivation is wrong). ``trace``, if a list, receives per-step
    ``(p, acc)`` arrays for debugging (``p`` is the step's contribution when shifted).
    """
    fmt = cfg.check_op(fmt, w_bits)
    a = _ints(a, "a")
    w = _ints(w, "w")
    if a.shape[1] != w.shape[0]:
        raise ValueError(f"A is {a.shape} and W is {w.shape}: their K differ")
    if a.shape[1] > cfg.k_max:
        raise ValueError(f"K must be at most k_max = {cfg.k_max}, not {a.shape[1]}")
    amin, amax = -(1 << (cfg.a_bits - 1)), (1 << (cfg.a_bits - 1)) - 1
    if a.size and (a.min() < amin or a.max() > amax):
        raise ValueError(f"activations must be in {amin}..{amax} for a_bits = {cfg.a_bits}")
    c, g = cfg.tables_per_pe, cfg.g
    codes = weight_codes(w, fmt, w_bits)
    a, codes = pad_k(a, codes, c * g)
    stored = stored_tables(build_tables(a, g), cfg.symmetric)           # M x G x E
    _in_width("table entry", stored, cfg.entry_width)
    idx = _group_indices(bit_planes(codes, w_bits), g)                  # w x G x N
    rows, groups, n = a.shape[0], idx.shape[1], idx.shape[2]
    shifted = cfg.accumulation == "shifted"
    acc = np.zeros((rows, n), dtype=np.int64)
    s = np.zeros((rows, 1), dtype=np.int64)
    for j in range(groups // c):                  # steps outer
        p = np.zeros((rows, n), dtype=np.int64)
        for b in range(w_bits - 1, -1, -1):       # planes inner, MSB first
            tree = np.zeros((rows, n), dtype=np.int64)
            for t in range(j * c, (j + 1) * c):   # the PE's c lookups and adder tree
                tree = tree + lookup(stored[:, t, None, :].repeat(n, axis=1),
                                     idx[w_bits - 1 - b, t][None, :], g, cfg.symmetric)
            _in_width("adder tree", tree, cfg.tree_width)
            if shifted:
                p = p + (tree << b)
                acc = acc + (tree << b)
                _in_width("accumulator", acc, cfg.acc_width)
            else:
                p = (p << 1) + tree
                _in_width("partial", p, cfg.partial_width)
        if not shifted:
            acc = acc + p
            _in_width("accumulator", acc, cfg.acc_width)
        s = s - stored[:, j * c:(j + 1) * c, 0].sum(axis=1, keepdims=True)   # S = -T[0]
        _in_width("activation sum", s, cfg.sum_width)
        if trace is not None:
            trace.append((p.copy(), acc.copy()))
    if fmt is WeightFormat.BINARY:
        result = acc
    else:
        corr = -s if fmt is not WeightFormat.UINT else ((1 << w_bits) - 1) * s
        twice = acc + corr
        assert not np.any(twice & 1), "offset correction left an odd value"
        result = twice >> 1
    _in_width("result", result, cfg.result_width)
    return result


# -- stream beats: the layouts of hw/layouts.py (written out in docs/interface.md) ---------------

@functools.lru_cache(maxsize=64)
def _packer(cfg, layout_of):
    """The :class:`~hw.layouts.ArrayPacker` of ``layout_of(cfg)``, built once per config (a
    testbench unpacks every result beat on its own)."""
    return ArrayPacker(layout_of(cfg))


def _cmd_fields(cfg, fmt, w_bits, groups):
    fmt = cfg.check_op(fmt, w_bits)
    if not 1 <= groups <= cfg.groups_max:
        raise ValueError(f"groups must be in 1..{cfg.groups_max}, not {groups}")
    return {"format": fmt, "w_bits": w_bits, "groups": groups}


def pack_cmd(cfg: LutConfig, fmt, w_bits, groups):
    """One ``i_cmd`` beat (:func:`hw.layouts.cmd_layout`): ``format`` [1:0], ``w_bits``,
    ``groups``."""
    return pack(cmd_layout(cfg), _cmd_fields(cfg, fmt, w_bits, groups))


def unpack_cmd(cfg: LutConfig, word):
    """``(format, w_bits, groups)`` of an ``i_cmd`` beat."""
    fields = unpack(cmd_layout(cfg), word)
    return fields["format"], fields["w_bits"], fields["groups"]


def pack_tables(cfg: LutConfig, a_tile):
    """``i_table`` beats for an ``m x K`` activation tile: one beat per step (K padded to
    whole steps of ``tables_per_pe * g``).

    Row ``r``'s tables sit at bits ``[r*pe_table_width +: pe_table_width]``, table ``t`` of
    them (group ``t`` of the step) at ``[t*table_row_width]`` within, entry ``e`` of a table at
    ``[e*entry_width +: entry_width]``.
    """
    a_tile = _ints(a_tile, "a")
    if a_tile.shape[0] != cfg.m:
        raise ValueError(f"an activation tile must have m = {cfg.m} rows, not {a_tile.shape[0]}")
    a_tile = np.pad(a_tile, ((0, 0), (0, -a_tile.shape[1] % cfg.step_k)))
    stored = stored_tables(build_tables(a_tile, cfg.g), cfg.symmetric)   # m x G x E
    c = cfg.tables_per_pe
    stored = stored.reshape(cfg.m, -1, c, stored.shape[-1])              # m x steps x c x E
    if c == 1:
        stored = stored[:, :, 0, :]
    packer = _packer(cfg, table_layout)
    return [packer.pack(stored[:, j]) for j in range(stored.shape[1])]


def pack_weight_planes(cfg: LutConfig, w_tile, fmt, w_bits):
    """``i_weight`` beats for a ``K x n`` weight tile: per step, ``w_bits`` planes MSB first.

    Column ``c``'s index sits at bits ``[c*pe_index_width +: pe_index_width]``; index bit
    ``k`` is the weight bit of activation ``k`` of the step (``c*g`` activations, K padded to
    whole steps). Returns a flat list, step-major.
    """
    if w_tile.shape[1] != cfg.n:
        raise ValueError(f"a weight tile must have n = {cfg.n} columns, not {w_tile.shape[1]}")
    codes = weight_codes(w_tile, fmt, w_bits)
    codes = np.pad(codes, ((0, -codes.shape[0] % cfg.step_k), (0, 0)))
    idx = _group_indices(bit_planes(codes, w_bits), cfg.step_k)         # w x steps x n
    packer = _packer(cfg, weight_plane_layout)
    return [packer.pack(idx[b, j]) for j in range(idx.shape[1]) for b in range(w_bits)]


def pack_activations(cfg: LutConfig, a_tile):
    """MAC ``i_act`` beats for an ``m x K`` tile: per group, row ``r`` activation ``i`` at
    ``[(r*g + i) * a_bits +: a_bits]``."""
    a_tile = _ints(a_tile, "a")
    if a_tile.shape[0] != cfg.m:
        raise ValueError(f"an activation tile must have m = {cfg.m} rows, not {a_tile.shape[0]}")
    a_tile = np.pad(a_tile, ((0, 0), (0, -a_tile.shape[1] % cfg.g)))
    groups = a_tile.reshape(cfg.m, -1, cfg.g)
    packer = _packer(cfg, act_layout)
    return [packer.pack(groups[:, j, :]) for j in range(groups.shape[1])]


def pack_weight_codes(cfg: LutConfig, w_tile, fmt, w_bits):
    """MAC ``i_weight`` beats for a ``K x n`` tile: per group, the code of ``W[j*g+i, c]`` at
    ``[(c*g + i) * w_bits_max +: w_bits_max]`` (codes as for the LUT: see ``weight_codes``)."""
    if w_tile.shape[1] != cfg.n:
        raise ValueError(f"a weight tile must have n = {cfg.n} columns, not {w_tile.shape[1]}")
    codes = weight_codes(w_tile, fmt, w_bits)
    codes = np.pad(codes, ((0, -codes.shape[0] % cfg.g), (0, 0)))
    groups = codes.reshape(-1, cfg.g, cfg.n)                 # G x g x n
    packer = _packer(cfg, code_layout)
    return [packer.pack(groups[j].T) for j in range(groups.shape[0])]


def mac_stream(cfg: LutConfig, a_tile, w_tile, fmt, w_bits):
    """One MAC-array operation: (cmd, activation beats, weight-code beats, expected m x n)."""
    fmt = cfg.check_op(fmt, w_bits)
    groups = -(-a_tile.shape[1] // cfg.g)
    return (pack_cmd(cfg, fmt, w_bits, groups), pack_activations(cfg, a_tile),
            pack_weight_codes(cfg, w_tile, fmt, w_bits), reference_mpgemm(a_tile, w_tile))


def pack_engine_cmd(cfg: LutConfig, fmt, w_bits, groups, m_tiles, n_tiles):
    """One engine ``i_cmd`` beat (:func:`hw.layouts.engine_cmd_layout`): the array's command,
    then row tiles and column tiles."""
    return pack(engine_cmd_layout(cfg), {"cmd": _cmd_fields(cfg, fmt, w_bits, groups),
                                         **_tile_counts(cfg, m_tiles, n_tiles)})


def _tile_counts(cfg, m_tiles, n_tiles):
    """The engine command's ``m_tiles`` and ``n_tiles`` fields, checked against their width."""
    top = (1 << cfg.tile_count_width) - 1
    for name, v in (("m_tiles", m_tiles), ("n_tiles", n_tiles)):
        if not 1 <= v <= top:
            raise ValueError(f"{name} must be in 1..{top}, not {v}")
    return {"m_tiles": m_tiles, "n_tiles": n_tiles}


def gemm_streams(cfg: LutConfig, a, w, fmt, w_bits):
    """Everything the engine needs for ``A (M x K) @ W (K x N)``, padded to whole tiles.

    Returns a dict: ``cmd``; ``tables`` (or ``acts`` for a precompute engine): per row block,
    per group; ``weights``: per row block, per column block, per group, ``w_bits`` planes MSB
    first; ``expected``: the padded ``M' x N'`` result; ``rows``: the expected result beats in
    engine order (per row block, per column block, ``m`` rows); ``shape`` (M, N) unpadded.
    """
    fmt = cfg.check_op(fmt, w_bits)
    a = _ints(a, "a")
    w = _ints(w, "w")
    rows, k = a.shape
    cols = w.shape[1]
    m_tiles, n_tiles = -(-rows // cfg.m), -(-cols // cfg.n)
    a = np.pad(a, ((0, m_tiles * cfg.m - rows), (0, 0)))
    # padded weight columns take the format's smallest value (binary has no 0)
    w = np.pad(w, ((0, 0), (0, n_tiles * cfg.n - cols)),
               constant_values=fmt.value_range(w_bits)[0])
    expected = lut_mpgemm(a, w, fmt, w_bits, cfg)
    groups = -(-k // cfg.step_k)
    out = {"cmd": pack_engine_cmd(cfg, fmt, w_bits, groups, m_tiles, n_tiles),
           "weights": [], "rows": [], "expected": expected, "shape": (rows, cols)}
    key = "acts" if cfg.precompute else "tables"
    out[key] = []
    row_packer = _packer(cfg, result_row_layout)
    for mi in range(m_tiles):
        a_tile = a[mi * cfg.m:(mi + 1) * cfg.m]
        out[key] += (pack_activations if cfg.precompute else pack_tables)(cfg, a_tile)
        for ni in range(n_tiles):
            out["weights"] += pack_weight_planes(cfg, w[:, ni * cfg.n:(ni + 1) * cfg.n],
                                                 fmt, w_bits)
            tile = expected[mi * cfg.m:(mi + 1) * cfg.m, ni * cfg.n:(ni + 1) * cfg.n]
            out["rows"] += [row_packer.pack(row) for row in tile]
    return out


def ideal_cycles(cfg: LutConfig, rows, cols, k, w_bits):
    """``M*N*K*w / (m*n*g)`` over whole tiles: one bit-plane of one tile per cycle."""
    return (-(-rows // cfg.m)) * (-(-cols // cfg.n)) * (-(-k // cfg.step_k)) * w_bits


def unpack_results(cfg: LutConfig, beats):
    """``o_result`` beats (one row of ``n`` results each, rows in order) to an ``m x n`` array."""
    packer = _packer(cfg, result_row_layout)
    out = np.zeros((len(beats), cfg.n), dtype=np.int64)
    for r, word in enumerate(beats):
        out[r] = packer.unpack(word)
    return out


def tile_stream(cfg: LutConfig, a_tile, w_tile, fmt, w_bits):
    """Everything one array operation needs: (cmd, table beats, weight beats, expected m x n)."""
    fmt = cfg.check_op(fmt, w_bits)
    groups = -(-a_tile.shape[1] // cfg.step_k)
    return (pack_cmd(cfg, fmt, w_bits, groups), pack_tables(cfg, a_tile),
            pack_weight_planes(cfg, w_tile, fmt, w_bits),
            lut_mpgemm(a_tile, w_tile, fmt, w_bits, cfg))
