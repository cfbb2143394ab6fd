"""Proof harnesses: Verilog modules that wrap an emitted block and compare it with the math.

Each function returns the text of one harness module (named by :data:`HARNESS`) for one
design point. The reference side is plain Verilog arithmetic written from the config, in
widths two or more bits wider than any value it holds, so the reference itself cannot
overflow; the device side is the emitted module, instantiated by the name and ports found in
the emitted file (:class:`~gen.formal.emitted.EmittedVerilog`).

Combinational and bounded harnesses have one output ``ok`` that Yosys' ``sat -prove ok 1``
proves; assumptions on the inputs are folded in as ``ok = ~assumed | property``. The stream
harness is for SymbiYosys: SystemVerilog immediate ``assert``/``assume`` statements.
"""
from __future__ import annotations

from gen.config import LutConfig, WeightFormat

from .emitted import EmittedVerilog, instance_name

__all__ = ["HARNESS", "lookup_table_miter", "pe_harness", "correction_miter", "stream_harness",
           "engine_stream_harness"]

#: module name of every harness (one harness per proof directory)
HARNESS = "lutcore_formal"


def _sum(terms):
    return " + ".join(terms) if terms else "0"


def lookup_table_miter(cfg: LutConfig, ev: EmittedVerilog, lookup_module):
    """``ok``: the lookup's entry equals entry ``index`` of the full ``2**g``-entry table, for
    every stored table content.

    Free inputs: the stored entries ``s_e`` (any value a table of ``g`` activations can hold,
    ``|s_e| <= g * 2**(a_bits-1)``) and the index. The full table is defined from them by the
    symmetry of every activation table, ``T[~idx] = -T[idx]`` (``T[e] = s_e`` for index
    MSB 0, ``-s_{~e}`` for MSB 1); non-symmetric builds store all ``2**g`` entries and the
    reference is ``s_index``. Reference in ``entry_width + 2`` bits.
    """
    wide = cfg.entry_width + 2
    g, ew, half = cfg.g, cfg.entry_width, 1 << (cfg.g - 1)
    bound = g << (cfg.a_bits - 1)
    stored = cfg.table_entries
    lines = [f"module {HARNESS}(",
             *[f"  input signed [{ew - 1}:0] s_{e}," for e in range(stored)],
             f"  input [{g - 1}:0] index,", "  output ok);"]
    lines += [f"  wire signed [{wide - 1}:0] sx_{e} = s_{e};" for e in range(stored)]
    full = []
    for e in range(1 << g):
        if cfg.symmetric and e >= half:
            full.append(f"-sx_{~e & (half - 1)}")
        else:
            full.append(f"sx_{e}")
    lines += [f"  reg signed [{wide - 1}:0] reference;",
              "  always @* begin", "    reference = 0;", "    case (index)",
              *[f"      {g}'d{e}: reference = {f};" for e, f in enumerate(full)],
              "    endcase", "  end",
              f"  wire [{cfg.table_row_width - 1}:0] table_row = {{"
              + ", ".join(f"s_{e}" for e in reversed(range(stored))) + "};",
              f"  wire [{ew - 1}:0] entry;",
              f"  {instance_name(lookup_module)} dut (\n    "
              + ev.connect(lookup_module, table_row="table_row", index="index", entry="entry")
              + ");",
              "  wire assumed = " + " && ".join(f"(sx_{e} >= -{bound}) && (sx_{e} <= {bound})"
                                                for e in range(stored)) + ";",
              "  assign ok = !assumed || ($signed(entry) == reference);", "endmodule", ""]
    return "\n".join(lines)


