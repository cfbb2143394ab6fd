"""What the LUT array and the MAC baselines share: the weight formats, the parameter ranges, the
width helpers, and the tile configuration base (precision, formats, command, reduction,
results, serialization) that :class:`gen.config.LutConfig` and
:class:`gen.mac_config.MacConfig` build on.
"""
from __future__ import annotations

import dataclasses
import json
import numbers

from amaranth.lib import enum

__all__ = ["WeightFormat", "signed_width", "unsigned_width", "W_BITS_RANGE", "A_BITS_RANGE",
           "G_RANGE", "M_RANGE", "N_RANGE", "K_MAX_RANGE", "TABLES_PER_PE_RANGE",
           "TABLE_FORMATS", "ACCUMULATIONS", "OUTPUT_BUFFERS", "ACT_FORMATS",
           "TABLE_BITS_RANGE", "SCALE_BLOCK_RANGE"]

W_BITS_RANGE = (1, 4)
A_BITS_RANGE = (2, 16)
G_RANGE = (2, 6)
M_RANGE = (1, 16)
N_RANGE = (1, 256)
K_MAX_RANGE = (1, 1 << 20)
TABLES_PER_PE_RANGE = (1, 16)
#: ``int``: exact integer tables of integer activations; ``q``: tables of FP activations
#: quantized to ``table_bits``-bit integers with one FP32 scale per scale block; ``fp``: tables
#: kept in the activation format and accumulated in FP32 in every PE (docs/fp-lut.md)
TABLE_FORMATS = ("int", "q", "fp")
#: ``int``: signed ``a_bits``-bit integers; ``fp16``/``bf16``: floating-point activations
ACT_FORMATS = ("int", "fp16", "bf16")
TABLE_BITS_RANGE = (4, 16)
#: groups per scale block of ``q`` tables
SCALE_BLOCK_RANGE = (1, 256)
#: ``partial``: per-group partial register ``p = (p << 1) + entry``, added into ``acc`` at the
#: last plane; ``shifted``: ``acc += entry << plane`` every step, no partial register.
ACCUMULATIONS = ("partial", "shifted")
#: ``double``: per-PE output registers (the next operation runs while results drain);
#: ``row``: one registered result row, loaded from the accumulators; ``none``: results drain
#: straight from the accumulators (docs/interface.md gives the stall of each).
OUTPUT_BUFFERS = ("double", "row", "none")


class WeightFormat(enum.Enum, shape=2):
    """How a ``w``-bit weight code is read. The value is the ``format`` field of a command.

    An Amaranth enum with a 2-bit shape: hardware signals of this shape compare with the
    members directly, and the command layouts (``hw/layouts.py``) use it as a field shape.
    """
    #: two's complement ``s`` in ``-2**(w-1) .. 2**(w-1)-1``; planes of ``q = s + 2**(w-1)``.
    INT = 0
    #: unsigned code ``q`` in ``0 .. 2**w - 1``; planes of ``q``.
    UINT = 1
    #: one bit, 1 means +1 and 0 means -1 (BitNet-style); ``w`` must be 1.
    BINARY = 2
    #: ``INT`` with ``w = 2`` restricted to ``{-1, 0, +1}``.
    TERNARY = 3

    @property
    def label(self):
        return self.name.lower()

    @classmethod
    def parse(cls, value):
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for fmt in cls:
                if fmt.label == value.lower():
                    return fmt
        raise ValueError(f"weight format must be one of {', '.join(f.label for f in cls)}, "
                         f"not {value!r}")

    def allows(self, w_bits):
        """Whether this format can run with ``w_bits`` weight bits."""
        if self is WeightFormat.BINARY:
            return w_bits == 1
        if self is WeightFormat.TERNARY:
            return w_bits == 2
        return 1 <= w_bits

    def value_range(self, w_bits):
        """Inclusive range of the weight *values* (not codes) of this format."""
        if self is WeightFormat.INT:
            return -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
        if self is WeightFormat.UINT:
            return 0, (1 << w_bits) - 1
        return -1, 1


