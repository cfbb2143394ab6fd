"""The widths of FP activations through the LUT array (docs/fp-lut.md), part of
:class:`gen.config.LutConfig`: the ``q`` tables' scale blocks and FP scale stage, the FP
commands, scales and result rows. Only meaningful with ``act_format`` fp16/bf16; they read the
config's fields and its integer widths (``result_width``, ``groups_max``, ``plane_width``).
"""
from __future__ import annotations

from .tile import unsigned_width

__all__ = ["FpWidths", "scale_div_cycles", "quantize_stage_cuts"]

#: The precompute's entry quantizer (``hw.fp_quantize.EntryQuantizer``) in restoring-division
#: steps of logic depth: its ``t + 2`` steps (a 25-bit compare and select each), the unpacking
#: and normalizing in front and the shift, rounding and clip after (about a step each), and
#: the steps' worth per pipeline stage (about one FP32 adder's depth). Yosys generic gates,
#: docs/fp-lut-q-hw.md "Hardware precompute".
QUANTIZE_PREP_STEPS, QUANTIZE_POST_STEPS = 1, 1
PRECOMPUTE_QUANTIZE_STEPS = 4


def quantize_stage_cuts(table_bits, stages):
    """Division steps done before each of the ``stages - 1`` pipeline registers of the entry
    quantizer: its ``t + 2`` steps and the parts in front and after split as evenly as whole
    steps allow."""
    steps = table_bits + 2
    total = QUANTIZE_PREP_STEPS + steps + QUANTIZE_POST_STEPS
    return [min(steps, max(0, round(i * total / stages) - QUANTIZE_PREP_STEPS))
            for i in range(1, stages)]