def pe_harness(cfg: LutConfig, ev: EmittedVerilog, pe_module, groups, w):
    """``ok``: after ``groups`` groups of ``w`` bit-planes, driven as the array drives them,
    the PE's ``out`` equals ``sum_j sum_b 2**b * e_jb`` exactly, where ``e_jb`` is the entry
    its lookup produced for plane ``b`` of group ``j``.

    The table and the index are free inputs in every cycle; the harness records the lookup's
    entry each cycle through its input ``e_obs``, which the proof script ties to the PE's
    internal ``lookup.entry`` (``sat -set e_obs dut.lookup.entry``). Assumed: every entry is
    within ``|e| <= g * 2**(a_bits-1)``, the range of any table of ``g`` activations. With
    the lookup proof (``entry = T[index]``) this gives the PE's math,
    ``out = sum_j sum_b 2**b T_j[idx_jb]``, the accumulator loop of docs/interface.md, and
    shows that ``partial_width`` and ``acc_width`` never overflow. (Asked to prove the PE
    against the tables' algebra directly, a SAT solver needs minutes per plane: it has to
    rediscover that a negated sum equals the sum of the negations.)

    ``t`` counts cycles from 0 (its only initial value); cycle ``t >= 1`` steps plane
    ``w-1 - (t-1) % w`` of group ``(t-1) // w`` (MSB first) with the array's control
    signals, and ``out`` holds the result in cycle ``groups * w + 1``, where ``ok`` checks
    it. The PE starts from any state (the script frees its registers' initial values).
    A Yosys ``sat -seq groups*w+2`` proves ``ok`` at every step.
    """
    g, ew = cfg.g, cfg.entry_width
    total = groups * w
    tw = max(1, (total + 1).bit_length())
    wide = cfg.acc_width + 3
    bound = g << (cfg.a_bits - 1)
    lines = [f"module {HARNESS}(", "  input clk,",
             f"  input [{cfg.table_row_width - 1}:0] table_row,", f"  input [{g - 1}:0] index,",
             f"  input [{ew - 1}:0] e_obs,", "  output ok);",
             f"  reg [{tw - 1}:0] t = 0;",
             f"  always @(posedge clk) if (t != {total + 1}) t <= t + 1;",
             "  reg step, first_plane, last_plane, first_group, capture;",
             "  always @* begin",
             "    step = 0; first_plane = 0; last_plane = 0; first_group = 0; capture = 0;",
             "    case (t)"]
    for t in range(total):
        j, b = divmod(t, w)
        b = w - 1 - b
        lines.append(f"      {t + 1}: begin step = 1; first_plane = {int(b == w - 1)}; "
                     f"last_plane = {int(b == 0)}; first_group = {int(j == 0)}; "
                     f"capture = {int(t == total - 1)}; end")
    lines += ["      default: ;", "    endcase", "  end",
              f"  wire [{cfg.acc_width - 1}:0] out;",
              f"  {instance_name(pe_module)} dut (\n    "
              + ev.connect(pe_module, clk="clk", rst="1'b0", table_row="table_row",
                           index="index", step="step", first_plane="first_plane",
                           last_plane="last_plane", first_group="first_group",
                           capture="capture", out="out") + ");"]
    # the entry of every step, recorded
    lines += [f"  reg signed [{ew - 1}:0] e_{t};" for t in range(total)]
    lines += [f"  always @(posedge clk) if (t == {t + 1}) e_{t} <= e_obs;" for t in range(total)]
    terms = []
    for j in range(groups):
        # sum_b 2**b * e_jb, MSB first (Horner): the planes arrive MSB first
        h = f"e_{j * w}"
        for b in range(1, w):
            h = f"(({h}) <<< 1) + e_{j * w + b}"
        lines.append(f"  wire signed [{wide - 1}:0] group_{j} = {h};")
        terms.append(f"group_{j}")
    lines += [f"  wire signed [{wide - 1}:0] reference = {_sum(terms)};",
              "  wire bounded = " + " &&\n    ".join(
                  f"($signed(e_{t}) >= -{bound}) && ($signed(e_{t}) <= {bound})"
                  for t in range(total)) + ";",
              f"  assign ok = (t != {total + 1}) || !bounded || ($signed(out) == reference);",
              "endmodule", ""]
    return "\n".join(lines)


