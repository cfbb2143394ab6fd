"""The LUT Tensor Core array: ``m`` tables broadcast across ``n`` weight columns."""
from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from gen.config import LutConfig, WeightFormat

from .accumulator import control_ports
from .control import DirectDrain, OperationControl, OutputDrain, add_pe
from .correction import OffsetCorrection, correction_term
from .layouts import (acc_row_layout, cmd_layout, result_row_layout, stream_ports,
                      table_layout, weight_plane_layout)
from .lut_pe import LutPE
from . import pieces
from .pieces import pieced_accumulator, pieced_difference

__all__ = ["LutArray"]


class _Stream:
    """valid / ready / payload between the drain and the result register (``pipeline``)."""

    def __init__(self, width, name="drain"):
        self.valid = Signal(name=f"{name}_valid")
        self.ready = Signal(name=f"{name}_ready")
        self.payload = Signal(width, name=f"{name}_payload")


class LutArray(wiring.Component):
    """An ``m x n`` tile of LUT PEs with its controller and output stage.

    One operation computes ``R = A @ W`` for an ``m x K`` activation tile and a ``K x n`` weight
    tile at a runtime format and precision ``w <= w_bits`` (see ``docs/interface.md`` for the
    math, the beat order and the bit layouts). Row ``r``'s table is broadcast to the ``n`` PEs of
    the row (the paper's elongated tile amortizes a table over many columns); column ``c``'s
    index goes to the ``m`` PEs of the column. One bit-plane per cycle, MSB first.

    Parameters
    ----------
    cfg : LutConfig
        The design point.
    pe_module : str or None
        If given, each PE is an instance of the Verilog module of that name (emitted once by
        ``gen.emit`` from :class:`~hw.lut_pe.LutPE`), so synthesis sees one PE module with
        ``m * n`` instances. If None (amaranth.sim), the PEs are Amaranth submodules.

    Attributes
    ----------
    i_cmd : stream, in, payload ``cmd_width`` bits (:func:`~hw.layouts.cmd_layout`)
        ``format`` [1:0], ``w`` next, then the number of groups.
    i_table : stream, in, payload ``table_width`` bits (:func:`~hw.layouts.table_layout`)
        The ``m`` stored tables of one group.
    i_weight : stream, in, payload ``weight_width`` bits
        One bit-plane of the ``n`` column indices of one group
        (:func:`~hw.layouts.weight_plane_layout`).
    o_result : stream, out, payload ``result_row_width`` bits
        One row of ``n`` results; ``m`` beats per operation, row 0 first
        (:func:`~hw.layouts.result_row_layout`).
    o_busy : Signal(1), out
        An operation is running or results are waiting.
    """

    def __init__(self, cfg: LutConfig, *, pe_module=None):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        if pe_module is not None and not isinstance(pe_module, str):
            raise TypeError(f"pe_module must be a module name or None, not {pe_module!r}")
        self._cfg = cfg
        self._pe_module = pe_module
        #: the layout of every stream payload, by port (gen.emit writes them into the manifest)
        self.payload_layouts = {
            "i_cmd": cmd_layout(cfg),
            "i_table": table_layout(cfg),
            "i_weight": weight_plane_layout(cfg),
            "o_result": result_row_layout(cfg),
        }
        super().__init__({**stream_ports(self.payload_layouts), "o_busy": Out(1)})

    @property
    def cfg(self):
        return self._cfg

    def make_pe(self):
        """The PE that ``pe_module`` names (gen.emit converts it once)."""
        return LutPE(self._cfg)

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()

        # -- operation state ------------------------------------------------------------------
        op = OperationControl(cfg)
        plane = Signal(cfg.plane_width)          # counts down: w-1 (MSB) .. 0
        first_plane = Signal()
        last_plane = Signal()
        first_group, last_group = op.first_group, op.last_group
        m.d.comb += [
            first_plane.eq(plane == op.w_bits - 1),
            last_plane.eq(plane == 0),
        ]

        # -- table register: one group's m tables ---------------------------------------------
        table = Signal(cfg.table_width, name="table_reg")
        table_valid = Signal()
        tables = data.View(table_layout(cfg), table)

        # -- output stage: double buffer, or a drain from the accumulators ---------------------
        double = cfg.output_buffer == "double"
        stages = cfg.drain_delay
        if stages:
            # pipeline: the drain feeds a result register (inner stream -> o_result) and keeps
            # one row-select copy per column
            inner = _Stream(cfg.result_row_width)
            drain = OutputDrain(cfg, inner, copies=cfg.n if cfg.m > 1 else 0)
        elif double:
            drain = OutputDrain(cfg, self.o_result)
        else:
            drain = DirectDrain(cfg, self.o_result, registered=cfg.output_buffer == "row")
        out_format = Signal(WeightFormat)
        out_w = Signal(cfg.plane_width)

        # -- handshakes -----------------------------------------------------------------------
        # Double buffering: the final plane of an operation waits for a free output buffer.
        # Otherwise every step that writes the accumulators (the last plane of a step, or every
        # step with shifted accumulation) waits until the drain has released them.
        step = Signal()
        capture = Signal()
        group_done = Signal()
        op_done = Signal()
        # pipeline: the PEs write their output registers ``stages`` edges after ``capture``;
        # the drain is told then, and the output buffer is not free while a capture is on
        # its way (it would be overwritten before it drains)
        captures = [capture]
        for i in range(stages):
            captures.append(Signal(name=f"capture_d{i + 1}"))
            m.d.sync += captures[-1].eq(captures[-2])
        in_flight = Cat(captures[1:]).any() if stages else C(0, 1)
        # pipeline: a row is held in the output registers (result register, row register)
        result_held = Signal(name="result_held") if stages else C(0, 1)
        out_free = drain.free & ~in_flight
        if double:
            blocked = last_plane & last_group & ~out_free
        elif cfg.accumulation == "shifted":
            blocked = ~drain.free
        else:
            blocked = last_plane & ~drain.free
        m.d.comb += [
            self.i_weight.ready.eq(op.active & table_valid & ~blocked),
            step.eq(self.i_weight.valid & self.i_weight.ready),
            group_done.eq(step & last_plane),
            op_done.eq(group_done & last_group),
            capture.eq(op_done),
            self.i_table.ready.eq(~table_valid | group_done),
            self.o_busy.eq(op.active | drain.valid | in_flight | result_held),
        ]

        with m.If(group_done):
            m.d.sync += table_valid.eq(0)
        with m.If(self.i_table.valid & self.i_table.ready):
            m.d.sync += [table.eq(self.i_table.payload), table_valid.eq(1)]

        cmd = op.elaborate(m, self.i_cmd, group_done, op_done)
        with m.If(step):
            m.d.sync += plane.eq(Mux(last_plane, op.w_bits - 1, plane - 1))
        with m.If(op.accept):
            m.d.sync += plane.eq(cmd.w_bits - 1)

        # -- activation sums: S = -sum of the step's T[0] per row ----------------------------
        # Without a double buffer the drain reads ``s`` itself: a step that writes it also
        # writes the accumulators, so it waits for the drain like they do.
        act_sums = []
        for r in range(cfg.m):
            s = Signal(signed(cfg.sum_width), name=f"act_sum_{r}")
            if cfg.tables_per_pe == 1:
                t0 = tables[r][0]
            else:
                t0 = sum(tables[r][t][0] for t in range(cfg.tables_per_pe))
            if cfg.pipeline >= 3:
                # S - T[0] = S + ~T[0] + 1 in pieces; cleared by the capture, not first_group
                operand = Signal(cfg.sum_width, name=f"act_sum_operand_{r}")
                m.d.comb += operand.eq(~t0)
                act_sums.append(pieced_accumulator(m, f"act_sum_{r}", cfg.sum_width,
                                                   cfg.sum_pieces, operand, C(1, 1),
                                                   group_done, capture).as_signed())
                continue
            s_next = Mux(first_group, 0, s) - t0
            with m.If(group_done):
                m.d.sync += s.eq(s_next)
            if double:
                s_out = Signal(signed(cfg.sum_width), name=f"act_sum_out_{r}")
                with m.If(capture):
                    m.d.sync += s_out.eq(s_next)
                act_sums.append(s_out)
            else:
                act_sums.append(s)

        # -- the PE array ---------------------------------------------------------------------
        indices = data.View(weight_plane_layout(cfg), self.i_weight.payload)
        controls = dict(step=step, first_plane=first_plane, last_plane=last_plane,
                        first_group=first_group, capture=capture, plane=plane)
        controls = {name: controls[name] for name in control_ports(cfg)}
        pe_outs = [[add_pe(m, f"pe_{r}_{c}", self.make_pe, self._pe_module,
                           dict(table_row=tables[r], index=indices[c], **controls),
                           signed(cfg.acc_width))
                    for c in range(cfg.n)] for r in range(cfg.m)]

        # -- output stage: drain one row per beat through the offset correction ---------------
        if stages:
            self._pipelined_output(m, drain, captures, op, act_sums, pe_outs, result_held)
            return m
        m.submodules.correction = corr = OffsetCorrection(cfg)
        row_accs = [Cat(pe_outs[r]) for r in range(cfg.m)]
        m.d.comb += [
            corr.acc.eq(Array(row_accs)[drain.row]),
            corr.act_sum.eq(Array(act_sums)[drain.row]),
            corr.format.eq(out_format),
            corr.w_bits.eq(out_w),
        ]
        latch = [(out_format, op.format), (out_w, op.w_bits)]
        if double:
            m.d.comb += self.o_result.payload.eq(corr.result)
            drain.elaborate(m, capture, latch)
        else:
            drain.elaborate(m, capture, latch, corr.result)
        return m

    def _pipelined_output(self, m, drain, captures, op, act_sums, pe_outs, held):
        """``pipeline`` >= 1: the output stage with three cuts in its paths.

        * each column muxes its own accumulators with its own copy of the row select;
        * each row's correction term ``corr(S, format, w)`` is formed from the captured sum
          ``S`` and registered when the drain is loaded (``format`` and ``w`` of the finished
          operation travel down a delay line as long as the PEs' pipeline), so the drain adds
          only ``acc + corr``;
        * the result row is registered before ``o_result`` (a one-entry stream register).

        ``pipeline`` 3 cuts further: the selected accumulator row, its correction term and
        format go into a row register (another one-entry stream register) before the
        correction adder, which adds in ``correction_pieces`` pieces, one stream register
        each (:meth:`_pieced_correction`); the correction term is ``minuend - subtrahend``
        subtracted in pieces (:meth:`_pieced_term`) from the pieced activation sum, and the
        drain waits ``drain_delay`` edges for both.
        """
        cfg = self._cfg
        capture = captures[-1]
        fmt, w = op.format, op.w_bits
        fmts, ws = [fmt], [w]
        for i in range(cfg.drain_delay):
            fmt_d = Signal(WeightFormat, name=f"op_format_d{i + 1}")
            w_d = Signal(cfg.plane_width, name=f"op_w_d{i + 1}")
            m.d.sync += [fmt_d.eq(fmt), w_d.eq(w)]
            fmt, w = fmt_d, w_d
            fmts.append(fmt)
            ws.append(w)
        out_format = Signal(WeightFormat)
        corr_regs = [Signal(signed(cfg.correction_width), name=f"corr_{r}")
                     for r in range(cfg.m)]
        latch = [(out_format, fmt)]
        if cfg.pipeline >= 3:
            k = cfg.sum_pieces          # the pieced sum is complete k edges after the capture
            latch += [(reg, self._pieced_term(m, r, s, captures[k], fmts[k], ws[k]))
                      for r, (reg, s) in enumerate(zip(corr_regs, act_sums))]
        else:
            latch += [(reg, correction_term(m, cfg, s, fmt, w))
                      for reg, s in zip(corr_regs, act_sums)]
        selects = drain.row_copies or [drain.row] * cfg.n
        acc_row = Cat(Array(pe_outs[r][c] for r in range(cfg.m))[selects[c]]
                      for c in range(cfg.n))
        row_corr = Array(corr_regs)[drain.row]
        inner = drain.o_result
        if cfg.out_stages == 1:
            m.submodules.correction = corr = OffsetCorrection(cfg, precomputed=True)
            m.d.comb += [corr.acc.eq(acc_row), corr.corr.eq(row_corr),
                         corr.format.eq(out_format), inner.payload.eq(corr.result)]
            drain.elaborate(m, capture, latch)
            self._stream_register(m, inner, self.o_result, held,
                                  [(self.o_result.payload, inner.payload)])
            return
        # pipeline 3: drain -> row register (acc row, corr, format) -> adder -> result register;
        # the row register is three signals, so each input of the correction has its own
        row_acc = Signal(len(acc_row), name="row_reg_acc")
        row_corr_reg = Signal(signed(cfg.correction_width), name="row_reg_corr")
        row_format = Signal(WeightFormat, name="row_reg_format")
        row = _Stream(0, "row_reg")
        row_held = Signal(name="row_held")
        result_held = Signal(name="result_reg_held")
        held_pieces = [Signal(name=f"piece_{k}_held") for k in range(cfg.correction_pieces - 1)]
        m.d.comb += held.eq(Cat(row_held, result_held, *held_pieces).any())
        drain.elaborate(m, capture, latch)
        self._stream_register(m, inner, row, row_held, [(row_acc, acc_row),
                                                        (row_corr_reg, row_corr),
                                                        (row_format, out_format)])
        if cfg.correction_pieces == 1:
            m.submodules.correction = corr = OffsetCorrection(cfg, precomputed=True)
            m.d.comb += [corr.acc.eq(row_acc), corr.corr.eq(row_corr_reg),
                         corr.format.eq(row_format)]
            self._stream_register(m, row, self.o_result, result_held,
                                  [(self.o_result.payload, corr.result)])
            return
        self._pieced_correction(m, row, row_acc, row_corr_reg, row_format, held_pieces,
                                result_held)

    def _pieced_correction(self, m, row, row_acc, corr, format, held_pieces, result_held):
        """``acc + corr`` of every column in ``correction_pieces`` pieces of
        ``correction_piece_width`` bits, one register stage each, low piece first; a piece's
        carry is registered with it and enters the next piece as the carry-in of a plain
        two-operand add (``(2a + c) + (2b + 1)``, shifted right once)."""
        cfg = self._cfg
        wp = cfg.correction_piece_width
        accs = data.View(acc_row_layout(cfg), row_acc)
        done = [C(0, 0)] * cfg.n            # the finished low bits of each column's sum
        carry = [None] * cfg.n
        acc_rest = [accs[c] for c in range(cfg.n)]
        corr_rest, fmt, inner = corr, format, row
        for k, held in enumerate(held_pieces):
            loads = []
            new_done, new_carry, new_acc = [], [], []
            corr_next = Signal(signed(len(corr_rest) - wp), name=f"piece_{k}_corr")
            fmt_next = Signal(WeightFormat, name=f"piece_{k}_format")
            loads += [(corr_next, corr_rest >> wp), (fmt_next, fmt)]
            for c in range(cfg.n):
                a, b = acc_rest[c][:wp], corr_rest[:wp]
                total = a + b if carry[c] is None else pieces.add_with_carry(a, b, carry[c])
                d = Signal(len(done[c]) + wp, name=f"piece_{k}_sum_{c}")
                cy = Signal(name=f"piece_{k}_carry_{c}")
                rest = Signal(signed(len(acc_rest[c]) - wp), name=f"piece_{k}_acc_{c}")
                loads += [(d, Cat(done[c], total[:wp])), (cy, total[wp]),
                          (rest, acc_rest[c].as_signed() >> wp)]
                new_done.append(d)
                new_carry.append(cy)
                new_acc.append(rest)
            outer = _Stream(0, f"piece_{k}")
            self._stream_register(m, inner, outer, held, loads)
            done, carry, acc_rest = new_done, new_carry, new_acc
            corr_rest, fmt, inner = corr_next, fmt_next, outer
        binary = fmt == WeightFormat.BINARY       # corr is 0: the sum is acc, not halved
        results = []
        for c in range(cfg.n):
            # the top piece, signed: (2a + carry) + (2b + 1), shifted right once
            top = (Cat(carry[c], acc_rest[c]).as_signed()
                   + Cat(C(1, 1), corr_rest).as_signed()) >> 1
            total = Cat(done[c], top).as_signed()
            results.append(Mux(binary, total, total >> 1)[:cfg.result_width])
        self._stream_register(m, inner, self.o_result, result_held,
                              [(self.o_result.payload, Cat(results))])

    def _pieced_term(self, m, r, s, load, format, w_bits):
        """``pipeline`` 3: row ``r``'s term of :func:`correction_term` as ``minuend -
        subtrahend``: both registered on ``load`` (the edge the pieced sum ``S`` is complete,
        with that operation's ``format`` and ``w_bits``), then subtracted in ``term_pieces``
        pieces, right ``term_pieces`` edges later (the drain loads it then)."""
        cfg = self._cfg
        minuend = Signal(cfg.correction_width, name=f"corr_minuend_{r}")
        subtrahend = Signal(cfg.correction_width, name=f"corr_subtrahend_{r}")
        with m.If(load):
            with m.Switch(format):
                with m.Case(WeightFormat.UINT):            # (S << w) - S
                    m.d.sync += [minuend.eq(s << w_bits), subtrahend.eq(s)]
                with m.Case(WeightFormat.INT, WeightFormat.TERNARY):   # -S
                    m.d.sync += [minuend.eq(0), subtrahend.eq(s)]
                with m.Default():                          # binary: 0
                    m.d.sync += [minuend.eq(0), subtrahend.eq(0)]
        return pieced_difference(m, f"corr_term_{r}", minuend, subtrahend,
                                 cfg.correction_width, cfg.term_pieces).as_signed()

    @staticmethod
    def _stream_register(m, inner, outer, held, loads):
        """A one-entry stream register from ``inner`` to ``outer``: it loads ``loads``
        (``[(register, value)]``) whenever it is empty or its beat leaves on this edge;
        ``held`` is its valid."""
        m.d.comb += [inner.ready.eq(~held | outer.ready), outer.valid.eq(held)]
        with m.If(outer.valid & outer.ready):
            m.d.sync += held.eq(0)
        with m.If(inner.valid & inner.ready):
            m.d.sync += [*(reg.eq(value) for reg, value in loads), held.eq(1)]
