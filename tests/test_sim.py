"""cocotb simulations of the emitted LUT array on Icarus and Verilator (tb/test_lut_array.py).

Every item is marked ``sim``. A representative subset (tile shapes, g, w_bits, a_bits and both
table kinds, quick effort) is not ``slow`` and runs in ``make test``; the full matrix (every
config at full effort, more mutations) is ``slow`` and runs under ``make sim``.

Environment: ``SIM`` = ``icarus`` | ``verilator`` | empty (both); ``LUTCORE_SEED`` repeats a run;
``WAVES=1`` dumps FST waveforms (a failure names the file).

The default config's speed (simulated cycles per wall-second, testbench included) on each
simulator is merged into ``build/sim_speed.json``.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gen.config import PRESETS, LutConfig
from gen.mac_config import MacConfig
from gen.emit import emit
from tb.runner import SIMULATORS, SimulationFailed, emit_and_sim, run_sim

from .mutants import MUTANTS, mutant

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
SPEED_FILE = BUILD / "sim_speed.json"

pytestmark = pytest.mark.sim


def _simulators():
    sim = os.environ.get("SIM", "").strip().lower()
    if not sim:
        return list(SIMULATORS)
    if sim not in SIMULATORS:
        raise pytest.UsageError(f"SIM must be one of {', '.join(SIMULATORS)} or empty, "
                                f"not {sim!r}")
    return [sim]


SIMS = _simulators()

#: id -> config. Covers tile shapes (m 1..16, n 1..64), g 2..6, w_bits 1..4, a_bits 4/8/16,
#: symmetric and full tables, a restricted format set, and small k_max values so the corner
#: test reaches the full accumulator range at K = k_max.
CONFIGS = {
    "m2n64_g4_w2a8": LutConfig(),                                          # the default
    "m1n1_g2_w1a4_k16": LutConfig(m=1, n=1, g=2, w_bits=1, a_bits=4, k_max=16),
    "m3n5_g5_w4a16_full_k40": LutConfig(m=3, n=5, g=5, w_bits=4, a_bits=16, k_max=40,
                                        symmetric=False),
    "m2n4_g6_w2a4_k24": LutConfig(m=2, n=4, g=6, w_bits=2, a_bits=4, k_max=24),
    "m2n4_g3_w3a8": LutConfig(m=2, n=4, g=3, w_bits=3, a_bits=8),
    "m4n3_g2_w4a8_full_k32": LutConfig(m=4, n=3, g=2, w_bits=4, a_bits=8, k_max=32,
                                       symmetric=False),
    "m2n8_g4_w2a16_int": LutConfig(m=2, n=8, g=4, w_bits=2, a_bits=16,
                                   weight_formats=("int",)),
    "m2n4_g4_w1a8_full": LutConfig(m=2, n=4, g=4, w_bits=1, a_bits=8, symmetric=False),
    "m16n2_g3_w2a8_k96": LutConfig(m=16, n=2, g=3, w_bits=2, a_bits=8, k_max=96),
    "m2n32_g5_w3a8": LutConfig(m=2, n=32, g=5, w_bits=3, a_bits=8, k_max=1000),
    # several tables per PE (K per PE step = c*g)
    "m2n4_g4_w2a8_c4_k64": LutConfig(m=2, n=4, g=4, w_bits=2, a_bits=8, k_max=64,
                                     tables_per_pe=4),
    # the dense preset's PE (g 2, 16 tables, folded negations, shifted, no output buffer)
    "dense_m1n4_w2a8_k128": LutConfig(**{**PRESETS["dense"], "n": 4, "k_max": 128}),
}
DEFAULT = "m2n64_g4_w2a8"
#: in `make test` (quick effort): default shape, the 1x1 corner, a full-table a16/w4 tile, and
#: four tables per PE
SUBSET = (DEFAULT, "m1n1_g2_w1a4_k16", "m3n5_g5_w4a16_full_k40", "m2n4_g6_w2a4_k24",
          "m2n4_g4_w2a8_c4_k64")
MUTANT_CFG = "m2n4_g3_w3a8"


def _workdir(effort, sim, cfg_id):
    return BUILD / "sim" / effort / sim / cfg_id


def _record_speed(sim, speed):
    """Merge one simulator's speed into build/sim_speed.json (xdist workers share it)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".sim_speed.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {}
        if SPEED_FILE.is_file():
            try:
                data = json.loads(SPEED_FILE.read_text())
            except ValueError:
                data = {}
        data[sim] = {k: speed.get(k) for k in (
            "design", "effort", "seed", "cycles", "test_wall_s", "cycles_per_s",
            "stream_cycles", "stream_cycles_per_s", "build_s", "run_s")}
        SPEED_FILE.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _params(ids, marks=()):
    return [pytest.param(sim, cid, id=f"{sim}-{cid}", marks=list(marks))
            for sim in SIMS for cid in ids]


@pytest.mark.parametrize("sim,cfg_id", _params(SUBSET))
def test_sim_quick(sim, cfg_id):
    """All cocotb tests at quick effort on the subset of configs (os.environ stays as it was:
    everything reaches the simulator through the runner's own environment)."""
    environ = dict(os.environ)
    speed = emit_and_sim(CONFIGS[cfg_id], sim, _workdir("quick", sim, cfg_id), effort="quick")
    assert dict(os.environ) == environ
    print(f"{sim} {cfg_id}: {speed['cycles']} cycles in {speed['test_wall_s']} s = "
          f"{speed['cycles_per_s']} cycles/s, streaming {speed.get('stream_cycles_per_s')} "
          f"cycles/s (build {speed['build_s']} s)")
    if cfg_id == DEFAULT:
        _record_speed(sim, speed)


