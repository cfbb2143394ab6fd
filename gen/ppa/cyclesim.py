"""Zero-delay, cycle-based simulation of a flat mapped netlist with NumPy (``simulator="cycle"``).

Why not an event-driven simulator: the gate-level power run of a 512-multiplier MAC array
(165,000 cells, a 27 MB netlist) spent 12-40 minutes in Icarus, almost all of it compiling the
netlist; the simulated window is only tens of cycles. Verilator (``--binary``) was measured
on the same netlist (``docs/ppa.md``): its C++ build is minutes too. A flat, synchronous
netlist with one ideal clock needs neither: between two clock edges every net takes the value
of its cell's Boolean ``function`` (Liberty) of the nets before it, so the cells are sorted
into levels once, and each clock cycle evaluates every level as a few vector operations over
an array of net values (one operation per cell type and output pin in a level). Each
flip-flop's ``next_state`` is sampled at the edge. Zero delay means the functional toggles
only, as in the zero-delay Icarus run (no glitches): a net's toggle count is the number of
cycles in which its settled value differs from the previous cycle's.

The testbench is :func:`gen.ppa.gatesim.write_testbench`'s, cycle for cycle: reset for
``reset_cycles`` edges, every input stream replayed with valid held while beats remain, its
index advancing on ``valid & ready`` sampled before the edge, every ``o_result`` beat accepted
and recorded. Toggles are counted from the edge that releases reset (as the VCD counter counts
from that time) to the edge that accepts the last result beat; ``tests/test_ppa.py`` checks
the counts net by net against Icarus' VCD of the same netlist and stimulus.

Refused (:class:`gen.ppa.gatesim.GateSimError`): latches, flip-flops with an asynchronous
clear or preset pin that is not tied off, a flip-flop clocked by anything but the ``clk``
port or on the falling edge, and combinational loops.
"""
from __future__ import annotations

import re
import time
from collections import defaultdict

import numpy as np

from .gatesim import GateSimError, _norm, function_to_verilog
from .power import is_constant

__all__ = ["CycleModel", "build_model", "run_streams"]

_DECL_RE = re.compile(r"(?:^|(?<=;))\s*(input|output|inout|wire|reg)\s+(?:signed\s+)?"
                      r"\[(\d+):(\d+)\]\s*(\\\S+|[A-Za-z_$][\w$]*)\s*;", re.M)
_ASSIGN_RE = re.compile(r"^\s*assign\s+(.*?)\s*=\s*(.*?);", re.M | re.S)


def _py(expr):
    """A Verilog expression of :func:`function_to_verilog` as Python over NumPy bool arrays
    (``~ & | ^`` are the logical operations on ``bool``)."""
    return expr.replace("1'b0", "_F").replace("1'b1", "_T")


_CONSTS = {"_F": np.bool_(False), "_T": np.bool_(True)}


def _compile(expr, where):
    return compile(_py(function_to_verilog(expr)), where, "eval")


def _vars(expr):
    return sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_\[\]]*", expr)) - {"_F", "_T"})


class CycleModel:
    """A netlist sorted into levels: ``nets`` (name -> index; 0 and 1 the constants), the
    combinational groups in evaluation order and the flip-flop groups."""

    def __init__(self, n_nets, names, groups, ffs, ports, clock):
        self.n_nets, self.names, self.groups, self.ffs = n_nets, names, groups, ffs
        self.ports, self.clock = ports, clock
        self.index = {}
        for i, ns in enumerate(names):
            for n in ns:
                self.index[n] = i

    def port_bits(self, port):
        """Net index of each bit of ``port`` (LSB first), -1 for a bit no cell uses."""
        w = self.ports[port][1]
        keys = [port] if w == 1 else [f"{port}[{i}]" for i in range(w)]
        if w == 1 and port not in self.index:
            keys = [f"{port}[0]"]
        return np.array([self.index.get(k, -1) for k in keys], dtype=np.int64)

    def settle(self, v):
        """Evaluate every combinational output in level order (in place)."""
        for code, out, ins in self.groups:
            v[out] = eval(code, _CONSTS, {p: v[i] for p, i in ins.items()})

    def edge(self, v):
        """Clock edge: every flip-flop takes its ``next_state`` (sampled first, then set)."""
        new = [(grp, eval(grp["code"], _CONSTS, {p: v[i] for p, i in grp["ins"].items()}))
               for grp in self.ffs]
        for grp, val in new:
            v[grp["iq"]] = val
            if grp["iqn"] is not None:
                v[grp["iqn"]] = ~val