def signed_width(lo, hi):
    """Fewest bits of a two's complement number that holds every integer in ``lo .. hi``."""
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def unsigned_width(hi):
    """Fewest bits (at least 1) of an unsigned number that holds ``0 .. hi``."""
    return max(1, int(hi).bit_length())


def _check_int(name, value, lo, hi):
    """``value`` as a plain int (NumPy integers are accepted), or a TypeError / ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value}")
    return value


def _normalize_formats(weight_formats, w_bits):
    """``weight_formats`` (None: every format valid for ``w_bits``) as sorted labels, checked."""
    if weight_formats is None:
        formats = tuple(f for f in WeightFormat if any(f.allows(w) for w in range(1, w_bits + 1)))
    else:
        if isinstance(weight_formats, str) or not hasattr(weight_formats, "__iter__"):
            raise TypeError(f"weight_formats must be a sequence of format names, "
                            f"not {weight_formats!r}")
        formats = tuple(sorted({WeightFormat.parse(f) for f in weight_formats},
                               key=lambda f: f.value))
        if not formats:
            raise ValueError("weight_formats must name at least one format, not ()")
        for f in formats:
            if not any(f.allows(w) for w in range(1, w_bits + 1)):
                raise ValueError(f"weight format {f.label} needs w_bits >= 2, "
                                 f"not w_bits = {w_bits}")
    return tuple(f.label for f in formats)


class _TileConfig:
    """What the LUT array and the MAC baseline share: the operation command, the runtime
    weight formats, the reduction length, the exact results and the activation and weight-code
    beats. Subclasses are frozen dataclasses with the fields ``w_bits``, ``a_bits``, ``g``,
    ``m``, ``n``, ``k_max`` and ``weight_formats``, and list their derived widths in
    ``_DERIVED``.
    """
    _DERIVED = ()

    def _check_ints(self, ranges):
        """Each ``(name, (lo, hi))`` field as a plain int in range, else TypeError/ValueError."""
        for name, bounds in ranges:
            object.__setattr__(self, name, _check_int(name, getattr(self, name), *bounds))

    def _check_formats(self):
        object.__setattr__(self, "weight_formats", _normalize_formats(self.weight_formats,
                                                                      self.w_bits))

    # -- formats ------------------------------------------------------------------------------
    @property
    def formats(self):
        """The supported formats as :class:`WeightFormat` members."""
        return tuple(WeightFormat.parse(f) for f in self.weight_formats)

    def check_op(self, fmt, w_bits):
        """Validate one operation's runtime precision; returns the parsed format."""
        fmt = WeightFormat.parse(fmt)
        w_bits = _check_int("w_bits", w_bits, 1, self.w_bits)
        if fmt not in self.formats:
            raise ValueError(f"weight format must be one of {', '.join(self.weight_formats)} "
                             f"in this build, not {fmt.label}")
        if not fmt.allows(w_bits):
            raise ValueError(f"weight format {fmt.label} cannot run with w_bits = {w_bits}")
        return fmt

    def ops(self):
        """Every (format, w_bits) pair this build runs."""
        return [(f, w) for f in self.formats for w in range(1, self.w_bits + 1) if f.allows(w)]

    # -- operation command and reduction ------------------------------------------------------
    #: groups one PE consumes per step (the LUT array's ``tables_per_pe``; 1 for the MAC)
    _c = 1

    @property
    def step_k(self):
        """Activations one PE reduces per step: ``tables_per_pe * g`` (``g`` for the MAC)."""
        return self._c * self.g

    @property
    def groups_max(self):
        """Steps of one operation at ``k_max`` (the command's ``groups`` field): ``k_max`` over
        ``step_k``, rounded up (the last step zero-padded). With one table per PE a step is
        one group."""
        return -(-self.k_max // self.step_k)

    @property
    def k_pad(self):
        return self.groups_max * self.step_k

    @property
    def groups_width(self):
        """Bits of the command's ``groups`` field (1..groups_max)."""
        return unsigned_width(self.groups_max)

    @property
    def cmd_width(self):
        """Bits of the array's ``i_cmd``: format (2), w (``plane_width``), groups."""
        return 2 + self.plane_width + self.groups_width

    @property
    def plane_width(self):
        """Bits of the command's ``w_bits`` field and the plane counter."""
        return unsigned_width(self.w_bits)

    @property
    def _a_min(self):
        return -(1 << (self.a_bits - 1))

    @property
    def _a_max(self):
        return (1 << (self.a_bits - 1)) - 1

    def top_cmd_width(self, top="array"):
        """Bits of the ``i_cmd`` payload of a ``gen.emit`` top."""
        return self.cmd_width

    # -- results ------------------------------------------------------------------------------
    @property
    def result_range(self):
        """Inclusive range of a result ``sum(a * w)`` over all supported operations."""
        lo = hi = 0
        for fmt, w in self.ops():
            wlo, whi = fmt.value_range(w)
            products = [x * y for x in (self._a_min, self._a_max) for y in (wlo, whi)]
            lo = min(lo, self.k_pad * min(products))
            hi = max(hi, self.k_pad * max(products))
        return lo, hi

    @property
    def result_width(self):
        """Bits of one result on ``o_result``."""
        return signed_width(*self.result_range)

    @property
    def result_row_width(self):
        """Bits of one ``o_result`` beat: one row of ``n`` results."""
        return self.n * self.result_width

    @property
    def row_index_width(self):
        """Bits of the output stage's row counter (``0 .. m-1``; at least 1 bit, since Verilog
        cannot declare a zero-width register)."""
        return unsigned_width(self.m - 1)

    # -- activation and weight-code beats (the MAC baseline, the engine's precompute input) ---
    @property
    def act_width(self):
        """Bits of one MAC ``i_act`` beat: ``m x g`` activations of one group."""
        return self.m * self.g * self.a_bits

    @property
    def code_width(self):
        """Bits of one MAC ``i_weight`` beat: ``g x n`` weight codes of ``w_bits`` each."""
        return self.n * self.g * self.w_bits

    @property
    def dequant_width(self):
        """Bits of a weight dequantized to activation precision (the conventional MAC's operand).

        ``a_bits``, unless a weight value needs more (a ``w``-bit uint needs ``w + 1`` signed).
        """
        return max(self.a_bits, self.w_bits + 1)

    @property
    def direct_width(self):
        """Bits of a weight operand of the direct ``a_bits x w_bits`` MAC (signed)."""
        return self.w_bits + 1

    # -- serialization ------------------------------------------------------------------------
    def params(self):
        """The parameters alone, as plain JSON-able values."""
        return {f.name: (list(getattr(self, f.name)) if f.name == "weight_formats"
                         else getattr(self, f.name)) for f in dataclasses.fields(self)}

    def derived(self):
        """Every derived width, by name."""
        return {k: getattr(self, k) for k in self._DERIVED}

    def to_json(self):
        return json.dumps({"params": self.params(), "derived": self.derived()}, indent=2,
                          sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        d = dict(d.get("params", d))
        if d.get("weight_formats") is not None:
            d["weight_formats"] = tuple(d["weight_formats"])
        return cls(**d)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    def replace(self, **changes):
        if "weight_formats" not in changes:
            changes["weight_formats"] = None if self._all_formats() else self.weight_formats
        return dataclasses.replace(self, **changes)

    def _all_formats(self):
        return self.weight_formats == _normalize_formats(None, self.w_bits)

    def _name_fields(self):
        """``w<w_bits>a<a_bits>_g<g>_m<m>n<n>_k<k_max>``, then ``_fmt_<letters>`` (first letters
        of the formats) when the build supports fewer than every format valid for ``w_bits``."""
        fields = f"w{self.w_bits}a{self.a_bits}_g{self.g}_m{self.m}n{self.n}_k{self.k_max}"
        if not self._all_formats():
            fields += "_fmt_" + "".join(f[0] for f in self.weight_formats)
        return fields
