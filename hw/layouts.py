"""Every stream payload and command of the LUT array, the engine and the MAC baseline, once.

Each function returns an ``amaranth.lib.data`` layout built from the config's widths. The
hardware reads its payloads through these layouts (``data.View``), :mod:`gen.golden` packs and
unpacks stream beats through them (:func:`pack`, :func:`unpack`), and the bit layouts in
``docs/interface.md`` are these layouts written out: fields and array elements from bit 0 up.

Top-level ports stay plain vectors of ``layout.size`` bits (:func:`flat_stream`): a port typed
with an array layout makes Amaranth write one alias wire (and one ``assign``) per element into
the Verilog, which slows Icarus down by a large factor and changes the port list users see.
Blocks wrap the flat payload in a ``data.View`` of its layout instead.

The functions only read widths from ``cfg``, so a :class:`gen.config.LutConfig` and a
:class:`gen.config.MacConfig` both serve where the layout exists for both.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from gen.config import WeightFormat

__all__ = ["cmd_layout", "engine_cmd_layout", "table_row_layout", "pe_tables_layout",
           "table_layout",
           "weight_plane_layout", "acc_row_layout", "result_row_layout", "act_row_layout",
           "act_layout", "code_layout", "operand_layout", "flat_stream", "stream_ports", "describe",
           "ArrayPacker", "pack", "unpack"]


# -- commands ----------------------------------------------------------------------------------

def cmd_layout(cfg):
    """Array (and MAC) ``i_cmd``: ``format`` [1:0], then ``w_bits``, then ``groups``."""
    return data.StructLayout({"format": WeightFormat, "w_bits": cfg.plane_width,
                              "groups": cfg.groups_width})


def engine_cmd_layout(cfg):
    """Engine ``i_cmd``: the array's command (``cmd``), then row tiles, then column tiles."""
    return data.StructLayout({"cmd": cmd_layout(cfg), "m_tiles": cfg.tile_count_width,
                              "n_tiles": cfg.tile_count_width})


# -- the LUT array's streams -------------------------------------------------------------------

def table_row_layout(cfg):
    """One stored table: ``table_entries`` signed entries, entry ``e`` at ``[e*entry_width]``."""
    return data.ArrayLayout(signed(cfg.entry_width), cfg.table_entries)


def pe_tables_layout(cfg):
    """The tables one row's PEs hold: one stored table (``tables_per_pe = 1``), else an array
    of ``tables_per_pe`` of them, table ``t`` (group ``t`` of the step) at
    ``[t*table_row_width]``."""
    if cfg.tables_per_pe == 1:
        return table_row_layout(cfg)
    return data.ArrayLayout(table_row_layout(cfg), cfg.tables_per_pe)


def table_layout(cfg):
    """``i_table`` beat: the tables of one step for the ``m`` rows, row ``r`` at
    ``[r*pe_table_width]`` (:func:`pe_tables_layout`)."""
    return data.ArrayLayout(pe_tables_layout(cfg), cfg.m)


def weight_plane_layout(cfg):
    """``i_weight`` beat: one bit-plane of the ``n`` column indices, ``pe_index_width`` bits
    (``tables_per_pe * g``) each.

    Index bit ``t*g + i`` is the weight bit of activation ``i`` of group ``t`` of the step,
    i.e. bit ``k`` is the weight bit of activation ``k`` of the step's ``c*g``.
    """
    return data.ArrayLayout(unsigned(cfg.pe_index_width), cfg.n)


def acc_row_layout(cfg):
    """One row of the ``n`` PE accumulators (the input of the offset correction)."""
    return data.ArrayLayout(signed(cfg.acc_width), cfg.n)


def result_row_layout(cfg):
    """``o_result`` beat: one row of ``n`` signed results, column ``c`` at ``[c*result_width]``."""
    return data.ArrayLayout(signed(cfg.result_width), cfg.n)


# -- activations and weight codes (MAC baseline; the engine's precompute input) ----------------

def act_row_layout(cfg):
    """The ``g`` activations of one row and group."""
    return data.ArrayLayout(signed(cfg.a_bits), cfg.g)


def act_layout(cfg):
    """``i_act`` beat: ``m`` rows of :func:`act_row_layout` (activation ``i`` of row ``r`` at
    ``[(r*g + i) * a_bits]``)."""
    return data.ArrayLayout(act_row_layout(cfg), cfg.m)


def code_layout(cfg):
    """MAC ``i_weight`` beat: ``n`` columns of ``g`` weight codes of ``w_bits`` each (the code of
    ``W[j*g + i, c]`` at ``[(c*g + i) * w_bits]``)."""
    return data.ArrayLayout(data.ArrayLayout(unsigned(cfg.w_bits), cfg.g), cfg.n)


