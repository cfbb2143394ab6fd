"""The FP mpGEMM engine: a whole ``M x K`` by ``K x N`` product with FP16/BF16 activations
through one FP LUT array (``q`` tables, docs/fp-lut.md)."""
from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from gen.config import LutConfig
from gen.tile import unsigned_width

from .engine import BankedStore, sequence_tiles
from .fp_lut_array import FpLutArray, fp_cmd_layout, fp_result_row_layout
from .fp_precompute import FpTablePrecompute, _check_cfg as check_precompute, fp_act_layout
from .fp_scale_stage import scale_layout
from .layouts import stream_ports, table_layout, weight_plane_layout

__all__ = ["FpLutEngine", "fp_engine_cmd_layout"]


def fp_engine_cmd_layout(cfg: LutConfig):
    """FP engine ``i_cmd``: the FP array's command (``format`` [1:0], ``w_bits``, ``blocks``),
    then ``m_tiles`` and ``n_tiles`` (``tile_count_width`` bits each)."""
    return data.StructLayout({"cmd": fp_cmd_layout(cfg), "m_tiles": cfg.tile_count_width,
                              "n_tiles": cfg.tile_count_width})


class FpLutEngine(wiring.Component):
    """Tiled mpGEMM with FP activations around an FP LUT array (``q`` tables).

    Loop order as :class:`hw.engine.LutEngine`: row blocks outer, column blocks inner. A row
    block's quantized tables (one beat per step) and its table scales (one beat of ``m`` FP32
    per scale block) go into double-buffered memories once and are reused for every column
    block. Weights and weight scales stream per tile; the engine joins each block's table
    scales with the tile's weight scales into the array's ``i_scale`` beat.

    Attributes
    ----------
    i_cmd : stream, in, ``fp_engine_cmd_width`` bits (:func:`fp_engine_cmd_layout`)
    i_table : stream, in, ``table_width`` bits: per row block, per step (``precompute=False``)
    i_tscale : stream, in, ``table_scale_width`` bits: per row block, per scale block
        (``precompute=False``)
    i_act : stream, in, ``act_width`` bits: per row block, per group, ``m x g`` activation
        patterns (``precompute=True``, :func:`hw.fp_precompute.fp_act_layout`); the tables
        and their scales are built by :class:`hw.fp_precompute.FpTablePrecompute`
    i_weight : stream, in, ``weight_width`` bits: per row block, per column block, per step,
        ``w`` planes MSB first
    i_wscale : stream, in, ``weight_scale_width`` bits: per row block, per column block, per
        scale block
    o_result : stream, out, ``fp_result_row_width`` bits: per tile, ``m`` rows of ``n`` FP32
    o_busy, o_cycles : as :class:`hw.engine.LutEngine`
    """

    def __init__(self, cfg: LutConfig, *, pe_module=None):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        if cfg.table_format != "q":
            raise ValueError(f"table_format must be 'q' for the FP engine, "
                             f"not {cfg.table_format!r}")
        if cfg.precompute:
            # before any sub-component exists: one built and dropped warns as never elaborated
            check_precompute(cfg)
        self._cfg = cfg
        self._array = FpLutArray(cfg, pe_module=pe_module)
        self._precompute = FpTablePrecompute(cfg) if cfg.precompute else None
        #: the layout of every stream payload, by port (gen.emit writes them into the manifest)
        if cfg.precompute:
            sources = {"i_act": fp_act_layout(cfg)}
        else:
            sources = {"i_table": table_layout(cfg), "i_tscale": scale_layout(cfg).members["ts"]}
        self.payload_layouts = {
            "i_cmd": fp_engine_cmd_layout(cfg),
            **sources,
            "i_weight": weight_plane_layout(cfg),
            "i_wscale": scale_layout(cfg).members["ws"],
            "o_result": fp_result_row_layout(cfg),
        }
        assert fp_engine_cmd_layout(cfg).size == cfg.fp_engine_cmd_width
        super().__init__({**stream_ports(self.payload_layouts), "o_busy": Out(1),
                          "o_cycles": Out(cfg.cycles_width)})

    def make_pe(self):
        return self._array.make_pe()

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.array = array = self._array
        steps_per_block = cfg.scale_block // cfg.tables_per_pe

        # -- the GEMM in flight ---------------------------------------------------------------
        op = Signal(fp_engine_cmd_layout(cfg))
        active = Signal()
        m.d.comb += self.i_cmd.ready.eq(~active)
        with m.If(self.i_cmd.valid & self.i_cmd.ready):
            m.d.sync += [op.eq(self.i_cmd.payload), active.eq(1)]
        m_tiles, n_tiles, blocks = op.m_tiles, op.n_tiles, op.cmd.blocks
        steps = Signal(unsigned_width(cfg.blocks_max * steps_per_block))
        m.d.comb += steps.eq(blocks * steps_per_block)

        # -- tables and table scales: double-buffered, reused across column blocks ----------
        tables = BankedStore(m, "tables", cfg.table_width, cfg.blocks_max * steps_per_block,
                              cfg, active, m_tiles, n_tiles, steps)
        tscales = BankedStore(m, "tscales", cfg.table_scale_width, cfg.blocks_max, cfg,
                               active, m_tiles, n_tiles, blocks)
        if cfg.precompute:
            # the precompute takes activations only during a GEMM, and its table and scale
            # beats go into the stores exactly as software-precomputed ones would
            m.submodules.precompute = pre = self._precompute
            m.d.comb += [pre.i_act.payload.eq(self.i_act.payload),
                         pre.i_act.valid.eq(self.i_act.valid & active),
                         self.i_act.ready.eq(pre.i_act.ready & active)]
            table_src, tscale_src = pre.o_table, pre.o_tscale
        else:
            table_src, tscale_src = self.i_table, self.i_tscale
        for store, src in ((tables, table_src), (tscales, tscale_src)):
            m.d.comb += [src.ready.eq(store.can_write), store.wdata.eq(src.payload),
                         store.write.eq(src.valid & src.ready)]
        m.d.comb += [
            array.i_table.payload.eq(tables.rdata),
            array.i_table.valid.eq(tables.readable),
            tables.take.eq(array.i_table.valid & array.i_table.ready),
            # a block's i_scale beat: its table scales and the tile's weight scales
            array.i_scale.payload.eq(Cat(tscales.rdata, self.i_wscale.payload)),
            array.i_scale.valid.eq(tscales.readable & self.i_wscale.valid),
            self.i_wscale.ready.eq(tscales.readable & array.i_scale.ready),
            tscales.take.eq(array.i_scale.valid & array.i_scale.ready),
        ]

        done = sequence_tiles(m, self, array, cfg, active, op.cmd, m_tiles * n_tiles)
        with m.If(done):
            m.d.comb += [tables.clear.eq(1), tscales.clear.eq(1)]
        return m
