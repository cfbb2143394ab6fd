"""One LUT processing element: table lookup plus bit-serial accumulator."""
from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig

from .accumulator import CONTROL, BitSerialAccumulator
from .lookup import TableLookup

__all__ = ["LutPE"]


class LutPE(wiring.Component):
    """PE at row ``r``, column ``c`` of the array: ``out = sum_j sum_b 2**b * T_rj[idx_jbc]``.

    The table comes from its row (shared by the ``n`` PEs of the row), the index from its column
    (shared by the ``m`` PEs of the column). Control inputs are those of
    :class:`~hw.accumulator.BitSerialAccumulator`.
    """

    def __init__(self, cfg: LutConfig):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "table_row": In(cfg.table_row_width),
            "index": In(cfg.g),
            **{name: In(1) for name in CONTROL},
            "out": Out(signed(cfg.acc_width)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.lookup = lookup = TableLookup(self._cfg)
        m.submodules.accumulator = acc = BitSerialAccumulator(self._cfg)
        m.d.comb += [
            lookup.table_row.eq(self.table_row),
            lookup.index.eq(self.index),
            acc.entry.eq(lookup.entry),
            *(getattr(acc, name).eq(getattr(self, name)) for name in CONTROL),
            self.out.eq(acc.out),
        ]
        return m
