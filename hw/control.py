"""Control shared by the LUT array and the MAC baseline: operations and the output buffer."""
from amaranth import *
from amaranth.lib import data

from gen.config import LutConfig

__all__ = ["cmd_layout", "OutputDrain"]


def cmd_layout(cfg: LutConfig):
    """``i_cmd`` payload: ``format`` [1:0], ``w_bits``, ``groups`` (docs/interface.md)."""
    return data.StructLayout({"format": 2, "w_bits": cfg.plane_width, "groups": cfg.groups_width})


class OutputDrain:
    """The second half of the double buffer: ``m`` captured rows leave one per beat.

    ``capture`` (the edge of an operation's last step) marks the buffer full and latches the
    values in ``latch`` (``[(register, value)]``); then ``o_result`` carries row ``row`` until its
    ready, row 0 first. ``free`` is high when a capture on this edge cannot overwrite a row that
    has not left: the buffer is empty, or its last row leaves on this edge.
    """

    def __init__(self, cfg: LutConfig, o_result):
        self.cfg = cfg
        self.o_result = o_result
        self.valid = Signal(name="out_valid")
        # at least one bit: m = 1 would make a zero-width counter, which Verilog cannot declare
        self.row = Signal(range(max(cfg.m, 2)), name="out_row")
        self.free = Signal(name="out_free")

    def elaborate(self, m, capture, latch):
        cfg = self.cfg
        last_row = self.row == cfg.m - 1
        m.d.comb += [
            self.free.eq(~self.valid | (self.o_result.ready & last_row)),
            self.o_result.valid.eq(self.valid),
        ]
        with m.If(self.o_result.valid & self.o_result.ready):
            m.d.sync += self.row.eq(self.row + 1)
            with m.If(last_row):
                m.d.sync += [self.valid.eq(0), self.row.eq(0)]
        with m.If(capture):
            m.d.sync += [self.valid.eq(1), self.row.eq(0)]
            m.d.sync += [reg.eq(value) for reg, value in latch]
