"""The mpGEMM engine: a whole ``M x K`` by ``K x N`` product through one LUT array."""
from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from gen.config import LutConfig
from gen.tile import unsigned_width

from .layouts import (act_layout, engine_cmd_layout, result_row_layout, stream_ports,
                      table_layout, weight_plane_layout)
from .lut_array import LutArray
from .precompute import TablePrecompute

__all__ = ["LutEngine", "BankedStore", "sequence_tiles"]


class LutEngine(wiring.Component):
    """Tiled mpGEMM around a :class:`~hw.lut_array.LutArray`.

    Loop order: row blocks (``m`` rows of A) outer, column blocks (``n`` columns of W) inner.
    A row block's tables (``groups`` beats) go into a double-buffered table memory once and
    are reused for every column block, so table traffic is ``1 / n_tiles`` of the weights'.
    While one bank feeds the array, the next row block's tables fill the other bank. Weights
    stream in at one bit-plane (``n * g`` bits) per cycle and pass straight to the array;
    results leave as rows of ``n``.

    Attributes
    ----------
    i_cmd : stream, in, ``engine_cmd_width`` bits (:func:`~hw.layouts.engine_cmd_layout`)
        One GEMM: the array's command (format [1:0], w, groups), then ``m_tiles`` and
        ``n_tiles`` (``tile_count_width`` bits each).
    i_table : stream, in, ``table_width`` bits (``precompute=False``)
        Per row block, per group: the ``m`` stored tables (the array's ``i_table`` layout).
    i_act : stream, in, ``act_width`` bits (``precompute=True``)
        Per row block, per group: ``m x g`` activations; tables are built in hardware.
    i_weight : stream, in, ``weight_width`` bits
        Per row block, per column block, per group, ``w`` bit-planes MSB first.
    o_result : stream, out, ``result_row_width`` bits
        Per row block, per column block, ``m`` rows of ``n`` results.
    o_busy : Signal(1), out
    o_cycles : Signal(cycles_width), out
        Cycles of the last (or running) GEMM, from the edge that took its command to the edge
        of its last result beat.
    """

    def __init__(self, cfg: LutConfig, *, pe_module=None):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        if cfg.tables_per_pe != 1 and cfg.precompute:
            # the precompute block builds one group's tables per i_act beat
            raise ValueError(f"tables_per_pe must be 1 for the precompute engine, "
                             f"not {cfg.tables_per_pe}")
        self._cfg = cfg
        self._array = LutArray(cfg, pe_module=pe_module)
        #: the layout of every stream payload, by port (gen.emit writes them into the manifest)
        self.payload_layouts = {"i_cmd": engine_cmd_layout(cfg)}
        if cfg.precompute:
            self.payload_layouts["i_act"] = act_layout(cfg)
        else:
            self.payload_layouts["i_table"] = table_layout(cfg)
        self.payload_layouts["i_weight"] = weight_plane_layout(cfg)
        self.payload_layouts["o_result"] = result_row_layout(cfg)
        super().__init__({**stream_ports(self.payload_layouts), "o_busy": Out(1),
                          "o_cycles": Out(cfg.cycles_width)})

    def make_pe(self):
        return self._array.make_pe()

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.array = array = self._array
        gmax = cfg.groups_max

        # -- the GEMM in flight ---------------------------------------------------------------
        cmd = data.View(engine_cmd_layout(cfg), self.i_cmd.payload)
        op = Signal(engine_cmd_layout(cfg))
        active = Signal()
        m.d.comb += self.i_cmd.ready.eq(~active)
        with m.If(self.i_cmd.valid & self.i_cmd.ready):
            m.d.sync += [op.eq(cmd), active.eq(1)]

        # -- table memory: two banks of groups_max entries -----------------------------------
        m.submodules.tables = mem = Memory(shape=cfg.table_width, depth=2 * gmax, init=[])
        wport = mem.write_port()
        rport = mem.read_port(domain="comb")
        tw = cfg.tile_count_width
        blocks_written = Signal(tw)          # row blocks whose tables are all in memory
        blocks_read = Signal(tw)             # row blocks whose every column block is done
        w_group = Signal(cfg.groups_width)   # next entry the writer fills
        r_group = Signal(cfg.groups_width)   # next entry the reader sends to the array
        r_ntile = Signal(tw)

        # the writer may run one block ahead of the reader (the other bank)
        can_write = active & (blocks_written < op.m_tiles) & (blocks_written - blocks_read < 2)
        if cfg.precompute:
            m.submodules.precompute = pre = TablePrecompute(cfg)
            src = self.i_act
            m.d.comb += pre.acts.eq(src.payload)
            wdata = pre.tables
        else:
            src = self.i_table
            wdata = src.payload
        m.d.comb += [
            src.ready.eq(can_write),
            wport.addr.eq(Mux(blocks_written[0], gmax, 0) + w_group),
            wport.data.eq(wdata),
            wport.en.eq(src.valid & src.ready),
        ]
        with m.If(src.valid & src.ready):
            with m.If(w_group == op.cmd.groups - 1):
                m.d.sync += [w_group.eq(0), blocks_written.eq(blocks_written + 1)]
            with m.Else():
                m.d.sync += w_group.eq(w_group + 1)

        # the reader feeds the array's table stream from the oldest block
        # an entry can be read once its block is complete, or once the writer is past it
        complete = blocks_written != blocks_read
        partial = (blocks_written == blocks_read) & (w_group > r_group)
        m.d.comb += [
            rport.addr.eq(Mux(blocks_read[0], gmax, 0) + r_group),
            array.i_table.payload.eq(rport.data),
            array.i_table.valid.eq(active & (blocks_read < op.m_tiles) & (complete | partial)),
        ]
        with m.If(array.i_table.valid & array.i_table.ready):
            with m.If(r_group == op.cmd.groups - 1):
                m.d.sync += r_group.eq(0)
                with m.If(r_ntile == op.n_tiles - 1):
                    m.d.sync += [r_ntile.eq(0), blocks_read.eq(blocks_read + 1)]
                with m.Else():
                    m.d.sync += r_ntile.eq(r_ntile + 1)
            with m.Else():
                m.d.sync += r_group.eq(r_group + 1)

        done = sequence_tiles(m, self, array, cfg, active, op.cmd, op.m_tiles * op.n_tiles)
        with m.If(done):
            m.d.sync += [blocks_written.eq(0), blocks_read.eq(0)]
        return m


