"""``lanes`` copies of one FP unit side by side, and its Verilog emitter.

A testbench drives one wide flat port per unit port (lane ``l`` of port ``p`` at
``[l*width(p) +: width(p)]``), so each simulator call evaluates ``lanes`` operations: the bulk
path of the cocotb tests (tb/test_fp_units.py).
"""
from __future__ import annotations

import json
from pathlib import Path

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.tools import atomic_write

from .units import FPAdder, FPDotProduct, FPIntMultiplier, FPMultiplier

__all__ = ["FPLanes", "UNITS", "build_unit", "emit_unit"]

#: unit name -> class; the parameters are the class's keyword arguments
UNITS = {"mul": FPMultiplier, "add": FPAdder, "dot": FPDotProduct, "int_mul": FPIntMultiplier}


def build_unit(unit, params, cls=None):
    """The unit ``unit`` (a key of :data:`UNITS`) built from ``params`` (dict), or ``cls``."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")
    return (cls or UNITS[unit])(**params)


class FPLanes(wiring.Component):
    """``lanes`` independent copies of the unit ``make()`` returns, ports concatenated."""

    def __init__(self, make, lanes=1):
        if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= 256:
            raise ValueError(f"lanes must be in 1..256, not {lanes!r}")
        self._make = make
        self.lanes = lanes
        proto = make()
        self.unit_ports = [(name, member.flow, Shape.cast(member.shape).width)
                           for name, member in proto.signature.members.items()]
        self._proto = proto
        super().__init__({name: (In if flow == wiring.In else Out)(lanes * width)
                          for name, flow, width in self.unit_ports})

    def elaborate(self, platform):
        m = Module()
        for lane in range(self.lanes):
            unit = self._proto if lane == 0 else self._make()
            m.submodules[f"lane{lane}"] = unit
            for name, flow, width in self.unit_ports:
                wide = getattr(self, name)[lane * width:(lane + 1) * width]
                if flow == wiring.In:
                    m.d.comb += getattr(unit, name).eq(wide)
                else:
                    m.d.comb += wide.eq(getattr(unit, name))
        return m


def emit_unit(unit, params, out_dir, *, lanes=1, name=None, cls=None):
    """Write ``<out_dir>/<name>.v`` and ``<name>.json`` for ``lanes`` copies of ``unit``.

    The name encodes every parameter (default ``fp_<unit>_<params>_l<lanes>``); the manifest
    holds the unit, its parameters, the lanes and the ports. Returns ``name``, ``verilog``,
    ``manifest`` and ``ports`` ((name, direction, width) tuples).
    """
    from amaranth.back import verilog
    params = dict(params)
    # built (and so validated) before anything is written
    top = FPLanes(lambda: build_unit(unit, params, cls), lanes)
    label = "".join(f"_{v}" for _, v in sorted(params.items()) if v is not None)
    name = name or f"fp_{unit}{label}_l{lanes}".replace("-", "m")
    text = verilog.convert(top, name=name, emit_src=False)
    ports = [(n, "input" if f == wiring.In else "output", lanes * w)
             for n, f, w in top.unit_ports]
    if any(p.get("registered") for p in [params]):
        ports = [("clk", "input", 1), ("rst", "input", 1)] + ports
    manifest = {"name": name, "unit": unit, "params": params, "lanes": lanes,
                "unit_ports": [{"name": n, "direction": "input" if f == wiring.In else "output",
                                "width": w} for n, f, w in top.unit_ports],
                "ports": [{"name": n, "direction": d, "width": w} for n, d, w in ports]}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vpath, jpath = out / f"{name}.v", out / f"{name}.json"
    atomic_write(vpath, text)
    atomic_write(jpath, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return {"name": name, "verilog": vpath, "manifest": jpath, "ports": ports}