def _fmt_range(cfg: LutConfig, fmt: WeightFormat, w):
    """Range of the exact dot product at ``k_pad`` for one (format, w)."""
    wlo, whi = fmt.value_range(w)
    amin, amax = -(1 << (cfg.a_bits - 1)), (1 << (cfg.a_bits - 1)) - 1
    products = [x * y for x in (amin, amax) for y in (wlo, whi)]
    return cfg.k_pad * min(products), cfg.k_pad * max(products)


def correction_miter(cfg: LutConfig, ev: EmittedVerilog, corr_module, fmt: WeightFormat, w):
    """``ok``: for every column, the corrected result equals the exact dot product ``d_c``.

    Free inputs: the dot products ``d_c`` (one per column, within the range ``k_pad``
    activations and weights of this format can give) and the activation sum ``s`` (within
    ``k_pad`` activations' range). The accumulator value that reaches the correction is the
    one the offset code yields: ``2d + s`` (int, ternary: code = value + 2**(w-1)),
    ``2d - (2**w - 1) s`` (uint), ``d`` (binary). Assumed: that value fits ``acc_width`` (the
    accumulator-range proof shows every reachable one does). Format and ``w`` are constants.
    """
    n = cfg.n
    wide = max(cfg.acc_width, cfg.sum_width + cfg.w_bits + 2, cfg.result_width) + 3
    dlo, dhi = _fmt_range(cfg, fmt, w)
    slo, shi = cfg.k_pad * -(1 << (cfg.a_bits - 1)), cfg.k_pad * ((1 << (cfg.a_bits - 1)) - 1)
    alo, ahi = -(1 << (cfg.acc_width - 1)), (1 << (cfg.acc_width - 1)) - 1
    rw, aw = cfg.result_width, cfg.acc_width
    lines = [f"module {HARNESS}(",
             *[f"  input signed [{rw - 1}:0] d_{c}," for c in range(n)],
             f"  input signed [{cfg.sum_width - 1}:0] s,", "  output ok);",
             f"  wire signed [{wide - 1}:0] sx = s;"]
    assumed, holds = [f"(sx >= {slo}) && (sx <= {shi})"], []
    for c in range(n):
        if fmt in (WeightFormat.INT, WeightFormat.TERNARY):
            acc = f"(dx_{c} <<< 1) + sx"
        elif fmt is WeightFormat.UINT:
            acc = f"(dx_{c} <<< 1) - ((sx <<< {w}) - sx)"
        else:
            acc = f"dx_{c}"
        lines += [f"  wire signed [{wide - 1}:0] dx_{c} = d_{c};",
                  f"  wire signed [{wide - 1}:0] acc_{c} = {acc};",
                  f"  wire signed [{rw - 1}:0] r_{c};"]
        assumed += [f"(dx_{c} >= {dlo}) && (dx_{c} <= {dhi})",
                    f"(acc_{c} >= {alo}) && (acc_{c} <= {ahi})"]
        holds.append(f"($signed(r_{c}) == dx_{c})")
    acc_row = "{" + ", ".join(f"acc_{c}[{aw - 1}:0]" for c in reversed(range(n))) + "}"
    res_row = "{" + ", ".join(f"r_{c}" for c in reversed(range(n))) + "}"
    lines += [f"  {instance_name(corr_module)} dut (\n    "
              + ev.connect(corr_module, acc=acc_row, act_sum="s",
                           format=f"2'd{fmt.value}", w_bits=f"{cfg.plane_width}'d{w}",
                           result=res_row) + ");",
              "  wire assumed = " + " &&\n    ".join(assumed) + ";",
              "  assign ok = !assumed || (" + " && ".join(holds) + ");", "endmodule", ""]
    return "\n".join(lines)


