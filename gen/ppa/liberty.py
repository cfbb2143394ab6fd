"""Read a Liberty (``.lib`` / ``.lib.gz``) standard-cell library: what mapping, timing and
power need from it.

The whole file is tokenized and parsed into nested groups (:func:`parse`); :func:`load` keeps
per cell its area, leakage, flip-flop description (``ff`` group), and per pin the direction,
capacitance, Boolean ``function`` and ``internal_power`` tables. Parsing the 12.8 MB SkyWater
library takes a few seconds, so the summary is cached as JSON next to the work directory's copy
(keyed by the file's SHA-256).

Units are the library's: area in its area unit (µm² for sky130), capacitance in
``capacitive_load_unit`` (pF), internal energy per transition in capacitance x voltage²
(pF·V² = pJ), leakage in ``leakage_power_unit`` (nW for sky130).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
from bisect import bisect_right
from pathlib import Path

__all__ = ["LibertyError", "parse", "load", "Library", "DEFAULT_DONT_USE", "lookup_table",
           "read_text", "VENDORED", "vendored_liberty"]

#: cells the mappers must not use: sky130's low-power ``lpflow`` cells (isolation, keep-alive,
#: clock gating with special supplies) are legal Liberty cells that ABC otherwise picks for
#: plain logic; they need power-domain wiring the design does not have.
DEFAULT_DONT_USE = ("*lpflow*",)

#: the vendored library (SkyWater sky130_fd_sc_hd, typical corner)
VENDORED = {"sky130hd": "third_party/sky130hd/sky130_fd_sc_hd__tt_025C_1v80.lib.gz"}


class LibertyError(ValueError):
    """The file is not a Liberty library this reader understands."""


def vendored_liberty(name="sky130hd"):
    """Path of a vendored library by short name."""
    if name not in VENDORED:
        raise ValueError(f"lib must be one of {', '.join(VENDORED)}, not {name!r}")
    return Path(__file__).resolve().parents[2] / VENDORED[name]


def read_text(path):
    """The library's text (gunzipped when the file is gzip)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace")


_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|/\*.*?\*/|//[^\n]*|\\\r?\n|[{}();:,]'
                       r'|[^\s{}();:,"]+', re.S)


def _tokens(text):
    for m in _TOKEN_RE.finditer(text):
        t = m.group(0)
        if t.startswith("/*") or t.startswith("//") or t.startswith("\\"):
            continue
        yield t


def _unq(t):
    return t[1:-1] if len(t) >= 2 and t[0] == '"' and t[-1] == '"' else t


def parse(text):
    """Parse Liberty text into a tree of groups: ``{"type", "args", "attrs", "complex",
    "groups"}``; simple attributes keep their last value, complex attributes (``index_1(...)``)
    and groups keep their order."""
    toks = list(_tokens(text))
    pos = 0

    def new(kind, args):
        return {"type": kind, "args": args, "attrs": {}, "complex": [], "groups": []}

    root = new("root", [])
    stack = [root]
    n = len(toks)
    while pos < n:
        t = toks[pos]
        if t == "}":
            if len(stack) == 1:
                raise LibertyError(f"unbalanced '}}' at token {pos}")
            stack.pop()
            pos += 1
            if pos < n and toks[pos] == ";":
                pos += 1
            continue
        if pos + 1 >= n:
            raise LibertyError(f"unexpected end after {t!r}")
        nxt = toks[pos + 1]
        if nxt == ":":
            # simple attribute: name : value ;  (value may be several tokens, e.g. 1.0 pf)
            j = pos + 2
            vals = []
            while j < n and toks[j] not in (";", "}") and not (
                    j + 1 < n and toks[j + 1] == ":" and vals):
                vals.append(toks[j])
                j += 1
            stack[-1]["attrs"][t] = _unq(" ".join(vals))
            pos = j + 1 if j < n and toks[j] == ";" else j
        elif nxt == "(":
            j = pos + 2
            args = []
            while j < n and toks[j] != ")":
                if toks[j] != ",":
                    args.append(_unq(toks[j]))
                j += 1
            j += 1
            if j < n and toks[j] == "{":
                g = new(t, args)
                stack[-1]["groups"].append(g)
                stack.append(g)
                pos = j + 1
            else:
                stack[-1]["complex"].append((t, args))
                pos = j + 1 if j < n and toks[j] == ";" else j
        else:
            raise LibertyError(f"cannot parse near {' '.join(toks[pos:pos + 6])!r}")
    if len(stack) != 1:
        raise LibertyError("the file ends inside a group (truncated?)")
    libs = [g for g in root["groups"] if g["type"] == "library"]
    if not libs:
        raise LibertyError("no library group")
    return libs[0]


