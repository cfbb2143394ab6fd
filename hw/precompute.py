"""Hardware table precompute: the stored tables of one group, from its activations."""
from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig

from .layouts import act_layout, table_layout

__all__ = ["TablePrecompute"]


class TablePrecompute(wiring.Component):
    """``T[r][idx] = sum_i a[r][i] * (+1 if bit i of idx else -1)`` for the stored entries.

    Combinational. Entry ``idx`` is built from entry ``idx`` with its highest set bit ``i``
    cleared, plus ``2 * a_i``: one adder per entry instead of a ``g``-input sum, so a table of
    ``E`` entries costs ``E - 1`` adders (entry 0, ``-sum(a)``, is the only full sum). The
    paper fuses this step into the previous operator in software; this block is the hardware
    option.

    Attributes
    ----------
    acts : Signal(act_width), in
        Row ``r`` activation ``i`` at ``[(r*g + i) * a_bits +: a_bits]``
        (:func:`~hw.layouts.act_layout`).
    tables : Signal(table_width), out
        The ``i_table`` payload (:func:`~hw.layouts.table_layout`).
    """

    def __init__(self, cfg: LutConfig):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "acts": In(act_layout(cfg).size),
            "tables": Out(table_layout(cfg).size),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        acts = data.View(act_layout(cfg), self.acts)
        out = data.View(table_layout(cfg), self.tables)
        for r in range(cfg.m):
            entries = [Signal(signed(cfg.entry_width), name=f"t_{r}_{e}")
                       for e in range(cfg.table_entries)]
            m.d.comb += entries[0].eq(-sum(acts[r][i] for i in range(cfg.g)))
            for e in range(1, cfg.table_entries):
                top = e.bit_length() - 1
                m.d.comb += entries[e].eq(entries[e & ~(1 << top)] + (acts[r][top] << 1))
            m.d.comb += [out[r][e].eq(entries[e]) for e in range(cfg.table_entries)]
        return m
