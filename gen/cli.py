"""Design options shared by the command-line tools (gen.emit, gen.synth, scripts)."""
from __future__ import annotations

import argparse
import os
import re
import sys

from .config import (A_BITS_RANGE, ACCUMULATIONS, G_RANGE, K_MAX_RANGE, M_RANGE, N_RANGE,
                     OUTPUT_BUFFERS, PIPELINE_RANGE, PRESETS, TABLES_PER_PE_RANGE,
                     W_BITS_RANGE, LutConfig,
                     WeightFormat)

__all__ = ["DesignArgumentParser", "add_design_args", "config_from_args", "OPTION_OF",
           "prog_name", "parse_tile", "tile_label", "parse_gemm_shape", "arg_type"]

#: config field -> the option that sets it, so errors name what the user typed
OPTION_OF = {"w_bits": "--w-bits", "a_bits": "--a-bits", "g": "--group", "m": "--m", "n": "--n",
             "k_max": "--k-max", "symmetric": "--no-symmetric",
             "weight_formats": "--weight-format", "weight format": "--weight-format",
             "table_format": "--table-format", "precompute": "--precompute",
             "tables_per_pe": "--tables-per-pe", "accumulation": "--accumulation",
             "output_buffer": "--output-buffer", "act_format": "--act",
             "table_bits": "--table-bits", "scale_block": "--scale-block",
             "pipeline": "--pipeline", "scale_stage_w": "--scale-stage-w",
             "scale_sig_bits": "--scale-sig-bits", "fp_column_lanes": "--fp-column-lanes",
             "precompute_rows": "--precompute-rows"}

#: config field -> the argparse destination of its option (where they differ)
_DEST_OF = {"g": "group"}

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DesignArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2.

    Options are taken only as spelled in full (no prefixes: ``--g`` is not ``--group``), so
    every tool accepts exactly the one spelling the others do.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)

    def parse_known_args(self, args=None, namespace=None):
        # ``--preset NAME`` turns the preset's fields into the defaults of their options, so an
        # option given explicitly still wins over the preset
        args = sys.argv[1:] if args is None else list(args)
        # (an unknown name is left to the option's own choices= error)
        if any(a.dest == "preset" for a in self._actions):
            name = _preset_name(args)
            if name in PRESETS:
                self.set_defaults(**{_DEST_OF.get(k, k): v for k, v in PRESETS[name].items()})
        return super().parse_known_args(args, namespace)


def _preset_name(args):
    """The value of the last ``--preset NAME`` / ``--preset=NAME`` before a ``--``."""
    name = None
    for i, a in enumerate(args):
        if a == "--":
            break
        if a == "--preset" and i + 1 < len(args):
            name = args[i + 1]
        elif a.startswith("--preset="):
            name = a.split("=", 1)[1]
    return name


def prog_name(module, script):
    """How the user called the tool: its console script's name (``lutcore-emit``) when run as
    one, else ``python -m <module>``, so error lines quote what was typed."""
    return script if os.path.basename(sys.argv[0] or "") == script else f"python -m {module}"


def _r(lo_hi):
    return f"{lo_hi[0]}..{lo_hi[1]}"


def add_design_args(p):
    d = LutConfig()
    g = p.add_argument_group("design point (gen.config.LutConfig)")
    g.add_argument("--preset", choices=sorted(PRESETS), metavar="NAME",
                   help="start from a named design point (options given explicitly override "
                        "it): " + "; ".join(f"{k}: " + ", ".join(
                            f"{OPTION_OF[f]} {v}" for f, v in fields.items())
                            for k, fields in sorted(PRESETS.items())))
    g.add_argument("--w-bits", type=int, default=d.w_bits, metavar="W",
                   help=f"largest weight precision in bits, {_r(W_BITS_RANGE)}; each operation "
                        f"picks its own 1..W at run time (default {d.w_bits})")
    g.add_argument("--a-bits", type=int, default=d.a_bits, metavar="A",
                   help=f"signed integer activation bits, {_r(A_BITS_RANGE)} (default {d.a_bits})")
    g.add_argument("--group", type=int, default=d.g, metavar="G",
                   help=f"group size g (the paper's K): activations per table, {_r(G_RANGE)} "
                        f"(default {d.g}, the paper's choice)")
    g.add_argument("--m", type=int, default=d.m,
                   help=f"tile rows: tables held at once, {_r(M_RANGE)} (default {d.m})")
    g.add_argument("--n", type=int, default=d.n,
                   help=f"tile columns sharing each table, {_r(N_RANGE)} (default {d.n}; "
                        "M2N64 is the paper's elongated tile)")
    g.add_argument("--k-max", type=int, default=d.k_max, metavar="K",
                   help=f"longest reduction one operation accumulates without overflow, "
                        f"{_r(K_MAX_RANGE)}; sizes the accumulators (default {d.k_max})")
    g.add_argument("--weight-format", action="append", metavar="FMT",
                   help="weight format the build supports at run time: "
                        f"{', '.join(f.label for f in WeightFormat)}; repeat or comma-separate "
                        "(default: every format valid for --w-bits)")
    g.add_argument("--no-symmetric", action="store_true",
                   help="store all 2^g table entries instead of the symmetric half 2^(g-1)")
    g.add_argument("--precompute", action="store_true",
                   help="engine only: build tables in hardware from activations (i_act) "
                        "instead of taking software-precomputed tables (i_table)")
    g.add_argument("--precompute-rows", type=int, default=d.precompute_rows, metavar="R",
                   help="with --precompute (q tables): rows of a group the precompute "
                        "quantizes per cycle, a divisor of --m; R = m keeps pace with the "
                        f"array at w = 1 (default {d.precompute_rows})")
    g.add_argument("--tables-per-pe", type=int, default=d.tables_per_pe, metavar="C",
                   help=f"tables per PE c, {_r(TABLES_PER_PE_RANGE)}: each PE sums c lookups "
                        f"per cycle into one accumulator, K per PE step = c*g "
                        f"(default {d.tables_per_pe})")
    g.add_argument("--accumulation", default=d.accumulation, metavar="KIND",
                   help=f"{' or '.join(ACCUMULATIONS)}: per-step partial register, or "
                        f"acc += tree << plane (default {d.accumulation})")
    g.add_argument("--output-buffer", default=d.output_buffer, metavar="KIND",
                   help=f"{', '.join(OUTPUT_BUFFERS)}: per-PE output registers, one registered "
                        f"result row, or drain from the accumulators (default {d.output_buffer})")
    g.add_argument("--pipeline", type=int, default=d.pipeline, metavar="P",
                   help=f"register stages added for timing, {_r(PIPELINE_RANGE)}: 1 registers "
                        "each PE's lookup output and the output stage, 2 also each step's "
                        "partial before the accumulator, 3 also cuts the accumulator, the "
                        "correction adder and the activation sums into pieces with registered "
                        f"carries (default {d.pipeline})")
    return p


