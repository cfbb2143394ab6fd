"""Static timing (and OpenSTA's own power figure) of a mapped netlist with OpenSTA (``sta``).

:func:`build_sta_script` writes the Tcl, :func:`run_sta` runs it and :func:`parse_checks` /
:func:`parse_power` read the reports. Constraints: one clock on ``clk`` with the requested
period, input and output delays 0 (ports are registered inside the design or go straight to
a register of the neighbour), no clock skew (ideal clock), no wires beyond the library's
default wire-load model. The minimum period is ``period - worst slack`` (the worst
register-to-register, input-to-register or register-to-output path including setup) and
Fmax = 1 / minimum period.

OpenSTA 2.0.17 quirks handled here:

* its Verilog reader refuses ``signed`` in port declarations, which Yosys' ``write_verilog``
  emits: :func:`sta_netlist` strips the keyword (it has no meaning for a gate netlist);
* it does not apply the library's ``default_operating_conditions`` and then reports no
  internal power at all: the script calls ``set_operating_conditions`` explicitly;
* it reports errors on stdout and goes on: any ``Error:`` line fails the run
  (:class:`StaError`), so a half-read netlist never yields a figure.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

__all__ = ["StaError", "build_sta_script", "run_sta", "parse_checks", "parse_power",
           "sta_netlist", "sta_binary", "sta_version", "time_design"]


class StaError(RuntimeError):
    """OpenSTA failed, reported an error or its report could not be read."""


def sta_binary():
    return shutil.which("sta")


def sta_version():
    exe = sta_binary()
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


_SIGNED_RE = re.compile(r"^(\s*(?:input|output|inout|wire|reg)\s+)signed\s+", re.M)


def sta_netlist(src, dest):
    """Copy a Yosys netlist for OpenSTA, without ``signed`` in declarations."""
    text = Path(src).read_text()
    Path(dest).write_text(_SIGNED_RE.sub(r"\1", text))
    return Path(dest)


def build_sta_script(liberty, netlist, top, period_ns, *, operating_conditions=None,
                     activity=None, duty=0.5, paths=1, power=True):
    """OpenSTA Tcl: read, link, constrain, ``report_checks`` and optionally ``report_power``
    with a uniform activity (transitions per clock period on every non-clock net)."""
    L = [f"read_liberty {liberty}",
         f"read_verilog {netlist}",
         f"link_design {top}",
         f"create_clock -name clk -period {period_ns} [get_ports clk]",
         "set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]",
         "set_output_delay 0 -clock clk [all_outputs]"]
    if operating_conditions:
        L.append(f"set_operating_conditions {operating_conditions}")
    L += ["puts \"@@checks\"",
          f"report_checks -path_delay max -group_count {paths} "
          "-fields {capacitance slew input_pin} -digits 4",
          "puts \"@@wns\"",
          "report_worst_slack -digits 4"]
    if power:
        if activity is not None:
            L.append(f"set_power_activity -global -activity {activity} -duty {duty}")
        L += ["puts \"@@power\"", "report_power -digits 8"]
    L.append("puts \"@@end\"")
    return "\n".join(L) + "\n"


def run_sta(script, workdir, *, timeout=3600, name="sta"):
    """Run ``sta`` on ``script`` in ``workdir``; return ``(stdout text, wall s)``."""
    exe = sta_binary()
    if exe is None:
        raise StaError("OpenSTA (`sta`) is not installed: `apt-get install opensta` "
                       "(make install does it)")
    workdir = Path(workdir)
    tcl = workdir / f"{name}.tcl"
    tcl.write_text(script)
    t0 = time.monotonic()
    try:
        proc = subprocess.run([exe, "-no_init", "-exit", tcl.name], cwd=workdir,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise StaError(f"OpenSTA did not finish within {timeout} s") from None
    wall = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    (workdir / f"{name}.log").write_text(out)
    errors = [ln for ln in out.splitlines() if ln.startswith("Error")]
    if proc.returncode != 0 or errors or "@@end" not in out:
        why = errors[0] if errors else (f"exit {proc.returncode}" if proc.returncode
                                        else "the script did not reach its end")
        raise StaError(f"OpenSTA failed ({why}); log {workdir / (name + '.log')}")
    return out, wall


_PIN_RE = re.compile(r"^\s*(?:[-\d.]+\s+){2,4}([\^v])\s+(\S+)\s+\((\S+)\)\s*$")
_SLACK_RE = re.compile(r"^\s*(-?[\d.]+)\s+slack\s+\((MET|VIOLATED)\)", re.M)
_ARRIVAL_RE = re.compile(r"^\s*(-?[\d.]+)\s+data arrival time", re.M)


def parse_checks(text):
    """The worst path of a ``report_checks`` report: start and end points, data arrival,
    slack and the cells on the path (instance, cell type, pin, edge, cumulative time)."""
    sp = re.search(r"^Startpoint: (\S+)(?: \((.*)\))?", text, re.M)
    ep = re.search(r"^Endpoint: (\S+)(?: \((.*)\))?", text, re.M)
    slack = _SLACK_RE.search(text)
    arrival = _ARRIVAL_RE.search(text)
    if not (sp and ep and slack and arrival):
        if "No paths found" in text:
            raise StaError("OpenSTA found no constrained path (no clock named clk?)")
        raise StaError("cannot read OpenSTA's report_checks output")
    steps = []
    for line in text[:arrival.start()].splitlines():
        m = _PIN_RE.match(line)
        if m:
            nums = [float(x) for x in line.split()[:line.split().index(m.group(1))]]
            inst, _, pin = m.group(2).rpartition("/")
            steps.append({"edge": "rise" if m.group(1) == "^" else "fall",
                          "instance": inst or None, "pin": pin, "cell": m.group(3),
                          "time": nums[-1]})
    cells = []
    for s in steps:
        if s["instance"] and (not cells or cells[-1]["instance"] != s["instance"]):
            cells.append({"instance": s["instance"], "cell": s["cell"], "time": s["time"]})
        elif s["instance"]:
            cells[-1]["time"] = s["time"]
    return {"startpoint": sp.group(1), "startpoint_kind": sp.group(2),
            "endpoint": ep.group(1), "endpoint_kind": ep.group(2),
            "arrival_ns": float(arrival.group(1)), "slack_ns": float(slack.group(1)),
            "met": slack.group(2) == "MET", "cells": cells}


_POWER_ROW_RE = re.compile(r"^(Sequential|Combinational|Macro|Pad|Total)\s+"
                           r"([-\d.eE+]+)\s+([-\d.eE+]+)\s+([-\d.eE+]+)\s+([-\d.eE+]+)", re.M)


def parse_power(text):
    """``report_power``'s table in watts: ``{group: {internal, switching, leakage, total}}``."""
    rows = {m.group(1).lower(): {k: float(v) for k, v in zip(
        ("internal", "switching", "leakage", "total"), m.groups()[1:])}
        for m in _POWER_ROW_RE.finditer(text)}
    if "total" not in rows:
        raise StaError("cannot read OpenSTA's report_power output")
    return rows


