"""One PE of the ``fp``-table array: a table lookup in the activation format and an FP32
accumulator (docs/fp-lut.md section 5; golden ``gen.fp_lut_fp``)."""
from __future__ import annotations

from amaranth import *
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig
from gen.fp import FP32, default_window

from .fp.common import FPUnit, Term, exp_width
from .lookup import TableLookup

__all__ = ["FpTableLookup", "FpTablePE", "entry_term"]


class FpTableLookup(TableLookup):
    """:class:`~hw.lookup.TableLookup` on activation-format entries: the mirrored half of a
    symmetric table is the stored entry with its **sign bit flipped** (an exact FP negation),
    not a two's complement negation."""

    def _sign(self, selected, msb):
        return Cat(selected[:-1], selected[-1] ^ msb)


def entry_term(unit, m, bits, fmt, ew, name, plane=None):
    """The entry ``bits`` (``fmt``) as a fused-sum term, times ``2**plane`` (its exponent
    increased; golden ``gen.fp_lut_fp.entry_term``).

    A subnormal entry keeps its leading zeros: the two-term sum is still correctly rounded
    because every entry and every accumulator lies on the grid of the format's smallest
    subnormal, so no bit of the accumulator leaves the frame when the entry has the larger top
    (docs/fp-lut.md section 5).
    """
    t = unit.unpack(m, bits, fmt, ew, name)
    if plane is None:
        return t
    e_lsb = Signal(signed(ew), name=f"{name}_e_plane")
    m.d.comb += e_lsb.eq(unit._plane_exponent(t.e_lsb, plane))
    return Term(nan=t.nan, inf=t.inf, zero=t.zero, sign=t.sign, sig=t.sig, e_lsb=e_lsb,
                width=t.width)


class FpTablePE(FPUnit):
    """PE of the ``fp``-table array: per step ``acc = fused(acc + E[idx] * 2**plane)``.

    ``E[idx]`` is looked up in the row's stored table (:class:`FpTableLookup`); ``acc`` is FP32,
    starts from +0 on the operation's first step (``first``) and is added to in one correctly
    rounded two-term fused sum (the adder's 27-bit frame, ``gen.fp.default_window``). The step
    that ends the operation (``capture``) also copies the new value into the output register
    ``out``, so the next operation runs while ``out`` drains.

    Attributes
    ----------
    table_row : Signal(table_row_width), in
        The row's stored table, entry ``e`` at ``[e * 16 +: 16]`` (activation format).
    index : Signal(g), in
        This column's index for the current plane.
    plane : Signal(plane_width), in
        The plane ``b`` of the step (``w-1`` .. 0): the entry's exponent is increased by it.
    step, first, capture : Signal(1), in
        A weight beat is taken; it is the operation's first; it is the operation's last.
    out : Signal(32), out
        FP32 ``acc`` after the last step of the previous operation.
    """

    def __init__(self, cfg: LutConfig):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        if cfg.table_format != "fp":
            raise ValueError(f"cfg.table_format must be 'fp', not {cfg.table_format!r}")
        self._cfg = cfg
        super().__init__({
            "table_row": In(cfg.table_row_width),
            "index": In(cfg.g),
            "plane": In(cfg.plane_width),
            "step": In(1), "first": In(1), "capture": In(1),
            "out": Out(FP32.width),
        }, False)

    # overridable so that a test can drop it (the mutant must fail)
    def _plane_exponent(self, e_lsb, plane):
        """The exponent of ``entry * 2**plane``: ``e_lsb + plane``."""
        return e_lsb + plane

    def elaborate(self, platform):
        cfg, act = self._cfg, self._cfg.act_fp
        m = Module()
        m.submodules.lookup = lookup = FpTableLookup(cfg)
        m.d.comb += [lookup.table_row.eq(self.table_row), lookup.index.eq(self.index)]
        ew = exp_width(act, FP32)
        acc = Signal(FP32.width)
        terms = [self.unpack(m, Mux(self.first, 0, acc), FP32, ew, "acc"),
                 entry_term(self, m, lookup.entry, act, ew, "entry", self.plane)]
        acc_next = self.fused_sum(m, terms, FP32, default_window(FP32), ew, "add")
        with m.If(self.step):
            m.d.sync += acc.eq(acc_next)
            with m.If(self.capture):
                m.d.sync += self.out.eq(acc_next)
        return m