def scale_div_cycles(table_bits, steps):
    """Cycles of one scale division (``hw.fp_precompute.ScaleDivider``): the ``24 + t + 1``
    quotient bits of ``amax``'s significand times ``2**(t+1)``, ``steps`` per cycle."""
    return -(-(24 + table_bits + 1) // steps)


class FpWidths:
    """Mixin of :class:`gen.config.LutConfig`: every width of the FP activation path."""

    @property
    def act_fp(self):
        """The activations' :class:`gen.fp.FPFormat`, or None for integer activations."""
        if self.act_format == "int":
            return None
        from .fp import fp_format
        return fp_format(self.act_format)

    @property
    def _q(self):
        return self.table_format == "q"

    @property
    def table_max(self):
        """Largest magnitude of a ``q`` table entry: ``2**(t-1) - 1`` (symmetric clip)."""
        return (1 << (self.table_bits - 1)) - 1

    @property
    def blocks_max(self):
        """Scale blocks of one FP operation at ``k_max``: ``k_max / (scale_block * g)``,
        rounded up (``q``); steps of ``step_k`` (``fp``)."""
        if self._q:
            return -(-self.k_max // (self.scale_block * self.g))
        return self.groups_max

    @property
    def precompute_div_steps(self):
        """Quotient bits per cycle of the FP precompute's scale dividers (``q``,
        ``hw.fp_precompute.ScaleDivider``): the ``24 + t + 1`` bits of ``amax``'s significand
        times ``2**(t+1)`` over the cycles a block's division may take without delaying the
        quantizer, ``scale_block * (precompute_beat_cycles - 1) - 1`` (the quantizer spends
        ``precompute_beat_cycles`` cycles on each of the previous block's ``scale_block``
        groups, the activations 1 cycle per group), at
        least 1. The amax pipeline starts a division ``precompute_sum_stages - 1`` cycles
        after the block's last activation, and the table-sum pipeline lets the block's first
        row wait for its scales ``precompute_sum_stages`` cycles after it is read, so the
        slack is the same as without them."""
        bits = 24 + self.table_bits + 1
        return -(-bits // max(1, self.scale_block * (self.precompute_beat_cycles - 1) - 1))

    @property
    def precompute_beat_cycles(self):
        """Cycles the FP precompute's quantizer spends on one table beat: ``m /
        precompute_rows`` (it handles ``precompute_rows`` rows of a group per cycle)."""
        return self.m // self.precompute_rows

    @property
    def precompute_div_cycles(self):
        """Cycles of one scale division of the FP precompute (``q``)."""
        return scale_div_cycles(self.table_bits, self.precompute_div_steps)

    @property
    def precompute_sum_stages(self):
        """Pipeline registers of the FP precompute's FP32 adder trees, one per adder level
        (``g - 1``): the table sums (read from the block memory, then ``g - 1`` levels, a
        register after each) and the sums of magnitudes (``g - 1`` adders in a row, a
        register after each but the last, whose sum goes through the maximum into the
        running-maximum register ``g - 2`` edges after the edge that takes the beat)."""
        return self.g - 1

    @property
    def precompute_quantize_stages(self):
        """Cycles of the precompute's entry quantizer (``hw.fp_quantize.EntryQuantizer``):
        its ``t + 2`` restoring-division steps, the unpacking in front and the rounding after,
        ``PRECOMPUTE_QUANTIZE_STEPS`` steps' worth per cycle."""
        depth = QUANTIZE_PREP_STEPS + self.table_bits + 2 + QUANTIZE_POST_STEPS
        return -(-depth // PRECOMPUTE_QUANTIZE_STEPS)

    @property
    def precompute_latency(self):
        """Cycles from the edge that takes a scale block's last ``i_act`` beat to the edge its
        first ``o_table`` beat becomes valid, in an idle FP precompute with ``o_table`` ready:
        the amax pipeline (its first adder's sum is registered on the taking edge, the last
        one's goes through the running maximum into the dividers ``precompute_sum_stages - 1``
        edges later), the division, one edge to move the scales into the scale register, the
        quantizer, then the beat's other ``m - 1`` rows. The table-sum pipeline fills while
        the block is being divided (its ``g - 1`` stages end before the scales move in), so it
        adds nothing here. The pipeline registers add ``precompute_sum_stages - 1 +
        precompute_quantize_stages - 1`` cycles to it (4 at ``g = 4``, ``t = 8``)."""
        return (self.precompute_sum_stages - 1 + self.precompute_div_cycles + 1
                + self.precompute_quantize_stages + self.precompute_beat_cycles - 1)

    @property
    def blocks_width(self):
        """Bits of the FP command's ``blocks`` field."""
        return unsigned_width(self.blocks_max)

    @property
    def fp_cmd_width(self):
        """Bits of the FP array's ``i_cmd``: format (2), w (``plane_width``), blocks."""
        return 2 + self.plane_width + self.blocks_width

    @property
    def fp_engine_cmd_width(self):
        """Bits of the FP engine's ``i_cmd``: the FP array's command, then the row-tile and
        column-tile counts (``hw.fp_engine.fp_engine_cmd_layout``)."""
        return self.fp_cmd_width + 2 * self.tile_count_width

    #: bits of one FP32 value (table scales, results)
    fp_result_width = 32

    @property
    def table_scale_width(self):
        """Bits of the ``m`` FP32 table scales of one block (``q``); 0 for ``fp`` tables, which
        have no table scale (their ``i_scale`` beat holds the ``n`` weight scales alone)."""
        return self.m * self.fp_result_width if self._q else 0

    @property
    def weight_scale_width(self):
        """Bits of the ``n`` weight scales (activation format) of one block."""
        return self.n * self.act_fp.width

    @property
    def scale_width(self):
        """Bits of one ``i_scale`` beat: table scales, then weight scales."""
        return self.table_scale_width + self.weight_scale_width

    @property
    def row_cycles(self):
        """Cycles the FP stage may spend on one result row so that a block's ``m`` rows are
        done before the next block's (``scale_block / tables_per_pe`` steps of at least
        ``scale_stage_w`` cycles): ``scale_stage_w * (scale_block / tables_per_pe) // m``."""
        return (max(1, self.scale_stage_w * (self.scale_block // self.tables_per_pe) // self.m)
                if self._q else 1)

    @property
    def fp_column_cycles(self):
        """Cycles the ``fp``-table array spends on one drained row: ``n / fp_column_lanes``
        with shared column stages (the lanes fill a registered row, which then leaves as the
        beat), else 1 (one combinational stage per column, a row per beat). The array's last
        plane of an operation waits while the previous operation's rows are not all computed,
        so operations of at least ``m * fp_column_cycles`` cycles (``groups * w``) never wait
        with ``o_result`` always ready."""
        lanes = getattr(self, "fp_column_lanes", None)
        return 1 if lanes is None else self.n // lanes

    @property
    def scale_lanes(self):
        """FP lanes of the shared scale stage: ``ceil(n / row_cycles)``."""
        return -(-self.n // self.row_cycles)

    @property
    def scale_product_width(self):
        """Bits of the FP stage's exact product ``|r2| * sig(ts) * sig(ws)`` (``q``):
        ``result_width`` (the magnitude of a ``result_width``-bit signed integer) plus the
        significands of the table scale (``scale_sig_bits``) and of the activation format."""
        return self.result_width + self.scale_sig_bits + self.act_fp.sig_bits

    @property
    def scale_window(self):
        """Alignment frame of the FP stage's fused add ``acc + product``: the product's field
        plus 8 bits (as the fused dot product: ``gen.fp.DOT_EXTRA_BITS``)."""
        from .fp import DOT_EXTRA_BITS
        return self.scale_product_width + DOT_EXTRA_BITS

    @property
    def fp_result_row_width(self):
        """Bits of one FP ``o_result`` beat: ``n`` FP32 results."""
        return self.n * self.fp_result_width