@pytest.mark.slow
@pytest.mark.parametrize("sim,cfg_id", _params(CONFIGS))
def test_sim_full(sim, cfg_id):
    """All cocotb tests at full effort on every config."""
    speed = emit_and_sim(CONFIGS[cfg_id], sim, _workdir("full", sim, cfg_id), effort="full")
    print(f"{sim} {cfg_id}: {speed['cycles']} cycles in {speed['test_wall_s']} s = "
          f"{speed['cycles_per_s']} cycles/s")


def _expect_caught(sim, cfg_id, name, waves, effort="quick", testcase=None):
    workdir = _workdir(effort, sim, f"{cfg_id}__{name}")
    with mutant(name):
        paths = emit(CONFIGS[cfg_id], workdir / "rtl")
    with pytest.raises(SimulationFailed) as info:
        run_sim(paths["verilog"], paths["manifest"], sim, workdir, waves=waves, effort=effort,
                testcase=testcase)
    msg = str(info.value)
    assert "cocotb tests failed" in msg, f"the mutant did not fail the testbench: {msg}"
    assert "expected" in msg and "got" in msg, msg
    return msg


@pytest.mark.parametrize("sim", SIMS)
def test_mutation_no_negate_caught(sim):
    """A PE that forgets the negation of the symmetric table half must fail the testbench.

    On Icarus this also runs with waveforms: the failure must name an existing FST file."""
    waves = sim == "icarus"
    msg = _expect_caught(sim, MUTANT_CFG, "no_negate", waves=waves,
                         testcase="test_random_ops")
    if waves:
        path = msg.split("waveform ", 1)[1].split()[0].rstrip(",;")
        assert Path(path).is_file(), f"the failure names {path}, which does not exist"


@pytest.mark.slow
@pytest.mark.parametrize("mutation", MUTANTS)
@pytest.mark.parametrize("sim,cfg_id", _params([DEFAULT, "m1n1_g2_w1a4_k16"]))
def test_mutation_caught_full(sim, cfg_id, mutation):
    """The mutants of the symmetric lookup (no negation; no inversion of the low index bits),
    every test of the module, on more shapes: each must fail the testbench."""
    _expect_caught(sim, cfg_id, mutation, waves=False)


# -- the MAC baselines run the same cocotb tests against the same golden model -------------------

MAC_CONFIGS = {"m2n4_g4_w4a8_k64": (LutConfig(m=2, n=4, g=4, w_bits=4, a_bits=8, k_max=64), False),
               "m3n5_g5_w2a16_k40": (LutConfig(m=3, n=5, g=5, w_bits=2, a_bits=16, k_max=40),
                                     True),
               "m1n1_g2_w1a4_k16": (LutConfig(m=1, n=1, g=2, w_bits=1, a_bits=4, k_max=16), True),
               # the paper's MAC tile class (g = 16 > LutConfig's 2..6): its own MacConfig
               "m2n2_g16_w2a4_k48": (MacConfig(m=2, n=2, g=16, w_bits=2, a_bits=4, k_max=48),
                                     False)}


def _mac_params():
    for cid, (_, slow) in MAC_CONFIGS.items():
        for kind in ("mac_dequant", "mac_direct"):
            for sim in SIMS:
                yield pytest.param(sim, kind, cid, id=f"{sim}-{kind}-{cid}",
                                   marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("sim,top,cfg_id", list(_mac_params()))
def test_mac_sim(sim, top, cfg_id):
    """The emitted MAC arrays pass the LUT array's cocotb tests (tb/test_lut_array.py)."""
    cfg = MAC_CONFIGS[cfg_id][0]
    speed = emit_and_sim(cfg, sim, _workdir("quick", sim, f"{top}_{cfg_id}"), top=top,
                         effort="quick")
    assert speed["tests"] >= 6


# -- existing RTL: the testbench reads the design from its manifest ------------------------------

SMALL = "m1n1_g2_w1a4_k16"


def test_cli_simulates_existing_rtl(tmp_path):
    """`python -m tb.runner --manifest` runs the tests on Verilog it did not emit itself."""
    paths = emit(CONFIGS[SMALL], tmp_path / "rtl")
    r = subprocess.run([sys.executable, "-m", "tb.runner", "--manifest", str(paths["manifest"]),
                        "--sim", "icarus", "--testcase", "test_stream_api,test_odd_k",
                        "--out", str(tmp_path / "run")], cwd=REPO, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    speed = json.loads(r.stdout)
    assert speed["tests"] == 2 and speed["design"] == paths["name"]


def test_manifest_that_does_not_match_the_rtl_fails(tmp_path):
    """Verilog of one build with the manifest of another (n = 2 instead of 1): the port check
    against the manifest stops every test."""
    paths = emit(CONFIGS[SMALL], tmp_path / "rtl")
    other = emit(CONFIGS[SMALL].replace(n=2), tmp_path / "other")
    manifest = json.loads(other["manifest"].read_text())
    manifest["name"] = paths["name"]                 # same top module name, other widths
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(manifest))
    with pytest.raises(SimulationFailed) as info:
        run_sim(paths["verilog"], wrong, "icarus", tmp_path / "run", testcase="test_odd_k")
    assert "bits wide, the manifest says" in str(info.value)
