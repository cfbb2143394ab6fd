"""One design's PPA: mapped area (µm²), OpenSTA timing and simulated power, as one dict.

:func:`ppa_design` is the API (``gen.synth --compare`` and the DSE can call it):

1. **area, hierarchical** (:func:`gen.ppa.mapped.map_design`, ``flatten=False``): the PE is
   its own module, mapped once and counted per instance, as in the generic-gate flow; module
   types are grouped by name (``col_0 .. col_63`` -> ``col``);
2. **area, timing and power netlist, flat** (``flatten=True``): the whole array mapped at once,
   so ABC sees every fanout and buffers the nets broadcast to all PEs; its area is reported
   next to the hierarchical one (the difference is the price of that buffering); or
   (``flat="buffer"``) the hierarchical mapping with buffer trees on its high-fanout nets
   (:mod:`gen.ppa.fanout`), flattened: quick for arrays too large for a flat ABC run;
3. **timing**: OpenSTA on the flat netlist (the array) and on the PE module of the
   hierarchical netlist (the PE as counted in the area);
4. **power** (optional): gate-level simulation of the flat netlist with each stimulus
   (:mod:`gen.ppa.stimulus`), energy from the Liberty tables (:mod:`gen.ppa.power`), and the
   cross-check against OpenSTA's ``report_power`` at one uniform activity.
"""
from __future__ import annotations

import hashlib
import re
import resource
import time
from pathlib import Path

import numpy as np

from .. import golden
from . import gatesim, power as pw, sta as sta_mod
from .liberty import load, vendored_liberty
from .mapped import flatten_mapped, map_design
from .stimulus import Stimulus, operand_streams

__all__ = ["ppa_design", "module_types", "simulate_power", "uniform_check",
           "DEFAULT_CLOCK_NS", "UNIFORM_ACTIVITY", "SIMULATORS"]

#: clock period (ns) that ABC targets (``abc -D``) and OpenSTA checks when none is given
DEFAULT_CLOCK_NS = 10.0
#: transitions per cycle on every non-clock net for the OpenSTA cross-check
UNIFORM_ACTIVITY = 0.2
#: gate-level simulators of the power run: the project's cycle-based NumPy simulator
#: (default), Icarus, Verilator
SIMULATORS = ("cycle",) + gatesim.SIMULATORS


