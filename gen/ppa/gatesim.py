"""Gate-level simulation of a mapped netlist: cell models from the Liberty ``function`` and
``ff`` attributes, a stream-replay testbench, Verilator, and a VCD toggle counter.

Why gate level (and not the pre-mapping RTL with toggles mapped by net name): ABC rewrites all
combinational logic, so apart from flip-flops and ports no RTL net survives mapping under a
name, and the nets that carry most of the switching (inside adders, multiplexers, the table
lookup) exist only in the mapped netlist. Simulating that netlist gives the toggles of every
cell pin that the power model charges, and the same run checks the mapped netlist
bit-exactly against the golden model (every result beat is compared).
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from ..tools import tool_env

__all__ = ["SIMULATORS", "function_to_verilog", "cell_models", "parse_netlist", "write_testbench",
           "simulate", "count_net_toggles", "pin_toggles", "GateSimError"]


class GateSimError(RuntimeError):
    """The gate-level simulation could not be built or run, or gave wrong results."""


# --------------------------------------------------------------------------------------------
# Liberty Boolean functions -> Verilog
# --------------------------------------------------------------------------------------------
_FN_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_\[\]]*|[01]|[!'&*|+^()]|\s)")


def function_to_verilog(expr):
    """Translate a Liberty ``function`` (``!`` / postfix ``'`` not, ``^`` xor, ``&`` / ``*`` /
    juxtaposition and, ``|`` / ``+`` or; that precedence) into a Verilog expression."""
    toks = []
    s = expr.strip()
    pos = 0
    while pos < len(s):
        if s[pos].isspace():
            # juxtaposition is AND: keep one marker between two operands
            pos += 1
            toks.append(" ")
            continue
        m = _FN_TOKEN.match(s, pos)
        if not m or not m.group(1).strip():
            raise ValueError(f"cannot read Liberty function {expr!r} at {s[pos:]!r}")
        toks.append(m.group(1))
        pos = m.end()
    # drop spaces that are not between two operands
    clean = []
    for i, t in enumerate(toks):
        if t == " ":
            prev = next((x for x in reversed(clean) if x != " "), None)
            nxt = next((x for x in toks[i + 1:] if x != " "), None)
            if prev is not None and nxt is not None and (prev not in "!&*|+^(") \
                    and (nxt not in "&*|+^)'"):
                clean.append("&")
            continue
        clean.append(t)
    pos = 0

    def peek():
        return clean[pos] if pos < len(clean) else None

    def take():
        nonlocal pos
        pos += 1
        return clean[pos - 1]

    def p_or():
        left = p_and()
        while peek() in ("|", "+"):
            take()
            left = f"({left} | {p_and()})"
        return left

    def p_and():
        left = p_xor()
        while peek() in ("&", "*"):
            take()
            left = f"({left} & {p_xor()})"
        return left

    def p_xor():
        left = p_unary()
        while peek() == "^":
            take()
            left = f"({left} ^ {p_unary()})"
        return left

    def p_unary():
        if peek() == "!":
            take()
            return f"(~{p_unary()})"
        t = take()
        if t == "(":
            v = p_or()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expr!r}")
        elif t in ("0", "1"):
            v = f"1'b{t}"
        elif t is not None and re.match(r"[A-Za-z_]", t):
            v = t
        else:
            raise ValueError(f"cannot read Liberty function {expr!r}")
        while peek() == "'":
            take()
            v = f"(~{v})"
        return v

    out = p_or()
    if pos != len(clean):
        raise ValueError(f"cannot read Liberty function {expr!r}")
    return out


def _edge(expr):
    """``CLK`` -> ``posedge CLK``; ``!CLK_N`` -> ``negedge CLK_N``."""
    e = expr.replace(" ", "").strip("()")
    if re.match(r"^[A-Za-z_]\w*$", e):
        return f"posedge {e}"
    m = re.match(r"^!([A-Za-z_]\w*)$", e) or re.match(r"^([A-Za-z_]\w*)'$", e)
    if m:
        return f"negedge {m.group(1)}"
    raise ValueError(f"clock expression {expr!r} is not a plain (inverted) pin")


def cell_models(lib, cells):
    """Verilog modules for the library ``cells`` (names), from their Liberty functions."""
    out = ["// cell models generated from the Liberty function/ff attributes (lutcore gen.ppa)",
           "`timescale 1ns/1ps"]
    for name in sorted(cells):
        c = lib.cells.get(name)
        if c is None:
            raise GateSimError(f"cell {name} is not in the library")
        pins = c["pins"]
        ins = [p for p, d in pins.items() if d["direction"] == "input"]
        outs = [p for p, d in pins.items() if d["direction"] == "output"]
        L = [f"module {name} ({', '.join(ins + outs)});"]
        L += [f"  input {p};" for p in ins] + [f"  output {p};" for p in outs]
        if c["latch"]:
            raise GateSimError(f"cell {name} is a latch: the gate-level model has no latches")
        if c["ff"]:
            ff = c["ff"]
            iq, iqn = (ff["names"] + ["IQ_N"])[:2]
            L += [f"  reg {iq} = 1'b0;", f"  wire {iqn} = ~{iq};"]
            ns = function_to_verilog(ff["next_state"])
            edges = [_edge(ff["clocked_on"])]
            body = []
            if ff.get("clear"):
                L.append(f"  wire lutcore_clr = {function_to_verilog(ff['clear'])};")
                edges.append("posedge lutcore_clr")
                body.append(f"if (lutcore_clr) {iq} <= 1'b0;")
            if ff.get("preset"):
                L.append(f"  wire lutcore_pre = {function_to_verilog(ff['preset'])};")
                edges.append("posedge lutcore_pre")
                body.append(("else " if body else "") + f"if (lutcore_pre) {iq} <= 1'b1;")
            body.append(("else " if body else "") + f"{iq} <= {ns};")
            L.append(f"  always @({' or '.join(edges)}) begin " + " ".join(body) + " end")
        for p in outs:
            f = pins[p]["function"]
            if not f:
                raise GateSimError(f"output {name}.{p} has no function (tristate or analog "
                                   "cell): cannot model it")
            L.append(f"  assign {p} = {function_to_verilog(f)};")
        L.append("endmodule")
        out.append("\n".join(L))
    return "\n\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Netlist structure
# --------------------------------------------------------------------------------------------
_ID = r"(?:\\\S+\s|[A-Za-z_][A-Za-z0-9_$]*)"
_INST_RE = re.compile(r"^\s*(" + _ID + r")\s*(" + _ID + r")\s*\((.*?)\);", re.M | re.S)
_CONN_RE = re.compile(r"\.(\w+)\s*\(\s*(.*?)\s*\)\s*(?=,|$)", re.S)
_PORT_RE = re.compile(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s*)?(" + _ID
                      + r")\s*;", re.M)


def _norm(net):
    net = net.strip()
    return re.sub(r"\s+", "", net) if not net.startswith("\\") else \
        re.sub(r"\s+(?=\[)", "", net).strip()


def parse_netlist(text, lib):
    """Cell instances and ports of a flat Yosys netlist: ``{"instances": [(cell, name,
    {pin: net})], "ports": {name: (direction, width)}}``; nets normalized to strings
    (``_0123_``, ``\\foo.bar [3]`` -> ``\\foo.bar[3]``), constants as ``1'h0``."""
    insts = []
    for m in _INST_RE.finditer(text):
        cell = m.group(1).strip()
        if cell not in lib.cells:
            if cell in ("module", "input", "output", "wire", "assign", "reg"):
                continue
            raise GateSimError(f"instance of {cell!r}, which is not a library cell "
                               "(the netlist must be flat)")
        conns = {p: _norm(n) for p, n in _CONN_RE.findall(m.group(3))}
        insts.append((cell, m.group(2).strip(), conns))
    ports = {}
    for m in _PORT_RE.finditer(text):
        w = abs(int(m.group(2)) - int(m.group(3))) + 1 if m.group(2) else 1
        ports[m.group(4).strip()] = (m.group(1), w)
    return {"instances": insts, "ports": ports}


