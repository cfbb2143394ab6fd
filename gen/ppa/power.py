"""Power from simulated switching activity, with the Liberty library's own numbers.

Energy of a simulated window of ``cycles`` clock cycles (V = the library's voltage):

* **switching**: every toggle of a cell input pin charges or discharges that pin,
  ``0.5 * C_pin * V²`` per toggle; every toggle of a cell output charges the wire of its net,
  ``0.5 * C_wire(fanout) * V²`` (the library's default wire-load model). Summed over pins this
  is ``0.5 * C_net * V²`` per net toggle;
* **internal**: a toggle of an output pin costs the mean of its ``internal_power`` rise and
  fall tables over the related input pins, looked up at a nominal input slew and the net's load
  (pin capacitances + wire); a toggle of an input pin costs the mean of that pin's own tables
  (for a flip-flop's ``CLK`` pin this is the clock energy, two toggles per cycle);
* **leakage**: ``cell_leakage_power`` of every cell over the window.

Toggles come from the gate-level simulation (:mod:`gen.ppa.gatesim`), counted per cell pin, or
for the cross-check with OpenSTA from a uniform activity (:func:`uniform_toggles`).
"""
from __future__ import annotations

from collections import Counter, defaultdict

from .liberty import lookup_table

__all__ = ["net_loads", "energy", "uniform_toggles", "toggle_energy", "DEFAULT_SLEW_NS",
           "is_constant"]

#: input slew for the internal-power tables (ns): a typical transition of a lightly loaded
#: gate in the mapped netlists (OpenSTA's critical paths show 0.05 - 0.3 ns)
DEFAULT_SLEW_NS = 0.1


def is_constant(net):
    return "'" in net and net.split("'")[0].isdigit() or net in ("", "1'h0", "1'h1")


def net_loads(lib, netlist):
    """``{net: (pin capacitance sum, fanout)}`` and ``{net: driver (cell, inst, pin)}``."""
    cap = defaultdict(float)
    fan = Counter()
    drivers = {}
    for cell, inst, conns in netlist["instances"]:
        pins = lib.cells[cell]["pins"]
        for pin, net in conns.items():
            if is_constant(net) or pin not in pins:
                continue
            if pins[pin]["direction"] == "input":
                cap[net] += pins[pin]["capacitance"]
                fan[net] += 1
            elif pins[pin]["direction"] == "output":
                drivers[net] = (cell, inst, pin)
    return {n: (cap[n], fan[n]) for n in set(cap) | set(drivers)}, drivers


def _mean_table(entries, kind, slew, load, related, cache=None):
    """Mean of the ``kind`` tables of ``entries`` (with / without a related pin) at
    (``slew``, ``load``); ``cache``: a dict for repeated lookups (keyed by the entries'
    identity, so only for one library within one call)."""
    if cache is not None:
        key = (id(entries), kind, slew, load, related)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = _mean_table(entries, kind, slew, load, related)
        return hit
    vals = []
    for e in entries:
        if related != (e.get("related_pin") is not None):
            continue
        for k in kind:
            if k in e:
                vals.append(lookup_table(e[k], slew, load))
    return sum(vals) / len(vals) if vals else 0.0