def cpu_seconds():
    """CPU time of this process and its finished children (Yosys, OpenSTA, simulators): on
    a shared machine the wall time measures the load, this the work."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _label(name):
    return ".".join(re.sub(r"(_\d+)+$", "", part) or part for part in name.split("."))


def module_types(stat, top):
    """Group the per-module areas of :func:`gen.ppa.mapped.parse_stat` into module types
    (same name pattern and same local area), each with its instance count."""
    groups = {}
    for name, m in stat["modules"].items():
        key = (_label(name), round(m["area"], 3), round(m["area_with_submodules"], 3))
        g = groups.setdefault(key, {"type": key[0], "modules": [], "instances": 0,
                                    "area": m["area"], "sequential_area": m["sequential_area"],
                                    "ff_bits": m["ff_bits"], "num_cells": m["num_cells"],
                                    "area_with_submodules": m["area_with_submodules"],
                                    "is_top": name == top})
        g["modules"].append(name)
        g["instances"] += m["instances"]
    out = sorted(groups.values(), key=lambda g: (not g["is_top"], -g["area"] * g["instances"]))
    total = stat["total"]["area"]
    for g in out:
        g["total_area"] = g["area"] * g["instances"]
        g["share"] = g["total_area"] / total if total else 0.0
    return out


def simulate_power(netlist, top, workdir, lib, cfg, kind, stim: Stimulus, *,
                   period_ns=DEFAULT_CLOCK_NS, slew_ns=pw.DEFAULT_SLEW_NS, simulator="cycle"):
    """Gate-level simulation of the flat ``netlist`` with ``stim``; check every result beat
    against the golden model and return the energy per operation, per MAC and per cycle.

    ``simulator``: one of :data:`SIMULATORS`: ``cycle`` (default; :mod:`gen.ppa.cyclesim`,
    no build step, toggles counted in memory, with the batch-means statistical error of the
    energy), ``icarus`` or ``verilator`` (event-driven, via a VCD of every net)."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ops = operand_streams(cfg, kind, stim)
    t0, c0 = time.monotonic(), cpu_seconds()
    text = Path(netlist).read_text()
    nl = gatesim.parse_netlist(text, lib)
    reset_cycles = 2
    max_cycles = 20 * sum(len(v) for v in ops["streams"].values()) + 100
    stats = per_pin = None
    if simulator == "cycle":
        from . import cyclesim
        model = cyclesim.build_model(text, nl, lib)
        t_build = time.monotonic()
        per_pin = pw.toggle_energy(lib, nl, slew_ns=slew_ns)
        weights = np.zeros(model.n_nets)
        for _, inst, conns in nl["instances"]:
            for pin, net in conns.items():
                e = per_pin.get((inst, pin))
                if e:
                    weights[model.index[net.lstrip("\\")]] += e
        sim = cyclesim.run_streams(model, ops["streams"], ops["result_beats"],
                                   reset_cycles=reset_cycles, max_cycles=max_cycles,
                                   weights=weights)
        run = {"simulator": "cycle", "build_s": t_build - t0, "run_s": sim["run_s"],
               "levels": model.levels}
        beats = sim["results"]
        net_toggles = sim["toggles"]
        cycles = sim["cycles"]
        stats = _batch_error(sim["per_cycle"])
    else:
        used = {c for c, _, _ in nl["instances"]}
        (workdir / "cells.v").write_text(gatesim.cell_models(lib, used))
        sta_mod.sta_netlist(netlist, workdir / "netlist.v")
        streams = dict(ops["streams"], __results__=ops["result_beats"])
        gatesim.write_testbench(workdir, top, nl["ports"], streams, period_ns=10,
                                reset_cycles=reset_cycles, max_cycles=max_cycles)
        run = gatesim.simulate(workdir, ["cells.v", "netlist.v", "tb.v"], simulator=simulator)
        lines = [ln.strip() for ln in (workdir / "results.hex").read_text().splitlines()
                 if ln.strip()]
        beats = [int(x, 16) for x in lines]
    if len(beats) != ops["result_beats"]:
        raise gatesim.GateSimError(f"gate-level run gave {len(beats)} result beats, expected "
                                   f"{ops['result_beats']} (timeout?); {workdir}")
    m = cfg.m
    for i, exp in enumerate(ops["expected"]):
        got = golden.unpack_results(cfg, beats[i * m:(i + 1) * m])
        if not np.array_equal(got, exp):
            raise gatesim.GateSimError(f"mapped netlist differs from the golden model in "
                                       f"operation {i} ({(got != exp).sum()} results); {workdir}")
    if simulator != "cycle":
        vcd = workdir / "trace.vcd"
        scale = _vcd_ns(vcd)
        start_ns = reset_cycles * 10 + 5
        net_toggles = gatesim.count_net_toggles(vcd, start_ns / scale)
        end_ns = _vcd_end(vcd) * scale
        cycles = int(round((end_ns - start_ns) / 10))
        vcd.unlink(missing_ok=True)       # large; the counts are kept in the report
    toggles = gatesim.pin_toggles(nl, net_toggles)
    e = pw.energy(lib, nl, toggles, cycles, period_ns, slew_ns=slew_ns)
    if e["missing_pins"]:
        raise gatesim.GateSimError(f"{len(e['missing_pins'])} cell pins have no toggle count "
                                   f"in the trace (e.g. {e['missing_pins'][:3]}); {workdir}")
    tot = e["energy_pj"]["total"]
    if per_pin is None:
        per_pin = pw.toggle_energy(lib, nl, slew_ns=slew_ns)
    data_pins = [v for (i, p), v in toggles.items() if p not in ("CLK",)]
    return {"stimulus": stim.__dict__ | {"w_bits": ops["w_bits"]}, "cycles": cycles,
            "macs": ops["macs"], "operations": stim.ops, "results_checked": len(beats),
            "energy_pj": e["energy_pj"], "by_kind_pj": e["by_kind_pj"],
            "input_port_nets_pj": e["input_port_nets_pj"],
            "pj_per_op": tot / stim.ops, "pj_per_mac": tot / ops["macs"],
            "pj_per_cycle": tot / cycles,
            "mean_toggles_per_pin_per_cycle": (sum(data_pins) / len(data_pins) / cycles
                                               if data_pins else 0.0),
            "slew_ns": slew_ns, "internal_rule": e["internal_rule"],
            "energy_error": stats, "by_block_pj": energy_by_block(toggles, per_pin),
            "simulator": run["simulator"], "sim_build_s": round(run["build_s"], 1),
            "sim_run_s": round(run["run_s"], 1),
            "wall_s": round(time.monotonic() - t0, 1), "cpu_s": round(cpu_seconds() - c0, 1)}