def _floats(s):
    return [float(x) for x in re.split(r"[,\s]+", s.strip()) if x]


def _table(group, templates):
    """``{"index_1": [...], "index_2": [...], "values": [[...]]}`` of a table group."""
    cx = {k: v for k, v in group["complex"]}
    tmpl = templates.get(group["args"][0] if group["args"] else "", {})
    out = {}
    for k in ("index_1", "index_2"):
        if k in cx:
            out[k] = _floats(cx[k][0])
        elif k in tmpl:
            out[k] = tmpl[k]
    out["vars"] = tmpl.get("vars", [])
    rows = [_floats(r) for r in cx.get("values", [])]
    out["values"] = rows
    return out


def lookup_table(table, x1, x2=None):
    """Bilinear interpolation (linear extrapolation at the edges) of a Liberty table at
    (``index_1`` = x1, ``index_2`` = x2); a scalar table returns its value."""
    vals = table["values"]
    if not vals:
        return 0.0
    i1 = table.get("index_1") or [0.0]
    i2 = table.get("index_2")
    if len(vals) == 1 and len(i1) > 1 and not i2:
        # a one-dimensional table stored as one row
        return _interp1(i1, vals[0], x1)
    if not i2 or len(vals[0]) == 1:
        return _interp1(i1, [r[0] for r in vals], x1)
    col = [_interp1(i2, row, x2) for row in vals]
    return _interp1(i1, col, x1)


def _interp1(xs, ys, x):
    if len(xs) == 1 or len(ys) == 1:
        return ys[0]
    k = min(max(bisect_right(xs, x) - 1, 0), len(xs) - 2)
    x0, x1 = xs[k], xs[k + 1]
    return ys[k] + (ys[k + 1] - ys[k]) * (x - x0) / (x1 - x0)


