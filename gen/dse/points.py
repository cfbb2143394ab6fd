"""The sweep: design points (:class:`Point`) and the families that contain them."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import LutConfig
from ..synth.comparison import mac_config, macs_per_cycle
from ..synth.fp_comparison import FP_ACTS, fp_lut_config

__all__ = ["Point", "Sweep", "build_sweep", "KINDS", "FAMILIES", "TOP_OF", "DEFAULT_K_MAX",
           "FULL_SHAPES", "QUICK_SHAPES", "MAC_LONG_SHAPES", "DEFAULT_POINT", "DENSE_LUTS",
           "QUICK_DENSE_LUTS", "FP_ACTS", "FP_SHAPES", "FP_DEFAULT", "FP_MAC_SHAPE"]

DEFAULT_K_MAX = 1024
KINDS = ("lut", "mac_dequant", "mac_direct")
FAMILIES = ("tile", "group", "mac_shape", "dense", "fp")
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
#: the ``fp`` family (FP16/BF16 activations, ``q`` tables): the LUT tiles at g = 4 (512
#: multiply-equivalents), the base point every other FP factor is varied from, one at a time
#: (g, table_bits t, scale_block b), and the FP MAC tile of the paper's tensor core (M8N4K16)
FP_SHAPES = ((2, 64), (4, 32))
FP_DEFAULT = dict(g=4, m=2, n=64, table_bits=8, scale_block=16)
FP_MAC_SHAPE = (8, 4, 16)


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
    #: activations: ``int`` (``a_bits``-bit integers) or ``fp16``/``bf16`` (then ``a_bits`` is
    #: the format's width, 16; the LUT array takes ``q`` tables of ``table_bits``-bit entries
    #: with one FP32 scale per ``scale_block`` groups, docs/fp-lut.md)
    act: str = "int"
    table_bits: int = 8
    scale_block: int = 16

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.act != "int" and self.act not in FP_ACTS:
            raise ValueError(f"act must be int or one of {', '.join(FP_ACTS)}, not {self.act!r}")
        if self.kind != "lut" and not self.symmetric:
            # a MAC array has no table: normalise so the same MAC point is one point
            object.__setattr__(self, "symmetric", True)
            object.__setattr__(self, "tables_per_pe", 1)
            object.__setattr__(self, "accumulation", "partial")
        if self.kind != "lut" or self.act == "int":
            # only a LUT array with FP activations has q tables
            object.__setattr__(self, "table_bits", 8)
            object.__setattr__(self, "scale_block", 16)
        if self.act != "int":
            object.__setattr__(self, "a_bits", 16)      # the FP format's width
        self.config()   # validate now, in the parent, with the config's own messages

    @property
    def top(self):
        return TOP_OF[self.kind]

    @property
    def fp(self):
        return self.act != "int"

    @property
    def emit_act(self):
        """``act`` of :func:`gen.emit.emit`: the FP MACs take it there, an FP LUT array from
        its config's ``act_format``."""
        return self.act if self.kind != "lut" else "int"

    @property
    def depth(self):
        """Measure the logic depth (``ltp`` on the flattened netlist): the integer points do;
        the FP points do not (on the FP arrays it is most of the synthesis time, as with
        ``gen.synth --compare --act fp16 --no-depth``)."""
        return not self.fp

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
            # the flows' one way to a MAC baseline's config (also for g beyond a LUT group);
            # an FP MAC takes its activation format from emit's ``act`` (a_bits unused)
            return mac_config(LutConfig(w_bits=self.w_bits,
                                        a_bits=8 if self.fp else self.a_bits,
                                        k_max=self.k_max, output_buffer=self.output_buffer),
                              (self.m, self.n, self.g))
        if self.fp:
            # the FP comparison's one way to an FP LUT array (gen.synth --compare --act)
            return fp_lut_config(LutConfig(w_bits=self.w_bits, k_max=self.k_max,
                                           tables_per_pe=self.tables_per_pe,
                                           accumulation=self.accumulation,
                                           output_buffer=self.output_buffer),
                                 self.act, "q", (self.m, self.n, self.g),
                                 table_bits=self.table_bits, scale_block=self.scale_block)
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
        act = f"a{self.a_bits}" if not self.fp else self.act
        q = f"_t{self.table_bits}b{self.scale_block}" if self.fp and self.kind == "lut" else ""
        return (f"{self.kind}_w{self.w_bits}{act}_g{self.g}_m{self.m}n{self.n}{sym}"
                f"_k{self.k_max}{q}{dense}")

    @property
    def act_label(self):
        """``A8``, ``A16`` or ``FP16``/``BF16``: the activations in the reports."""
        return f"A{self.a_bits}" if not self.fp else self.act.upper()

    def macs_per_cycle(self):
        """MACs per cycle at the build's full weight precision
        (:func:`gen.synth.comparison.macs_per_cycle`)."""
        return macs_per_cycle(self.top, self, self.w_bits)


@dataclass
class Sweep:
    points: dict = field(default_factory=dict)        # Point -> set of families

    def add(self, family, point):
        self.points.setdefault(point, set()).add(family)


def build_sweep(quick=False, k_max=DEFAULT_K_MAX, families=None, fp_acts=("fp16",)):
    """The design points of the full (or ``quick``) sweep, each with its families
    (``fp_acts``: the activation formats of the ``fp`` family). ``families`` None: every
    family, but the full sweep leaves out ``fp`` (``--family fp`` runs it)."""
    s = Sweep()
    # the fp family's points take 10-50 min each: the full sweep runs it only when asked for
    want = set(families) if families else set(FAMILIES) - (set() if quick else {"fp"})
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
    if "fp" in want:
        for act in fp_acts:
            for pt in fp_points(act, quick, k_max):
                s.add("fp", pt)
    return s


def fp_points(act, quick=False, k_max=DEFAULT_K_MAX):
    """The ``fp`` family at ``act`` activations: LUT ``q`` arrays and both FP MAC baselines.

    Full: W1, W2, W4 at the tiles :data:`FP_SHAPES` (g = 4, t = 8, b = 16); at W2 and the base
    point :data:`FP_DEFAULT` (M2N64K4), g = 2, t = 6 and b = 32, 64, one at a time. The FP
    MACs at M8N4K16 (equal size) and at the base tile M2N64K4 (same tile) for W1, W2, W4, and
    at the other LUT tiles for W2. Quick: one W2 LUT point and the dequantizing FP MAC at its
    tile (M1N2K4), seconds of synthesis each.
    """
    def lut(w, m, n, g=4, t=8, b=16):
        return Point("lut", w, 16, g, m, n, True, k_max, act=act, table_bits=t, scale_block=b)

    def macs(w, shapes):
        return [Point(kind, w, 16, g, m, n, True, k_max, act=act)
                for kind in ("mac_dequant", "mac_direct") for m, n, g in shapes]

    if quick:
        return [lut(2, 1, 2), Point("mac_dequant", 2, 16, 4, 1, 2, True, k_max, act=act)]
    d = FP_DEFAULT
    base = (d["m"], d["n"], d["g"])
    pts = []
    for w in (1, 2, 4):
        pts += [lut(w, m, n) for m, n in FP_SHAPES]
        pts += macs(w, (FP_MAC_SHAPE, base))
    pts += [lut(2, d["m"], d["n"], g=2), lut(2, d["m"], d["n"], t=6)]
    pts += [lut(2, d["m"], d["n"], b=b) for b in (32, 64)]
    pts += macs(2, [(m, n, 4) for m, n in FP_SHAPES if (m, n, 4) != base]
                + [(d["m"], d["n"], 2)])
    return pts