def config_from_args(parser, args, **fields):
    """Build the LutConfig (``fields``: further LutConfig fields a tool sets from its own
    options), turning a config error into a one-line parser error (exit 2)."""
    formats = None
    if args.weight_format:
        formats = tuple(f.strip() for item in args.weight_format for f in item.split(",")
                        if f.strip())
    try:
        return LutConfig(w_bits=args.w_bits, a_bits=args.a_bits, g=args.group, m=args.m,
                         n=args.n, k_max=args.k_max, symmetric=not args.no_symmetric,
                         weight_formats=formats, precompute=args.precompute,
                         precompute_rows=args.precompute_rows,
                         tables_per_pe=args.tables_per_pe, accumulation=args.accumulation,
                         output_buffer=args.output_buffer, pipeline=args.pipeline,
                         **fields)
    except (TypeError, ValueError) as e:
        msg = str(e)
        for field in sorted(OPTION_OF, key=len, reverse=True):
            if msg.startswith(field + " "):
                msg = f"{OPTION_OF[field]}: {msg}"
                break
        parser.error(msg)


def check_name(parser, name):
    if name is not None and not NAME_RE.match(name):
        parser.error(f"--name must be a Verilog identifier ([A-Za-z_][A-Za-z0-9_]*), not {name!r}")
    return name


# -- shapes: one syntax for every CLI ------------------------------------------------------------
# A *tile* is the hardware array's shape, m rows x n columns x g (the paper's K, activations per
# group); a *GEMM shape* is a matrix product's M x K x N. Their orders differ (a tile names its
# reduction last, a GEMM in the middle, as in A[M,K] @ W[K,N]), so each has its own parser and
# name, and a tile can be written M8N4K16 so that it cannot be mistaken for a GEMM shape.
_TILE_RE = re.compile(r"^\s*(?:M(\d+)N(\d+)K(\d+)|(\d+)x(\d+)x(\d+))\s*$", re.I)
_GEMM_RE = re.compile(r"^\s*(\d+)x(\d+)x(\d+)\s*$", re.I)


def parse_tile(text):
    """A tile: ``"M8N4K16"`` or ``"8x4x16"`` -> ``(8, 4, 16)`` = (m rows, n columns, g = K)."""
    mt = _TILE_RE.match(str(text))
    if not mt:
        raise ValueError(f"a tile shape is MxNxK or MmNnKg (e.g. 8x4x16 or M8N4K16), "
                         f"not {text!r}")
    return tuple(int(x) for x in (mt.groups()[:3] if mt.group(1) else mt.groups()[3:]))


def tile_label(shape):
    """``(8, 4, 16)`` -> ``"M8N4K16"``: the spelling of a tile in reports."""
    return "M{}N{}K{}".format(*shape)


def parse_gemm_shape(text):
    """A GEMM shape ``"MxKxN"`` (A is M x K, W is K x N): ``"64x256x32"`` -> ``(64, 256, 32)``.

    Note the order: the reduction K is in the middle, unlike a tile (:func:`parse_tile`).
    """
    mt = _GEMM_RE.match(str(text))
    if not mt:
        raise ValueError(f"a GEMM shape is MxKxN, e.g. 64x256x256, not {text!r}")
    shape = tuple(int(x) for x in mt.groups())
    if min(shape) < 1:
        raise ValueError(f"GEMM shape dimensions must be >= 1, not {text!r}")
    return shape


def arg_type(parse):
    """``parse`` as an argparse ``type=``: its ValueError message becomes the option's error."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = parse.__name__
    return convert