def sequence_tiles(m, engine, array, cfg, active, cmd, tiles_value):
    """The part of an engine around its array that does not depend on the tables: one array
    operation (``cmd``) per tile while ``active``, ``tiles_value`` tiles in all; weights in and
    result rows out straight through; ``o_cycles`` counts from the command's handshake (cycle
    1) to the last result row, ``o_busy`` is ``active``. After the ``tiles * m``-th result row
    it clears ``active``; returns the signal that is high in that cycle, for the engine's own
    end-of-GEMM resets. Shared by :class:`LutEngine` and :class:`hw.fp_engine.FpLutEngine`."""
    tiles = Signal(cfg.tiles_width)
    tiles_issued = Signal(cfg.tiles_width)
    m.d.comb += [
        tiles.eq(tiles_value),
        array.i_cmd.payload.eq(cmd),
        array.i_cmd.valid.eq(active & (tiles_issued < tiles)),
    ]
    with m.If(array.i_cmd.valid & array.i_cmd.ready):
        m.d.sync += tiles_issued.eq(tiles_issued + 1)

    # -- weights in, results out: straight through --------------------------------------------
    wiring.connect(m, wiring.flipped(engine.i_weight), array.i_weight)
    wiring.connect(m, array.o_result, wiring.flipped(engine.o_result))

    rows = Signal(cfg.rows_count_width)
    rows_total = Signal(cfg.rows_count_width)
    m.d.comb += rows_total.eq(tiles * cfg.m)
    cycles = Signal(cfg.cycles_width)
    done = Signal()
    m.d.comb += [engine.o_cycles.eq(cycles), engine.o_busy.eq(active)]
    with m.If(active):
        m.d.sync += cycles.eq(cycles + 1)
    with m.If(engine.o_result.valid & engine.o_result.ready):
        m.d.sync += rows.eq(rows + 1)
        with m.If(rows == rows_total - 1):
            m.d.comb += done.eq(1)
            m.d.sync += [active.eq(0), rows.eq(0), tiles_issued.eq(0)]
    with m.If(engine.i_cmd.valid & engine.i_cmd.ready):
        m.d.sync += cycles.eq(1)
    return done


class BankedStore:
    """A double-buffered memory filled by one input stream, one entry per ``count`` beat, and
    read in order ``n_tiles`` times per row block (``per_block`` beats each).

    The writer may run one row block ahead of the reader (the other bank); an entry of the
    row block being written can be read as soon as it is in memory, so the first tile does not
    wait for all of its row block. Used by :class:`hw.fp_engine.FpLutEngine` (tables and table
    scales) and :class:`hw.fp_table_engine.FpTableEngine` (tables).
    """

    def __init__(self, m, name, width, depth, cfg, active, m_tiles, n_tiles, per_block):
        tw = cfg.tile_count_width
        cw = unsigned_width(depth)
        self.mem = Memory(shape=width, depth=2 * depth, init=[])
        m.submodules[name] = self.mem
        wport = self.mem.write_port()
        rport = self.mem.read_port(domain="comb")
        written = Signal(tw, name=f"{name}_blocks_written")
        read = Signal(tw, name=f"{name}_blocks_read")
        w_idx = Signal(cw, name=f"{name}_w")
        r_idx = Signal(cw, name=f"{name}_r")
        r_ntile = Signal(tw, name=f"{name}_r_ntile")
        self.can_write = Signal(name=f"{name}_can_write")
        self.write = Signal(name=f"{name}_write")
        self.wdata = Signal(width, name=f"{name}_wdata")
        self.readable = Signal(name=f"{name}_readable")
        self.rdata = rport.data
        self.take = Signal(name=f"{name}_take")
        self.clear = Signal(name=f"{name}_clear")
        m.d.comb += [
            self.can_write.eq(active & (written < m_tiles) & (written - read < 2)),
            wport.addr.eq(self._bank(written, depth) + w_idx),
            wport.data.eq(self.wdata),
            wport.en.eq(self.write),
            rport.addr.eq(self._bank(read, depth) + r_idx),
            self.readable.eq(active & (read < m_tiles) & (
                (written != read) | ((written == read) & (w_idx > r_idx)))),
        ]
        with m.If(self.write):
            with m.If(w_idx == per_block - 1):
                m.d.sync += [w_idx.eq(0), written.eq(written + 1)]
            with m.Else():
                m.d.sync += w_idx.eq(w_idx + 1)
        with m.If(self.take):
            with m.If(r_idx == per_block - 1):
                m.d.sync += r_idx.eq(0)
                with m.If(r_ntile == n_tiles - 1):
                    m.d.sync += [r_ntile.eq(0), read.eq(read + 1)]
                with m.Else():
                    m.d.sync += r_ntile.eq(r_ntile + 1)
            with m.Else():
                m.d.sync += r_idx.eq(r_idx + 1)
        with m.If(self.clear):
            m.d.sync += [written.eq(0), read.eq(0)]

    @staticmethod
    def _bank(blocks, depth):
        """First address of the bank of the ``blocks``-th row block: the banks alternate."""
        return Mux(blocks[0], depth, 0)
