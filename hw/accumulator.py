"""Bit-serial accumulator of one PE."""
from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig

__all__ = ["BitSerialAccumulator", "CONTROL"]

#: The control inputs of the accumulator, shared by every PE of the array (the PE forwards them)
CONTROL = ("step", "first_plane", "last_plane", "first_group", "capture")


class BitSerialAccumulator(wiring.Component):
    """Shift-and-add over the bit-planes of a group, then add the group into ``acc``.

    On every edge with ``step``::

        p_next = (0 if first_plane else p << 1) + entry        # MSB first
        p     <= p_next
        if last_plane:  acc <= (0 if first_group else acc) + p_next
        if capture:     out <= (0 if first_group else acc) + p_next   # output buffer

    Per-group partials keep the shift inside a group (groups outer, planes inner), so the
    wide accumulator only adds. ``capture`` (the last plane of the last group) copies the final
    value into ``out`` so the next operation can start while ``out`` drains.

    Attributes
    ----------
    entry : Signal(signed(entry_width)), in
    step, first_plane, last_plane, first_group, capture : Signal(1), in
    out : Signal(signed(acc_width)), out
        The captured accumulator of the last finished operation.
    """

    def __init__(self, cfg: LutConfig):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "entry": In(signed(cfg.entry_width)),
            **{name: In(1) for name in CONTROL},
            "out": Out(signed(cfg.acc_width)),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        acc = Signal(signed(cfg.acc_width))
        p_next = Signal(signed(cfg.partial_width))
        acc_next = Signal(signed(cfg.acc_width))
        if cfg.w_bits == 1:
            # one plane per group: the partial is the entry itself, no register needed
            m.d.comb += p_next.eq(self.entry)
        else:
            p = Signal(signed(cfg.partial_width))
            m.d.comb += p_next.eq(Mux(self.first_plane, 0, p << 1) + self.entry)
            with m.If(self.step):
                m.d.sync += p.eq(p_next)
        m.d.comb += acc_next.eq(Mux(self.first_group, 0, acc) + p_next)
        with m.If(self.step):
            with m.If(self.last_plane):
                m.d.sync += acc.eq(acc_next)
            with m.If(self.capture):
                m.d.sync += self.out.eq(acc_next)
        return m