def _output_checks(cfg: LutConfig, rw, finishing):
    """The ``o_result`` assertions shared by the stream harnesses (``due``, ``delivered``:
    rows owed and rows taken; ``finishing``: the condition of an edge that ends an operation,
    i.e. makes ``m`` more rows owed). Opens the ``always @*`` block of the assertions.

    ``valid`` stays up and ``payload`` unchanged until ``ready``, and ``valid`` is high
    exactly when rows are owed: none lost, none made up. With ``output_buffer = "row"`` the
    first row of an operation reaches the output register one cycle after the edge that
    finished the operation (valid may be low then), and the last row of the previous
    operation may still wait there: up to ``m + 1`` rows owed; otherwise ``m``.
    """
    lag = cfg.output_buffer == "row"
    lines = ["  reg waited = 0, fresh = 0;", f"  reg [{rw - 1}:0] held = 0;",
             "  always @(posedge clk) begin",
             "    waited <= !rst && o_result__valid && !o_result__ready;",
             f"    fresh <= !rst && {finishing};",
             "    held <= o_result__payload;",
             "  end",
             "  always @* if (!init) begin",
             "    if (waited) assert(o_result__valid && o_result__payload == held);"]
    if lag:
        lines.append("    assert(o_result__valid ? due != delivered : "
                     "(due == delivered || fresh));")
    else:
        lines.append("    assert(o_result__valid == (due != delivered));")
    lines.append(f"    assert(due - delivered <= {cfg.m + lag});")
    return lines


def _legal_cmd(cfg: LutConfig, fmt, w, groups):
    """Verilog condition: a command the build runs (``gen.golden.pack_cmd`` accepts)."""
    ops = " || ".join(f"({fmt} == 2'd{f.value} && {w} == {wv})" for f, wv in cfg.ops())
    return f"({groups} >= 1) && ({groups} <= {cfg.groups_max}) && ({ops})"


def stream_harness(cfg: LutConfig, ev: EmittedVerilog, top):
    """SymbiYosys harness of the array's streams; the solver drives every input freely.

    Assumed: reset in the first cycle, and every command the array accepts is legal.
    Asserted each cycle, counting beats in the harness (reset with the array):

    * ``o_result``: ``valid`` stays up and ``payload`` unchanged until ``ready``;
      ``valid`` is high exactly when results are owed (``m`` per finished operation, minus
      the beats delivered): none lost, none duplicated; never more than ``m`` owed;
    * ``i_weight``: a beat is taken only while the operation in flight still needs one and
      its group's table is held;
    * ``i_table``: at most one table held (none overwritten before its last plane);
    * ``i_cmd``: a command is taken only when no operation runs or the running one ends on
      that edge; ``o_busy`` is high exactly while an operation runs or results are owed.
    """
    ports = ev.ports(top)
    pw, gw = cfg.plane_width, cfg.groups_width
    cw = 8    # beat counters: a bounded run of up to 255 cycles cannot wrap them
    nets = {b: p.name for b, p in ports.items()}
    rw = cfg.result_row_width
    lines = [f"module {HARNESS}(", _port_decls(ports), ");",
             f"  {instance_name(top)} dut (\n    " + ev.connect(top, **nets) + ");",
             "  wire cfire = i_cmd__valid && i_cmd__ready;",
             "  wire tfire = i_table__valid && i_table__ready;",
             "  wire wfire = i_weight__valid && i_weight__ready;",
             "  wire rfire = o_result__valid && o_result__ready;",
             "  wire [1:0] c_format = i_cmd__payload[1:0];",
             f"  wire [{pw - 1}:0] c_w = i_cmd__payload[{1 + pw}:2];",
             f"  wire [{gw - 1}:0] c_groups = i_cmd__payload[{1 + pw + gw}:{2 + pw}];",
             "  reg init = 1;", "  always @(posedge clk) init <= 0;",
             "  always @* if (init) assume(rst);",
             f"  always @* if (cfire) assume({_legal_cmd(cfg, 'c_format', 'c_w', 'c_groups')});",
             # beat accounting of the operation in flight and of the results owed
             f"  reg [{cw - 1}:0] need_w = 0, due = 0, delivered = 0;",
             f"  reg [{pw - 1}:0] cur_w = 0, plane = 0;", "  reg [1:0] tables = 0;",
             f"  reg [{cw - 1}:0] nw;", f"  reg [{pw - 1}:0] pc;", "  reg [1:0] tb;",
             f"  reg [{cw - 1}:0] dd;",
             "  always @(posedge clk) begin",
             "    if (rst) begin need_w <= 0; due <= 0; delivered <= 0; cur_w <= 0; plane <= 0; "
             "tables <= 0; end",
             "    else begin",
             "      nw = need_w; pc = plane; tb = tables; dd = due;",
             "      if (wfire) begin",
             "        nw = nw - 1;",
             "        if (pc == cur_w - 1) begin pc = 0; tb = tb - 1; end else pc = pc + 1;",
             f"        if (nw == 0) dd = dd + {cfg.m};",
             "      end",
             "      if (tfire) tb = tb + 1;",
             # groups * w as a sum of shifts: a product would make the solver's job nonlinear
             "      if (cfire) begin nw = " + " + ".join(
                 f"(c_w[{b}] ? ({{{cw - gw}'d0, c_groups}} << {b}) : {cw}'d0)" for b in range(pw))
             + "; pc = 0; cur_w <= c_w; end",
             "      need_w <= nw; plane <= pc; tables <= tb; due <= dd;",
             "      if (rfire) delivered <= delivered + 1;",
             "    end",
             "  end",
             # the output stream's previous cycle
             *_output_checks(cfg, rw, "wfire && need_w == 1"),
             "    if (wfire) assert(need_w != 0 && tables != 0);",
             "    assert(tables <= 1);",
             "    if (cfire) assert(need_w == 0 || (wfire && need_w == 1));",
             "    assert(o_busy == (need_w != 0 || due != delivered));",
             "  end",
             "endmodule", ""]
    return "\n".join(lines)


