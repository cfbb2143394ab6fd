"""``gen.synth --compare --act fp16|bf16``: the LUT array against the FP MAC baselines.

The design list, the CLI's checks and the LUT-top check run without Yosys; ``synth`` runs a
small comparison on real Yosys and checks that every figure is consistent with the per-design
reports; ``slow`` runs the paper-size comparison (M2N64K4 vs M8N4K16) at W1, W2, W4.
"""
from __future__ import annotations

import json

import pytest

from gen.config import LutConfig
from gen.synth import main

from .test_synth import _assert_bad_option


def test_fp_compare_designs():
    from gen.synth import compare_fp_designs
    ds = compare_fp_designs(LutConfig(w_bits=1), "fp16")
    assert [(d["key"], d["top"], d["shape"]) for d in ds] == [
        ("lut", "array", "M2N64K4"), ("lut_fp", "array", "M2N64K4"),
        ("mac_dequant", "mac_dequant", "M8N4K16"), ("mac_direct", "mac_direct", "M8N4K16"),
        ("mac_dequant_tile", "mac_dequant", "M2N64K4"),
        ("mac_direct_tile", "mac_direct", "M2N64K4")]
    assert all(d["cfg"].m * d["cfg"].n * d["cfg"].g == 512 for d in ds)    # equal size
    lut, lut_fp = ds[0]["cfg"], ds[1]["cfg"]
    assert (lut.act_format, lut.table_format, lut.table_bits, lut.scale_block) == (
        "fp16", "q", 8, 16)
    assert (lut_fp.act_format, lut_fp.table_format) == ("fp16", "fp")
    assert lut.symmetric and lut_fp.symmetric
    assert all(d["act"] == "fp16" for d in ds[2:]) and all(d["act"] == "int" for d in ds[:2])
    assert all(d["cfg"].w_bits == 1 for d in ds)
    only_mac = compare_fp_designs(LutConfig(w_bits=4), "bf16", (1, 2, 4), (1, 2, 4), tables=(),
                                  table_bits=6, scale_block=4)
    assert [d["key"] for d in only_mac] == ["mac_dequant", "mac_direct"]
    q = compare_fp_designs(LutConfig(), "bf16", tables=("q",), table_bits=6, scale_block=4)
    assert (q[0]["cfg"].act_format, q[0]["cfg"].table_bits, q[0]["cfg"].scale_block) == (
        "bf16", 6, 4)
    q4 = compare_fp_designs(LutConfig(w_bits=4), "fp16", scale_stage_w=4)
    assert (q4[0]["cfg"].scale_stage_w, q4[0]["cfg"].scale_lanes) == (4, 2)
    assert q4[1]["cfg"].scale_stage_w == 1                  # fp tables have no scale stage
    p11 = compare_fp_designs(LutConfig(), "fp16", scale_sig_bits=11)
    assert (p11[0]["cfg"].scale_sig_bits, p11[1]["cfg"].scale_sig_bits) == (11, 24)
    with pytest.raises(ValueError, match="act must be one of fp16, bf16, not 'int'"):
        compare_fp_designs(LutConfig(), "int")
    with pytest.raises(ValueError, match="tables must be among q, fp, not 'int'"):
        compare_fp_designs(LutConfig(), "fp16", tables=("int",))


def test_lut_top_without_scales_is_refused():
    """An emitted LUT top without the FP path's i_scale port (an integer array) is no FP LUT."""
    from gen.synth import LutTopMissing
    from gen.synth.fp_comparison import _check_lut_build
    cfg = LutConfig(act_format="fp16", table_format="q")
    d = {"name": "x", "cfg": cfg, "manifest": {"ports": [{"name": "i_table__payload"}]}}
    with pytest.raises(LutTopMissing, match="no LUT array for act_format='fp16'"):
        _check_lut_build(d)
    d["manifest"]["ports"].append({"name": "i_scale__payload"})
    _check_lut_build(d)


@pytest.mark.parametrize("argv, option", [
    (["--act", "fp16"], "--act"),
    (["--lut-tables", "q"], "--lut-tables"),
    (["--compare", "--lut-tables", "q"], "--lut-tables"),          # needs --act fp16/bf16
    (["--compare", "--table-bits", "8"], "--table-bits"),
    (["--compare", "--act", "fp32"], "--act"),
    (["--compare", "--act", "fp16", "--table-bits", "3"], "--table-bits"),
    (["--compare", "--act", "fp16", "--scale-block", "0"], "--scale-block"),
    (["--compare", "--act", "fp16", "--scale-block", "1"], "--scale-block"),   # < m = 2
    (["--compare", "--act", "fp16", "--no-symmetric"], "--no-symmetric"),
    (["--compare", "--scale-stage-w", "2"], "--scale-stage-w"),
    (["--compare", "--act", "fp16", "--scale-stage-w", "3"], "--scale-stage-w"),  # > w_bits
    (["--compare", "--act", "fp16", "--scale-sig-bits", "7"], "--scale-sig-bits"),
    (["--compare", "--act", "bf16", "--mac-shape", "M8N4K128"], "--mac-shape"),
    (["--compare", "--act", "fp16", "--jobs", "0"], "--jobs"),
])
def test_fp_compare_bad_option(tmp_path, capsys, argv, option):
    _assert_bad_option(tmp_path, capsys, argv, option)


