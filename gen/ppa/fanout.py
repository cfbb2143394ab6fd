"""Buffer trees for high-fanout nets of a mapped *hierarchical* netlist.

ABC maps one module at a time: in the top module it cannot see that a net drives the same
input of 128 PE instances (or, in the offset correction, of 64 column instances), and leaves
one small gate driving all of them; OpenSTA then times that gate at a load of hundreds of
pins. A flat ABC run buffers such nets, but is too slow for large arrays of multipliers (a
flat M2N1K16 MAC array was still inside ABC after 20 minutes). This module does what a
placement tool's fanout repair would do, on the netlist text and without remapping:

* every net of every module with more than ``max_fanout`` sink pins (library-cell inputs and
  submodule-instance inputs; the clock is ideal and left alone) gets a tree of one buffer
  cell of the library, each buffer driving at most ``max_fanout`` pins, the tree as shallow as
  that allows (``ceil(log_F(sinks))`` levels);
* the submodules themselves are not touched: each was mapped by its own ABC run, which saw
  its own fanouts (its inputs driven by the constraint's driving cell).

The netlist is first rewritten by Yosys with every internal net one bit wide (``splitnets``);
vector ports are read bit by bit, so that every connection is a list of one-bit nets. The result
links in OpenSTA like the input and flattens for the gate-level simulation (:func:`gen.ppa.mapped.
flatten_mapped`); the buffers' area is reported separately.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..synth import SynthesisError, run_yosys
from .mapped import MAPPED_LIB, _yid, copy_library, single_input_cells

__all__ = ["buffer_fanout", "buffer_cell", "split_bits", "sink_counts", "DEFAULT_MAX_FANOUT"]

#: sink pins per buffer (and per original driver): a sky130 ``buf_8`` drives 16 gate inputs
#: plus the wire-load model's wire in about 0.2 ns
DEFAULT_MAX_FANOUT = 16

_STMT_END = re.compile(r";\s*$")
_INST_RE = re.compile(r"^\s*(\\\S+|[A-Za-z_$][\w$]*)\s+(\\\S+|[A-Za-z_$][\w$]*)\s*\((.*)\)\s*$",
                      re.S)
_PIN_RE = re.compile(r"\.(\\\S+|[A-Za-z_$][\w$]*)\s*\(([^()]*)\)", re.S)
_PORT_DECL_RE = re.compile(r"^\s*(input|output|inout)\s+(?:\[[^\]]*\]\s*)?(\\\S+|[\w$]+)\s*$",
                           re.S)


def buffer_cell(lib):
    """The non-inverting buffer of ``lib`` used for the trees: among the single-input cells
    whose ``function`` is their input (clock and delay buffers excluded when others exist),
    the median by area (sky130 HD: ``buf_8``-like drive)."""
    bufs = [(c["area"], name, a, y) for name, c, a, y, f in single_input_cells(lib) if f == a]
    plain = [b for b in bufs if not re.search(r"clk|dly|probe", b[1])] or bufs
    if not plain:
        raise SynthesisError(f"{lib.path}: no buffer cell for the fanout trees")
    plain.sort()
    area, name, a, y = plain[len(plain) // 2]
    return {"cell": name, "in": a, "out": y, "area": area}


def split_bits(netlist, top, workdir, lib, *, timeout=3600, yosys=None):
    """Rewrite ``netlist`` with one-bit internal nets (Yosys ``splitnets``; ports stay
    vectors, and :func:`_bits` reads their bit selects)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.v").write_text(Path(netlist).read_text())
    copy_library(lib, workdir / MAPPED_LIB)
    script = "\n".join([f"read_liberty -lib {MAPPED_LIB}", "read_verilog in.v",
                        f"hierarchy -check -top {_yid(top)}", "splitnets",
                        "opt_clean", "write_verilog -noattr bits.v"]) + "\n"
    run_yosys(script, workdir, timeout=timeout, yosys=yosys, outputs=("bits.v",))
    return workdir / "bits.v"


def _modules(text):
    """``[(name, header, [statements])]`` of a Yosys netlist (statements without ``;``)."""
    out = []
    for m in re.finditer(r"^module\s+(\\\S+|[\w$]+)\s*\((.*?)\);(.*?)^endmodule", text,
                         re.S | re.M):
        body = m.group(3)
        stmts = [s.strip() for s in body.split(";")]
        out.append((m.group(1), m.group(2), [s for s in stmts if s]))
    return out


_DECL_RE = re.compile(r"^\s*(input|output|inout|wire|reg)\s+(?:\[(\d+):(\d+)\]\s*)?"
                      r"(\\\S+|[\w$]+)\s*$", re.S)
_CONST_RE = re.compile(r"^(\d+)'([hbd])([0-9a-fA-FxXzZ_]+)$")
_RANGE_RE = re.compile(r"^(\\\S+|[\w$]+)\s*\[(\d+):(\d+)\]$")