# --------------------------------------------------------------------------------------------
# Testbench: replay input streams, always accept results
# --------------------------------------------------------------------------------------------
def write_testbench(workdir, top, ports, streams, result_stream="o_result", *,
                    period_ns=10, reset_cycles=2, max_cycles=None):
    """A Verilog testbench ``tb`` that resets the design, replays each input stream (a list of
    payload integers per ``i_<name>`` stream, valid held while beats remain) and writes every
    ``o_result`` beat to ``results.hex``; it stops one cycle after the last expected beat
    (``streams["__results__"]`` beats) and dumps a VCD of the design's nets (its top level:
    the netlist is flat, so these are all the nets between cells; a cell pin toggles exactly
    when its net does)."""
    workdir = Path(workdir)
    n_results = streams["__results__"]
    L = ["`timescale 1ns/1ps", "module tb;", "  reg clk = 1'b0;", "  reg rst = 1'b1;",
         f"  always #{period_ns / 2} clk = ~clk;",
         "  integer cycle = 0; integer got = 0; integer fd;"]
    conns = [".clk(clk)", ".rst(rst)"]
    for name, beats in streams.items():
        if name.startswith("__"):
            continue
        width = ports[f"{name}__payload"][1]
        depth = max(1, len(beats))
        (workdir / f"{name}.hex").write_text(
            "\n".join(f"{b:x}" for b in (beats or [0])) + "\n")
        L += [f"  reg [{width - 1}:0] {name}_mem [0:{depth - 1}];",
              f"  integer {name}_i = 0;",
              f"  wire {name}_ready;",
              f"  wire {name}_valid = !rst && ({name}_i < {len(beats)});",
              f"  wire [{width - 1}:0] {name}_payload = {name}_mem[{name}_i < {depth} ? "
              f"{name}_i : {depth - 1}];",
              f"  initial $readmemh(\"{name}.hex\", {name}_mem);",
              f"  always @(posedge clk) if ({name}_valid && {name}_ready) "
              f"{name}_i <= {name}_i + 1;"]
        conns += [f".{name}__payload({name}_payload)", f".{name}__valid({name}_valid)",
                  f".{name}__ready({name}_ready)"]
    rw = ports[f"{result_stream}__payload"][1]
    L += [f"  wire [{rw - 1}:0] res_payload;", "  wire res_valid;"]
    conns += [f".{result_stream}__payload(res_payload)", f".{result_stream}__valid(res_valid)",
              f".{result_stream}__ready(1'b1)"]
    for p, (d, w) in ports.items():
        if d == "output" and not p.startswith(result_stream) and not p.endswith("__ready"):
            L.append(f"  wire [{w - 1}:0] unused_{p};")
            conns.append(f".{p}(unused_{p})")
    limit = max_cycles or 1_000_000
    L += [f"  {top} dut ({', '.join(conns)});",
          "  initial begin",
          "    fd = $fopen(\"results.hex\", \"w\");",
          "    $dumpfile(\"trace.vcd\");",
          "    $dumpvars(1, tb.dut);",
          "  end",
          "  always @(posedge clk) begin",
          "    cycle <= cycle + 1;",
          f"    if (cycle == {reset_cycles}) rst <= 1'b0;",
          "    if (!rst && res_valid) begin $fwrite(fd, \"%h\\n\", res_payload); got <= got + 1;"
          " end",
          f"    if (got == {n_results} || cycle > {limit}) begin $fclose(fd); $finish; end",
          "  end",
          "endmodule"]
    (workdir / "tb.v").write_text("\n".join(L) + "\n")
    return workdir / "tb.v"


