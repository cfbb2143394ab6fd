"""The design point of a multiply-accumulate baseline (``hw/mac_array.py``), validated on its own.

A MAC array has no tables, so the group size ``g`` is just the length of each PE's dot
product and is not bounded by the ``2**g``-entry tables of :class:`~gen.config.LutConfig`:
the paper's MAC baseline tile is M8N4K16 (512 multiplies per cycle, like its M2N64K4 LUT
tile), which needs ``g = 16``. Precision, formats, the
command and the result widths follow the same rules as the LUT array's (shared code), so a
MAC array and a LUT array of the same precision take the same commands and give the same
results.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import LutConfig
from .tile import (A_BITS_RANGE, K_MAX_RANGE, M_RANGE, N_RANGE, OUTPUT_BUFFERS, W_BITS_RANGE,
                   _TileConfig, signed_width, unsigned_width)

__all__ = ["MacConfig", "MAC_G_RANGE", "MAC_KINDS"]

#: dot-product length of one MAC PE (16 = the paper's M8N4K16 tile; 64 bounds the adder tree)
MAC_G_RANGE = (2, 64)
#: ``dequant``: weights dequantized to activation precision, ``a_bits x dequant_width``
#: multipliers (a conventional tensor core); ``direct``: ``a_bits x (w_bits+1)`` multipliers.
MAC_KINDS = ("dequant", "direct")


@dataclass(frozen=True)
class MacConfig(_TileConfig):
    """A design point of the MAC baseline: an ``m x n`` tile of PEs, each a ``g``-long dot
    product of ``a_bits`` activations and decoded ``w_bits`` weights per cycle.

    Parameters
    ----------
    w_bits, a_bits, m, n, k_max, weight_formats, output_buffer
        As in :class:`~gen.config.LutConfig` (same ranges and choices): a MAC baseline
        compared with a LUT array carries the same output stage.
    g : int
        Multipliers per PE, the dot-product length per cycle (2..64; default 16, the paper's
        M8N4K16 MAC tile).

    Raises
    ------
    TypeError, ValueError
        A parameter has the wrong type or is out of range (the message names it).
    """
    w_bits: int = 2
    a_bits: int = 8
    g: int = 16
    m: int = 8
    n: int = 4
    k_max: int = 4096
    weight_formats: tuple = None
    output_buffer: str = "double"

    _DERIVED = ("dot_width", "groups_max", "k_pad", "groups_width", "plane_width", "cmd_width",
                "result_width", "result_row_width", "row_index_width", "act_width",
                "code_width", "dequant_width", "direct_width", "code_offset_width")

    def __post_init__(self):
        self._check_ints((("w_bits", W_BITS_RANGE), ("a_bits", A_BITS_RANGE),
                          ("g", MAC_G_RANGE), ("m", M_RANGE), ("n", N_RANGE),
                          ("k_max", K_MAX_RANGE)))
        if self.output_buffer not in OUTPUT_BUFFERS:
            raise ValueError(f"output_buffer must be one of {', '.join(OUTPUT_BUFFERS)}, "
                             f"not {self.output_buffer!r}")
        self._check_formats()

    @classmethod
    def from_lut(cls, cfg, *, m=None, n=None, g=None):
        """The MAC baseline at ``cfg``'s precision, reduction length and formats; its tile is
        ``cfg``'s unless ``m``, ``n`` or ``g`` say otherwise."""
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        return cls(w_bits=cfg.w_bits, a_bits=cfg.a_bits, g=cfg.g if g is None else g,
                   m=cfg.m if m is None else m, n=cfg.n if n is None else n, k_max=cfg.k_max,
                   weight_formats=None if cfg._all_formats() else cfg.weight_formats,
                   output_buffer=cfg.output_buffer)

    @property
    def dot_width(self):
        """Bits of one PE's dot product of ``g`` products in one cycle (its own signal, so the
        adder tree stays narrow and enters the ``result_width`` accumulator once)."""
        lo, hi = self.result_range
        return signed_width(lo // self.groups_max, -(-hi // self.groups_max))

    @property
    def code_offset_width(self):
        """Bits of the decode offset ``2**(w-1)`` of the running operation (up to
        ``2**(w_bits-1)``)."""
        return unsigned_width(1 << (self.w_bits - 1))

    def operand_width(self, kind):
        """Bits of one decoded weight operand of a ``kind`` PE (``dequant`` or ``direct``)."""
        if kind not in MAC_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MAC_KINDS)}, not {kind!r}")
        return self.dequant_width if kind == "dequant" else self.direct_width

    @property
    def name(self):
        """``mac_array_<fields>``; ``gen.emit`` names the ``mac_dequant`` / ``mac_direct``
        arrays ``mac_dequant_array_<fields>`` / ``mac_direct_array_<fields>``."""
        name = f"mac_array_{self._name_fields()}"
        if self.output_buffer != OUTPUT_BUFFERS[0]:
            name += f"_ob{self.output_buffer}"
        return name
