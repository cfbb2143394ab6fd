"""FP16/BF16 activations through the LUT array with quantized (``q``) tables.

docs/fp-lut.md: software computes the tables of the FP activations, quantizes them to
``table_bits``-bit integers with one FP32 scale per scale block and row, and sends them; the
integer :class:`~hw.lut_array.LutArray` (entry width ``t``) runs one scale block per
operation and gives ``r2``, twice each block's integer result; the shared
:class:`~hw.fp_scale_stage.FpScaleStage` multiplies by the block's table and weight scales
and accumulates in FP32 across the operation's blocks.
"""
from __future__ import annotations

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import Out

from gen.config import LutConfig, WeightFormat

from .fp_scale_stage import FpScaleStage, block_layout, scale_layout
from .layouts import cmd_layout, stream_ports, table_layout, weight_plane_layout
from .lut_array import LutArray

__all__ = ["FpLutArray", "fp_cmd_layout", "fp_result_row_layout"]

#: blocks whose flags wait between the command sequencer and the stage: the LUT array holds
#: at most two issued operations (one running, one in its output buffer), and a third slot
#: lets a command go in on the edge the stage finishes one
_FLAG_DEPTH = 3


def fp_cmd_layout(cfg):
    """FP array ``i_cmd``: ``format`` [1:0], then ``w_bits``, then ``blocks`` (scale blocks,
    1 .. ``blocks_max``)."""
    return data.StructLayout({"format": WeightFormat, "w_bits": cfg.plane_width,
                              "blocks": cfg.blocks_width})


def fp_result_row_layout(cfg):
    """FP ``o_result`` beat: ``n`` FP32 results, column ``c`` at ``[32 c]``."""
    return data.ArrayLayout(cfg.fp_result_width, cfg.n)


class FpLutArray(wiring.Component):
    """The ``q`` path: an integer ``LutArray`` on quantized tables plus the FP scale stage.

    One operation computes ``R = A @ (W * ws)`` for ``m x K`` FP activations (``K`` padded to
    ``blocks`` whole scale blocks of ``scale_block * g``) at a runtime weight format and
    ``w <= w_bits``: ``blocks`` operations of the integer array (``groups = scale_block /
    tables_per_pe`` steps each), each followed by the stage's scale-and-accumulate of its
    ``m`` rows. Results are FP32, ``m`` rows of ``n`` per operation.

    Parameters
    ----------
    cfg : LutConfig
        ``table_format = "q"`` (and so ``act_format`` fp16 or bf16).
    pe_module : str or None
        As for :class:`~hw.lut_array.LutArray`.

    Attributes
    ----------
    i_cmd : stream, in, ``fp_cmd_width`` bits (:func:`fp_cmd_layout`)
    i_table : stream, in, ``table_width`` bits (the integer array's layout, ``t``-bit entries)
    i_weight : stream, in, ``weight_width`` bits (the integer array's layout)
    i_scale : stream, in, ``scale_width`` bits (:func:`~hw.fp_scale_stage.scale_layout`),
        one beat per block
    o_result : stream, out, ``fp_result_row_width`` bits (:func:`fp_result_row_layout`)
    o_busy : Signal(1), out
    """

    def __init__(self, cfg: LutConfig, *, pe_module=None):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        if cfg.table_format != "q":
            raise ValueError(f"cfg.table_format must be q for FpLutArray, "
                             f"not {cfg.table_format!r}")
        self._cfg = cfg
        self._array = LutArray(cfg, pe_module=pe_module)
        self.payload_layouts = {
            "i_cmd": fp_cmd_layout(cfg),
            "i_table": table_layout(cfg),
            "i_weight": weight_plane_layout(cfg),
            "i_scale": scale_layout(cfg),
            "o_result": fp_result_row_layout(cfg),
        }
        super().__init__({**stream_ports(self.payload_layouts), "o_busy": Out(1)})

    @property
    def cfg(self):
        return self._cfg

    def make_pe(self):
        return self._array.make_pe()

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.array = array = self._array
        m.submodules.stage = stage = FpScaleStage(cfg)
        m.submodules.block_flags = flags = SyncFIFO(width=block_layout().size,
                                                    depth=_FLAG_DEPTH)

        # -- command sequencer: one integer operation per scale block -------------------------
        cmd = data.View(fp_cmd_layout(cfg), self.i_cmd.payload)
        active = Signal()
        fmt = Signal(WeightFormat)
        w_bits = Signal(cfg.plane_width)
        blocks = Signal(cfg.blocks_width)
        block = Signal(cfg.blocks_width)
        issue = Signal()
        last = Signal()
        inner = data.View(cmd_layout(cfg), array.i_cmd.payload)
        m.d.comb += [
            last.eq(block == blocks - 1),
            array.i_cmd.valid.eq(active & flags.w_rdy),
            inner.format.eq(fmt), inner.w_bits.eq(w_bits), inner.groups.eq(cfg.groups_max),
            issue.eq(array.i_cmd.valid & array.i_cmd.ready),
            flags.w_en.eq(issue),
            flags.w_data.eq(Cat(block == 0, last)),
            self.i_cmd.ready.eq(~active | (issue & last)),
        ]
        with m.If(issue):
            m.d.sync += block.eq(block + 1)
            with m.If(last):
                m.d.sync += active.eq(0)
        with m.If(self.i_cmd.valid & self.i_cmd.ready):
            m.d.sync += [active.eq(1), fmt.eq(cmd.format), w_bits.eq(cmd.w_bits),
                         blocks.eq(cmd.blocks), block.eq(0)]

        # -- data paths -------------------------------------------------------------------------
        wiring.connect(m, wiring.flipped(self.i_table), array.i_table)
        wiring.connect(m, wiring.flipped(self.i_weight), array.i_weight)
        wiring.connect(m, array.o_result, stage.i_row)
        wiring.connect(m, wiring.flipped(self.i_scale), stage.i_scale)
        wiring.connect(m, stage.o_result, wiring.flipped(self.o_result))
        m.d.comb += [
            stage.i_block.valid.eq(flags.r_rdy),
            stage.i_block.payload.eq(flags.r_data),
            flags.r_en.eq(stage.i_block.ready),
            self.o_busy.eq(active | array.o_busy | stage.o_busy),
        ]
        return m
