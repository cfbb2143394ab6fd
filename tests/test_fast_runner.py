"""The fast GEMM runner (tb/fast): bulk packing equals the golden packing, the generated
Verilator harness runs whole GEMMs of every format bit-exactly, with and without random pauses,
and a broken engine or a wrong result is caught."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gen.config import LutConfig
from gen.golden import (gemm_streams, random_activations, random_weights, unpack_results)
from tb.fast.harness import cxx_name, generate, streams
from tb.fast.runner import (FastEngine, GemmJob, MismatchError, engine_beats, pack_fields,
                            unpack_fields)

FORMATS = (("int", 4), ("int", 2), ("uint", 3), ("ternary", 2), ("binary", 1), ("int", 1))
SMALL = LutConfig(m=2, n=4, g=4, w_bits=4, a_bits=8, k_max=64)


def _words_to_int(row):
    return sum(int(x) << (32 * i) for i, x in enumerate(row))


@pytest.mark.parametrize("cfg", [
    SMALL, LutConfig(m=3, n=5, g=5, w_bits=3, a_bits=16, k_max=40, symmetric=False),
    LutConfig(m=2, n=4, g=4, w_bits=4, a_bits=8, k_max=64, precompute=True),
    LutConfig(k_max=256)], ids=["m2n4", "m3n5_full", "m2n4_pre", "m2n64"])
def test_engine_beats_equal_golden_packing(cfg):
    rng = np.random.default_rng(7)
    for fmt, w in FORMATS:
        if w > cfg.w_bits or fmt not in cfg.weight_formats:
            continue
        rows, k, cols = 2 * cfg.m + 1, min(cfg.k_max, 37), 2 * cfg.n + 1
        a = random_activations(rng, (rows, k), cfg.a_bits)
        wt = random_weights(rng, (k, cols), fmt, w)
        ref = gemm_streams(cfg, a, wt, fmt, w)
        got = engine_beats(cfg, a, wt, fmt, w)
        assert _words_to_int(got["cmd"][0]) == ref["cmd"]
        key = "acts" if cfg.precompute else "tables"
        assert [_words_to_int(r) for r in got[key]] == ref[key]
        # the file holds one row block's weight planes; the engine reads them m_tiles times
        assert [_words_to_int(r) for r in got["weights"]] * got["m_tiles"] == ref["weights"]


def test_pack_unpack_fields_round_trip():
    rng = np.random.default_rng(3)
    for width in (1, 5, 11, 23, 32, 33):
        vals = rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=(6, 7))
        words = pack_fields(vals, width)
        assert np.array_equal(unpack_fields(words, 7, width), vals)
        cfg = LutConfig(m=2, n=7, k_max=1 << max(0, width - 12)) if width == 23 else None
        if cfg is not None and cfg.result_width == width:
            beats = [_words_to_int(r) for r in words]
            assert np.array_equal(unpack_results(cfg, beats), vals)


def test_cxx_names_and_streams_from_manifest():
    assert cxx_name("i_cmd__payload") == "i_cmd___05Fpayload"
    manifest = {"name": "x", "ports": [
        {"name": "clk", "direction": "input", "width": 1},
        {"name": "rst", "direction": "input", "width": 1},
        {"name": "i_a__payload", "direction": "input", "width": 70},
        {"name": "i_a__valid", "direction": "input", "width": 1},
        {"name": "i_a__ready", "direction": "output", "width": 1},
        {"name": "o_r__payload", "direction": "output", "width": 40},
        {"name": "o_r__valid", "direction": "output", "width": 1},
        {"name": "o_r__ready", "direction": "input", "width": 1},
        {"name": "o_count", "direction": "output", "width": 32}]}
    assert streams(manifest) == ([("i_a", 70)], ("o_r", 40), [("o_count", 32)])
    src = generate(manifest)
    for name in ("i_a___05Fpayload[i]", "o_r___05Fready", "top->o_count"):
        assert name in src
    manifest["ports"].pop(4)
    with pytest.raises(ValueError, match="i_a__ready"):
        streams(manifest)


def _jobs(cfg, rng, golden="lut"):
    jobs = []
    for fmt, w in FORMATS:
        rows, k, cols = int(rng.integers(1, 3 * cfg.m + 2)), int(rng.integers(1, cfg.k_max + 1)), \
            int(rng.integers(1, 3 * cfg.n + 2))
        jobs.append(GemmJob(random_activations(rng, (rows, k), cfg.a_bits),
                            random_weights(rng, (k, cols), fmt, w), fmt, w,
                            name=f"{fmt}{w}", golden=golden))
    return jobs


BUILD = Path(__file__).resolve().parent.parent / "build" / "fast_tests"


def _mutant(monkeypatch, name):
    """A context in which gen.emit.emit writes the mutant ``name``."""
    try:                    # the test-side mutants (subclassed TableLookup) when present
        from tests.mutants import mutant
        return mutant(name)
    except ImportError:     # else the emitter's own mutations= switch
        import contextlib

        import gen.emit
        build_top = gen.emit.build_top
        monkeypatch.setattr(gen.emit, "build_top", lambda cfg, top="array", mutations=(),
                            pe_module=None: build_top(cfg, top, (name,), pe_module))
        return contextlib.nullcontext()


@pytest.fixture(scope="module")
def small_engine():
    # a fixed directory: the build (~1 min) is reused by later runs while the Verilog is the same
    return FastEngine(SMALL, BUILD / "m2n4")


@pytest.mark.sim
@pytest.mark.parametrize("pause", [0.0, 0.3])
def test_fast_runner_every_format(small_engine, pause):
    """Ragged shapes, every format and precision, one harness call; results and o_cycles are
    checked inside run() (a mismatch raises)."""
    rng = np.random.default_rng(11 if pause else 12)
    jobs = _jobs(SMALL, rng)
    out = small_engine.run(jobs, pause_in=pause, pause_out=pause, seed=5)
    assert len(out) == len(jobs)
    for job, r in zip(jobs, out):
        assert r.result.shape == (job.a.shape[0], job.w.shape[1])
        if pause == 0:
            # full rate: the constant overhead of docs/interface.md (3 cycles + m rows)
            assert r.cycles == r.ideal + 3 + SMALL.m, (job.name, r.cycles, r.ideal)
        else:
            assert r.cycles > r.ideal


@pytest.mark.sim
def test_fast_runner_catches_a_wrong_result(small_engine):
    rng = np.random.default_rng(4)
    job = _jobs(SMALL, rng)[0]
    (r,) = small_engine.run([job], check=False)
    r.result[0, 0] += 1
    with pytest.raises(MismatchError, match="differs from the golden model"):
        small_engine.check(job, r, r.cycles)
    r.result[0, 0] -= 1
    with pytest.raises(MismatchError, match="o_cycles"):
        small_engine.check(job, r, r.cycles + 1)


@pytest.mark.sim
@pytest.mark.parametrize("name", ["no_negate", pytest.param("no_invert", marks=pytest.mark.slow)])
def test_fast_runner_fails_on_a_mutant(monkeypatch, name):
    with _mutant(monkeypatch, name):
        engine = FastEngine(SMALL, BUILD / f"m2n4_{name}")
    with pytest.raises(MismatchError):
        engine.run(_jobs(SMALL, np.random.default_rng(9)))


@pytest.mark.sim
def test_raw_speed_runs(small_engine):
    job = _jobs(SMALL, np.random.default_rng(2))[0]
    assert small_engine.raw_speed(job, 2000) > 0


@pytest.mark.sim
def test_icarus_readmemh_testbench(tmp_path, monkeypatch):
    """The same packed beats through Icarus with the generated $readmemh testbench; a mutant
    built the same way fails."""
    from tb.fast.icarus import IcarusEngine
    engine = IcarusEngine(SMALL, tmp_path / "good")
    rng = np.random.default_rng(21)
    for job in _jobs(SMALL, rng):
        r = engine.run(job)                  # checked against lut_mpgemm inside
        assert r.cycles == r.ideal + 3 + SMALL.m
    with _mutant(monkeypatch, "no_negate"):
        bad = IcarusEngine(SMALL, tmp_path / "bad")
    with pytest.raises(MismatchError):
        for job in _jobs(SMALL, rng):
            bad.run(job)
