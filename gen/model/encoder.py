"""all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 12 heads, FFN 1536) in NumPy, every linear
layer routed through a pluggable backend.

The encoder does tokenization (``tokenizer.py``), embeddings (word + position + token type,
LayerNorm), per layer: Q/K/V projections, softmax attention per sentence, output projection,
residual + LayerNorm, FFN up, GELU (exact, erf), FFN down, residual + LayerNorm; then mean
pooling over each sentence's tokens and L2 normalization (the sentence-transformers pipeline
of the packaged model: Transformer, Pooling(mean), Normalize). All float math is float64.

The 36 linear layers (6 per encoder layer) go through a *backend*: ``backend(layer, names, x)``
returns one float output per name for the shared input ``x`` (all tokens of all sentences
stacked as rows, so one GEMM covers the batch). ``FloatBackend`` is the reference;
``gen.model.quant.QuantBackend`` quantizes and runs integer GEMMs (golden model or RTL).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .tokenizer import WordPiece

__all__ = ["Encoder", "FloatBackend", "LINEARS", "linear_names"]

#: the six linear layers of one encoder layer, in the order they run
LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value",
           "attention.output.dense", "intermediate.dense", "output.dense")
SHORT = {"attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
         "attention.output.dense": "o", "intermediate.dense": "ffn_up", "output.dense": "ffn_down"}

_erf = np.frompyfunc(math.erf, 1, 1)


def linear_names(layers=6):
    """``[(layer, name)]`` of all linear layers in run order."""
    return [(i, n) for i in range(layers) for n in LINEARS]


def _layer_norm(x, w, b, eps):
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


class Encoder:
    """The packaged model's weights and the forward pass. ``layers`` < 6 runs a prefix."""

    def __init__(self, model_dir, layers=None):
        import json
        from safetensors.numpy import load_file
        d = Path(model_dir)
        self.config = json.loads((d / "config.json").read_text())
        self.tokenizer = WordPiece(d / "vocab.txt")
        tensors = load_file(str(d / "model.safetensors"))
        self.t = {k: v.astype(np.float64) for k, v in tensors.items()
                  if v.dtype.kind == "f"}
        self.layers = self.config["num_hidden_layers"] if layers is None else layers
        if not 1 <= self.layers <= self.config["num_hidden_layers"]:
            raise ValueError(f"layers must be in 1..{self.config['num_hidden_layers']}, "
                             f"not {self.layers}")
        self.heads = self.config["num_attention_heads"]
        self.eps = self.config["layer_norm_eps"]

    def weight(self, layer, name):
        """``(W in x out, bias)`` of one linear layer (torch stores ``out x in``)."""
        p = f"encoder.layer.{layer}.{name}"
        return self.t[f"{p}.weight"].T, self.t[f"{p}.bias"]

    def tokenize(self, sentences):
        return [self.tokenizer.encode(s) for s in sentences]

    def embed(self, ids):
        """Embedding output for stacked sentences: ``(tokens x hidden, offsets)``."""
        t = self.t
        rows, offsets = [], [0]
        for seq in ids:
            seq = np.asarray(seq)
            rows.append(t["embeddings.word_embeddings.weight"][seq]
                        + t["embeddings.position_embeddings.weight"][: len(seq)]
                        + t["embeddings.token_type_embeddings.weight"][0])
            offsets.append(offsets[-1] + len(seq))
        x = np.concatenate(rows)
        return _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"],
                           self.eps), offsets

    def _attention(self, q, k, v, offsets):
        d = q.shape[1] // self.heads
        out = np.empty_like(q)
        for s0, s1 in zip(offsets[:-1], offsets[1:]):
            for h in range(self.heads):
                c = slice(h * d, (h + 1) * d)
                scores = q[s0:s1, c] @ k[s0:s1, c].T / math.sqrt(d)
                scores = np.exp(scores - scores.max(axis=1, keepdims=True))
                out[s0:s1, c] = (scores / scores.sum(axis=1, keepdims=True)) @ v[s0:s1, c]
        return out

    def forward(self, ids, backend, hidden=None):
        """Sentence embeddings (``sentences x hidden``, unit length) of token id lists ``ids``.

        ``hidden``, if a list, receives each encoder layer's output."""
        t = self.t
        x, offsets = self.embed(ids)
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q, k, v = backend(i, LINEARS[:3], x)
            ctx = self._attention(q, k, v, offsets)
            (o,) = backend(i, LINEARS[3:4], ctx)
            x = _layer_norm(o + x, t[f"{p}.attention.output.LayerNorm.weight"],
                            t[f"{p}.attention.output.LayerNorm.bias"], self.eps)
            (up,) = backend(i, LINEARS[4:5], x)
            (down,) = backend(i, LINEARS[5:6], _gelu(up))
            x = _layer_norm(down + x, t[f"{p}.output.LayerNorm.weight"],
                            t[f"{p}.output.LayerNorm.bias"], self.eps)
            if hidden is not None:
                hidden.append(x)
        pooled = np.stack([x[s0:s1].mean(axis=0) for s0, s1 in zip(offsets[:-1], offsets[1:])])
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


class FloatBackend:
    """The float reference: ``x @ W + b``. Records each layer's output in ``outputs`` and its
    input in ``inputs`` (calibration data for GPTQ)."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.outputs, self.inputs = {}, {}

    def __call__(self, layer, names, x):
        out = []
        for name in names:
            self.inputs[(layer, name)] = x
            w, b = self.encoder.weight(layer, name)
            y = x @ w + b
            self.outputs[(layer, name)] = y
            out.append(y)
        return out