def build_model(text, nl, lib, clock="clk"):
    """Levelize the flat netlist ``text`` (parsed as ``nl`` by
    :func:`gen.ppa.gatesim.parse_netlist`) against ``lib``."""
    widths = {}
    for m in _DECL_RE.finditer(text):
        widths[m.group(4)] = (int(m.group(2)), int(m.group(3)))
    # union of names that are the same net (assign a = b)
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    from .fanout import _tokens
    for m in _ASSIGN_RE.finditer(text):
        lhs = [_norm(b) for b in _tokens(m.group(1), widths)]
        rhs = [_norm(b) for b in _tokens(m.group(2), widths)]
        if len(lhs) != len(rhs):
            raise GateSimError(f"assign with {len(lhs)} bits on the left and {len(rhs)} on "
                               f"the right: {m.group(0)[:80]}")
        for a, b in zip(lhs, rhs):
            ra, rb = find(_key(a)), find(_key(b))
            if ra != rb:
                # a constant stays the root of its class
                if _const(ra) is not None:
                    ra, rb = rb, ra
                parent[ra] = rb
    index = {"1'h0": 0, "1'h1": 1}
    names = [["1'h0"], ["1'h1"]]

    def net(name):
        k = find(_key(name))
        c = _const(k)
        if c is not None:
            return c
        i = index.get(k)
        if i is None:
            i = index[k] = len(names)
            names.append([k])
        return i

    for name in list(parent):
        i = net(name)
        if name not in names[i]:
            names[i].append(name)
    for p, (_, w) in nl["ports"].items():
        for b in ([p] if w == 1 else [f"{p}[{i}]" for i in range(w)]):
            net(b)
    clk = net(clock)
    driver = {}                 # net -> node id
    nodes = []                  # (cell, out pin, {var: net}, out net)
    ffs = defaultdict(lambda: {"iq": [], "iqn": [], "ins": defaultdict(list)})
    for cell, inst, conns in nl["instances"]:
        c = lib.cells[cell]
        if c["latch"]:
            raise GateSimError(f"{inst}: {cell} is a latch; the cycle simulator has none")
        pins = {p: net(n) for p, n in conns.items()}
        state = {}
        if c["ff"]:
            ff = c["ff"]
            for key in ("clear", "preset"):
                if ff.get(key):
                    vs = _vars(ff[key])
                    tied = all(pins.get(x, 0) in (0, 1) for x in vs)
                    if not tied or _eval_const(ff[key], {x: pins.get(x, 0) for x in vs}):
                        raise GateSimError(f"{inst}: {cell} has an asynchronous {key}; use "
                                           "the icarus simulator")
            ck = ff["clocked_on"].replace(" ", "").strip("()")
            if ck not in pins or pins[ck] != clk:
                raise GateSimError(f"{inst}: {cell} is not clocked on the rising edge of "
                                   f"{clock!r} ({ff['clocked_on']})")
            iq, iqn = (ff["names"] + ["IQ_N"])[:2]
            state = {iq: len(names), iqn: len(names) + 1}
            names += [[f"{inst}.{iq}"], [f"{inst}.{iqn}"]]
            g = ffs[cell]
            g["iq"].append(state[iq])
            g["iqn"].append(state[iqn])
            for x in _vars(ff["next_state"]):
                g["ins"][x].append(state[x] if x in state else pins.get(x, 0))
        for p, n in conns.items():
            pd = c["pins"].get(p)
            if pd is None or pd["direction"] != "output" or is_constant(n):
                continue
            out = pins[p]
            if out in (0, 1):
                continue
            f = pd["function"]
            if not f:
                raise GateSimError(f"{inst}: output {cell}.{p} has no function")
            ins = {x: (state[x] if x in state else pins.get(x, 0)) for x in _vars(f)}
            if out in driver:
                raise GateSimError(f"net {names[out][0]} has two drivers")
            driver[out] = len(nodes)
            nodes.append((cell, p, ins, out))
    # levels: a node's level is one more than the highest level among the drivers of its
    # inputs (ports, constants and flip-flop states are level 0)
    level = [0] * len(nodes)
    users = defaultdict(list)
    pending = [0] * len(nodes)
    for k, (_, _, ins, _) in enumerate(nodes):
        srcs = {driver[i] for i in ins.values() if i in driver}
        pending[k] = len(srcs)
        for s in srcs:
            users[s].append(k)
    ready = [k for k in range(len(nodes)) if pending[k] == 0]
    done = 0
    while ready:
        nxt = []
        for k in ready:
            done += 1
            for u in users[k]:
                level[u] = max(level[u], level[k] + 1)
                pending[u] -= 1
                if pending[u] == 0:
                    nxt.append(u)
        ready = nxt
    if done != len(nodes):
        raise GateSimError(f"{len(nodes) - done} cell outputs are on a combinational loop")
    by = defaultdict(list)
    for k, (cell, p, _, _) in enumerate(nodes):
        by[(level[k], cell, p)].append(k)
    codes = {}
    groups = []
    for (_lv, cell, p), ks in sorted(by.items()):
        f = lib.cells[cell]["pins"][p]["function"]
        code = codes.setdefault((cell, p), _compile(f, f"{cell}.{p}"))
        ins = {x: np.array([nodes[k][2][x] for k in ks], dtype=np.int64) for x in nodes[ks[0]][2]}
        groups.append((code, np.array([nodes[k][3] for k in ks], dtype=np.int64), ins))
    ff_groups = []
    for cell, g in ffs.items():
        ff = lib.cells[cell]["ff"]
        ff_groups.append({"cell": cell, "code": _compile(ff["next_state"], f"{cell}.ff"),
                          "iq": np.array(g["iq"], dtype=np.int64),
                          "iqn": np.array(g["iqn"], dtype=np.int64),
                          "ins": {x: np.array(v, dtype=np.int64) for x, v in g["ins"].items()}})
    model = CycleModel(len(names), names, groups, ff_groups, nl["ports"], clock)
    model.levels = (max(level) + 1) if level else 0
    model.cells = len(nl["instances"])
    return model


