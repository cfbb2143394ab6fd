"""Control shared by the LUT array and the MAC baseline: operations, PEs, the output buffer."""
from amaranth import *
from amaranth.lib import data

from gen.config import WeightFormat

from .layouts import cmd_layout

__all__ = ["OperationControl", "OutputDrain", "DirectDrain", "add_pe"]


class OperationControl:
    """The operation in flight: its command fields and the group counter.

    ``i_cmd`` is taken when no operation runs, or on the edge ``op_done`` ends the current one
    (so operations follow each other without a gap); that edge latches ``format``, ``w_bits``
    and ``groups`` and clears ``group``, which counts up on every ``group_done`` edge.

    With ``pipeline`` 3 ``first_group`` and ``last_group`` are registers, set on the edges that
    change ``group`` (``last_group <= group + 2 == groups`` ahead of time), so no comparison of
    the group counter lies on the paths they feed (the weight handshake, every PE).
    """

    def __init__(self, cfg):
        self.active = Signal(name="active")
        self.format = Signal(WeightFormat, name="op_format")
        self.w_bits = Signal(cfg.plane_width, name="op_w")
        self.groups = Signal(cfg.groups_width, name="op_groups")
        self.group = Signal(cfg.groups_width, name="group")
        self.first_group = Signal(name="first_group")
        self.last_group = Signal(name="last_group")
        self.accept = Signal(name="cmd_accept")
        self._cfg = cfg

    def elaborate(self, m, i_cmd, group_done, op_done):
        """Returns a View of the ``i_cmd`` payload (fields of :func:`cmd_layout`)."""
        cmd = data.View(cmd_layout(self._cfg), i_cmd.payload)
        registered = getattr(self._cfg, "pipeline", 0) >= 3
        if not registered:
            m.d.comb += [
                self.first_group.eq(self.group == 0),
                self.last_group.eq(self.group == self.groups - 1),
            ]
        m.d.comb += [
            i_cmd.ready.eq(~self.active | op_done),
            self.accept.eq(i_cmd.valid & i_cmd.ready),
        ]
        with m.If(group_done):
            m.d.sync += self.group.eq(self.group + 1)
            if registered:
                m.d.sync += [self.first_group.eq(0),
                             self.last_group.eq(self.group + 2 == self.groups)]
        if registered:
            with m.If(self.accept):
                m.d.sync += [self.first_group.eq(1), self.last_group.eq(cmd.groups == 1)]
        with m.If(op_done):
            m.d.sync += self.active.eq(0)
        with m.If(self.accept):
            m.d.sync += [self.active.eq(1), self.format.eq(cmd.format),
                         self.w_bits.eq(cmd.w_bits), self.groups.eq(cmd.groups),
                         self.group.eq(0)]
        return cmd


class OutputDrain:
    """The second half of the double buffer: ``m`` captured rows leave one per beat.

    ``capture`` (the edge of an operation's last step) marks the buffer full and latches the
    values in ``latch`` (``[(register, value)]``); then ``o_result`` carries row ``row`` until its
    ready, row 0 first. ``free`` is high when a capture on this edge cannot overwrite a row that
    has not left: the buffer is empty, or its last row leaves on this edge.
    """

    def __init__(self, cfg, o_result, copies=0):
        self.cfg = cfg
        self.o_result = o_result
        self.valid = Signal(name="out_valid")
        self.row = Signal(cfg.row_index_width, name="out_row")
        self.free = Signal(name="out_free")
        #: ``copies`` more registers that always equal ``row`` (``pipeline``: one per column, so
        #: no row select fans out to a whole result row); each counts from its own value, so
        #: synthesis sees ``copies`` different registers and keeps them apart
        self.row_copies = [Signal(cfg.row_index_width, name=f"out_row_c{i}")
                           for i in range(copies)]

    def elaborate(self, m, capture, latch):
        cfg = self.cfg
        last_row = self.row == cfg.m - 1
        m.d.comb += [
            self.free.eq(~self.valid | (self.o_result.ready & last_row)),
            self.o_result.valid.eq(self.valid),
        ]
        rows = [self.row, *self.row_copies]
        with m.If(self.o_result.valid & self.o_result.ready):
            m.d.sync += [r.eq(r + 1) for r in rows]
            with m.If(last_row):
                m.d.sync += [self.valid.eq(0), *(r.eq(0) for r in rows)]
        with m.If(capture):
            m.d.sync += [self.valid.eq(1), *(r.eq(0) for r in rows)]
            m.d.sync += [reg.eq(value) for reg, value in latch]


