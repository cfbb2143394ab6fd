"""cocotb runs of the emitted FP units (Icarus and Verilator) against gen.fp.

The quick tests (default suite) drive every special class and 10^4 random operations through two
units, the FP32 adder on Icarus and the FP16 g = 4 dot product on Verilator; the ``slow`` tests
run every unit on both simulators, and 10^6 random operations per unit under Verilator with the
operations per second through cocotb.
"""
import json
import os
from pathlib import Path

import pytest

from tb.test_fp_units import run_fp_sim
from tests.test_fp_hw import NoStickyAdder, NoStickyDot, TruncatingAdder, TruncatingDot, \
    TruncatingMultiplier

pytestmark = pytest.mark.sim

UNITS = [("mul", {"fmt_in": "fp16"}), ("mul", {"fmt_in": "bf16"}), ("add", {}),
         ("dot", {"g": 4, "fmt_in": "fp16"}), ("dot", {"g": 2, "fmt_in": "bf16"}),
         ("int_mul", {"w": 4}), ("int_mul", {"w": 2})]
IDS = ["mul-fp16", "mul-bf16", "add-fp32", "dot-fp16-g4", "dot-bf16-g2", "int_mul-w4",
       "int_mul-w2"]
SEED = int(os.environ.get("LUTCORE_SEED", "2026"))


#: the default suite's share: Icarus builds in a second, a Verilator build of one unit takes
#: 30-60 s on a loaded 2-core machine, so Verilator runs two units here and all in ``make sim``
QUICK = [("add", {}, "icarus", 10_000), ("dot", {"g": 4, "fmt_in": "fp16"}, "verilator", 10_000)]


@pytest.mark.parametrize("unit,params,sim,n", QUICK,
                         ids=[f"{u}-{'-'.join(map(str, p.values())) or 'fp32'}-{s}"
                              for u, p, s, _ in QUICK])
def test_fp_unit_quick(unit, params, sim, n, tmp_path):
    speed = run_fp_sim(unit, params, sim, tmp_path, lanes=16 if sim == "icarus" else 1,
                       vectors=n, seed=SEED)
    assert speed["operations"] == n


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("unit,params", UNITS, ids=IDS)
def test_fp_unit_full(unit, params, sim, tmp_path):
    """Every unit on both simulators with 10^4 random operations (``make sim``)."""
    n = 10_000 if unit != "dot" or sim == "verilator" else 3_000
    speed = run_fp_sim(unit, params, sim, tmp_path, lanes=16, vectors=n, seed=SEED)
    assert speed["operations"] == n


@pytest.mark.parametrize("unit,params,mutant", [
    pytest.param("add", {}, TruncatingAdder, id="add-truncate-quick")])
def test_fp_mutant_fails_quick(unit, params, mutant, tmp_path):
    """One mutant in the default suite; all of them in ``make sim`` (and every one in
    amaranth.sim, tests/test_fp_hw.py)."""
    with pytest.raises(AssertionError, match="(?s)of 2 cocotb tests failed.*differ"):
        run_fp_sim(unit, params, "icarus", tmp_path, lanes=16, vectors=1_000, seed=SEED,
                   cls=mutant)


@pytest.mark.slow
@pytest.mark.parametrize("unit,params,mutant", [
    ("mul", {"fmt_in": "bf16"}, TruncatingMultiplier), ("add", {}, TruncatingAdder),
    ("add", {}, NoStickyAdder), ("dot", {"g": 4, "fmt_in": "fp16"}, TruncatingDot),
    ("dot", {"g": 4, "fmt_in": "fp16"}, NoStickyDot)],
    ids=["mul-truncate", "add-truncate", "add-nosticky", "dot-truncate", "dot-nosticky"])
def test_fp_mutants_fail(unit, params, mutant, tmp_path):
    with pytest.raises(AssertionError, match="(?s)of 2 cocotb tests failed.*differ"):
        run_fp_sim(unit, params, "icarus", tmp_path, lanes=16,
                   vectors=500 if unit == "dot" else 2_000, seed=SEED, cls=mutant)


@pytest.mark.slow
@pytest.mark.parametrize("unit,params", UNITS, ids=IDS)
def test_fp_unit_million(unit, params, tmp_path):
    lanes = 16
    speed = run_fp_sim(unit, params, "verilator", tmp_path, lanes=lanes, vectors=1_000_000,
                       seed=SEED)
    one = run_fp_sim(unit, params, "verilator", tmp_path / "one", lanes=1, vectors=20_000,
                     seed=SEED)
    line = {"unit": unit, **params, "ops_per_s_16_lanes": round(speed["ops_per_s"]),
            "ops_per_s_1_lane": round(one["ops_per_s"])}
    print(json.dumps(line))
    out = Path(os.environ.get("LUTCORE_FP_SPEED_OUT", "build/fp_sim_speed.jsonl"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(line) + "\n")
