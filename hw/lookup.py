"""Table lookup of one PE, with the table-symmetrization logic."""
from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig

from .layouts import table_row_layout

__all__ = ["TableLookup"]


class TableLookup(wiring.Component):
    """Select the entry ``T[idx]`` of one stored table (combinational).

    Symmetric tables hold entries ``0 .. 2**(g-1) - 1`` (index MSB = 0). For an index with
    MSB = 1 the lookup uses ``T[idx] = -T[~idx]``: the low ``g-1`` bits are inverted, the entry
    selected and negated. Non-symmetric tables hold all ``2**g`` entries, selected directly.

    With ``fold_negation`` the lookup leaves the negation's ``+1`` to the adder after it:
    ``-x = ~x + 1``, so it outputs the conditionally inverted entry ``x ^ msb`` and the carry
    ``negate = msb``, and ``T[idx] = entry + negate``. A PE with several tables sums the ``c``
    carries in its adder tree (a few carry-save bits) instead of building ``c`` negators and
    their muxes.

    Parameters
    ----------
    cfg : LutConfig
        The design point; widths come from it.
    fold_negation : bool
        Output ``entry = T[idx] - negate`` and ``negate`` (see above) instead of ``T[idx]``.

    Attributes
    ----------
    table_row : Signal(table_row_width), in
        The stored entries, entry ``e`` at ``[e*entry_width +: entry_width]``.
    index : Signal(g), in
        One bit-plane's index: bit ``i`` is the weight bit of activation ``i`` of the group.
    entry : Signal(signed(entry_width)), out
        ``T[index]``. Fits ``entry_width``: ``|T| <= g * 2**(a_bits-1)`` both ways. With
        ``fold_negation``: ``T[index] - negate`` (``~x`` of an ``entry_width`` value fits too).
    negate : Signal(1), out (``fold_negation`` only)
        The ``+1`` of the negation: the index MSB (0 for non-symmetric tables).
    """

    def __init__(self, cfg: LutConfig, *, fold_negation=False):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        if not isinstance(fold_negation, bool):
            raise TypeError(f"fold_negation must be a bool, not {fold_negation!r}")
        self._cfg = cfg
        self._fold = fold_negation
        super().__init__({
            "table_row": In(cfg.table_row_width),
            "index": In(cfg.g),
            "entry": Out(signed(cfg.entry_width)),
            **({"negate": Out(1)} if fold_negation else {}),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        view = data.View(table_row_layout(cfg), self.table_row)
        # An Array of the entries becomes a mux over them; indexing the View directly becomes a
        # shift of the whole row, which synthesizes to a much larger barrel shifter.
        entries = Array(view[e] for e in range(cfg.table_entries))
        if not cfg.symmetric:
            m.d.comb += self.entry.eq(entries[self.index])
            return m         # negate (with fold_negation) stays 0
        msb = self.index[cfg.g - 1]
        low = self.index[:cfg.g - 1]
        selected = Signal(signed(cfg.entry_width))
        m.d.comb += [
            selected.eq(entries[self._select(low, msb)]),
            self.entry.eq(self._sign(selected, msb)),
        ]
        if self._fold:
            m.d.comb += self.negate.eq(msb)
        return m

    # The two steps of the symmetric lookup are methods so that a test can override one of
    # them (tests/mutants.py) and check that the testbenches catch the fault.
    def _select(self, low, msb):
        """Index into the stored half: ``low ^ msb`` on every bit.

        Index MSB = 1: ``T[idx] = -T[~idx]``, and ``~idx`` has MSB = 0, so it is stored.
        """
        return low ^ msb.replicate(self._cfg.g - 1)

    def _sign(self, selected, msb):
        """The entry with its sign: ``-selected`` when the index MSB is 1; with
        ``fold_negation`` ``~selected`` (``= -selected - 1``; ``negate`` carries the ``+1``)."""
        if self._fold:
            return selected ^ msb.replicate(self._cfg.entry_width)
        return Mux(msb, -selected, selected)