def energy(lib, netlist, toggles, cycles, period_ns, *, slew_ns=DEFAULT_SLEW_NS,
           wire_load=True, internal="output"):
    """Energy (pJ, the library's cap x V² unit) of ``cycles`` cycles at ``period_ns``.

    ``toggles``: ``{(instance, pin): count}``. ``internal``: how an output's internal-power
    tables are charged: ``"output"`` (default) once per toggle of the output, as the tables are
    characterized; ``"input"`` once per toggle of each related input pin whether or not the
    output moves, OpenSTA's rule (used for the cross-check only). Switching energy of nets
    driven by the design's input ports (the clock included) belongs to whatever drives them
    and is reported apart (``input_port_nets``), as OpenSTA does. Returns totals by component
    and by cell kind (sequential / combinational) and the pins without a toggle count (must
    be none)."""
    if internal not in ("output", "input"):
        raise ValueError(f"internal must be output or input, not {internal!r}")
    v2 = lib.voltage ** 2
    loads, drivers = net_loads(lib, netlist)
    out = {"switching": 0.0, "internal": 0.0, "leakage": 0.0}
    by_kind = {k: {"switching": 0.0, "internal": 0.0, "leakage": 0.0}
               for k in ("sequential", "combinational")}
    port_nets = 0.0
    missing = []
    leak_unit = _leak_scale(lib)
    cache = {}  # type: ignore[var-annotated]
    for cell, inst, conns in netlist["instances"]:
        c = lib.cells[cell]
        kind = "sequential" if (c["ff"] or c["latch"]) else "combinational"
        leak = c["leakage"] * leak_unit * period_ns * 1e-9 * cycles * 1e12   # pJ
        out["leakage"] += leak
        by_kind[kind]["leakage"] += leak
        for pin, net in conns.items():
            pd = c["pins"].get(pin)
            if pd is None or is_constant(net):
                continue
            n = toggles.get((inst, pin))
            if n is None:
                missing.append(f"{inst}.{pin}")
                continue
            sw = it = 0.0
            if pd["direction"] == "input":
                if net not in drivers:      # driven by an input port: not this design's
                    port_nets += 0.5 * pd["capacitance"] * v2 * n
                it = _mean_table(pd["power"], ("rise_power", "fall_power", "power"), slew_ns,
                                 0.0, related=False, cache=cache) * n
            else:
                pcap, fanout = loads.get(net, (0.0, 0))
                wcap = lib.wire_cap(fanout) if wire_load else 0.0
                sw = 0.5 * (pcap + wcap) * v2 * n
                if internal == "output":
                    it = _mean_table(pd["power"], ("rise_power", "fall_power", "power"),
                                     slew_ns, pcap + wcap, related=True, cache=cache) * n
                else:
                    for e in pd["power"]:
                        r = e.get("related_pin")
                        if r is None:
                            continue
                        tr = toggles.get((inst, r), 0)
                        vals = [lookup_table(e[k], slew_ns, pcap + wcap)
                                for k in ("rise_power", "fall_power", "power") if k in e]
                        if vals:
                            it += tr * sum(vals) / len(vals)
            out["switching"] += sw
            out["internal"] += it
            by_kind[kind]["switching"] += sw
            by_kind[kind]["internal"] += it
    out["total"] = out["switching"] + out["internal"] + out["leakage"]
    for k in by_kind.values():
        k["total"] = sum(k.values())
    return {"energy_pj": out, "by_kind_pj": by_kind, "input_port_nets_pj": port_nets,
            "missing_pins": missing, "cycles": cycles, "period_ns": period_ns,
            "slew_ns": slew_ns, "internal_rule": internal,
            "wire_load": lib.data.get("wire_load_name") if wire_load else None}


def toggle_energy(lib, netlist, *, slew_ns=DEFAULT_SLEW_NS, wire_load=True):
    """Energy (pJ) of one toggle of each cell pin, ``{(instance, pin): pJ}``, by
    :func:`energy`'s rule (internal power charged per output transition): an input pin its own
    table, an output pin its switching ``0.5 * C_net * V²`` and its internal table at the
    net's load. Switching and internal energy of a simulation are linear in the toggles, so
    ``sum(toggles * toggle_energy)`` equals :func:`energy`'s switching + internal (checked in
    ``tests/test_ppa.py``); per cycle it gives the energy series for a statistical error."""
    v2 = lib.voltage ** 2
    loads, _ = net_loads(lib, netlist)
    out = {}
    cache = {}  # type: ignore[var-annotated]
    for cell, inst, conns in netlist["instances"]:
        c = lib.cells[cell]
        for pin, net in conns.items():
            pd = c["pins"].get(pin)
            if pd is None or is_constant(net):
                continue
            if pd["direction"] == "input":
                e = _mean_table(pd["power"], ("rise_power", "fall_power", "power"), slew_ns,
                                0.0, related=False, cache=cache)
            else:
                pcap, fanout = loads.get(net, (0.0, 0))
                cap = pcap + (lib.wire_cap(fanout) if wire_load else 0.0)
                e = 0.5 * cap * v2 + _mean_table(
                    pd["power"], ("rise_power", "fall_power", "power"), slew_ns, cap,
                    related=True, cache=cache)
            out[(inst, pin)] = e
    return out


def _leak_scale(lib):
    """Watts per unit of the library's ``leakage_power_unit``."""
    u = (lib.units.get("leakage_power") or "1nW").strip().lower()
    num = "".join(ch for ch in u if ch.isdigit() or ch == ".") or "1"
    scale = {"w": 1.0, "mw": 1e-3, "uw": 1e-6, "nw": 1e-9, "pw": 1e-12, "fw": 1e-15}
    for k in ("mw", "uw", "nw", "pw", "fw", "w"):
        if u.endswith(k):
            return float(num) * scale[k]
    return 1e-9


def uniform_toggles(lib, netlist, activity, cycles, clock="clk"):
    """Toggle counts for a uniform ``activity`` (transitions per cycle) on every net but the
    clock, which makes two per cycle: the case OpenSTA's ``set_power_activity -global``
    models, for the cross-check."""
    out = {}
    for _cell, inst, conns in netlist["instances"]:
        for pin, net in conns.items():
            out[(inst, pin)] = 2 * cycles if net == clock else activity * cycles
    return out
