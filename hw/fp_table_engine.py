"""The ``fp``-table engine: a whole ``M x K`` by ``K x N`` product with FP16/BF16 activations
through one LUT array with ``fp`` tables (docs/fp-lut.md section 5 and "The fp-table engine").

Every result ``R[r, c]`` of the GEMM is one operation of the array over all of K (the tables of
row ``r``, the weights of column ``c``, the row sum ``S_r`` and the scale ``ws[c]``): tiling
only chooses which array operation computes it, so the golden model of a whole GEMM is
``gen.fp_lut_fp.lut_fp_mpgemm`` on the whole (padded) matrices and the streams are
``gen.fp_lut_fp.fp_gemm_streams``.
"""
from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from gen.config import LutConfig

from .engine import BankedStore, sequence_tiles
from .fp_table_array import FpTableArray, check_config, fp_result_row_layout, scale_layout
from .layouts import cmd_layout, stream_ports, table_layout, weight_plane_layout

__all__ = ["FpTableEngine", "fp_table_engine_cmd_layout"]


def fp_table_engine_cmd_layout(cfg: LutConfig):
    """``fp``-table engine ``i_cmd``: the array's command (``format`` [1:0], ``w_bits``,
    ``groups``), then ``m_tiles`` and ``n_tiles`` (``tile_count_width`` bits each);
    ``fp_engine_cmd_width`` bits in all."""
    return data.StructLayout({"cmd": cmd_layout(cfg), "m_tiles": cfg.tile_count_width,
                              "n_tiles": cfg.tile_count_width})


class FpTableEngine(wiring.Component):
    """Tiled mpGEMM with FP16/BF16 activations around a :class:`~hw.fp_table_array.FpTableArray`.

    Loop order as :class:`hw.engine.LutEngine`: row blocks (``m`` rows of A) outer, column
    blocks (``n`` columns of W) inner; one array operation per tile, over all of K. A row
    block's tables (``groups`` beats of entries in the activation format) go into a
    double-buffered memory once and are reused for every column block, while the next row
    block's fill the other bank. Weights and the tile's weight scales pass straight to the
    array: the ``i_wscale`` beat is the array's ``i_scale`` beat, taken with the tile's
    command.

    Attributes
    ----------
    i_cmd : stream, in, ``fp_engine_cmd_width`` bits (:func:`fp_table_engine_cmd_layout`)
        One GEMM: format, ``w``, ``groups`` (of all of K), ``m_tiles``, ``n_tiles``.
    i_table : stream, in, ``table_width`` bits
        Per row block, per group: the ``m`` stored tables (the array's ``i_table``).
    i_wscale : stream, in, ``weight_scale_width`` bits
        Per row block, per column block: the ``n`` weight scales in the activation format,
        ``ws[c]`` at ``[c * 16 +: 16]`` (the array's ``i_scale``).
    i_weight : stream, in, ``weight_width`` bits
        Per row block, per column block, per group, ``w`` bit-planes MSB first.
    o_result : stream, out, ``fp_result_row_width`` bits
        Per tile, ``m`` rows of ``n`` FP32 results, row 0 first.
    o_busy : Signal(1), out
    o_cycles : Signal(cycles_width), out
        Cycles of the last (or running) GEMM, from the edge that took its command to the edge
        of its last result row.
    """

    def __init__(self, cfg: LutConfig, *, pe_module=None, column_module=None):
        # every check before the array exists: one built and dropped warns as never elaborated
        check_config(cfg)     # (LutConfig itself refuses precompute with fp tables)
        for name, value in (("pe_module", pe_module), ("column_module", column_module)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a module name or None, not {value!r}")
        self._cfg = cfg
        self._array = FpTableArray(cfg, pe_module=pe_module, column_module=column_module)
        #: the layout of every stream payload, by port (gen.emit writes them into the manifest)
        self.payload_layouts = {
            "i_cmd": fp_table_engine_cmd_layout(cfg),
            "i_table": table_layout(cfg),
            "i_wscale": scale_layout(cfg),
            "i_weight": weight_plane_layout(cfg),
            "o_result": fp_result_row_layout(cfg),
        }
        assert fp_table_engine_cmd_layout(cfg).size == cfg.fp_engine_cmd_width
        assert scale_layout(cfg).size == cfg.weight_scale_width == cfg.scale_width
        super().__init__({**stream_ports(self.payload_layouts), "o_busy": Out(1),
                          "o_cycles": Out(cfg.cycles_width)})

    @property
    def cfg(self):
        return self._cfg

    def make_pe(self):
        return self._array.make_pe()

    def make_column(self):
        return self._array.make_column()

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.array = array = self._array

        # -- the GEMM in flight ---------------------------------------------------------------
        op = Signal(fp_table_engine_cmd_layout(cfg))
        active = Signal()
        m.d.comb += self.i_cmd.ready.eq(~active)
        with m.If(self.i_cmd.valid & self.i_cmd.ready):
            m.d.sync += [op.eq(self.i_cmd.payload), active.eq(1)]

        # -- tables: double-buffered, reused across column blocks ------------------------------
        tables = BankedStore(m, "tables", cfg.table_width, cfg.groups_max, cfg, active,
                             op.m_tiles, op.n_tiles, op.cmd.groups)
        m.d.comb += [
            self.i_table.ready.eq(tables.can_write),
            tables.wdata.eq(self.i_table.payload),
            tables.write.eq(self.i_table.valid & self.i_table.ready),
            array.i_table.payload.eq(tables.rdata),
            array.i_table.valid.eq(tables.readable),
            tables.take.eq(array.i_table.valid & array.i_table.ready),
        ]
        self._connect_scales(m, array)

        done = sequence_tiles(m, self, array, cfg, active, op.cmd, op.m_tiles * op.n_tiles)
        with m.If(done):
            m.d.comb += tables.clear.eq(1)
        return m

    def _connect_scales(self, m, array):
        """The tile's weight scales: one ``i_wscale`` beat per tile, straight into the array's
        ``i_scale``, which takes it with the tile's command."""
        wiring.connect(m, wiring.flipped(self.i_wscale), array.i_scale)