SIMULATORS = ("icarus", "verilator")


def simulate(workdir, sources, *, simulator="icarus", timeout=3600):
    """Build and run ``tb`` in ``workdir`` with Icarus (no compile step: quick for small
    netlists) or Verilator (``--binary --timing --trace``: a C++ build first, then fast);
    return ``{"simulator", "build_s", "run_s"}``."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    workdir = Path(workdir)
    env = tool_env()
    if simulator == "verilator":
        build = ["verilator", "--binary", "--timing", "-CFLAGS", "-fcoroutines", "--trace",
                 "--trace-underscore", "-O1", "--top-module", "tb", "-Wno-fatal", "-Wno-lint",
                 "-Wno-style", "-Wno-MULTIDRIVEN", "-Wno-UNOPTFLAT", "--x-initial", "0",
                 "-Mdir", "obj", "-o", "gatesim", *[str(s) for s in sources]]
        run = ["obj/gatesim"]
    else:
        build = ["iverilog", "-g2005", "-s", "tb", "-o", "gatesim.vvp",
                 *[str(s) for s in sources]]
        run = ["vvp", "-n", "gatesim.vvp"]
    t0 = time.monotonic()
    p = subprocess.run(build, cwd=workdir, env=env, capture_output=True, text=True,
                       timeout=timeout)
    (workdir / "build.log").write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        raise GateSimError(f"{simulator} build failed (exit {p.returncode}); log "
                           f"{workdir / 'build.log'}")
    t1 = time.monotonic()
    p = subprocess.run(run, cwd=workdir, env=env, capture_output=True, text=True,
                       timeout=timeout)
    (workdir / "sim.log").write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        raise GateSimError(f"gate-level simulation failed (exit {p.returncode}); log "
                           f"{workdir / 'sim.log'}")
    return {"simulator": simulator, "build_s": t1 - t0, "run_s": time.monotonic() - t1}


# --------------------------------------------------------------------------------------------
# Toggle counting
# --------------------------------------------------------------------------------------------
def count_net_toggles(vcd_path, t_start, scope=("tb", "dut"), t_end=None):
    """Toggles per net bit of the signals declared directly in ``scope`` from VCD time
    ``t_start`` on (up to ``t_end`` inclusive, if given): ``{net: toggles}``, nets named as
    :func:`parse_netlist` names them (``_0123_``, ``w_bits[1]`` for an escaped scalar,
    ``i_cmd__payload[3]`` for a port bit). Changes to or from ``x``/``z`` are not counted."""
    bits = {}       # code -> [net names per alias], index = bit (LSB first)
    path = []
    want = list(scope)
    with open(vcd_path, errors="replace") as fh:
        for line in fh:
            if line.startswith("$enddefinitions"):
                break
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "$scope":
                path.append(parts[2])
            elif parts[0] == "$upscope":
                path.pop()
            elif parts[0] == "$var" and path[-len(want):] == want and \
                    len(path) >= len(want) and path[:len(path) - len(want)] in ([], ["TOP"]):
                width, code, name = int(parts[2]), parts[3], parts[4].lstrip("\\")
                rng = parts[5] if len(parts) > 5 and parts[5].startswith("[") else None
                if width == 1:
                    names = [name if rng is None or ":" in rng else name + rng]
                else:
                    m = re.match(r"\[(\d+):(\d+)\]", rng or "")
                    lsb = int(m.group(2)) if m else 0
                    names = [f"{name}[{lsb + i}]" for i in range(width)]
                bits.setdefault(code, []).append(names)    # aliases share a code
        counts = {code: [0] * len(n[0]) for code, n in bits.items()}
        last = {}
        counting = False
        for line in fh:
            c = line[:1]
            if c == "#":
                t = int(line[1:])
                counting = t >= t_start and (t_end is None or t <= t_end)
            elif c in "01xzXZ":
                code = line[1:].strip()
                if code in counts:
                    v = int(c) if c in "01" else None
                    prev = last.get(code)
                    if counting and prev is not None and v is not None and prev != v:
                        counts[code][0] += 1
                    last[code] = v
            elif c == "b" or c == "B":
                val, code = line[1:].split()
                if code in counts:
                    if not val.isdigit() or set(val) - {"0", "1"}:
                        last[code] = None
                        continue
                    v = int(val, 2)
                    prev = last.get(code)
                    if counting and prev is not None and prev != v:
                        diff, i, cnt = prev ^ v, 0, counts[code]
                        while diff:
                            if diff & 1:
                                cnt[i] += 1
                            diff >>= 1
                            i += 1
                    last[code] = v
    out = {}
    for code, aliases in bits.items():
        for names in aliases:
            for n, t in zip(names, counts[code]):
                out[n] = t
    return out


def pin_toggles(netlist, net_toggles):
    """``{(instance, pin): toggles}`` from the net toggles (a pin toggles with its net);
    pins whose net is not in the trace are left out (and reported missing by the power
    model)."""
    out = {}
    for _, inst, conns in netlist["instances"]:
        for pin, net in conns.items():
            key = net.lstrip("\\")
            if key in net_toggles:
                out[(inst, pin)] = net_toggles[key]
    return out
