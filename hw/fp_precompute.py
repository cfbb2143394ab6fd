"""Hardware table precompute for FP activations (``q`` tables): the quantized tables and the
table scales of docs/fp-lut.md sections 1-2, built from a stream of FP16/BF16 activations,
bit-exactly as ``gen.fp_lut.fp_tables`` and ``gen.fp_lut.quantize_tables`` define them.

Three steps per scale block of ``b`` groups (docs/fp-lut-q-hw.md, "Hardware precompute"):

* **amax** as the activations arrive: per row and group the sum of magnitudes
  ``P = (((|a_0| + |a_1|) + |a_2|) + ...)`` in FP32, left to right, RNE. It is the largest
  ``|T[idx]|`` of the group bit for bit: it is ``T`` of the index whose signs match the
  activations', and every other ``|T[idx]|`` is at most it (RNE is monotone and sign-symmetric,
  so ``|fl(x + y)| = fl(|x + y|) <= fl(|x| + |y|)`` at every step). A block is non-finite
  exactly when some ``P`` is (a NaN or Inf activation, or an overflowing sum).
* **scale** ``s = RNE_fp32(amax / Qmax)``: one restoring divider per row by the constant
  ``Qmax``, ``precompute_div_steps`` quotient bits per cycle.
* **quantize**, ``precompute_rows`` rows of one group per cycle (one by default; each row
  its own copy of the tree and the quantizer below): the ``2**(g-1)`` sums ``T[idx]`` with index
  MSB 0 (the stored half; the other half is their negation, exact) from a tree of FP32 adders
  that keeps the golden order, then ``q = clip(RNE(T / s), +-Qmax)`` for each by a restoring
  divider of the significands with a round bit and a sticky remainder
  (``hw.fp_quantize.EntryQuantizer``).

Both adder trees and the quantizer are pipelined, one FP32 adder level per cycle
(``LutConfig.precompute_sum_stages``) and ``precompute_quantize_stages`` cycles for the
quantizer, so no path holds more than about one FP32 adder; ``LutConfig.precompute_latency``
is the resulting latency of a block's first table beat.
"""
from __future__ import annotations

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from gen.config import LutConfig
from gen.config_fp import scale_div_cycles
from gen.fp import FP32, default_window

from .fp.common import FPUnit, exp_width
from .fp_quantize import EntryQuantizer, stage_register
from .layouts import stream_ports, table_layout

__all__ = ["FpTablePrecompute", "ScaleDivider", "EntryQuantizer", "FpAdd", "fp_act_layout"]


def fp_act_layout(cfg: LutConfig):
    """FP engine ``i_act`` beat: ``m`` rows of ``g`` activation-format patterns, activation
    ``i`` of row ``r`` at ``[(r*g + i) * 16 +: 16]``."""
    return data.ArrayLayout(data.ArrayLayout(cfg.act_fp.width, cfg.g), cfg.m)


def _check_cfg(cfg):
    if not isinstance(cfg, LutConfig):
        raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
    if cfg.table_format != "q":
        raise ValueError(f"table_format must be 'q' for the FP precompute, "
                         f"not {cfg.table_format!r}")
    if cfg.tables_per_pe != 1:
        raise ValueError(f"tables_per_pe must be 1 for the FP precompute, "
                         f"not {cfg.tables_per_pe}")


class FpAdd(FPUnit):
    """``out = a + b`` rounded once (RNE) into FP32, ``a`` a pattern of ``fmt_a``, ``b`` of
    ``fmt_b`` (FP16/BF16/FP32; the activation formats are exact in FP32): the FP32 adder's
    circuit (``hw.fp.units.FPAdder``, golden ``gen.fp.fp_add``) on unpacked operands of either
    width, so an activation needs no widening first. Its own module: Yosys then optimizes one
    adder at a time (with the whole tree in one module its resource-sharing pass ran for over
    20 minutes without finishing)."""

    def __init__(self, fmt_a, fmt_b):
        self.fmt_a, self.fmt_b = fmt_a, fmt_b
        super().__init__({"a": wiring.In(fmt_a.width), "b": wiring.In(fmt_b.width),
                          "out": wiring.Out(32)}, False)

    def elaborate(self, platform):
        m = Module()
        ew = exp_width(self.fmt_a, self.fmt_b, FP32)
        terms = [self.unpack(m, self.a, self.fmt_a, ew, "a"),
                 self.unpack(m, self.b, self.fmt_b, ew, "b")]
        m.d.comb += self.out.eq(self.fused_sum(m, terms, FP32, default_window(FP32), ew))
        return m


