"""The sweep's opt-in PPA columns (``python -m gen.dse --ppa area,timing[,power]``).

Each point that has a synthesis record can also get real-cell figures from :mod:`gen.ppa`
(the sky130hd library unless ``--liberty``), cached next to the generic-gate records:

``area``   the hierarchical mapping of :func:`gen.ppa.mapped.map_design` (the PE mapped once
           and counted per instance, as in the generic-gate flow): µm², sequential share;
``timing`` :func:`gen.ppa.flow.ppa_design` with ``flat="buffer"`` (the flow of
           ``gen.ppa compare``: the hierarchical mapping with buffer trees on its high-fanout
           nets, flattened, timed whole by OpenSTA; a flat ABC run of a large MAC array does
           not finish in useful time): its area, minimum period and Fmax, the PE's period;
``power``  the same run with a gate-level simulation of random operands (every result
           checked against the golden model): pJ per MAC. Integer points only: the stimulus
           packs integer operands (:func:`gen.ppa.stimulus.operand_streams`); an FP point's
           power is recorded as not measured.

Keys: ``<cache>/ppa/<key>.json`` with ``key`` the SHA-256 of the point's synthesis key (its
netlist, among others), the parts asked for, the clock ABC targets and OpenSTA checks, the
liberty file's hash, the OpenSTA and Yosys versions, the power stimulus and every source file
of :mod:`gen.ppa` and of this module (:func:`ppa_context`).

Figures (:func:`ppa_columns`): TOPS/mm² = ``2 * MACs per cycle * f / area`` (one MAC = two
operations) at the design's own Fmax and at a common clock (``--ppa-common-mhz``, default the
slowest Fmax of the sweep's rows), pJ per MAC and TOPS/W = ``2 / pJ per MAC``.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ..tools import atomic_write

__all__ = ["PARTS", "DEFAULT_CLOCK_NS", "POWER_MACS", "POWER_K", "parse_parts", "ppa_context",
           "ppa_key", "load_ppa", "store_ppa", "run_ppa", "ppa_columns", "with_common_clock",
           "PPA_FIELDS"]

PARTS = ("area", "timing", "power")
#: the clock ABC maps for and OpenSTA checks (the ``gen.ppa compare`` default)
DEFAULT_CLOCK_NS = 5.0
#: operands of the power run: about this many MACs, reductions of ``POWER_K``
POWER_MACS = 4096
POWER_K = 64            # (at most the point's k_max)
#: the row columns the PPA adds (None where a part did not run)
PPA_FIELDS = ["ppa_clock_ns", "area_um2", "area_flat_um2", "ff_area_share", "min_period_ns",
              "fmax_mhz", "pe_min_period_ns", "tops_per_mm2_own", "tops_per_mm2_common",
              "pj_per_mac", "tops_per_w"]

_PPA = Path(__file__).resolve().parents[1] / "ppa"


def parse_parts(text):
    """``"area,timing"`` -> ``("area", "timing")``; power needs timing's run (it adds it)."""
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise ValueError(f"--ppa must list parts among {', '.join(PARTS)}, not {text!r}")
    if "power" in parts and "timing" not in parts:
        parts += ("timing",)
    return tuple(p for p in PARTS if p in parts)


def _sources_hash():
    h = hashlib.sha256()
    for p in sorted(_PPA.glob("*.py")) + [Path(__file__).resolve()]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def ppa_context(parts, clock_ns=DEFAULT_CLOCK_NS, liberty=None):
    """Everything besides the point's synthesis key that determines its PPA record."""
    from ..ppa.liberty import vendored_liberty
    from ..ppa.sta import sta_version
    from ..synth.yosys import yosys_version
    lib = Path(liberty) if liberty else vendored_liberty()
    return {"parts": list(parts), "clock_ns": float(clock_ns), "liberty": str(lib.resolve()),
            "liberty_sha256": hashlib.sha256(lib.read_bytes()).hexdigest(),
            "opensta": sta_version() if "timing" in parts else None,
            "yosys": yosys_version(), "sources": _sources_hash(),
            "power": {"source": "random", "macs": POWER_MACS, "k": POWER_K}
            if "power" in parts else None}