def _bits(token, widths):
    """One connection item as one-bit items, MSB first: a vector port (``x``, ``x[3:0]``)
    becomes its bit selects, a constant its one-bit constants."""
    c = _CONST_RE.match(token)
    if c:
        n, radix, digits = int(c.group(1)), c.group(2), c.group(3).replace("_", "")
        digits = re.sub(r"[xXzZ]", "0", digits)
        value = int(digits, {"h": 16, "b": 2, "d": 10}[radix])
        return [f"1'h{(value >> i) & 1}" for i in range(n - 1, -1, -1)]
    r = _RANGE_RE.match(token)
    if r:
        name, hi, lo = r.group(1), int(r.group(2)), int(r.group(3))
        step = -1 if hi >= lo else 1
        return [f"{_sp(name)}[{i}]" for i in range(hi, lo + step, step)]
    if token in widths:
        hi, lo = widths[token]
        step = -1 if hi >= lo else 1
        return [f"{_sp(token)}[{i}]" for i in range(hi, lo + step, step)]
    return [token]


def _tokens(expr, widths):
    expr = expr.strip()
    if expr.startswith("{"):
        expr = expr[1:expr.rindex("}")]
    return [b for t in expr.split(",") if t.strip() for b in _bits(t.strip(), widths)]


def buffer_fanout(netlist, top, workdir, lib, *, max_fanout=DEFAULT_MAX_FANOUT,
                  timeout=3600, yosys=None, weigh_ports=False):
    """Insert buffer trees into every module of the hierarchical ``netlist``; write
    ``<workdir>/netlist.v``. Returns ``{"netlist", "buffers", "buffer_area", "modules",
    "largest_fanout", "cell", "max_fanout"}``: buffers and their area *per module
    definition* (each instance of a module has its own: the flattened netlist's area is the
    total), and per module the buffers added and the nets treated.

    A sink is one driven bit (a net on five bits of a port is five sinks). ``weigh_ports``:
    weigh a submodule port bit by the load behind it inside the submodule (its net's sinks
    there, after that module's own trees) instead of 1; deeper trees, and measured slower on
    the default LUT array (8.52 vs 7.59 ns), so off by default."""
    if max_fanout < 2:
        raise ValueError(f"max_fanout must be at least 2, not {max_fanout}")
    workdir = Path(workdir)
    bits = split_bits(netlist, top, workdir / "bits", lib, timeout=timeout, yosys=yosys)
    text = bits.read_text()
    mods = _modules(text)
    directions = _directions(mods)
    buf = buffer_cell(lib)
    report = {"cell": buf["cell"], "max_fanout": max_fanout, "modules": {}, "buffers": 0,
              "buffer_area": 0.0, "largest_fanout": 0}
    out_text = [text[:text.index("module")]] if "module" in text else []
    # submodules first: a parent weighs each submodule pin by the load behind it (the sinks
    # its net has inside the submodule, after that one's own trees)
    loads, done = {}, {}
    for name, header, stmts in _children_first(mods):
        new_stmts, added, nets, loads[name] = _buffer_module(
            name, stmts, directions, lib, buf, max_fanout, report,
            loads if weigh_ports else None)
        if added:
            report["modules"][name.lstrip("\\")] = {"buffers": added, "nets": nets}
        done[name] = (f"module {_sp(name)}({header});\n"
                      + "".join(f"  {s} ;\n" for s in new_stmts) + "endmodule\n")
    out_text += [done[name] for name, _, _ in mods]
    report["buffer_area"] = report["buffers"] * buf["area"]
    path = workdir / "netlist.v"
    path.write_text("\n".join(out_text))
    report["netlist"] = path
    return report


def _children_first(mods):
    by = {name: (name, header, stmts) for name, header, stmts in mods}
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        for s in by[name][2]:
            head = s.split(None, 1)[0] if s.split() else ""
            if head in by and head != name:
                visit(head)
        order.append(by[name])
    for name in by:
        visit(name)
    return order


def _directions(mods):
    directions = {}
    for name, _, stmts in mods:
        d = {}
        for s in stmts:
            pm = _PORT_DECL_RE.match(s)
            if pm:
                d[pm.group(2)] = pm.group(1)
        directions[name] = d
    return directions


def sink_counts(netlist, lib):
    """``{(module, net): sink pins}`` of a one-bit-net Yosys netlist (as :func:`buffer_fanout`
    counts them: library-cell and submodule inputs, the clock left out)."""
    mods = _modules(Path(netlist).read_text())
    directions = _directions(mods)
    return {(name.lstrip("\\"), net): len(sk) for name, _, stmts in mods
            for net, sk in _module_sinks(name, stmts, directions, lib)[1].items()}


