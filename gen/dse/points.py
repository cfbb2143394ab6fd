"""The sweep: design points (:class:`Point`) and the families that contain them."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import LutConfig
from ..synth.comparison import mac_config, macs_per_cycle

__all__ = ["Point", "Sweep", "build_sweep", "KINDS", "FAMILIES", "TOP_OF", "DEFAULT_K_MAX",
           "FULL_SHAPES", "QUICK_SHAPES", "MAC_LONG_SHAPES", "DEFAULT_POINT", "DENSE_LUTS",
           "QUICK_DENSE_LUTS"]

DEFAULT_K_MAX = 1024
KINDS = ("lut", "mac_dequant", "mac_direct")
FAMILIES = ("tile", "group", "mac_shape", "dense")
TOP_OF = {"lut": "array", "mac_dequant": "mac_dequant", "mac_direct": "mac_direct"}

#: the tile shapes at m*n = 128 (g = 4: 512 multiply-equivalents per cycle, the paper's size)
FULL_SHAPES = ((1, 128), (2, 64), (4, 32), (8, 16), (16, 8))
QUICK_SHAPES = ((1, 16), (2, 8), (4, 4))
#: MAC tiles with longer dot products at the same 512 multiplies per cycle (the paper's MAC
#: baseline is M8N4K16), so "each design in its own best shape" does not handicap the MAC
MAC_LONG_SHAPES = ((8, 4, 16), (8, 8, 8))
DEFAULT_POINT = dict(w_bits=2, a_bits=8, g=4, m=2, n=64, symmetric=True)
#: the ``dense`` family at 512 multiply-equivalents (m*n*c*g): (tables_per_pe, m, n,
#: accumulation, output_buffer) of the LUT points; the MAC baselines (M8N4K16) run with each
#: output buffering so that both sides carry the same output stage
DENSE_LUTS = ((1, 2, 64, "partial", "double"), (1, 2, 64, "shifted", "none"),
              (4, 2, 16, "shifted", "double"), (4, 2, 16, "shifted", "row"),
              (4, 2, 16, "shifted", "none"), (8, 2, 8, "shifted", "none"))
QUICK_DENSE_LUTS = ((4, 2, 2, "shifted", "none"),)


@dataclass(frozen=True)
class Point:
    """One design point: a LUT array (``kind = "lut"``) or a MAC baseline at one config."""
    kind: str
    w_bits: int
    a_bits: int
    g: int
    m: int
    n: int
    symmetric: bool = True
    k_max: int = DEFAULT_K_MAX
    tables_per_pe: int = 1
    accumulation: str = "partial"
    output_buffer: str = "double"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind != "lut" and not self.symmetric:
            # a MAC array has no table: normalise so the same MAC point is one point
            object.__setattr__(self, "symmetric", True)
            object.__setattr__(self, "tables_per_pe", 1)
            object.__setattr__(self, "accumulation", "partial")
        self.config()   # validate now, in the parent, with the config's own messages

    @property
    def top(self):
        return TOP_OF[self.kind]

    @property
    def shape(self):
        return (f"{self.m}x{self.n}" + ("" if self.g == 4 else f"x{self.g}")
                + ("" if self.tables_per_pe == 1 else f"c{self.tables_per_pe}"))

    @property
    def step_k(self):
        """Activations one PE reduces per step (``tables_per_pe * g``; ``g`` for a MAC)."""
        return self.tables_per_pe * self.g

    def config(self):
        if self.kind != "lut":
            # the flows' one way to a MAC baseline's config (also for g beyond a LUT group)
            return mac_config(LutConfig(w_bits=self.w_bits, a_bits=self.a_bits,
                                        k_max=self.k_max, output_buffer=self.output_buffer),
                              (self.m, self.n, self.g))
        return LutConfig(w_bits=self.w_bits, a_bits=self.a_bits, g=self.g, m=self.m, n=self.n,
                         k_max=self.k_max, symmetric=self.symmetric,
                         tables_per_pe=self.tables_per_pe, accumulation=self.accumulation,
                         output_buffer=self.output_buffer)

    @property
    def label(self):
        """The point's identity in the sweep (work directories, progress, failures); the
        dense options add ``_c<c>``, ``_shifted``, ``_ob<kind>`` when not the default."""
        sym = ("_sym" if self.symmetric else "_full") if self.kind == "lut" else ""
        dense = ("" if self.tables_per_pe == 1 else f"_c{self.tables_per_pe}") + \
                ("" if self.accumulation == "partial" else f"_{self.accumulation}") + \
                ("" if self.output_buffer == "double" else f"_ob{self.output_buffer}")
        return (f"{self.kind}_w{self.w_bits}a{self.a_bits}_g{self.g}_m{self.m}n{self.n}{sym}"
                f"_k{self.k_max}{dense}")

    def macs_per_cycle(self):
        """MACs per cycle at the build's full weight precision
        (:func:`gen.synth.comparison.macs_per_cycle`)."""
        return macs_per_cycle(self.top, self, self.w_bits)


@dataclass
class Sweep:
    points: dict = field(default_factory=dict)        # Point -> set of families

    def add(self, family, point):
        self.points.setdefault(point, set()).add(family)


def build_sweep(quick=False, k_max=DEFAULT_K_MAX, families=None):
    """The design points of the full (or ``quick``) sweep, each with its families."""
    s = Sweep()
    want = set(families) if families else set(FAMILIES)
    if quick:
        shapes, ws_tile, as_ = QUICK_SHAPES, (1, 2), (8,)
        gs, ws_group, n_group, mac_gs = (2, 3, 4), (2,), 8, (4,)
        mac_shapes = ((2, 8),)
    else:
        shapes, ws_tile, as_ = FULL_SHAPES, (1, 2, 4), (8, 16)
        gs, ws_group, n_group, mac_gs = (2, 3, 4, 5, 6), (1, 2, 4), 64, (2, 3, 4, 5, 6)
        mac_shapes = FULL_SHAPES
    if "tile" in want:
        for a in as_:
            for w in ws_tile:
                lut_shapes = shapes if (not quick or w == 2) else ((2, 8),)
                for m, n in lut_shapes:
                    s.add("tile", Point("lut", w, a, 4, m, n, True, k_max))
                for kind in ("mac_dequant", "mac_direct"):
                    for m, n in mac_shapes:
                        s.add("tile", Point(kind, w, a, 4, m, n, True, k_max))
    if "mac_shape" in want and not quick:
        for a in as_:
            for w in ws_tile:
                for kind in ("mac_dequant", "mac_direct"):
                    for m, n, g in MAC_LONG_SHAPES:
                        s.add("mac_shape", Point(kind, w, a, g, m, n, True, k_max))
    if "group" in want:
        for a in as_:
            for w in ws_group:
                for g in gs:
                    for sym in (True, False):
                        s.add("group", Point("lut", w, a, g, 2, n_group, sym, k_max))
            for kind in ("mac_dequant", "mac_direct"):
                for g in mac_gs:
                    s.add("group", Point(kind, 2, a, g, 2, n_group, True, k_max))
    if "dense" in want:
        luts, ws_dense = (QUICK_DENSE_LUTS, (2,)) if quick else (DENSE_LUTS, (1, 2, 4))
        mac_m, mac_n, mac_g = (2, 1, 16) if quick else MAC_LONG_SHAPES[0]
        for w in ws_dense:
            for c, m, n, acc, buf in luts:
                s.add("dense", Point("lut", w, 8, 4, m, n, True, k_max, c, acc, buf))
            for buf in sorted({lut[4] for lut in luts}):
                for kind in ("mac_dequant", "mac_direct"):
                    s.add("dense", Point(kind, w, 8, mac_g, mac_m, mac_n, True, k_max,
                                         output_buffer=buf))
    return s