def _summarize(lib):
    templates = {}
    for g in lib["groups"]:
        if g["type"] in ("power_lut_template", "lu_table_template") and g["args"]:
            cx = {k: v for k, v in g["complex"]}
            t = {"vars": [g["attrs"].get(f"variable_{i}") for i in (1, 2)
                          if g["attrs"].get(f"variable_{i}")]}
            for k in ("index_1", "index_2"):
                if k in cx:
                    t[k] = _floats(cx[k][0])
            templates[g["args"][0]] = t
    a = lib["attrs"]
    cap_unit = dict(lib["complex"]).get("capacitive_load_unit", ["1", "pf"])
    op_name = a.get("default_operating_conditions")
    voltage = float(a["nom_voltage"]) if "nom_voltage" in a else None
    for g in lib["groups"]:
        if g["type"] == "operating_conditions" and (op_name is None or g["args"] == [op_name]):
            voltage = float(g["attrs"].get("voltage", voltage or 0.0))
            op_name = g["args"][0]
    wire_loads = {}
    for g in lib["groups"]:
        if g["type"] == "wire_load" and g["args"]:
            wire_loads[g["args"][0]] = {
                "capacitance": float(g["attrs"].get("capacitance", 0.0)),
                "slope": float(g["attrs"].get("slope", 0.0)),
                "fanout_length": sorted((int(float(a[0])), float(a[1])) for k, a in
                                        g["complex"] if k == "fanout_length")}
    cells = {}
    for c in lib["groups"]:
        if c["type"] != "cell" or not c["args"]:
            continue
        ca = c["attrs"]
        cell = {"area": float(ca.get("area", 0.0)),
                "leakage": float(ca.get("cell_leakage_power", a.get(
                    "default_cell_leakage_power", 0.0))),
                "dont_use": ca.get("dont_use") == "true",
                "pins": {}, "ff": None, "latch": None}
        for g in c["groups"]:
            if g["type"] in ("ff", "latch"):
                cell[g["type"]] = {"names": g["args"], **g["attrs"]}
            elif g["type"] == "pin" and g["args"]:
                pa = g["attrs"]
                pin = {"direction": pa.get("direction"),
                       "capacitance": float(pa.get("capacitance", 0.0)),
                       "function": pa.get("function"),
                       "clock": pa.get("clock") == "true",
                       "power": []}
                for ip in g["groups"]:
                    if ip["type"] != "internal_power":
                        continue
                    entry = {"related_pin": ip["attrs"].get("related_pin"),
                             "when": ip["attrs"].get("when")}
                    for t in ip["groups"]:
                        if t["type"] in ("rise_power", "fall_power", "power"):
                            entry[t["type"]] = _table(t, templates)
                    pin["power"].append(entry)
                for name in g["args"]:
                    cell["pins"][name] = pin
        cells[c["args"][0]] = cell
    return {"name": lib["args"][0] if lib["args"] else None,
            "units": {"time": a.get("time_unit"), "capacitance": " ".join(cap_unit),
                      "leakage_power": a.get("leakage_power_unit"),
                      "voltage": a.get("voltage_unit")},
            "voltage": voltage, "operating_conditions": op_name,
            "default_max_transition": float(a.get("default_max_transition", 1.5)),
            "wire_load": wire_loads.get(a.get("default_wire_load")),
            "wire_load_name": a.get("default_wire_load"),
            "cells": cells}


class Library:
    """The summary of one Liberty file (see :func:`load`)."""

    def __init__(self, data, path=None):
        self.data = data
        self.path = path
        self.name = data["name"]
        self.cells = data["cells"]
        self.voltage = data["voltage"]
        self.operating_conditions = data["operating_conditions"]
        self.units = data["units"]
        self.wire_load = data.get("wire_load")

    def wire_cap(self, fanout):
        """Wire capacitance of a net with ``fanout`` loads from the default wire-load model
        (length from ``fanout_length``, extrapolated with ``slope``); 0 without a model."""
        wl = self.wire_load
        if not wl or fanout <= 0:
            return 0.0
        table = dict(wl["fanout_length"])
        if fanout in table:
            length = table[fanout]
        else:
            top = max(table) if table else 0
            length = (table[top] if table else 0.0) + wl["slope"] * (fanout - top)
        return wl["capacitance"] * length

    def is_sequential(self, cell):
        c = self.cells[cell]
        return c["ff"] is not None or c["latch"] is not None

    def output_pins(self, cell):
        return [p for p, d in self.cells[cell]["pins"].items() if d["direction"] == "output"]

    def input_pins(self, cell):
        return [p for p, d in self.cells[cell]["pins"].items() if d["direction"] == "input"]


_CACHE: dict = {}


def load(path, cache_dir=None):
    """Parse (or read the cached summary of) the Liberty file ``path``; return a
    :class:`Library`. ``cache_dir``: where to keep ``<sha256>.libjson`` (default: none)."""
    path = Path(path)
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest in _CACHE:
        return _CACHE[digest]
    cached = Path(cache_dir) / f"liberty_{digest[:16]}.json" if cache_dir else None
    if cached is not None and cached.is_file():
        data = json.loads(cached.read_text())
    else:
        data = _summarize(parse(read_text(path)))
        if not data["cells"]:
            raise LibertyError(f"{path}: no cells")
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(data))
    lib = Library(data, path)
    _CACHE[digest] = lib
    return lib