def _key(name):
    return name.lstrip("\\")


def _const(name):
    return {"1'h0": 0, "1'h1": 1, "1'b0": 0, "1'b1": 1}.get(name)


def _eval_const(expr, values):
    return bool(eval(_py(function_to_verilog(expr)), _CONSTS,
                     {k: np.bool_(v) for k, v in values.items()}))


def run_streams(model, streams, n_results, *, result_stream="o_result", reset_cycles=2,
                max_cycles=1_000_000, weights=None):
    """Replay ``streams`` (``{name: [payload ints]}``, ``i_<name>`` streams) into the model
    until ``n_results`` result beats are accepted.

    Returns ``{"results": [ints], "toggles": {net name: count}, "cycles", "run_s"}``; with
    ``weights`` (energy per toggle of each net index, a float array), also ``"per_cycle"``:
    each counted cycle's weighted toggles (for the statistical error of the energy)."""
    t0 = time.monotonic()
    v = np.zeros(model.n_nets, dtype=bool)
    v[1] = True
    rst = model.index.get("rst", -1)
    feeds = []
    for name, beats in streams.items():
        bits = model.port_bits(f"{name}__payload")
        use = bits >= 0
        w = len(bits)
        mat = np.array([[(b >> i) & 1 for i in range(w)] for b in (beats or [0])],
                       dtype=bool)[:, use]
        feeds.append({"n": len(beats), "bits": bits[use], "mat": mat, "i": 0,
                      "valid": model.index.get(f"{name}__valid", -1),
                      "ready": model.index.get(f"{name}__ready", -1)})
    res_bits = model.port_bits(f"{result_stream}__payload")
    res_valid = model.index.get(f"{result_stream}__valid", -1)
    res_ready = model.index.get(f"{result_stream}__ready", -1)
    in_rst = True

    def drive():
        if rst >= 0:
            v[rst] = in_rst
        if res_ready >= 0:
            v[res_ready] = True
        for f in feeds:
            valid = (not in_rst) and f["i"] < f["n"]
            if f["valid"] >= 0:
                v[f["valid"]] = valid
            v[f["bits"]] = f["mat"][min(f["i"], len(f["mat"]) - 1)]

    drive()
    model.settle(v)
    prev = v.copy()
    counts = np.zeros(model.n_nets, dtype=np.int64)
    per_cycle = []
    results = []
    cycle = 0
    counted = 0
    weight_of = np.asarray(weights, dtype=float) if weights is not None else None
    while len(results) < n_results:
        if cycle > max_cycles:
            raise GateSimError(f"no result after {max_cycles} cycles ({len(results)} of "
                               f"{n_results} beats)")
        # sampled before the edge
        if not in_rst and res_valid >= 0 and v[res_valid]:
            word = 0
            for i, b in enumerate(res_bits):
                if b >= 0 and v[b]:
                    word |= 1 << i
            results.append(word)
        moves = [(not in_rst) and f["i"] < f["n"] and f["ready"] >= 0 and bool(v[f["ready"]])
                 for f in feeds]
        model.edge(v)
        for f, mv in zip(feeds, moves):
            f["i"] += mv
        if cycle == reset_cycles:
            in_rst = False
        counting = cycle >= reset_cycles
        cycle += 1
        drive()
        model.settle(v)
        if counting:
            changed = v != prev
            counts += changed
            counted += 1
            if weight_of is not None:
                per_cycle.append(float(weight_of[changed].sum()))
        prev[:] = v
    toggles = {}
    for i, ns in enumerate(model.names):
        for n in ns:
            toggles[n] = int(counts[i])
    toggles[model.clock] = 2 * counted
    out = {"results": results, "toggles": toggles, "cycles": counted,
           "edges": cycle, "run_s": time.monotonic() - t0}
    if weight_of is not None:
        out["per_cycle"] = per_cycle
    return out
