"""Table lookup of one PE, with the table-symmetrization logic."""
from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig

__all__ = ["TableLookup", "MUTATIONS"]

#: Deliberate faults the tests inject to prove the testbenches catch them (never for users).
MUTATIONS = frozenset({"no_negate", "no_invert"})


class TableLookup(wiring.Component):
    """Select the entry ``T[idx]`` of one stored table (combinational).

    Symmetric tables hold entries ``0 .. 2**(g-1) - 1`` (index MSB = 0). For an index with
    MSB = 1 the lookup uses ``T[idx] = -T[~idx]``: the low ``g-1`` bits are inverted, the entry
    selected and negated. Non-symmetric tables hold all ``2**g`` entries, selected directly.

    Parameters
    ----------
    cfg : LutConfig
        The design point; widths come from it.

    Attributes
    ----------
    table_row : Signal(table_row_width), in
        The stored entries, entry ``e`` at ``[e*entry_width +: entry_width]``.
    index : Signal(g), in
        One bit-plane's index: bit ``i`` is the weight bit of activation ``i`` of the group.
    entry : Signal(signed(entry_width)), out
        ``T[index]``. Fits ``entry_width``: ``|T| <= g * 2**(a_bits-1)`` both ways.
    """

    def __init__(self, cfg: LutConfig, *, mutations=()):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        unknown = set(mutations) - MUTATIONS
        if unknown:
            raise ValueError(f"mutations must be among {sorted(MUTATIONS)}, not {sorted(unknown)}")
        self._cfg = cfg
        self._mutations = frozenset(mutations)
        super().__init__({
            "table_row": In(cfg.table_row_width),
            "index": In(cfg.g),
            "entry": Out(signed(cfg.entry_width)),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        view = data.View(data.ArrayLayout(signed(cfg.entry_width), cfg.table_entries),
                         self.table_row)
        # An Array of the entries becomes a mux over them; indexing the View directly becomes a
        # shift of the whole row, which synthesizes to a much larger barrel shifter.
        entries = Array(view[e] for e in range(cfg.table_entries))
        if not cfg.symmetric:
            m.d.comb += self.entry.eq(entries[self.index])
            return m
        msb = self.index[cfg.g - 1]
        low = self.index[:cfg.g - 1]
        # Index MSB = 1: T[idx] = -T[~idx], and ~idx has MSB = 0, so it is in the stored half.
        select = low if "no_invert" in self._mutations else low ^ msb.replicate(cfg.g - 1)
        selected = Signal(signed(cfg.entry_width))
        m.d.comb += selected.eq(entries[select])
        if "no_negate" in self._mutations:
            m.d.comb += self.entry.eq(selected)
        else:
            m.d.comb += self.entry.eq(Mux(msb, -selected, selected))
        return m
