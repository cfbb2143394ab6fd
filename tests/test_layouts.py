"""hw/layouts.py: one layout per payload, its size from the config, packing through it."""
import json
import re

import numpy as np
import pytest
from amaranth.hdl import Shape, unsigned

from gen import golden
from gen.config import LutConfig, WeightFormat
from gen.emit import emit
from gen.mac_config import MacConfig
from hw import layouts

CFGS = [
    LutConfig(),
    LutConfig(w_bits=3, a_bits=5, g=3, m=3, n=5, k_max=20, symmetric=False),
    LutConfig(w_bits=1, a_bits=2, g=2, m=1, n=1, k_max=5),
    LutConfig(w_bits=4, a_bits=16, g=6, m=4, n=7, k_max=40),
    LutConfig(w_bits=4, a_bits=11, g=5, m=16, n=3, k_max=1 << 20, symmetric=False),
]


def test_weight_format_is_a_two_bit_enum():
    assert Shape.cast(WeightFormat) == unsigned(2)
    assert layouts.cmd_layout(LutConfig())["format"].shape is WeightFormat


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_layout_sizes_are_the_config_widths(cfg):
    assert layouts.cmd_layout(cfg).size == cfg.cmd_width
    assert layouts.engine_cmd_layout(cfg).size == cfg.engine_cmd_width
    assert layouts.table_row_layout(cfg).size == cfg.table_row_width
    assert layouts.table_layout(cfg).size == cfg.table_width
    assert layouts.weight_plane_layout(cfg).size == cfg.weight_width
    assert layouts.result_row_layout(cfg).size == cfg.result_row_width
    assert layouts.acc_row_layout(cfg).size == cfg.n * cfg.acc_width
    assert layouts.act_layout(cfg).size == cfg.act_width
    assert layouts.code_layout(cfg).size == cfg.code_width
    # the engine's command starts with the array's, bit for bit
    assert layouts.engine_cmd_layout(cfg)["cmd"].offset == 0


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_pack_is_amaranths_const(cfg):
    """The fast array packer gives the bits of ``layout.const(...)`` and inverts them."""
    rng = np.random.default_rng(cfg.n)
    for fn in (layouts.table_layout, layouts.weight_plane_layout, layouts.result_row_layout,
               layouts.act_layout, layouts.code_layout, layouts.acc_row_layout):
        layout = fn(cfg)
        packer = layouts.ArrayPacker(layout)
        leaves = list(layouts._leaves(layout))
        lo = np.array([-(1 << (s.width - 1)) if s.signed else 0 for _, s in leaves])
        hi = np.array([(1 << (s.width - 1)) if s.signed else 1 << s.width for _, s in leaves])
        for extreme in ("lo", "hi", "random"):
            v = {"lo": lo, "hi": hi - 1,
                 "random": rng.integers(lo, hi)}[extreme].reshape(packer.dims)
            word = packer.pack(v)
            assert word == layout.const(v.tolist()).as_value().value
            assert word == layouts.pack(layout, v)
            assert np.array_equal(packer.unpack(word), v)
    with pytest.raises(ValueError, match=r"^value of shape \(2,\) does not fit"):
        layouts.ArrayPacker(layouts.act_layout(cfg)).pack([1, 2])


# -- golden packing: bit-identical to the plain shift formulas it replaced -----------------------

def _fields(values, width):
    word = 0
    for i, v in enumerate(np.asarray(values).reshape(-1)):
        word |= (int(v) & ((1 << width) - 1)) << (i * width)
    return word


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_golden_packing_matches_plain_shifts(cfg):
    rng = np.random.default_rng(cfg.g + cfg.m)
    k = min(cfg.k_max, 3 * cfg.g + 1)
    for fmt, w in cfg.ops():
        groups = rng.integers(1, cfg.groups_max + 1)
        cmd = golden.pack_cmd(cfg, fmt, w, groups)
        assert cmd == fmt.value | (w << 2) | (int(groups) << (2 + cfg.plane_width))
        assert golden.unpack_cmd(cfg, cmd) == (fmt, w, groups)
        mt, nt = (int(x) for x in rng.integers(1, 1 << cfg.tile_count_width, 2))
        assert golden.pack_engine_cmd(cfg, fmt, w, groups, mt, nt) == (
            cmd | (mt << cfg.cmd_width) | (nt << (cfg.cmd_width + cfg.tile_count_width)))

        a = golden.random_activations(rng, (cfg.m, k), cfg.a_bits)
        wt = golden.random_weights(rng, (k, cfg.n), fmt, w)
        ap = np.pad(a, ((0, 0), (0, -k % cfg.g)))
        stored = golden.stored_tables(golden.build_tables(ap, cfg.g), cfg.symmetric)
        assert golden.pack_tables(cfg, a) == [_fields(stored[:, j], cfg.entry_width)
                                              for j in range(stored.shape[1])]
        codes = np.pad(golden.weight_codes(wt, fmt, w), ((0, -k % cfg.g), (0, 0)))
        planes = golden.bit_planes(codes, w).reshape(w, -1, cfg.g, cfg.n)
        idx = np.einsum("wjgn,g->wjn", planes, 1 << np.arange(cfg.g))
        assert golden.pack_weight_planes(cfg, wt, fmt, w) == [
            _fields(idx[b, j], cfg.g) for j in range(idx.shape[1]) for b in range(w)]
        groups_a = ap.reshape(cfg.m, -1, cfg.g)
        assert golden.pack_activations(cfg, a) == [
            _fields(groups_a[:, j], cfg.a_bits) for j in range(groups_a.shape[1])]
        groups_w = codes.reshape(-1, cfg.g, cfg.n)
        assert golden.pack_weight_codes(cfg, wt, fmt, w) == [
            _fields(groups_w[j].T, cfg.w_bits) for j in range(groups_w.shape[0])]

    lo, hi = cfg.result_range
    rows = rng.integers(lo, hi + 1, size=(3, cfg.n))
    rows[0, 0], rows[-1, -1] = lo, hi
    beats = [_fields(r, cfg.result_width) for r in rows]
    assert np.array_equal(golden.unpack_results(cfg, beats), rows)
    fmt, w = cfg.ops()[0]
    streams = golden.gemm_streams(cfg, golden.random_activations(rng, (cfg.m, k), cfg.a_bits),
                                  golden.random_weights(rng, (k, cfg.n), fmt, w), fmt, w)
    assert streams["rows"] == [_fields(r, cfg.result_width) for r in streams["expected"]]


