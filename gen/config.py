"""One design point of the LUT Tensor Core, and every width derived from it.

Everything that needs a width -- the hardware in ``hw/``, the golden model, the emit CLI, the
cocotb testbenches and the synthesis reports -- reads it from :class:`LutConfig`. Nothing
recomputes a width on its own. The widths of FP activations (:mod:`gen.config_fp`) and of the
pipelining stages (:mod:`gen.config_pipeline`) live in mixins of their own.

Terms follow Mo et al., "LUT Tensor Core" (ISCA 2025, arXiv 2408.06003):

* ``g`` is the group size (the paper's K): ``g`` activations form one table of ``2**g`` signed
  sums ``T[idx] = sum_i a_i * (+1 if bit i of idx else -1)``.
* a weight *bit-plane* supplies the ``g``-bit index into that table; multi-bit weights run
  bit-serially, one plane per cycle, MSB first.
* ``symmetric`` tables store only the half with index MSB = 0 (``2**(g-1)`` entries); the other
  half is ``T[~idx] = -T[idx]``.
* the tile is ``m`` rows (tables) x ``n`` columns (weights): the paper's elongated M2N64K4.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .config_fp import FpWidths
from .config_pipeline import PipelineStages
from .tile import (A_BITS_RANGE, ACCUMULATIONS, ACT_FORMATS, G_RANGE, K_MAX_RANGE, M_RANGE,
                   N_RANGE, OUTPUT_BUFFERS, SCALE_BLOCK_RANGE, TABLE_BITS_RANGE, TABLE_FORMATS,
                   TABLES_PER_PE_RANGE, W_BITS_RANGE, WeightFormat, _check_int, _TileConfig,
                   signed_width, unsigned_width)

#: ``pipeline``: extra register stages for timing (docs/ppa.md, *Pipelining*). 0: none (the
#: original RTL); 1: the PE registers its lookup (adder-tree) output with its control inputs,
#: the drain keeps one row-select copy per column, the offset correction of each row is
#: registered and the result row is registered before ``o_result``; 2: as 1, and the PE also
#: registers each step's partial before adding it into the accumulator; 3: as 2, and the
#: accumulator adds in two halves (the high half one cycle behind, with a registered carry),
#: the output stage registers the selected accumulator row before the correction adder, which
#: adds in pieces (one register stage each), the activation sums and correction terms are
#: pieced the same way, and the group counter's first/last flags are registers.
#: Results are identical at every setting; only the latency from the last weight beat to the
#: results grows (:attr:`LutConfig.pipeline_latency`).
PIPELINE_RANGE = (0, 3)

#: ``scale_sig_bits``: significant bits of a ``q`` table scale (docs/fp-lut.md, section 2); 24
#: is FP32's own precision (no rounding), 8 BF16's
SCALE_SIG_BITS_RANGE = (8, 24)

__all__ = ["WeightFormat", "LutConfig", "signed_width", "unsigned_width",
           "W_BITS_RANGE", "A_BITS_RANGE", "G_RANGE", "M_RANGE", "N_RANGE", "K_MAX_RANGE",
           "TABLES_PER_PE_RANGE", "ACCUMULATIONS", "OUTPUT_BUFFERS", "ACT_FORMATS",
           "TABLE_FORMATS", "TABLE_BITS_RANGE", "SCALE_BLOCK_RANGE", "SCALE_SIG_BITS_RANGE",
           "PRESETS",
           "PIPELINE_RANGE"]

#: Named design points: ``LutConfig(**PRESETS[name], **other_fields)``; the design CLIs take
#: them as ``--preset NAME`` (explicit options override). ``dense``: the densest point of the
#: tables-per-PE sweep at 512 multiply-equivalents (README, "Denser arrays").
PRESETS = {
    "dense": {"g": 2, "m": 1, "n": 16, "tables_per_pe": 16, "accumulation": "shifted",
              "output_buffer": "none"},
}


@dataclass(frozen=True)
class LutConfig(FpWidths, PipelineStages, _TileConfig):
    """A design point of the LUT mpGEMM array.

    Parameters
    ----------
    w_bits : int
        Largest weight precision the build runs (1..4). Each operation picks its own
        ``w_bits`` up to this at run time.
    a_bits : int
        Activation precision, signed integers (2..16).
    g : int
        Group size: activations per table (2..6; the paper's K = 4).
    m : int
        Tile rows: tables held at once, each broadcast across the ``n`` columns (1..16).
    n : int
        Tile columns: weight columns sharing each table (1..256).
    k_max : int
        Longest reduction (activations) one operation accumulates without overflow.
    symmetric : bool
        Store only the index-MSB = 0 half of each table and negate (table symmetrization).
    weight_formats : tuple of str
        Weight formats the build supports at run time (``int``, ``uint``, ``binary``,
        ``ternary``); ``None`` means every format valid for ``w_bits``.
    table_format : str
        Type of the table entries: ``int`` (exact integer sums of integer activations), ``q``
        (FP activations, tables quantized to ``table_bits``-bit integers with one FP32 scale
        per scale block) or ``fp`` (FP activations, tables in the activation format, FP32
        accumulation in every PE); see docs/fp-lut.md.
    act_format : str
        ``int`` (signed ``a_bits``-bit integers), ``fp16`` or ``bf16``. FP activations need
        ``table_format`` ``q`` or ``fp``; ``a_bits`` is then unused.
    table_bits : int
        ``t``, bits of a quantized table entry (4..16; ``q`` tables only).
    scale_block : int
        ``b``, groups of a row that share one table scale (1..256, a multiple of
        ``tables_per_pe``; ``q`` tables only). The integer array runs one scale block per
        operation; an FP32 stage applies the scales and accumulates across blocks.
    scale_stage_w : int
        The smallest run-time weight width ``w`` at which the integer array never waits for
        the FP scale stage (1..``w_bits``; ``q`` tables only; default 1). A block of ``w``-bit
        weights takes ``w * scale_block / tables_per_pe`` cycles, so the stage may spend
        ``scale_stage_w`` times as many cycles per row (``row_cycles``) with that many times
        fewer lanes; operations of smaller ``w`` then run at the ``scale_stage_w`` rate.
    scale_sig_bits : int
        ``p``, significant bits of a table scale (8..24, :data:`SCALE_SIG_BITS_RANGE`; ``q``
        tables only; default 24 = FP32). Below 24 the scale is an FP32 value rounded (RNE) to
        ``p`` bits: software quantizes with such scales and the FP stage rounds every ``ts`` it
        takes to ``p`` bits, so its exact product is ``24 - p`` bits narrower
        (docs/fp-lut.md, section 2).
    fp_column_lanes : int or None
        ``fp`` tables only: ``L``, output stages shared by the ``n`` columns (a divisor of
        ``n``). ``None`` (default): one combinational stage per column. With ``L`` the lanes
        compute a drained row in ``fp_column_cycles = n / L`` cycles into a registered row,
        which then leaves as the ``o_result`` beat; operations of at least
        ``m * fp_column_cycles`` cycles never wait for the output (docs/fp-lut.md section 5).
    precompute : bool
        Engine only: build the tables in hardware from activations (``i_act``) instead of
        taking tables precomputed by software (``i_table``, the paper's fused precompute);
        with ``q`` tables also their scales (``hw.fp_precompute``). Not with ``fp`` tables.
    precompute_rows : int
        Rows of a group the ``q`` precompute's table sums and quantizer handle per cycle
        (a divisor of ``m``; 1 unless ``precompute``): a table beat every ``m / R`` cycles.
    tables_per_pe : int
        ``c``, tables per PE (1..16): a PE holds ``c`` consecutive groups of its row, looks up
        ``c`` entries per cycle, sums them in a narrow adder tree (``tree_width``) and adds the
        sum into its one accumulator. K per PE step is ``c * g``.
    accumulation : str
        ``partial`` (per-group partial register, today) or ``shifted``
        (``acc += tree << plane``, no partial register); see :data:`ACCUMULATIONS`.
    output_buffer : str
        ``double`` (per-PE output registers), ``row`` (one registered result row) or
        ``none`` (drain from the accumulators); see :data:`OUTPUT_BUFFERS`.
    pipeline : int
        Register stages added for timing, 0..3 (:data:`PIPELINE_RANGE`; 0 = none). Needs
        ``output_buffer`` ``double`` and integer tables; 2 and 3 need ``partial``
        accumulation. 1: the lookup output is registered; 2: also the step's partial; 3: also
        the accumulator's high half (a split add with a registered carry), the selected
        accumulator row before the correction adder, and the correction adder, the activation
        sums and the correction terms in pieces with registered carries (:mod:`hw.pieces`).
        Every result beat arrives ``pipeline_latency = drain_delay + out_stages`` cycles later
        than without pipelining (docs/interface.md, *Pipelining*).

    Raises
    ------
    TypeError
        A parameter has the wrong type.
    ValueError
        A parameter is out of range; the message names it, its value and the allowed range.
    """
    w_bits: int = 2
    a_bits: int = 8
    g: int = 4
    m: int = 2
    n: int = 64
    k_max: int = 4096
    symmetric: bool = True
    weight_formats: tuple = None
    table_format: str = "int"
    precompute: bool = False
    tables_per_pe: int = 1
    accumulation: str = "partial"
    output_buffer: str = "double"
    act_format: str = "int"
    table_bits: int = 8
    scale_block: int = 16
    pipeline: int = 0
    scale_stage_w: int = 1
    scale_sig_bits: int = 24
    fp_column_lanes: int = None
    precompute_rows: int = 1

    _DERIVED = ("step_k", "tree_width", "pe_table_width", "pe_index_width",
                "table_bits_per_cycle", "entry_width", "table_entries", "index_width",
                "select_width", "table_row_width",
                "table_width", "weight_width", "groups_max", "k_pad", "groups_width",
                "plane_width", "cmd_width", "partial_width", "acc_width", "sum_width",
                "correction_width", "result_width", "result_row_width", "row_index_width",
                "act_width", "code_width", "dequant_width", "direct_width",
                "tile_count_width", "engine_cmd_width", "tiles_width", "rows_count_width",
                "cycles_width")
    #: derived only when the activations are floating point (docs/fp-lut.md)
    _DERIVED_FP = ("blocks_max", "blocks_width", "fp_cmd_width", "table_scale_width",
                   "weight_scale_width", "scale_width", "scale_lanes", "row_cycles",
                   "fp_result_width", "fp_result_row_width", "scale_product_width",
                   "scale_window", "fp_engine_cmd_width")

    def __post_init__(self):
        self._check_ints((("w_bits", W_BITS_RANGE), ("a_bits", A_BITS_RANGE),
                          ("g", G_RANGE), ("m", M_RANGE), ("n", N_RANGE),
                          ("k_max", K_MAX_RANGE)))
        if not isinstance(self.symmetric, bool):
            raise TypeError(f"symmetric must be a bool, not {self.symmetric!r}")
        if not isinstance(self.precompute, bool):
            raise TypeError(f"precompute must be a bool, not {self.precompute!r}")
        object.__setattr__(self, "tables_per_pe",
                           _check_int("tables_per_pe", self.tables_per_pe, *TABLES_PER_PE_RANGE))
        for name, allowed in (("accumulation", ACCUMULATIONS),
                              ("output_buffer", OUTPUT_BUFFERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, "
                                 f"not {getattr(self, name)!r}")
        for name, allowed in (("table_format", TABLE_FORMATS), ("act_format", ACT_FORMATS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, "
                                 f"not {getattr(self, name)!r}")
        self._check_ints((("table_bits", TABLE_BITS_RANGE), ("scale_block", SCALE_BLOCK_RANGE),
                          ("pipeline", PIPELINE_RANGE)))
        if self.pipeline:
            if self.output_buffer != "double":
                raise ValueError(f"pipeline {self.pipeline} needs output_buffer 'double', not "
                                 f"{self.output_buffer!r}")
            if self.table_format != "int":
                raise ValueError(f"pipeline {self.pipeline} needs table_format 'int', not "
                                 f"{self.table_format!r}")
            if self.pipeline >= 2 and self.accumulation != "partial":
                raise ValueError(f"pipeline {self.pipeline} needs accumulation 'partial', not "
                                 f"{self.accumulation!r}")
        if (self.act_format == "int") != (self.table_format == "int"):
            raise ValueError(f"table_format {self.table_format!r} needs act_format "
                             f"{'int' if self.table_format == 'int' else 'fp16 or bf16'}, "
                             f"not {self.act_format!r}")
        if self.table_format == "fp" and self.precompute:
            raise ValueError("precompute must be False with table_format 'fp' (act_format "
                             f"{self.act_format!r}): FP tables are precomputed by software")
        object.__setattr__(self, "scale_stage_w",
                           _check_int("scale_stage_w", self.scale_stage_w, 1, self.w_bits))
        self._check_ints((("scale_sig_bits", SCALE_SIG_BITS_RANGE),))
        if self.scale_sig_bits != 24 and self.table_format != "q":
            raise ValueError(f"scale_sig_bits applies to q tables only: it must be 24 with "
                             f"table_format {self.table_format!r}, not {self.scale_sig_bits}")
        if self.scale_sig_bits != 24 and self.precompute:
            # hw.fp_precompute divides by the FP32 scale; it does not round it to p bits
            raise ValueError(f"scale_sig_bits must be 24 with precompute (the hardware "
                             f"precompute makes FP32 table scales), not {self.scale_sig_bits}")
        if self.scale_stage_w != 1 and self.table_format != "q":
            raise ValueError(f"scale_stage_w applies to q tables only: it must be 1 with "
                             f"table_format {self.table_format!r}, not {self.scale_stage_w}")
        if self.table_format == "q":
            if self.scale_block % self.tables_per_pe:
                raise ValueError(f"scale_block must be a multiple of tables_per_pe = "
                                 f"{self.tables_per_pe}, not {self.scale_block}")
            if self.scale_block // self.tables_per_pe < self.m:
                raise ValueError(f"scale_block must be at least m * tables_per_pe = "
                                 f"{self.m * self.tables_per_pe} (the FP stage takes a block's "
                                 f"m result rows while the next block runs), not "
                                 f"{self.scale_block}")
        self._check_column_lanes()
        self._check_precompute_rows()
        self._check_formats()

    def _check_precompute_rows(self):
        rows = self.precompute_rows
        if isinstance(rows, bool) or not isinstance(rows, numbers.Integral):
            raise TypeError(f"precompute_rows must be an integer, not {rows!r}")
        if rows != 1 and not (self.precompute and self.table_format == "q"):
            raise ValueError(f"precompute_rows applies to the q-table hardware precompute "
                             f"only: it must be 1 without precompute, not {rows}")
        allowed = [d for d in range(1, self.m + 1) if self.m % d == 0]
        if int(rows) not in allowed:
            raise ValueError(f"precompute_rows must be a divisor of m = {self.m} "
                             f"({', '.join(map(str, allowed))}), not {rows}")
        object.__setattr__(self, "precompute_rows", int(rows))

    def _check_column_lanes(self):
        lanes = self.fp_column_lanes
        if lanes is None:
            return
        if self.table_format != "fp":
            raise ValueError(f"fp_column_lanes applies to table_format 'fp' only: it must be "
                             f"None with table_format {self.table_format!r}, not {lanes!r}")
        allowed = [d for d in range(1, self.n + 1) if self.n % d == 0]
        if isinstance(lanes, bool) or not isinstance(lanes, numbers.Integral):
            raise TypeError(f"fp_column_lanes must be an integer or None, not {lanes!r}")
        if int(lanes) not in allowed:
            raise ValueError(f"fp_column_lanes must be None or a divisor of n = {self.n} "
                             f"({', '.join(map(str, allowed))}), not {lanes}")
        object.__setattr__(self, "fp_column_lanes", int(lanes))

    def derived(self):
        """Every derived width, by name (the FP ones only with FP activations)."""
        names = self._DERIVED + (self._DERIVED_FP if self.act_fp is not None else ())
        return {k: getattr(self, k) for k in names}

    # -- tables -------------------------------------------------------------------------------
    @property
    def entry_width(self):
        """Bits of one table entry: ``a_bits + floor(log2 g) + 1``.

        ``T[0] = -sum(a)`` reaches ``+g * 2**(a_bits-1)`` when every activation is at its
        minimum, so ``a_bits + ceil(log2 g)`` is one bit short at g = 2 and g = 4. ``q``
        tables: ``table_bits``; ``fp`` tables: the activation format's width (16).
        """
        if self._q:
            return self.table_bits
        if self.table_format == "fp":
            return self.act_fp.width
        return self.a_bits + int(math.floor(math.log2(self.g))) + 1

    @property
    def table_entries(self):
        """Entries stored per table: ``2**(g-1)`` when symmetric, else ``2**g``."""
        return 1 << (self.g - 1) if self.symmetric else 1 << self.g

    @property
    def index_width(self):
        """Bits of one lookup index (one weight bit per activation of the group)."""
        return self.g

    @property
    def select_width(self):
        """Bits that select a stored entry (``g - 1`` when symmetric)."""
        return self.g - 1 if self.symmetric else self.g

    @property
    def table_row_width(self):
        """Bits of one stored table."""
        return self.table_entries * self.entry_width

    @property
    def _c(self):
        return self.tables_per_pe

    @property
    def pe_table_width(self):
        """Bits of the tables one PE (one row) holds: ``tables_per_pe`` stored tables."""
        return self.tables_per_pe * self.table_row_width

    @property
    def table_width(self):
        """Bits of one ``i_table`` beat: the ``tables_per_pe`` tables of each of ``m`` rows."""
        return self.m * self.pe_table_width

    @property
    def pe_index_width(self):
        """Bits of one column's index per step and plane: ``tables_per_pe * g`` weight bits."""
        return self.tables_per_pe * self.g

    @property
    def weight_width(self):
        """Bits of one ``i_weight`` beat: one bit-plane of ``n`` step indices."""
        return self.n * self.pe_index_width

    @property
    def table_bits_per_cycle(self):
        """Table bits the array consumes per cycle at the largest ``w`` (one ``i_table`` beat
        per step of ``w_bits`` cycles): ``table_width / w_bits``, rounded up."""
        return -(-self.table_width // self.w_bits)

    # -- accumulators -------------------------------------------------------------------------
    @property
    def _entry_bound(self):
        """Largest ``|T[idx]|``: g activations all at the minimum (``q``: ``table_max``)."""
        if self._q:
            return self.table_max
        return self.g * (1 << (self.a_bits - 1))

    @property
    def tree_width(self):
        """Bits of the sum of one step's ``tables_per_pe`` entries (the PE's adder tree):
        ``|sum| <= c * g * 2**(a_bits-1)``, at most ``entry_width + ceil(log2 c)``."""
        bound = self.tables_per_pe * self._entry_bound
        return signed_width(-bound, bound)

    @property
    def partial_width(self):
        """Bits of a step's bit-serial partial ``p = sum_b 2**b * tree_b``."""
        bound = ((1 << self.w_bits) - 1) * self.tables_per_pe * self._entry_bound
        return signed_width(-bound, bound)

    @property
    def acc_width(self):
        """Bits of the accumulator ``acc = sum over steps of p`` at ``k_max`` (also every
        intermediate of ``shifted`` accumulation: each is a sum of a subset of the terms)."""
        bound = (self.groups_max * ((1 << self.w_bits) - 1) * self.tables_per_pe
                 * self._entry_bound)
        return signed_width(-bound, bound)

    @property
    def groups_max(self):
        """Steps of one operation: at ``k_max`` (``k_max / step_k`` rounded up), or of one
        scale block (``scale_block / tables_per_pe``) with ``q`` tables."""
        if self._q:
            return self.scale_block // self.tables_per_pe
        return -(-self.k_max // self.step_k)

    @property
    def sum_width(self):
        """Bits of the activation-sum register ``S = sum(a)`` at ``k_max`` (``q``: ``S = -sum
        q[0]`` over one block, ``|q[0]| <= table_max``)."""
        if self._q:
            bound = self.groups_max * self.tables_per_pe * self.table_max
            return signed_width(-bound, bound)
        return signed_width(self.k_pad * self._a_min, self.k_pad * self._a_max)

    @property
    def correction_width(self):
        """Bits of the offset-correction term: ``(S << w) - S`` (uint) needs ``sum_width + w``
        bits for the shift and one more for the difference; ``-S`` fits in it too."""
        return self.sum_width + self.w_bits + 1

    @property
    def result_width(self):
        """Bits of one result on the integer array's ``o_result``; ``q`` tables give twice the
        result (``acc + corr``, or ``2 * acc`` for binary weights; the 1/2 is in the FP scale):
        ``|2 r| <= 2 * (2**w_bits - 1) * groups_max * tables_per_pe * table_max``."""
        if self._q:
            bound = (2 * ((1 << self.w_bits) - 1) * self.groups_max * self.tables_per_pe
                     * self.table_max)
            return signed_width(-bound, bound)
        return signed_width(*self.result_range)

    @property
    def act_width(self):
        """Bits of one ``i_act`` beat: ``m x g`` activations of one group (integer or FP)."""
        return self.m * self.g * (self.act_fp.width if self.act_fp else self.a_bits)

    # -- the engine (hw/engine.py) ----------------------------------------------------------
    #: Bits of the engine command's row-tile and column-tile counts (up to 65535 tiles each).
    tile_count_width = 16

    #: Bits of the engine's ``o_cycles`` counter (cycles of one GEMM; wraps after 2**32).
    cycles_width = 32

    @property
    def engine_cmd_width(self):
        """Bits of the engine's ``i_cmd``: format, w, groups, row tiles, column tiles."""
        return self.cmd_width + 2 * self.tile_count_width

    @property
    def tiles_width(self):
        """Bits of the engine's tile counters: ``m_tiles * n_tiles`` tiles per GEMM."""
        return 2 * self.tile_count_width

    @property
    def rows_count_width(self):
        """Bits of the engine's result-row counters: ``m`` rows per tile, at most
        ``(2**tile_count_width - 1)**2`` tiles."""
        return unsigned_width(((1 << self.tile_count_width) - 1) ** 2 * self.m)

    def top_cmd_width(self, top="array"):
        """Bits of the ``i_cmd`` payload of a ``gen.emit`` top: ``engine_cmd_width`` for the
        engine, ``fp_cmd_width`` for the LUT array with FP activations, ``cmd_width`` for the
        integer LUT array and the MAC arrays."""
        if self.act_fp is not None:
            return self.fp_engine_cmd_width if top == "engine" else self.fp_cmd_width
        return self.engine_cmd_width if top == "engine" else self.cmd_width

    # -- naming -------------------------------------------------------------------------------
    @property
    def name(self):
        """Verilog module and file name: every parameter, so two different configs never share
        a name, e.g. ``lut_array_w2a8_g4_m2n64_k4096_sym`` (``_full`` for non-symmetric tables,
        ``_fmt_<letters>`` for a restricted format set, ``_pre`` for hardware precompute
        (``_pre_r<R>`` quantizing R rows per cycle),
        ``_c<c>`` for several tables per PE, ``_shifted`` for shifted accumulation,
        ``_ob<row|none>`` for the output buffering, ``_p<stages>`` for pipelining, ``_cl<L>``
        for shared fp-table column stages; defaults add nothing)."""
        sym = "sym" if self.symmetric else "full"
        name = f"lut_array_{self._name_fields()}_{sym}"
        if self._q:
            name += f"_tq{self.table_bits}b{self.scale_block}"
            if self.scale_stage_w != 1:
                name += f"s{self.scale_stage_w}"
            if self.scale_sig_bits != 24:
                name += f"p{self.scale_sig_bits}"
        elif self.table_format != TABLE_FORMATS[0]:
            name += f"_t{self.table_format}"
        if self.tables_per_pe != 1:
            name += f"_c{self.tables_per_pe}"
        if self.accumulation != ACCUMULATIONS[0]:
            name += f"_{self.accumulation}"
        if self.output_buffer != OUTPUT_BUFFERS[0]:
            name += f"_ob{self.output_buffer}"
        if self.pipeline:
            name += f"_p{self.pipeline}"
        if self.fp_column_lanes is not None:
            name += f"_cl{self.fp_column_lanes}"
        if self.precompute_rows != 1:
            return name + f"_pre_r{self.precompute_rows}"
        return name + ("_pre" if self.precompute else "")

    def _name_fields(self):
        """As the base, with the activation format for ``a<a_bits>`` when FP
        (``w2fp16_g4_...``)."""
        fields = super()._name_fields()
        if self.act_fp is not None:
            fields = fields.replace(f"a{self.a_bits}_", f"{self.act_format}_", 1)
        return fields