def time_design(netlist, top, workdir, lib, period_ns, *, activity=None, timeout=3600):
    """Time ``top`` of the Yosys ``netlist`` against ``lib`` at ``period_ns``; with
    ``activity``, also OpenSTA's power at that uniform activity. Returns the parsed reports,
    the minimum period, Fmax and the wall time."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sta_netlist(netlist, workdir / "netlist_sta.v")
    from .mapped import MAPPED_LIB, copy_library
    if not (workdir / MAPPED_LIB).is_file():
        copy_library(lib, workdir / MAPPED_LIB)
    script = build_sta_script(MAPPED_LIB, "netlist_sta.v", top, period_ns,
                              operating_conditions=lib.operating_conditions,
                              activity=activity, power=activity is not None)
    out, wall = run_sta(script, workdir, timeout=timeout)
    # Tcl's puts and the reports are buffered separately: parse the whole output, not the
    # text between the markers
    checks = parse_checks(out)
    wns = re.search(r"^worst slack (-?[\d.]+)", out, re.M)
    res = {"period_ns": period_ns, "critical_path": checks,
           "worst_slack_ns": float(wns.group(1)) if wns else checks["slack_ns"],
           "wall_s": round(wall, 3), "script": script, "version": sta_version()}
    res["min_period_ns"] = period_ns - res["worst_slack_ns"]
    res["fmax_mhz"] = 1000.0 / res["min_period_ns"] if res["min_period_ns"] > 0 else None
    if activity is not None:
        res["power_w"] = parse_power(out)
        res["power_activity"] = activity
    return res
