"""gen.ppa.fanout (buffer trees on a hierarchical mapping) and gen.ppa.compare (PPA rows for
the designs of ``gen.synth --compare``)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gen.config import LutConfig
from gen.ppa import liberty

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def lib():
    return liberty.load(liberty.vendored_liberty())


def test_bits_of_connections():
    from gen.ppa.fanout import _tokens
    widths = {"v": (3, 0), "\\w.x": (1, 0)}
    assert _tokens("{ v[2:1] , 3'h5 , \\a[7] , v }", widths) == \
        ["v[2]", "v[1]", "1'h1", "1'h0", "1'h1", "\\a[7]", "v[3]", "v[2]", "v[1]", "v[0]"]
    assert _tokens("\\w.x ", widths) == ["\\w.x [1]", "\\w.x [0]"]
    assert _tokens("n", widths) == ["n"]


def test_buffer_cell_is_a_buffer(lib):
    from gen.ppa.fanout import buffer_cell
    b = buffer_cell(lib)
    pins = lib.cells[b["cell"]]["pins"]
    assert pins[b["out"]]["direction"] == "output" and pins[b["in"]]["direction"] == "input"
    assert pins[b["out"]]["function"].strip("() ") == b["in"]


@pytest.mark.synth
def test_fanout_trees_keep_function_and_bound_fanout(lib, tmp_path):
    """A tiny array mapped hierarchically, every net of more than 2 sinks buffered: the
    flattened result is bit-exact in the gate-level run, every buffer tree's nets have at
    most 2 sinks, and the area grows by exactly the buffers'."""
    from gen.emit import emit
    from gen.ppa.fanout import buffer_fanout, sink_counts
    from gen.ppa.flow import simulate_power
    from gen.ppa.mapped import flatten_mapped, map_design
    from gen.ppa.stimulus import Stimulus
    cfg = LutConfig(m=2, n=3, g=2, w_bits=1, a_bits=4, k_max=16)
    em = emit(cfg, tmp_path / "rtl")
    top = json.loads(Path(em["manifest"]).read_text())["name"]
    hier = map_design(em["verilog"], top, tmp_path / "hier", lib)
    rep = buffer_fanout(hier["netlist"], top, tmp_path / "fo", lib, max_fanout=2)
    assert rep["buffers"] > 0 and rep["largest_fanout"] > 2
    flat = flatten_mapped(rep["netlist"], top, tmp_path / "flat", lib)
    # buffers are counted per module definition: each instance of a module has its own
    per_instance = sum(m["buffers"] * hier["stat"]["modules"][name]["instances"]
                       for name, m in rep["modules"].items())
    assert per_instance >= rep["buffers"]
    # flattening drops logic that drives only unused submodule outputs (with the buffers
    # feeding it): the extra area is that of the buffers, up to those few
    extra = flat["stat"]["total"]["area"] - hier["stat"]["total"]["area"]
    buf_area = per_instance * lib.cells[rep["cell"]]["area"]
    assert 0.98 * buf_area <= extra <= buf_area
    # per module (a module's input port is a boundary: its pins count in the parent)
    before = sink_counts(tmp_path / "fo/bits/bits.v", lib)
    after = sink_counts(rep["netlist"], lib)
    assert rep["largest_fanout"] >= max(before.values()) > 2
    assert max(after.values()) <= 2
    p = simulate_power(flat["netlist"], top, tmp_path / "sim", lib, cfg, "array",
                       Stimulus("random", ops=2, k=8, fmt="binary"))
    assert p["results_checked"] == 2 * cfg.m


def test_compare_cli_bad_options(tmp_path):
    out = tmp_path / "out"
    for args, opt in ((["--w-bits-list", "1,5"], "--w-bits-list"),
                      (["--designs", "mac_direct"], "--designs"),
                      (["--power", "noise"], "--power")):
        p = subprocess.run([sys.executable, "-m", "gen.ppa", "compare", *args, "--out",
                            str(out)], capture_output=True, text=True, cwd=REPO)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and opt in p.stderr, p.stderr
    assert not out.exists()


def _check_rows(res):
    from gen.synth.comparison import macs_per_cycle
    rows = {(r["w_bits"], r["key"]): r for r in res["rows"]}
    for r in res["rows"]:
        assert r["fmax_mhz"] == pytest.approx(1000 / r["min_period_ns"])
        assert r["tops_per_mm2_own"] == pytest.approx(
            2 * r["macs_per_cycle"] * r["fmax_mhz"] / 1e6 / (r["area_um2"] / 1e6))
        assert r["area_um2"] == pytest.approx(r["area_hierarchical_um2"] + r["buffer_area_um2"])
        for p in r["power"].values():
            assert p["tops_per_w"] == pytest.approx(2 / p["pj_per_mac"])
            assert p["results_checked"] > 0
    assert res["common_mhz"] == pytest.approx(min(r["fmax_mhz"] for r in res["rows"]))
    for x in res["ratios"]:
        lut, mac = rows[(x["w_bits"], "lut")], rows[(x["w_bits"], x["mac"])]
        assert x["area_mac_over_lut"] == pytest.approx(mac["area_um2"] / lut["area_um2"])
        assert x["energy"]["random"] == pytest.approx(
            mac["power"]["random"]["pj_per_mac"] / lut["power"]["random"]["pj_per_mac"])
        assert lut["macs_per_cycle"] == macs_per_cycle(
            "array", LutConfig.from_dict(lut["params"]), x["w_bits"])
        assert x["density_lut_over_mac"] == pytest.approx(
            lut["macs_per_cycle"] / lut["area_um2"] / (mac["macs_per_cycle"] / mac["area_um2"]))


@pytest.mark.slow
@pytest.mark.synth
def test_compare_quick_end_to_end(tmp_path):
    """``compare --quick`` at W1 for the LUT array and the direct MAC: every row complete
    (µm², Fmax, pJ/MAC), the figures consistent with each other."""
    out = tmp_path / "cmp"
    p = subprocess.run([sys.executable, "-m", "gen.ppa", "compare", "--quick", "--w-bits", "1",
                        "--designs", "lut,mac_direct", "--macs", "1024", "--k", "16",
                        "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    res = json.loads((out / "compare.json").read_text())
    assert {r["key"] for r in res["rows"]} == {"lut", "mac_direct"}
    assert [x["mac"] for x in res["ratios"]] == ["mac_direct"]
    _check_rows(res)
    md = (out / "compare.md").read_text()
    assert re.search(r"\| 1 \| lut \| M2N4K4 \| [\d,]+ \|", md)
