"""One LUT processing element: ``tables_per_pe`` table lookups, their adder tree, and the
bit-serial accumulator."""
from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig

from .accumulator import BitSerialAccumulator, control_ports
from .layouts import pe_tables_layout
from .lookup import TableLookup

__all__ = ["LutPE", "fold_negation"]


def fold_negation(cfg):
    """Whether the PE of ``cfg`` folds each lookup's negation into its adder tree: with
    symmetric two's-complement tables (``int``, ``q``; an ``fp`` entry negates by its sign bit)
    and ``tables_per_pe > 1`` (a PE with one table has no tree; its lookup negates, as it
    always has)."""
    return cfg.symmetric and cfg.tables_per_pe > 1 and cfg.table_format != "fp"


class LutPE(wiring.Component):
    """PE at row ``r``, column ``col``: ``out = sum_j sum_b 2**b * sum_t T_r,jc+t[idx_jbt]``.

    With ``c = tables_per_pe`` the PE holds the ``c`` tables of one step (``c`` consecutive
    groups of its row), looks up one entry in each per cycle and sums them in a narrow adder
    tree (``tree_width`` bits, its own signal so synthesis does not widen the tree to the
    accumulator's width); the sum enters the accumulator once. With symmetric tables and
    ``c > 1`` each lookup folds its negation into the tree (:func:`fold_negation`):
    ``-x = ~x + 1``, the lookup gives ``~x`` and a carry, the tree adds the ``c`` carries.
    The tables come from the row (shared by its ``n`` PEs), the ``c*g``-bit index from the
    column (shared by its ``m`` PEs).
    Control inputs are those of :class:`~hw.accumulator.BitSerialAccumulator`. With
    ``pipeline`` >= 1 the adder-tree output and the controls are registered before the
    accumulator (one cycle later).
    """

    def __init__(self, cfg: LutConfig):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "table_row": In(cfg.pe_table_width),
            "index": In(cfg.pe_index_width),
            **{name: In(width) for name, width in control_ports(cfg).items()},
            "out": Out(signed(cfg.acc_width)),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        c = cfg.tables_per_pe
        m = Module()
        m.submodules.accumulator = acc = BitSerialAccumulator(cfg)
        if c == 1:
            tables = [self.table_row]
        else:
            view = data.View(pe_tables_layout(cfg), self.table_row)
            tables = [view[t].as_value() for t in range(c)]
        fold = fold_negation(cfg)
        entries, carries = [], []
        for t in range(c):
            lookup = TableLookup(cfg, fold_negation=fold)
            m.submodules["lookup" if c == 1 else f"lookup_{t}"] = lookup
            m.d.comb += [
                lookup.table_row.eq(tables[t]),
                lookup.index.eq(self.index[t * cfg.g:(t + 1) * cfg.g]),
            ]
            entries.append(lookup.entry)
            if fold:
                carries.append(lookup.negate)
        if c == 1:             # (fold needs c > 1)
            tree = entries[0]
        else:
            tree = Signal(signed(cfg.tree_width))
            # folded negations: each lookup gives ~x = -x - 1 and its carry; the c carries are
            # a few more 1-bit operands of the same carry-save tree, cheaper than c negators
            # (the true sum fits tree_width, so truncating the wider expression is exact)
            m.d.comb += tree.eq(sum(entries) + sum(carries))
        controls = {name: getattr(self, name) for name in control_ports(cfg)}
        if cfg.pipeline:
            # the lookup (and adder-tree) output is registered with the controls that go with
            # it: the accumulator sees them one cycle later, together; each PE has its own
            # copy of the controls, so no control net fans out beyond the PE
            entry = Signal(signed(cfg.tree_width), name="entry_d")
            m.d.sync += entry.eq(tree)
            tree = entry
            for name, value in list(controls.items()):
                controls[name] = Signal(len(value), name=f"{name}_d")
                m.d.sync += controls[name].eq(value)
        m.d.comb += [
            acc.entry.eq(tree),
            *(getattr(acc, name).eq(value) for name, value in controls.items()),
            self.out.eq(acc.out),
        ]
        return m