def _add(m, a, fmt_a, b, fmt_b, name):
    """FP32 bits of ``a + b`` from an :class:`FpAdd` submodule ``name``."""
    m.submodules[name] = unit = FpAdd(fmt_a, fmt_b)
    m.d.comb += [unit.a.eq(a), unit.b.eq(b)]
    return unit.out


def _neg(bits):
    """The pattern with its sign flipped: exact negation (a NaN stays a NaN)."""
    return Cat(bits[:-1], ~bits[-1])


def _abs(bits):
    return Cat(bits[:-1], C(0, 1))


def abs_sum(m, acts, fmt, name, cut=None):
    """FP32 bits of ``((|a_0| + |a_1|) + ...)``: the largest ``|T|`` of the group. ``cut``:
    a function taking the values live after an adder (all but the last) and returning them
    through a pipeline register."""
    acts = list(acts)
    acc, fmt_acc = _abs(acts[0]), fmt
    for i in range(1, len(acts)):
        acc, fmt_acc = _add(m, acc, fmt_acc, _abs(acts[i]), fmt, f"{name}_s{i}"), FP32
        if cut is not None and i < len(acts) - 1:
            acc, *acts[i + 1:] = cut([acc, *acts[i + 1:]])
    return acc


def half_table_sums(m, acts, fmt, name, cut=None):
    """FP32 bits of ``T[idx]`` for ``idx < 2**(g-1)`` (``a_{g-1}`` subtracted), in the golden
    order ``((±a_0 ± a_1) ± a_2) ...``. A prefix sum and its negation differ only in sign
    (RNE is sign-symmetric; an exact zero is +0 both ways, which no quotient sees), so each
    level adds only the prefixes with ``+a_0``: ``2**g - 2`` adders in all (14 at g = 4).
    ``cut``: as for :func:`abs_sum`, after every level (the last one's sums included)."""
    g = len(acts)
    acts = list(acts)
    # prefix[p] for patterns p of bits 0..j with bit 0 set: the bits of sum_i ±a_i, its format
    prefix = {1: (acts[0], fmt)}
    for j in range(1, g - 1):
        nxt = {}
        for p, (v, f) in prefix.items():
            for bit in (0, 1):
                key = p | bit << j
                nxt[key] = (_add(m, v, f, acts[j] if bit else _neg(acts[j]), fmt,
                                 f"{name}_p{j}_{key}"), FP32)
        prefix = nxt
        if cut is not None:
            keys = sorted(prefix)
            vals = cut([prefix[k][0] for k in keys] + acts[j + 1:])
            prefix = {k: (v, FP32) for k, v in zip(keys, vals)}
            acts[j + 1:] = vals[len(keys):]
    out = []
    for idx in range(1 << (g - 1)):
        if idx & 1:
            v, f = prefix[idx]
            out.append(_add(m, v, f, _neg(acts[g - 1]), fmt, f"{name}_t{idx}"))
        else:          # T[idx] = -(P(~idx) + a_{g-1}): the value with every sign flipped
            v, f = prefix[~idx & ((1 << (g - 1)) - 1)]
            out.append(_neg(_add(m, v, f, acts[g - 1], fmt, f"{name}_t{idx}")))
    return out if cut is None else cut(out)


class _GroupSums(wiring.Component):
    """One row's group in its own module (so synthesis sees one adder tree at a time), one
    FP32 adder level per cycle (``LutConfig.precompute_sum_stages`` registers):

    * ``kind = "abs"``: ``out`` = :func:`abs_sum` (32 bits) of the ``acts`` of ``g - 2``
      cycles earlier, a register after every adder but the last (whose sum goes on into
      the running maximum's register); the registers load on every cycle.
    * ``"half"``: ``out`` = the ``2**(g-1)`` sums of :func:`half_table_sums`, entry ``e`` at
      ``[32 e +: 32]``, of the ``acts`` of ``g - 1`` cycles with ``en`` high earlier (a
      register after every level)."""

    def __init__(self, fmt, g, kind):
        self.fmt, self.g, self.kind = fmt, g, kind
        ports = {"acts": wiring.In(g * fmt.width)}
        if kind == "abs":
            ports["out"] = wiring.Out(32)
        else:
            ports.update(en=wiring.In(1), out=wiring.Out(32 << (g - 1)))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        w = self.fmt.width
        acts = [self.acts[i * w:(i + 1) * w] for i in range(self.g)]
        level = 0

        def cut(values):
            nonlocal level
            level += 1
            en = None if self.kind == "abs" else self.en
            return [stage_register(m, Value.cast(v), f"s{level}_{i}", en)
                    for i, v in enumerate(values)]

        if self.kind == "abs":
            m.d.comb += self.out.eq(abs_sum(m, acts, self.fmt, "pabs", cut))
        else:
            m.d.comb += self.out.eq(Cat(*half_table_sums(m, acts, self.fmt, "tab", cut)))
        return m