def test_no_depth_script():
    """``--no-depth`` drops the flatten + ltp tail (most of a big array's run), nothing else."""
    from gen.synth import build_script
    full, short = build_script("t"), build_script("t", depth=False)
    assert "ltp" in full and "flatten" in full
    assert "ltp" not in short and "flatten" not in short
    assert short.splitlines() == [ln for ln in full.splitlines()
                                  if ln not in ("setattr -mod -unset top", "flatten",
                                                "tee -q -o ltp.txt ltp -noff")]


def _check_fp_report(rdir, w_bits, tables, lut_shape, mac_shape):
    data = json.loads((rdir / "report.json").read_text())
    md = (rdir / "report.md").read_text()
    figs = {d["key"]: d for d in data["designs"]}
    luts = {"q": "lut", "fp": "lut_fp"}
    want = {luts[t] for t in tables} | {"mac_dequant", "mac_direct"}
    if lut_shape != mac_shape:
        want |= {"mac_dequant_tile", "mac_direct_tile"}
    assert set(figs) == want
    for d in data["designs"]:
        p = d["params"]
        equiv = p["m"] * p["n"] * p["g"]
        assert d["multiply_equivalents"] == equiv
        assert d["macs_per_cycle"] == (equiv / w_bits if d["top"] == "array" else equiv)
        assert d["density"] == pytest.approx(1000 * d["macs_per_cycle"] / d["ge"])
        assert d["ge"] * 4 == d["transistors"] > 0 and d["ff_bits"] > 0
        assert d["depth"] is None                           # --no-depth
        assert d["pe"]["instances"] == p["m"] * p["n"]
        # the breakdown by module type adds up to the design, and its PE row is the PE's
        assert sum(b["ge_local_total"] for b in d["breakdown"]) == pytest.approx(d["ge"])
        own = json.loads((rdir / d["report"]).with_suffix(".json").read_text())
        assert own["total"]["ge"] == d["ge"] and own["config"] == p
        if d["top"] != "array":
            assert own["act"] == data["precision"]["act"]
            units = {b["type"]: b["instances"] for b in d["breakdown"]}
            # the per-column units are modules of their own, one per instance
            if d["top"] == "mac_dequant":
                assert units["top_deq"] == p["n"] * p["g"]
            else:
                assert units["top_scale"] == p["n"]
            assert units["top_pe"] == p["m"] * p["n"]
    for ln in data["lines"]:
        if ln["level"] == "array":
            assert ln["density_ratio"] == pytest.approx(
                figs[ln["lut"]]["density"] / figs[ln["mac"]]["density"])
            assert ln["area_ratio_mac_over_lut"] == pytest.approx(
                figs[ln["mac"]]["ge"] / figs[ln["lut"]]["ge"])
    assert len([ln for ln in data["lines"] if ln["level"] == "array"]) == 4 * len(tables)
    for k, v in data["mac_direct_over_dequant"].items():
        assert v == pytest.approx(figs[k.replace("dequant", "direct")]["density"]
                                  / figs[k]["density"])
    for text in ("m*n*g / w", "MACs per cycle per 1000 GE", "24 per flip-flop bit",
                 "Not counted on either side", "table precompute", "Area by module type",
                 "density LUT/MAC"):
        assert text in md, text
    return data


def _lut_tables_built():
    """Which FP LUT tops this tree has (q: hw/fp_lut_array.py, fp: hw/fp_table_array.py).
    Nothing is constructed: an unelaborated Amaranth component warns when it is collected."""
    from importlib.util import find_spec
    return tuple(t for t, mod in (("q", "hw.fp_lut_array"), ("fp", "hw.fp_table_array"))
                 if find_spec(mod) is not None)


@pytest.mark.synth
def test_fp_compare_small(tmp_path, capsys):
    """A small FP16 comparison on real Yosys (LUT M1N2K4 against MACs of the same tile):
    every figure present, consistent with the designs' own reports, and explained."""
    tables = _lut_tables_built()
    sel = {("q", "fp"): "both", ("q",): "q", ("fp",): "fp", (): "none"}[tables]
    out = tmp_path / "reports"
    assert main(["--compare", "--act", "fp16", "--w-bits", "2", "--m", "1", "--n", "2",
                 "--mac-shape", "1x2x4", "--k-max", "64", "--lut-tables", sel, "--jobs", "2",
                 "--no-depth", "--out", str(out)]) == 0
    assert "density = MACs/cycle per 1000 GE" in capsys.readouterr().out
    data = _check_fp_report(out / "compare_w2fp16", 2, tables, "M1N2K4", "M1N2K4")
    assert data["precision"]["act"] == "fp16" and data["tables"] == list(tables)


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.parametrize("w_bits", [1, 2, 4])
def test_fp_compare_paper_size(tmp_path, w_bits):
    """The paper's comparison with FP16 activations: M2N64K4 LUT (q and fp tables) against the
    M8N4K16 FP MACs and the FP MACs at the LUT's tile, 512 multiply-equivalents each."""
    out = tmp_path / "reports"
    assert main(["--compare", "--act", "fp16", "--w-bits", str(w_bits), "--out", str(out),
                 "--jobs", "2", "--no-depth"]) == 0
    data = _check_fp_report(out / f"compare_w{w_bits}fp16", w_bits, ("q", "fp"), "M2N64K4",
                            "M8N4K16")
    assert all(d["multiply_equivalents"] == 512 for d in data["designs"])