def energy_by_block(toggles, per_pin):
    """Switching + internal energy (pJ) per block: the instance path of each cell without its
    own name, indices dropped (``pe_3_5.accumulator._12_`` -> ``pe.accumulator``; cells of
    the top module -> ``top``)."""
    out = {}
    for (inst, pin), n in toggles.items():
        e = per_pin.get((inst, pin))
        if e and n:
            parts = inst.lstrip("\\").split(".")[:-1]
            key = ".".join(_label(x) for x in parts) or "top"
            out[key] = out.get(key, 0.0) + e * n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


#: batches of the batch-means estimate of the energy's statistical error
ERROR_BATCHES = 8


def _batch_error(per_cycle, batches=ERROR_BATCHES):
    """Relative standard error of the mean switching + internal energy per cycle, by batch
    means: the counted cycles cut into ``batches`` consecutive batches (consecutive cycles
    are correlated, batch means much less), ``std(batch means) / sqrt(batches) / mean``.
    The batches also differ by the window's profile (pipeline fill and drain, the operation
    period), so this overstates the sampling error (docs/ppa.md: two operand seeds 0.4 %
    apart where this says 6-15 %)."""
    x = np.asarray(per_cycle, dtype=float)
    b = min(batches, len(x) // 2)
    if b < 2 or not x.sum():
        return None
    n = len(x) // b
    means = x[:n * b].reshape(b, n).mean(axis=1)
    return {"batches": b, "cycles_per_batch": n,
            "relative_standard_error": float(means.std(ddof=1) / np.sqrt(b) / x.mean())}


def _vcd_ns(path):
    """Nanoseconds per VCD time unit."""
    with open(path) as fh:
        head = ""
        for line in fh:
            head += line
            if "$enddefinitions" in line:
                break
    m = re.search(r"\$timescale\s*(\d+)\s*(s|ms|us|ns|ps|fs)", head)
    if not m:
        return 1.0
    return int(m.group(1)) * {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0, "ps": 1e-3,
                              "fs": 1e-6}[m.group(2)]


def _vcd_end(path):
    last = 0
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - (1 << 20)))
        for line in fh.read().splitlines():
            if line.startswith(b"#"):
                last = int(line[1:])
    return last


def uniform_check(netlist, top, workdir, lib, period_ns, activity=UNIFORM_ACTIVITY):
    """This module's energy model and OpenSTA's ``report_power`` at one uniform activity:
    the ratios (ours / OpenSTA) with OpenSTA's internal-power rule and with ours."""
    nl = gatesim.parse_netlist(Path(netlist).read_text(), lib)
    t = sta_mod.time_design(netlist, top, workdir, lib, period_ns, activity=activity)
    sta_w = t["power_w"]["total"]
    cycles = 1000
    out = {"activity": activity, "opensta_w": t["power_w"], "sta_wall_s": t["wall_s"]}
    for rule in ("input", "output"):
        e = pw.energy(lib, nl, pw.uniform_toggles(lib, nl, activity, cycles), cycles,
                      period_ns, internal=rule)["energy_pj"]
        watts = {k: v / cycles / period_ns * 1e-3 for k, v in e.items()}
        out[f"ours_{rule}_rule_w"] = watts
        out[f"ratio_{rule}_rule"] = {k: (watts[k] / sta_w[k] if sta_w[k] else None)
                                     for k in ("switching", "internal", "leakage", "total")}
    return out


def flat_mode_text(run):
    if run.get("fanout"):
        f = run["fanout"]
        return (f"hierarchical mapping with buffer trees on nets of more than {f['max_fanout']} "
                f"sinks ({f['buffers']} `{f['cell']}`), flattened")
    return ("flat ABC run" if run.get("constraints") is not None
            else "hierarchical mapping, flattened")


