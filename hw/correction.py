"""Offset correction: turn accumulators of +-1 planes into the weights' integer results."""
from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig, WeightFormat

from .layouts import acc_row_layout, result_row_layout

__all__ = ["OffsetCorrection", "ColumnCorrection", "correction_term"]


def correction_term(m, cfg, s, format, w_bits):
    """The row's correction term (combinational, ``correction_width`` bits): ``(S << w) - S``
    for uint, ``-S`` for int and ternary, 0 for binary."""
    corr = Signal(signed(cfg.correction_width))
    with m.Switch(format):
        with m.Case(WeightFormat.UINT):
            m.d.comb += corr.eq((s << w_bits) - s)
        with m.Case(WeightFormat.INT, WeightFormat.TERNARY):
            m.d.comb += corr.eq(-s)
        with m.Default():
            m.d.comb += corr.eq(0)
    return corr


class ColumnCorrection(wiring.Component):
    """One column: ``result = acc`` (binary) or ``(acc + corr) >> 1`` (exact).

    With ``q`` tables (docs/fp-lut.md, section 3) the halving is not exact, so the column
    gives twice the result: ``r2 = 2 * acc`` (binary) or ``acc + corr``; the 1/2 moves into
    the FP scale stage (an exponent decrement there).

    Its own component so that each of the ``n`` columns is the same small module: synthesis
    then handles one column and counts it ``n`` times, instead of one wide block.
    """

    def __init__(self, cfg: LutConfig):
        self._cfg = cfg
        super().__init__({
            "acc": In(signed(cfg.acc_width)),
            "corr": In(signed(cfg.correction_width)),
            "binary": In(1),
            "result": Out(signed(cfg.result_width)),
        })

    def elaborate(self, platform):
        m = Module()
        if self._cfg.table_format == "q":
            m.d.comb += self.result.eq(self._twice(self.acc, self.corr))
        else:
            m.d.comb += self.result.eq(Mux(self.binary, self.acc, (self.acc + self.corr) >> 1))
        return m

    def _twice(self, acc, corr):
        """``q`` tables: ``r2 = 2 * acc`` (binary) or ``acc + corr`` (no halving)."""
        return Mux(self.binary, acc << 1, acc + corr)


class OffsetCorrection(wiring.Component):
    """One row of results from one row of accumulators (combinational, ``n`` adders).

    With ``S = sum(a)`` of the row::

        int, ternary: result = (acc - S) / 2
        uint:         result = (acc + (2**w - 1) * S) / 2      # (S << w) - S
        binary:       result = acc

    The correction term depends only on the row, so it is formed once and shared by the ``n``
    columns. The divisions are exact (the golden model asserts it). With ``q`` tables there is
    no division: ``result`` is twice the result (:class:`ColumnCorrection`).

    Attributes
    ----------
    acc : Signal(n * acc_width), in
        Column ``c`` at ``[c*acc_width +: acc_width]`` (:func:`~hw.layouts.acc_row_layout`).
    act_sum : Signal(signed(sum_width)), in
    format : Signal(WeightFormat), in
    w_bits : Signal(plane_width), in
    result : Signal(n * result_width), out
        Column ``c`` at ``[c*result_width +: result_width]``
        (:func:`~hw.layouts.result_row_layout`).
    """

    def __init__(self, cfg: LutConfig, *, precomputed=False):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        self._cfg = cfg
        self._precomputed = bool(precomputed)
        # precomputed (``pipeline``): the caller registers the row's correction term
        # (:func:`correction_term`) and feeds it as ``corr`` instead of ``act_sum``/``w_bits``
        ports = {"acc": In(acc_row_layout(cfg).size)}
        if precomputed:
            ports["corr"] = In(signed(cfg.correction_width))
            ports["format"] = In(WeightFormat)
        else:
            ports["act_sum"] = In(signed(cfg.sum_width))
            ports["format"] = In(WeightFormat)
            ports["w_bits"] = In(cfg.plane_width)
        super().__init__({**ports, "result": Out(result_row_layout(cfg).size)})

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        accs = data.View(acc_row_layout(cfg), self.acc)
        results = data.View(result_row_layout(cfg), self.result)
        if self._precomputed:
            corr = self.corr
        else:
            corr = correction_term(m, cfg, self.act_sum, self.format, self.w_bits)
        binary = Signal()
        m.d.comb += binary.eq(self.format == WeightFormat.BINARY)
        for c in range(cfg.n):
            m.submodules[f"col_{c}"] = col = ColumnCorrection(cfg)
            m.d.comb += [col.acc.eq(accs[c]), col.corr.eq(corr), col.binary.eq(binary),
                         results[c].eq(col.result)]
        return m