def _port_decls(ports):
    decl = []
    for p in ports.values():
        rng = f"[{p.width - 1}:0] " if p.width > 1 else ""
        decl.append(f"  {'input' if p.direction == 'input' else 'output'} {rng}{p.name}")
    return ",\n".join(decl)


def engine_stream_harness(cfg: LutConfig, ev: EmittedVerilog, top):
    """SymbiYosys harness of the engine's streams (:class:`hw.engine.LutEngine`); the solver
    drives every input freely.

    Assumed: reset in the first cycle, and every GEMM command the engine accepts is legal
    (an array command the build runs, ``m_tiles, n_tiles >= 1``). The harness follows each
    stream's position in the GEMM in flight with nested counters (no products: a multiplier
    would make the solver's job nonlinear): tables (or activations) per row block per
    group, weights per row block, column block, group and plane, result rows per tile.
    Asserted each cycle:

    * ``o_result``: ``valid`` stays up and ``payload`` unchanged until ``ready``; ``valid``
      is high exactly when rows are owed (``m`` per tile whose last weight plane was taken,
      minus the rows delivered), never more than ``m``;
    * ``i_weight``: a beat is taken only while the GEMM still needs one, and only after the
      table beat of its row block and group was taken;
    * ``i_table`` / ``i_act``: a beat is taken only while the GEMM still needs one, at most
      two row blocks ahead of the weights (the two banks of the table memory);
    * ``i_cmd``: taken only when no GEMM is in flight; ``o_busy`` is high exactly while one
      is (from its command to its last result row).
    """
    ports = ev.ports(top)
    nets = {b: p.name for b, p in ports.items()}
    src = "i_act" if "i_act__valid" in nets else "i_table"
    pw, gw, tw = cfg.plane_width, cfg.groups_width, cfg.tile_count_width
    cmw, rw, mw = cfg.cmd_width, cfg.result_row_width, max(1, cfg.row_index_width)
    cw = 8    # row counters: a bounded run of up to 255 cycles cannot wrap them
    lines = [f"module {HARNESS}(", _port_decls(ports), ");",
             f"  {instance_name(top)} dut (\n    " + ev.connect(top, **nets) + ");",
             "  wire cfire = i_cmd__valid && i_cmd__ready;",
             f"  wire tfire = {src}__valid && {src}__ready;",
             "  wire wfire = i_weight__valid && i_weight__ready;",
             "  wire rfire = o_result__valid && o_result__ready;",
             "  wire [1:0] c_format = i_cmd__payload[1:0];",
             f"  wire [{pw - 1}:0] c_w = i_cmd__payload[{1 + pw}:2];",
             f"  wire [{gw - 1}:0] c_groups = i_cmd__payload[{1 + pw + gw}:{2 + pw}];",
             f"  wire [{tw - 1}:0] c_mt = i_cmd__payload[{cmw + tw - 1}:{cmw}];",
             f"  wire [{tw - 1}:0] c_nt = i_cmd__payload[{cmw + 2 * tw - 1}:{cmw + tw}];",
             "  reg init = 1;", "  always @(posedge clk) init <= 0;",
             "  always @* if (init) assume(rst);",
             f"  always @* if (cfire) assume({_legal_cmd(cfg, 'c_format', 'c_w', 'c_groups')}"
             " && c_mt != 0 && c_nt != 0);",
             # the GEMM in flight and each stream's position in it
             "  reg busy = 0;",
             f"  reg [{pw - 1}:0] cur_w = 0, wp = 0;",
             f"  reg [{gw - 1}:0] groups = 0, tg = 0, wg = 0;",
             f"  reg [{tw - 1}:0] mt = 0, nt = 0, tm = 0, wn = 0, wm = 0, rn = 0, rm = 0;",
             f"  reg [{mw - 1}:0] rr = 0;",
             f"  reg [{cw - 1}:0] due = 0, delivered = 0;",
             "  wire t_done = tm == mt;",
             "  wire w_done = wm == mt;",
             "  wire w_last_plane = wp == cur_w - 1;",
             "  wire w_last_group = wg == groups - 1;",
             "  wire r_last = rr == " + str(cfg.m - 1) + " && rn == nt - 1 && rm == mt - 1;",
             "  always @(posedge clk) begin",
             "    if (rst) begin busy <= 0; cur_w <= 0; wp <= 0; groups <= 0; tg <= 0; wg <= 0;",
             "      mt <= 0; nt <= 0; tm <= 0; wn <= 0; wm <= 0; rn <= 0; rm <= 0; rr <= 0;",
             "      due <= 0; delivered <= 0; end",
             "    else begin",
             "      if (tfire) begin",
             "        if (tg == groups - 1) begin tg <= 0; tm <= tm + 1; end else tg <= tg + 1;",
             "      end",
             "      if (wfire) begin",
             "        if (!w_last_plane) wp <= wp + 1;",
             "        else begin",
             "          wp <= 0;",
             "          if (!w_last_group) wg <= wg + 1;",
             f"          else begin wg <= 0; due <= due + {cfg.m};",
             "            if (wn == nt - 1) begin wn <= 0; wm <= wm + 1; end else wn <= wn + 1;",
             "          end",
             "        end",
             "      end",
             "      if (rfire) begin",
             "        delivered <= delivered + 1;",
             f"        if (rr != {cfg.m - 1}) rr <= rr + 1;",
             "        else begin rr <= 0;",
             "          if (rn == nt - 1) begin rn <= 0; rm <= rm + 1; end else rn <= rn + 1;",
             "        end",
             "        if (r_last) busy <= 0;",
             "      end",
             "      if (cfire) begin busy <= 1; cur_w <= c_w; groups <= c_groups; mt <= c_mt;",
             "        nt <= c_nt; tg <= 0; tm <= 0; wp <= 0; wg <= 0; wn <= 0; wm <= 0;",
             "        rr <= 0; rn <= 0; rm <= 0; end",
             "    end",
             "  end",
             *_output_checks(cfg, rw, "wfire && w_last_plane && w_last_group"),
             "    if (rfire) assert(busy);",
             "    if (wfire) assert(busy && !w_done && (tm > wm || (tm == wm && tg > wg)));",
             "    if (tfire) assert(busy && !t_done && tm <= wm + 2);",
             "    if (cfire) assert(!busy);",
             "    assert(o_busy == busy);",
             "  end",
             "endmodule", ""]
    return "\n".join(lines)