def ppa_design(verilog_path, top, workdir, *, liberty=None, clock_ns=None, activity=None,
               pe_module=None, cfg=None, kind="array", check_power=True, timeout=3600,
               simulator="cycle", reuse=False, flat="map", adder="ripple"):
    """Area, timing and (with ``activity``, a list of :class:`Stimulus`) power of ``top``.

    ``liberty``: a Liberty file (default: the vendored sky130hd library). ``clock_ns``: the
    clock ABC targets and OpenSTA checks (default :data:`DEFAULT_CLOCK_NS`). ``pe_module``:
    the PE module to time on its own. ``cfg`` / ``kind``: the design's config and what it is
    (``array``, ``mac_dequant``, ``mac_direct``), needed for the power stimulus. Raises
    :class:`gen.synth.SynthesisError`, :class:`gen.ppa.sta.StaError` or
    :class:`gen.ppa.gatesim.GateSimError` when a step fails: no figure from a partial run.
    ``adder``: carry structure of the adders (:data:`gen.ppa.mapped.ADDERS`).
    """
    workdir = Path(workdir)
    lib_path = Path(liberty) if liberty else vendored_liberty()
    lib = load(lib_path)
    period = float(clock_ns or DEFAULT_CLOCK_NS)
    t0, c0 = time.monotonic(), cpu_seconds()
    hier = map_design(verilog_path, top, workdir / "hier", lib, delay_ps=period * 1000,
                      timeout=timeout, reuse=reuse, adder=adder)
    t1, c1 = time.monotonic(), cpu_seconds()
    if flat == "map":
        flat_run = map_design(verilog_path, top, workdir / "flat", lib, flatten=True,
                              delay_ps=period * 1000, timeout=timeout, reuse=reuse,
                              adder=adder)
    elif flat == "flatten":
        flat_run = flatten_mapped(hier["netlist"], top, workdir / "flat_of_hier", lib,
                                  timeout=timeout)
    elif flat == "buffer":
        from .fanout import buffer_fanout
        fanout = buffer_fanout(hier["netlist"], top, workdir / "fanout", lib, timeout=timeout)
        flat_run = flatten_mapped(fanout["netlist"], top, workdir / "flat_of_buffered", lib,
                                  timeout=timeout)
        flat_run["fanout"] = {k: (str(v) if k == "netlist" else v) for k, v in fanout.items()}
    else:
        raise ValueError(f"flat must be map, flatten or buffer, not {flat!r}")
    flat = flat_run
    t2, c2 = time.monotonic(), cpu_seconds()
    timing = {"array": sta_mod.time_design(flat["netlist"], top, workdir / "sta_array", lib,
                                           period, timeout=timeout)}
    c3 = cpu_seconds()
    if pe_module:
        timing["pe"] = sta_mod.time_design(hier["netlist"], pe_module, workdir / "sta_pe", lib,
                                           period, timeout=timeout)
    c4 = cpu_seconds()
    res = {
        "top": top, "pe_module": pe_module, "kind": kind, "clock_ns": period, "adder": adder,
        "liberty": {"file": lib_path.name, "library": lib.name,
                    "sha256": hashlib.sha256(lib_path.read_bytes()).hexdigest(),
                    "voltage": lib.voltage, "operating_conditions": lib.operating_conditions,
                    "units": lib.units},
        "area": {"hierarchical": hier["stat"]["total"],
                 "types": module_types(hier["stat"], top),
                 "flat": flat["stat"]["total"], "flat_netlist": flat_mode_text(flat_run),
                 "fanout_buffers": flat_run.get("fanout")},
        "timing": {k: {kk: vv for kk, vv in v.items() if kk != "script"}
                   for k, v in timing.items()},
        "flow": {"yosys": hier["run"]["version"], "opensta": timing["array"]["version"],
                 "script_hierarchical": hier["script"], "script_flat": flat["script"],
                 "flat_netlist": flat_mode_text(flat_run),
                 "abc_constraints": hier["constraints"],
                 "sta_script": timing["array"]["script"]},
        "wall_s": {"map_hierarchical": round(t1 - t0, 1), "map_flat": round(t2 - t1, 1),
                   "sta_array": timing["array"]["wall_s"],
                   "sta_pe": timing.get("pe", {}).get("wall_s")},
        # CPU seconds (Yosys, OpenSTA and this process): the work, whatever the load
        "cpu_s": {"map_hierarchical": round(c1 - c0, 1), "map_flat": round(c2 - c1, 1),
                  "sta_array": round(c3 - c2, 1),
                  "sta_pe": round(c4 - c3, 1) if pe_module else None},
        "power": {},
    }
    if activity:
        if cfg is None:
            raise ValueError("cfg is required for the power simulation (activity)")
        for stim in activity:
            key = f"{stim.source}_{stim.fmt}{stim.w_bits or cfg.w_bits}"
            res["power"][key] = simulate_power(flat["netlist"], top,
                                               workdir / f"power_{key}", lib, cfg, kind, stim,
                                               period_ns=period, simulator=simulator)
        if check_power:
            res["power_check"] = uniform_check(flat["netlist"], top, workdir / "power_check",
                                               lib, period)
    return res