class DirectDrain:
    """Results leave straight from the PE accumulators (``output_buffer`` ``row`` or ``none``).

    ``capture`` (the edge of an operation's last step) marks ``m`` rows pending in the
    accumulators and latches ``latch``; ``row`` is the accumulator row being read (the caller
    feeds row ``row`` through the offset correction into ``result``).

    * ``none``: ``o_result`` carries ``result`` combinationally; row ``row`` is released on the
      edge its beat leaves.
    * ``row`` (``registered``): a one-row register takes ``result`` whenever it is empty or its
      beat leaves on that edge, and drives ``o_result``; row ``row`` is released on the edge it
      is loaded.

    ``free`` is high when the accumulators may be written on this edge: no row is pending, or
    the last one is released on this edge. The array holds every step that writes an
    accumulator (or the activation sums) while ``free`` is low.
    """

    def __init__(self, cfg, o_result, registered):
        self.cfg = cfg
        self.o_result = o_result
        self.registered = registered
        self.pending = Signal(name="out_pending")
        self.row = Signal(cfg.row_index_width, name="out_row")
        self.free = Signal(name="out_free")
        self.valid = Signal(name="out_valid")   # rows pending or a beat on o_result

    def elaborate(self, m, capture, latch, result):
        cfg = self.cfg
        last_row = self.row == cfg.m - 1
        release = Signal(name="out_release")
        if self.registered:
            held = Signal(name="out_held")
            hold = Signal(self.o_result.payload.shape(), name="out_hold")
            m.d.comb += [
                release.eq(self.pending & (~held | self.o_result.ready)),
                self.o_result.valid.eq(held),
                self.o_result.payload.eq(hold),
                self.valid.eq(self.pending | held),
            ]
            with m.If(self.o_result.valid & self.o_result.ready):
                m.d.sync += held.eq(0)
            with m.If(release):
                m.d.sync += [hold.eq(result), held.eq(1)]
        else:
            m.d.comb += [
                release.eq(self.o_result.valid & self.o_result.ready),
                self.o_result.valid.eq(self.pending),
                self.o_result.payload.eq(result),
                self.valid.eq(self.pending),
            ]
        m.d.comb += self.free.eq(~self.pending | (release & last_row))
        with m.If(release):
            m.d.sync += self.row.eq(self.row + 1)
            with m.If(last_row):
                m.d.sync += [self.pending.eq(0), self.row.eq(0)]
        with m.If(capture):
            m.d.sync += [self.pending.eq(1), self.row.eq(0)]
            m.d.sync += [reg.eq(value) for reg, value in latch]


def add_pe(m, name, make_pe, pe_module, ins, out_shape):
    """Add one PE as submodule ``name``, its inputs driven from ``ins`` (``{port: value}``);
    return its ``out``.

    With ``pe_module`` None the PE is the Amaranth component ``make_pe()`` (amaranth.sim);
    otherwise an instance of the Verilog module of that name, which gen.emit converts once
    from ``make_pe()``, so synthesis sees one PE module however many there are.
    """
    if pe_module is None:
        pe = make_pe()
        m.d.comb += [getattr(pe, k).eq(v) for k, v in ins.items()]
        out = pe.out
    else:
        out = Signal(out_shape, name=f"{name}_out")
        pe = Instance(pe_module, i_clk=ClockSignal(), i_rst=ResetSignal(), o_out=out,
                      **{f"i_{k}": v for k, v in ins.items()})
    m.submodules[name] = pe
    return out