def ppa_key(synth_key, context):
    material = {"synth_key": synth_key,
                **{k: v for k, v in context.items() if k != "liberty"}}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def load_ppa(cache, key):
    try:
        data = json.loads((Path(cache) / "ppa" / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    return data["ppa"] if isinstance(data, dict) and data.get("key") == key else None


def store_ppa(cache, key, label, context, record):
    d = Path(cache) / "ppa"
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / f"{key}.json", json.dumps({"key": key, "point": label, "context": context,
                                                "ppa": record}, indent=1, sort_keys=True)
                 + "\n")


def _weight_format(cfg):
    want = "binary" if cfg.w_bits == 1 else "int"
    return want if want in cfg.weight_formats else cfg.weight_formats[0]


def run_ppa(point, verilog, name, pe_module, workdir, context, timeout):
    """The PPA record of ``point`` (its emitted ``verilog``, top ``name``) in ``workdir``.
    Raises what :mod:`gen.ppa` raises when a step fails: no record from a partial run."""
    from ..ppa.flow import ppa_design
    from ..ppa.liberty import load
    from ..ppa.mapped import map_design
    parts, clock = context["parts"], context["clock_ns"]
    t0 = time.monotonic()
    rec = {"parts": parts, "clock_ns": clock}
    if "timing" not in parts:
        lib = load(Path(context["liberty"]))
        hier = map_design(verilog, name, Path(workdir) / "hier", lib, delay_ps=clock * 1000,
                          timeout=timeout)
        rec["area"] = hier["stat"]["total"]
        rec["wall_s"] = round(time.monotonic() - t0, 1)
        return rec
    stims, cfg = None, point.config()
    if "power" in parts:
        if point.fp:
            rec["power_note"] = ("not measured: the gate-level stimulus packs integer "
                                 "operands only")
        else:
            from ..ppa.stimulus import Stimulus
            k = min(POWER_K, cfg.k_max)          # a reduction the build can hold
            stims = [Stimulus("random", ops=max(1, round(POWER_MACS / (cfg.m * cfg.n * k))),
                              k=k, fmt=_weight_format(cfg))]
    res = ppa_design(verilog, name, Path(workdir), liberty=context["liberty"], clock_ns=clock,
                     activity=stims, pe_module=pe_module, cfg=cfg, kind=point.top,
                     check_power=False, timeout=timeout, flat="buffer")
    rec["area"] = res["area"]["hierarchical"]
    rec["area_flat"] = res["area"]["flat"]
    t = res["timing"]
    rec["timing"] = {"min_period_ns": t["array"]["min_period_ns"],
                     "fmax_mhz": t["array"]["fmax_mhz"],
                     "critical_path": {k: t["array"]["critical_path"].get(k)
                                       for k in ("startpoint", "endpoint")},
                     "pe_min_period_ns": t.get("pe", {}).get("min_period_ns")}
    if res["power"]:
        p = next(iter(res["power"].values()))
        rec["power"] = {f: p[f] for f in ("pj_per_mac", "pj_per_cycle", "macs", "cycles",
                                          "results_checked") if f in p}
        rec["power"].update(source=stims[0].source, ops=stims[0].ops, k=stims[0].k,
                            fmt=stims[0].fmt)
    rec["wall_s"] = round(time.monotonic() - t0, 1)
    return rec


def ppa_columns(ppa, macs_per_cycle):
    """The row columns of one PPA record (:data:`PPA_FIELDS`); ``tops_per_mm2_common`` is
    filled in by :func:`with_common_clock` once every row is known."""
    cols = dict.fromkeys(PPA_FIELDS)
    if not ppa:
        return cols
    cols["ppa_clock_ns"] = ppa["clock_ns"]
    cols["area_um2"] = ppa["area"]["area"]
    cols["ff_area_share"] = ppa["area"]["ff_share"]
    if "area_flat" in ppa:
        cols["area_flat_um2"] = ppa["area_flat"]["area"]
    area = cols["area_flat_um2"] or cols["area_um2"]
    if "timing" in ppa:
        fmax = ppa["timing"]["fmax_mhz"]
        cols.update(min_period_ns=ppa["timing"]["min_period_ns"], fmax_mhz=fmax,
                    pe_min_period_ns=ppa["timing"]["pe_min_period_ns"])
        if fmax:
            cols["tops_per_mm2_own"] = _tops_per_mm2(macs_per_cycle, fmax, area)
    if ppa.get("power"):
        cols["pj_per_mac"] = ppa["power"]["pj_per_mac"]
        cols["tops_per_w"] = 2.0 / cols["pj_per_mac"]
    return cols


def _tops_per_mm2(macs, mhz, area_um2):
    """``2 * macs * f / area``: two operations per MAC, TOPS per mm²."""
    return 2 * macs * mhz * 1e6 / 1e12 / (area_um2 * 1e-6)


def with_common_clock(rows, common_mhz=None):
    """Fill ``tops_per_mm2_common`` of every row with a PPA area at ``common_mhz`` (default:
    the slowest Fmax among the rows); return the clock used (None: no row has an Fmax)."""
    fmaxes = [r["fmax_mhz"] for r in rows if r.get("fmax_mhz")]
    common = common_mhz or (min(fmaxes) if fmaxes else None)
    if common:
        for r in rows:
            area = r.get("area_flat_um2") or r.get("area_um2")
            if area:
                r["tops_per_mm2_common"] = _tops_per_mm2(r["macs_per_cycle"], common, area)
    return common
