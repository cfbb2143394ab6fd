"""Shared column output stages of the ``fp``-table array (``LutConfig.fp_column_lanes``).

Without the option every column of :class:`~hw.fp_table_array.FpTableArray` has its own
output stage (:class:`~hw.fp_table_array.FpTableColumn`) on the drained row. With
``fp_column_lanes = L`` the ``n`` columns share ``L`` such stages (lanes): a drained row takes
``fp_column_cycles = n / L`` cycles, lane ``l`` computing column ``j * L + l`` in the row's
cycle ``j``, into a registered result row that then leaves as the ``o_result`` beat. The
arithmetic per column is the same stage, so the results are the same bits
(``gen.fp_lut_fp.lut_fp_mpgemm``); docs/fp-lut.md section 5 states the timing rule.
"""
from __future__ import annotations

from amaranth import *

from gen.fp import FP32

__all__ = ["SharedColumnDrain"]


class SharedColumnDrain:
    """The double buffer's second half with ``L`` shared column stages.

    ``capture`` (the edge of an operation's last step) marks ``m`` rows pending in the PE
    output registers and latches ``latch`` (``[(register, value)]``: the format, ``w`` and the
    weight scales). While rows are pending and the result row register is empty (or its beat
    leaves on this edge), the lanes compute chunk ``chunk`` of row ``row`` and write their
    ``L`` slots of the register; the edge that writes a row's last chunk makes the register
    the ``o_result`` beat and moves to the next row. Writing a chunk while the register holds
    an unsent beat would overwrite it, so the lanes wait for ``o_result.ready`` then.

    ``free`` is high when a capture on this edge cannot overwrite an input the lanes still
    need: no row is pending, or the last chunk of the last row is written on this edge. With
    ``o_result`` always ready a row takes ``n / L`` cycles, so operations of at least
    ``m * n / L`` cycles never wait for ``free``.
    """

    def __init__(self, cfg, o_result):
        self.cfg = cfg
        self.o_result = o_result
        self.lanes = cfg.fp_column_lanes
        self.cycles = cfg.fp_column_cycles
        self.pending = Signal(name="out_pending")   # captured rows not all computed yet
        self.row = Signal(cfg.row_index_width, name="out_row")
        # L = n: one cycle per row, no counter (a 0-bit register is an empty range in Verilog)
        self.chunk = (Signal(range(self.cycles), name="out_chunk") if self.cycles > 1
                      else Const(0, 1))
        self.free = Signal(name="out_free")
        self.valid = Signal(name="out_valid")       # rows pending or a beat on o_result
        self.held = Signal(name="out_held")
        self.hold = Signal(cfg.fp_result_row_width, name="out_hold")

    def slot(self, chunk, lane):
        """The column lane ``lane`` computes in a row's cycle ``chunk``."""
        return chunk * self.lanes + lane

    def write_slot(self, chunk, lane):
        """The result row slot lane ``lane``'s output goes to in cycle ``chunk``: its column
        (a separate hook so a test mutant can misplace it)."""
        return self.slot(chunk, lane)

    def row_done(self):
        """High in a row's last cycle: its write completes the row (test mutants move it)."""
        return self.chunk == self.cycles - 1

    def elaborate(self, m, capture, latch, columns, shared, add_lane):
        """``columns[c]``: column ``c``'s inputs of the selected row (``acc`` and ``scale``);
        ``shared``: the inputs every column shares (``s``, ``fmt``, ``w``); ``add_lane(m, l,
        ins)``: lane ``l`` as a submodule, its FP32 output."""
        cfg, lanes = self.cfg, self.lanes
        last_chunk = self.row_done()
        counting = self.cycles > 1
        last_row = self.row == cfg.m - 1
        write = Signal(name="out_write")
        m.d.comb += [
            write.eq(self.pending & (~self.held | self.o_result.ready)),
            self.free.eq(~self.pending | (write & last_chunk & last_row)),
            self.o_result.valid.eq(self.held),
            self.o_result.payload.eq(self.hold),
            self.valid.eq(self.pending | self.held),
        ]
        outs = []
        for lane in range(lanes):
            cols = [columns[self.slot(j, lane)] for j in range(self.cycles)]
            ins = {k: Array(col[k] for col in cols)[self.chunk] for k in ("acc", "scale")}
            outs.append(add_lane(m, lane, {**ins, **shared}))
        with m.If(self.o_result.valid & self.o_result.ready):
            m.d.sync += self.held.eq(0)
        with m.If(write):
            for j in range(self.cycles):
                with m.If(self.chunk == j):
                    for lane, out in enumerate(outs):
                        c = self.write_slot(j, lane)
                        m.d.sync += self.hold[c * FP32.width:(c + 1) * FP32.width].eq(out)
            if counting:
                m.d.sync += self.chunk.eq(self.chunk + 1)
            with m.If(last_chunk):
                m.d.sync += [self.held.eq(1), self.row.eq(self.row + 1)]
                if counting:
                    m.d.sync += self.chunk.eq(0)
                with m.If(last_row):
                    m.d.sync += [self.pending.eq(0), self.row.eq(0)]
        with m.If(capture):
            m.d.sync += [self.pending.eq(1), self.row.eq(0)]
            if counting:
                m.d.sync += self.chunk.eq(0)
            m.d.sync += [reg.eq(value) for reg, value in latch]