# -- the emitted top: plain vector ports, and a manifest that describes them ---------------------

def _decode(desc, word):
    """Decode ``word`` with a manifest layout description alone (as a foreign testbench would)."""
    word &= (1 << desc["width"]) - 1
    if "fields" in desc:
        return {f["name"]: _decode(f, word >> f["offset"]) for f in desc["fields"]}
    if "element" in desc:
        return [_decode(desc["element"], word >> (i * desc["stride"]))
                for i in range(desc["length"])]
    v = word
    if desc["signed"] and v >> (desc["width"] - 1):
        v -= 1 << desc["width"]
    if "enum" in desc:
        return {code: label for label, code in desc["enum"].items()}[v]
    return v


@pytest.mark.parametrize("top", ["array", "engine", "mac_direct"])
def test_emitted_top_and_manifest(tmp_path, top):
    """One emit per top (the MAC from a g = 16 MacConfig):

    * no per-field or per-element alias wire of a port (``\\i_table__payload[0]``): they would
      make Icarus much slower and are not part of the interface;
    * ``top_cmd_width`` is the width of this top's ``i_cmd`` (derived has both command widths);
    * ``layouts`` covers every stream payload at its port width, and decoding the golden beats
      with it alone gives back the command fields, the tables or activations, and the results.
    """
    lut = LutConfig(m=2, n=3, g=3, k_max=20, w_bits=3)
    cfg = MacConfig(m=2, n=3, g=16, k_max=20, w_bits=3) if top == "mac_direct" else lut
    res = emit(cfg, tmp_path, top=top)
    text = res["verilog"].read_text()
    manifest = json.loads(res["manifest"].read_text())
    assert manifest["params"] == cfg.params() and manifest["derived"] == cfg.derived()
    widths = {name: w for name, _, w in res["ports"]}
    for name in widths:
        assert not re.search(rf"\\{re.escape(name)}[.\[]", text), name
    assert manifest["top_cmd_width"] == widths["i_cmd__payload"] == \
        (cfg.engine_cmd_width if top == "engine" else cfg.cmd_width)
    assert set(manifest["layouts"]) == {n for n in widths if n.endswith("__payload")}
    for port, desc in manifest["layouts"].items():
        assert desc["width"] == widths[port]
    layouts_of = manifest["layouts"]

    rng = np.random.default_rng(1)
    k = 7 if top != "mac_direct" else 20
    a = golden.random_activations(rng, (2, k), cfg.a_bits)
    w = golden.random_weights(rng, (k, 3), "uint", 3)
    groups = -(-k // cfg.g)
    ap = np.pad(a, ((0, 0), (0, groups * cfg.g - k)))
    if top == "mac_direct":
        cmd_word, acts, _, expected = golden.mac_stream(cfg, a, w, "uint", 3)
        for j, beat in enumerate(acts):
            assert _decode(layouts_of["i_act__payload"], beat) == \
                ap[:, j * cfg.g:(j + 1) * cfg.g].tolist()
        rows = [layouts.pack(layouts.result_row_layout(cfg), r) for r in expected]
    else:
        s = golden.gemm_streams(cfg, a, w, "uint", 3)
        cmd_word, rows = s["cmd"], s["rows"]
        stored = golden.stored_tables(golden.build_tables(ap, cfg.g), cfg.symmetric)
        for j, beat in enumerate(s["tables"]):
            assert _decode(layouts_of["i_table__payload"], beat) == stored[:, j].tolist()
    cmd = _decode(layouts_of["i_cmd__payload"], cmd_word)
    if top == "engine":
        assert (cmd["m_tiles"], cmd["n_tiles"]) == (1, 1)
        cmd = cmd["cmd"]
    assert cmd == {"format": "uint", "w_bits": 3, "groups": groups}
    assert [_decode(layouts_of["o_result__payload"], r) for r in rows] == \
        golden.reference_mpgemm(a, w).tolist()