class ScaleDivider(FPUnit):
    """``s = RNE_fp32(amax / Qmax)`` by restoring division (golden:
    ``gen.fp_lut.quantize_tables``'s scale).

    ``amax = M * 2**e`` (FP32, non-negative): the quotient ``Q`` of ``M * 2**(t+1)`` by the
    constant ``Qmax = 2**(t-1) - 1`` and its remainder give the exact value
    ``(Q + rem / Qmax) * 2**(e-t-1)``; ``Q`` has >= 26 bits for a normal ``amax`` (and reaches
    below the subnormal grid for a subnormal one), so ``Q`` with the sticky bit ``rem != 0``
    rounds once (``round_pack``) exactly as the exact quotient does. ``steps`` quotient bits
    per cycle, ``cycles = ceil((24 + t + 1) / steps)`` cycles from ``start`` to ``done``.
    ``amax = 0`` gives +0, ``amax`` Inf or NaN the canonical NaN.

    Attributes
    ----------
    start : Signal(1), in     load ``amax`` (ignored while busy)
    amax : Signal(32), in
    busy, done : Signal(1), out   ``done`` stays high with ``out`` until the next ``start``
    out : Signal(32), out
    """

    def __init__(self, table_bits, steps):
        for name, v, lo, hi in (("table_bits", table_bits, 4, 16), ("steps", steps, 1, 64)):
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"{name} must be in {lo}..{hi}, not {v!r}")
        self.t = table_bits
        self.qmax = (1 << (table_bits - 1)) - 1
        self.n_bits = FP32.sig_bits + table_bits + 1
        self.steps = steps
        self.cycles = scale_div_cycles(table_bits, steps)
        super().__init__({"start": wiring.In(1), "amax": wiring.In(32), "busy": wiring.Out(1),
                          "done": wiring.Out(1), "out": wiring.Out(32)}, False)

    def elaborate(self, platform):
        m = Module()
        ew = exp_width(FP32)
        nb, qmax = self.n_bits, self.qmax
        held = Signal(32)
        p = self.unpack(m, held, FP32, ew, "amax")
        num = Signal(nb)                  # the dividend's bits still to bring down, MSB first
        quot = Signal(self.cycles * self.steps)   # Q of the dividend times 2**extra
        rem = Signal(self.t)
        left = Signal(range(self.cycles + 1))
        m.d.comb += [self.busy.eq(left != 0)]

        # ``steps`` restoring steps: bring down one bit, subtract Qmax if it fits
        r, n, q = rem, num, quot
        for i in range(self.steps):
            trial = Signal(self.t + 1, name=f"trial{i}")
            m.d.comb += trial.eq(Cat(n[-1], r))
            fits = trial >= qmax
            r2 = Signal(self.t, name=f"rem{i}")
            m.d.comb += r2.eq(Mux(fits, trial - qmax, trial))
            r, n, q = r2, (n << 1)[:nb], Cat(fits, q)
        with m.If(self.start & ~self.busy):
            m.d.sync += [held.eq(self.amax), num.eq(self.unpack(m, self.amax, FP32, ew, "in")
                                                    .sig << (self.t + 1)),
                         quot.eq(0), rem.eq(0), left.eq(self.cycles), self.done.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += [rem.eq(r), num.eq(n[:nb]), quot.eq(q[:len(quot)]), left.eq(left - 1)]
            with m.If(left == 1):
                m.d.sync += self.done.eq(1)

        # steps past the dividend's last bit shift zeros in: Q then holds extra low bits
        extra = self.cycles * self.steps - nb
        mag = Cat(rem.any(), quot)
        e_lsb = Signal(signed(ew))
        m.d.comb += e_lsb.eq(p.e_lsb - (self.t + 1) - extra - 1)
        rounded = self.round_pack(m, C(0, 1), mag, e_lsb, FP32, ew, "s")
        with m.If(p.nan | p.inf):
            m.d.comb += self.out.eq(FP32.qnan)
        with m.Elif(p.zero):
            m.d.comb += self.out.eq(0)
        with m.Else():
            m.d.comb += self.out.eq(rounded)
        return m


def _rep(name, j):
    """Replica ``j``'s name: the first one keeps the name of the one-row design."""
    return name if j == 0 else f"{name}{j}"


def _part(value, j, width):
    """Word ``j`` of ``width`` bits of ``value`` (the value itself when it is one word)."""
    return value if len(value) == width else value[j * width:(j + 1) * width]


class FpTablePrecompute(wiring.Component):
    """The ``q`` tables (``o_table``, one beat per group) and the table scales (``o_tscale``,
    one beat per scale block) of a stream of FP activations (``i_act``, one beat per group:
    ``m x g`` patterns), every ``scale_block`` beats one block.

    Blocks flow through three stages that overlap across blocks: the activations go into one
    of two banks of a block memory while their amax is taken (a pipeline of
    ``precompute_sum_stages`` cycles); the row dividers form the block's scales; the bank is
    read back ``R = precompute_rows`` rows of one group per cycle (``m / R`` cycles per table
    beat, ``LutConfig.precompute_beat_cycles``) into ``R`` copies of a pipeline of
    the table sums (``precompute_sum_stages`` cycles) and the quantizer
    (``precompute_quantize_stages``), which waits in front of the quantizer for the block's
    scales. Timing and ports: docs/fp-lut-q-hw.md, "Hardware precompute".
    """

    def __init__(self, cfg: LutConfig, *, quantizer=EntryQuantizer, divider=ScaleDivider):
        _check_cfg(cfg)
        self._cfg = cfg
        self._quantizer, self._divider = quantizer, divider
        self.payload_layouts = {"i_act": fp_act_layout(cfg), "o_table": table_layout(cfg),
                                "o_tscale": data.ArrayLayout(32, cfg.m)}
        super().__init__(stream_ports(self.payload_layouts))

    def _flag(self, name):
        """A control register of the pipelines (valid bits and their block marks): reset
        clears it (a test mutant overrides this)."""
        return Signal(name=name)

    def _delay(self, m, values, name, en=None):
        """``(value, is_flag)`` pairs one pipeline stage later (loaded on every cycle, or when
        ``en``): flags through :meth:`_flag`, the others through a data register."""
        out = []
        for i, (v, is_flag) in enumerate(values):
            if not is_flag:
                out.append(stage_register(m, Value.cast(v), f"{name}_{i}", en))
                continue
            reg = self._flag(f"{name}_{i}")
            with m.If(1 if en is None else en):
                m.d.sync += reg.eq(v)
            out.append(reg)
        return out

    def _replica_acts(self, row_acts, rows_rd, j, row_w):
        """The activations replica ``j``'s table sums take: its own row (a test mutant
        overrides this)."""
        return row_acts

    def _replica_scale(self, q_scales, j):
        """The scale replica ``j``'s quantizer divides by: its own row's (a test mutant
        overrides this)."""
        return _part(q_scales, j, 32)

    def _quantize_delay(self):
        """Cycles from the quantizer's inputs to its ``q`` (a test mutant overrides this)."""
        return self._cfg.precompute_quantize_stages - 1

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        b, rows, g, t = cfg.scale_block, cfg.m, cfg.g, cfg.table_bits
        half = 1 << (g - 1)
        fmt = cfg.act_fp
        stages = cfg.precompute_sum_stages
        assert stages == g - 1     # one register per adder level (_GroupSums)

        mem = Memory(shape=cfg.act_width, depth=2 * b, init=[])
        m.submodules.acts = mem
        wport = mem.write_port()
        rport = mem.read_port(domain="comb")

        # -- stage 1: take activations; their sums of magnitudes, one adder per cycle, go into
        # the running amax per row; a block's amax starts the dividers (or waits in ``pend``)
        acts_in = data.View(fp_act_layout(cfg), self.i_act.payload)
        a_grp = Signal(range(b))
        a_bank = Signal()
        full = Signal(range(3))            # blocks in the memory, not yet all read
        take_in = self.i_act.valid & self.i_act.ready
        last_in = a_grp == b - 1
        # (valid, first beat, last beat) of the beats in the amax pipeline, by stage
        marks = [(take_in, a_grp == 0, take_in & last_in)]
        for i in range(stages - 1):
            marks.append(self._delay(m, [(x, True) for x in marks[-1]], f"amax_mark{i}"))
        end_valid, end_first, end_last = marks[-1]
        amax = [Signal(32, name=f"amax{r}") for r in range(rows)]
        pend = [Signal(32, name=f"amax{r}_pend", reset_less=True) for r in range(rows)]
        pend_valid = self._flag("amax_pend_valid")
        new_max = []
        for r in range(rows):
            m.submodules[f"amax_sum{r}"] = absum = _GroupSums(fmt, g, "abs")
            m.d.comb += absum.acts.eq(acts_in[r].as_value())
            p = absum.out
            nm = Signal(32, name=f"amax{r}_next")
            # non-negative FP32 patterns order as integers; the canonical NaN is above Inf
            m.d.comb += nm.eq(Mux(end_first | (p > amax[r]), p, amax[r]))
            new_max.append(nm)
        with m.If(end_valid):
            m.d.sync += [amax[r].eq(new_max[r]) for r in range(rows)]

        divs = []
        for r in range(rows):
            d = self._divider(t, cfg.precompute_div_steps)
            m.submodules[f"div{r}"] = d
            divs.append(d)
        div_idle = Signal()
        # a block's amax starts the dividers on the edge it is final when they are idle, else
        # it waits in ``pend``
        block_amax = end_valid & end_last
        div_start = (pend_valid | block_amax) & div_idle
        div_done = divs[0].done & ~divs[0].busy
        # a block's last beat goes in only once the amax path is free of the previous block
        amax_free = ~pend_valid & ~Cat(*(mk[2] for mk in marks[1:])).any()
        m.d.comb += [
            self.i_act.ready.eq((full < 2) & (~last_in | amax_free)),
            wport.addr.eq(Mux(a_bank, b, 0) + a_grp),
            wport.data.eq(self.i_act.payload),
            wport.en.eq(take_in),
        ]
        with m.If(take_in):
            m.d.sync += a_grp.eq(Mux(last_in, 0, a_grp + 1))
            with m.If(last_in):
                m.d.sync += a_bank.eq(~a_bank)
        with m.If(div_start):
            m.d.sync += pend_valid.eq(0)
        with m.If(block_amax & ~div_idle):
            m.d.sync += [pend_valid.eq(1), *(pend[r].eq(new_max[r]) for r in range(rows))]
        for r, d in enumerate(divs):
            m.d.comb += [d.amax.eq(Mux(pend_valid, pend[r], new_max[r])),
                         d.start.eq(div_start)]

        # -- stage 2: scales; a finished division moves into the block's scale register ------
        holding = Signal()                 # the dividers hold a result not yet moved
        scale = [Signal(32, name=f"scale{r}") for r in range(rows)]
        s_full = Signal()
        s_release = Signal()
        m.d.comb += div_idle.eq(~divs[0].busy & ~holding)
        with m.If(div_start):
            m.d.sync += holding.eq(1)
        move = Signal()
        m.d.comb += move.eq(holding & div_done & (~s_full | s_release))
        ts_sent = Signal()
        with m.If(move):
            m.d.sync += [holding.eq(0), s_full.eq(1), ts_sent.eq(0)]
            m.d.sync += [scale[r].eq(divs[r].out) for r in range(rows)]
        with m.Elif(s_release):
            m.d.sync += s_full.eq(0)
        m.d.comb += [self.o_tscale.payload.eq(Cat(*scale)),
                     self.o_tscale.valid.eq(s_full & ~ts_sent)]
        with m.If(self.o_tscale.valid & self.o_tscale.ready & ~move):
            m.d.sync += ts_sent.eq(1)

        # -- stage 3: read ``R`` rows of one group per cycle (``precompute_rows``, replica
        # ``j`` row ``b_row * R + j``); table sums; quantize -----------------------------------
        # ``run``: the whole pipeline moves (the beat register is free); ``run_sums``: the
        # part in front of the quantizer moves too (its last row has its block's scales)
        n_rep, steps = cfg.precompute_rows, cfg.precompute_beat_cycles
        run, run_sums = Signal(), Signal()
        b_grp = Signal(range(b))
        # (one bit, always 0, at m / R = 1: Verilator refuses the zero-width marks)
        # at one cycle per beat a 0-bit counter would be a ``[-1:0]`` wire, which Verilator
        # refuses: keep one bit (it stays 0)
        b_row = Signal(range(max(steps, 2)))
        b_bank = Signal()
        b_finished = Signal()              # the block's last row went into the quantizer
        issue = run_sums & (full != 0)
        issue_last = issue & (b_row == steps - 1) & (b_grp == b - 1)
        acts_rd = data.View(fp_act_layout(cfg), rport.data)
        m.d.comb += rport.addr.eq(Mux(b_bank, b, 0) + b_grp)
        row_w = g * fmt.width
        rows_rd = acts_rd.as_value().word_select(b_row, n_rep * row_w)
        with m.If(issue):
            with m.If(b_row == steps - 1):
                m.d.sync += b_row.eq(0)
                with m.If(b_grp == b - 1):
                    m.d.sync += [b_grp.eq(0), b_bank.eq(~b_bank)]
                with m.Else():
                    m.d.sync += b_grp.eq(b_grp + 1)
            with m.Else():
                m.d.sync += b_row.eq(b_row + 1)
        tsums = []
        for j in range(n_rep):
            row_acts = Signal(row_w, name=_rep("row_acts", j))
            m.d.comb += row_acts.eq(_part(rows_rd, j, row_w))
            m.submodules[_rep("table_sums", j)] = tsum = _GroupSums(fmt, g, "half")
            m.d.comb += [tsum.acts.eq(self._replica_acts(row_acts, rows_rd, j, row_w)),
                         tsum.en.eq(run_sums)]
            tsums.append(tsum)
        # (valid, row, the block's last row) of the rows in the table-sum pipeline, by stage
        sum_marks = [(issue, b_row, issue_last)]
        for i in range(stages):
            sum_marks.append(self._delay(m, zip(sum_marks[-1], (True, False, True)),
                                         f"sum_mark{i}", run_sums))
        q_valid, q_row, q_last = sum_marks[-1]     # the row at the quantizer's inputs
        scale_ok = s_full & ~b_finished
        m.d.comb += [run.eq(~self.o_table.valid | self.o_table.ready),
                     run_sums.eq(run & (~q_valid | scale_ok))]
        block_done = run_sums & q_valid & q_last

        q_scales = Cat(*scale).word_select(q_row, 32 * n_rep)
        quants = []
        for j, tsum in enumerate(tsums):
            quant = self._quantizer(t, half, cfg.precompute_quantize_stages)
            m.submodules[_rep("quant", j)] = quant
            m.d.comb += [quant.scale.eq(self._replica_scale(q_scales, j)),
                         quant.entries.eq(tsum.out)]
            if cfg.precompute_quantize_stages > 1:
                m.d.comb += quant.en.eq(run)
            quants.append(quant)
        # (valid, row) of the rows in the quantizer, by stage
        out_marks = [(run_sums & q_valid, q_row)]
        for i in range(self._quantize_delay()):
            out_marks.append(self._delay(m, zip(out_marks[-1], (True, False)),
                                         f"quant_mark{i}", run))
        out_valid, out_row = out_marks[-1]
        q_entries = []
        for j, quant in enumerate(quants):
            qs = [quant.q[t * e:t * (e + 1)] for e in range(half)]
            entries = Signal(cfg.table_row_width, name=_rep("q_entries", j))
            if cfg.symmetric:
                m.d.comb += entries.eq(Cat(*qs))
            else:                              # q[idx] = -q[~idx] for the index-MSB-1 half
                mask = (1 << g) - 1
                m.d.comb += entries.eq(Cat(*(qs[e] if e < half
                                             else (-qs[~e & mask].as_signed())[:t]
                                             for e in range(1 << g))))
            q_entries.append(entries)
        beat = Signal(cfg.table_width)
        beat_view = data.View(table_layout(cfg), beat)
        m.d.comb += self.o_table.payload.eq(beat)
        with m.If(self.o_table.valid & self.o_table.ready):
            m.d.sync += self.o_table.valid.eq(0)
        with m.If(run & out_valid):
            for r in range(steps):
                with m.If(out_row == r):
                    m.d.sync += [beat_view[r * n_rep + j].as_value().eq(q_entries[j])
                                 for j in range(n_rep)]
            with m.If(out_row == steps - 1):
                m.d.sync += self.o_table.valid.eq(1)

        # the scale register frees on the edge the block's last row goes into the quantizer
        # (and its beat of scales has gone out), so the next block's scales move in without a
        # gap; the quantizer's later stages carry the row's scale with it
        m.d.comb += s_release.eq((b_finished | block_done) & (
            ts_sent | (self.o_tscale.valid & self.o_tscale.ready)))
        with m.If(block_done):
            m.d.sync += b_finished.eq(1)
        with m.If(s_release):
            m.d.sync += b_finished.eq(0)
        block_in = take_in & last_in
        m.d.sync += full.eq(full + block_in - issue_last)
        return m