def operand_layout(cfg, width):
    """The ``g`` decoded signed weights of one MAC PE, ``width`` bits each."""
    return data.ArrayLayout(signed(width), cfg.g)


# -- ports -------------------------------------------------------------------------------------

def flat_stream(layout):
    """A stream signature whose payload is a plain vector of ``layout.size`` bits (see the
    module docstring for why ports are not typed with the layout itself)."""
    return stream.Signature(unsigned(layout.size))


def stream_ports(payload_layouts):
    """Signature members for ``{port: payload layout}``: ``i_*`` streams in, ``o_*`` out, each
    a :func:`flat_stream`, in the dict's order."""
    ports = {}
    for name, layout in payload_layouts.items():
        if name.startswith("i_"):
            ports[name] = In(flat_stream(layout))
        elif name.startswith("o_"):
            ports[name] = Out(flat_stream(layout))
        else:
            raise ValueError(f"stream port names start with i_ or o_, not {name!r}")
    return ports


def describe(layout):
    """A JSON-able description of a payload layout (written into the emitted manifest).

    Scalars: ``{"width", "signed"}`` (enums add ``"enum": {label: value}``); structs add
    ``"fields": [{"name", "offset", ...}]``; arrays add ``"length"``, ``"stride"`` (bits
    between elements) and ``"element"``. Offsets count from bit 0 of the payload.
    """
    if isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        return {"width": layout.size, "length": layout.length,
                "stride": Shape.cast(elem).width, "element": describe(elem)}
    if isinstance(layout, data.StructLayout):
        return {"width": layout.size,
                "fields": [{"name": name, "offset": field.offset, **describe(field.shape)}
                           for name, field in layout]}
    shape = Shape.cast(layout)
    out = {"width": shape.width, "signed": shape.signed}
    if layout is WeightFormat:
        out["enum"] = {f.label: f.value for f in WeightFormat}
    return out


# -- packing (the software side of the same layouts) -------------------------------------------

def _leaves(layout, offset=0):
    """``(offset, shape)`` of every scalar element of a (nested) array layout, in index order."""
    for _, field in layout:
        if isinstance(field.shape, data.ArrayLayout):
            yield from _leaves(field.shape, offset + field.offset)
        else:
            yield offset + field.offset, Shape.cast(field.shape)


class ArrayPacker:
    """Packs arrays of integers into the bits of an array layout, and back, fast.

    Same bits as ``layout.const(values).as_value().value``, but the element offsets are read
    from the layout once, so a stream of thousands of beats does not build Amaranth constants
    (or compare layouts) per beat. Values are kept to their element's width (two's complement
    for signed elements).
    """

    def __init__(self, layout):
        if not isinstance(layout, data.ArrayLayout):
            raise TypeError(f"layout must be an ArrayLayout, not {layout!r}")
        dims, inner = [], layout
        while isinstance(inner, data.ArrayLayout):
            dims.append(inner.length)
            inner = inner.elem_shape
        leaves = list(_leaves(layout))
        self.layout = layout
        self.dims = tuple(dims)
        self._fields = [(o, s.width, (1 << s.width) - 1, s.signed) for o, s in leaves]

    def pack(self, values):
        """``values``: an array (nested to the layout's depth) of integers -> int."""
        values = np.asarray(values)
        if values.shape != self.dims:
            raise ValueError(f"value of shape {values.shape} does not fit the layout's "
                             f"{self.dims}")
        word = 0
        for (offset, _, mask, _), v in zip(self._fields, values.reshape(-1).tolist()):
            word |= (v & mask) << offset
        return word

    def unpack(self, word):
        """int -> NumPy int64 array of the layout's shape (signed elements sign-extended)."""
        word = int(word)
        out = []
        for offset, width, mask, sign in self._fields:
            v = (word >> offset) & mask
            out.append(v - (1 << width) if sign and v >> (width - 1) else v)
        return np.array(out, dtype=np.int64).reshape(self.dims)


def pack(layout, value):
    """The bits of ``value`` in ``layout``, as an int (``layout.const(value)``'s bits).

    For a struct layout ``value`` is a dict of fields (nested dicts for nested structs, enum
    members for enum fields); for an array layout see :class:`ArrayPacker` (use one directly to
    pack many beats of the same layout).
    """
    if isinstance(layout, data.ArrayLayout):
        return ArrayPacker(layout).pack(value)
    return layout.const(value).as_value().value


def unpack(layout, word):
    """The inverse of :func:`pack`: a dict of fields (enum fields as members, nested structs as
    ``data.Const``), or a NumPy array for an array layout."""
    if isinstance(layout, data.ArrayLayout):
        return ArrayPacker(layout).unpack(word)
    view = layout.from_bits(int(word))
    return {name: view[name] for name, _ in layout}