def _module_sinks(name, stmts, directions, lib, loads=None):
    """Instances and ``{net: [(instance, pin, bit position, load)]}``: one sink per bit a net
    drives (a net on 5 bits of a port is 5 sinks), weighted by the load behind a submodule
    port bit (``loads``: per module, sinks of each port bit's net inside it; 1 if unknown)."""
    loads = loads or {}
    insts = []          # [index in stmts, cell, inst, [(pin, [tokens])]]
    widths = {}
    for s in stmts:
        d = _DECL_RE.match(s)
        if d and d.group(2) is not None:
            widths[d.group(4)] = (int(d.group(2)), int(d.group(3)))
    for i, s in enumerate(stmts):
        head = s.split(None, 1)[0] if s.split() else ""
        if head in ("input", "output", "inout", "wire", "reg", "assign"):
            continue
        m = _INST_RE.match(s)
        if not m:
            continue
        pins = [(p, _tokens(e, widths)) for p, e in _PIN_RE.findall(m.group(3))]
        insts.append([i, m.group(1), m.group(2), pins])
    sinks = {}
    for k, (_, cell, _, pins) in enumerate(insts):
        if cell in lib.cells:
            dirs = {p: d["direction"] for p, d in lib.cells[cell]["pins"].items()}
        elif cell in directions:
            dirs = directions[cell]
        else:
            raise SynthesisError(f"{name}: instance of {cell!r}, neither a library cell nor a "
                                 "module of the netlist")
        sub = loads.get(cell)
        for j, (pin, toks) in enumerate(pins):
            if dirs.get(pin) != "input":
                continue
            for pos, t in enumerate(toks):
                if "'" in t or t in ("clk", "\\clk"):
                    continue
                w = 1
                if sub is not None:
                    bit = len(toks) - 1 - pos
                    w = max(1, sub.get(f"{_sp(pin)}[{bit}]" if len(toks) > 1 else pin,
                                       sub.get(pin, 1)))
                sinks.setdefault(t, []).append((k, j, pos, w))
    return insts, sinks


def _port_bits(stmts, widths):
    """The one-bit names of a module's input ports, as they appear inside it."""
    out = []
    for s in stmts:
        pm = _PORT_DECL_RE.match(s)
        if pm and pm.group(1) == "input":
            out += _bits(pm.group(2), widths)
    return out


def _buffer_module(name, stmts, directions, lib, buf, max_fanout, report, loads):
    insts, sinks = _module_sinks(name, stmts, directions, lib, loads)
    extra_wires, extra_cells, added, nets = [], [], 0, 0
    counter = [0]

    def new_net(base):
        counter[0] += 1
        return f"\\fo${counter[0]}${base.lstrip(chr(92))}"

    root_load = {}
    for net, sk in sinks.items():
        load = sum(w for *_, w in sk)
        report["largest_fanout"] = max(report["largest_fanout"], load)
        root_load[net] = load
        if load <= max_fanout:
            continue
        nets += 1
        level = [("sink", s[:3], s[3]) for s in sk]
        while sum(w for *_, w in level) > max_fanout:
            groups, cur, cur_w = [], [], 0
            for item in level:      # consecutive sinks, at most max_fanout of load per buffer
                if cur and cur_w + item[2] > max_fanout:
                    groups.append(cur)
                    cur, cur_w = [], 0
                cur.append(item)
                cur_w += item[2]
            groups.append(cur)
            nxt = []
            for group in groups:
                out = new_net(net)
                extra_wires.append(out)
                for kind, ref, _ in group:
                    if kind == "sink":
                        k, j, pos = ref
                        pin, toks = insts[k][3][j]
                        insts[k][3][j] = (pin, toks[:pos] + [out] + toks[pos + 1:])
                    else:
                        ref[1] = out    # the buffer's input
                cell = [f"\\fo_buf${counter[0]}", None]
                extra_cells.append(cell)
                added += 1
                nxt.append(("buf", cell, 1))
            level = nxt
        root_load[net] = sum(w for *_, w in level)
        for kind, ref, _ in level:
            if kind == "buf":
                ref[1] = net
        # each buffer is [instance name, input net]; its output was named when it was made
    report["buffers"] += added
    out = list(stmts)
    for i, cell, inst, pins in insts:
        conns = ", ".join(f".{_sp(p)}({_join(t)})" for p, t in pins)
        out[i] = f"{_sp(cell)} {_sp(inst)} ({conns})"
    # buffer outputs: the wire named in the same order as the cells were made
    cells_text = []
    for wire, (inst, src) in zip(extra_wires, extra_cells):
        cells_text.append(f"{buf['cell']} {_sp(inst)} (.{buf['in']}({_sp(src)}), "
                          f".{buf['out']}({_sp(wire)}))")
    widths = {}
    for s in stmts:
        d = _DECL_RE.match(s)
        if d and d.group(2) is not None:
            widths[d.group(4)] = (int(d.group(2)), int(d.group(3)))
    port_loads = {b: root_load.get(b, 0) for b in _port_bits(stmts, widths)}
    return ([f"wire {_sp(w)}" for w in extra_wires] + out + cells_text, added, nets,
            port_loads)


def _sp(token):
    """An escaped identifier ends at white space: keep one after it."""
    return token + " " if token.startswith("\\") else token


def _join(tokens):
    if len(tokens) == 1:
        return _sp(tokens[0])
    return "{ " + " , ".join(_sp(t) for t in tokens) + " }"
