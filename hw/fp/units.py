"""The FP units: multiplier, adder, fused dot product (FMA at g = 1), FP x INT multiplier.

Each is combinational from its inputs to ``out``; with ``registered=True`` ``out`` is
registered once (one cycle of latency) so later work can pipeline them. The golden model of
each is the function of ``gen.fp`` named in its docstring; docs/fp.md has the rules.
"""
from __future__ import annotations

from amaranth import *
from amaranth.lib.wiring import In, Out

from gen.fp import INT_W_RANGE, default_window

from .common import FPUnit, Term, check_format, check_window, exp_width

__all__ = ["FPMultiplier", "FPAdder", "FPDotProduct", "FPIntMultiplier", "product_term",
           "int_term", "finish"]

IN_FORMATS = ("fp16", "bf16")


def product_term(m, a, b, fmt_in, ew, name, fmt_b=None):
    """The exact product of two unpacked operands as a term (``a`` of ``fmt_in``, ``b`` of
    ``fmt_b``, default the same; the field is the sum of their significand widths)."""
    fmt_b = fmt_b or fmt_in
    pa = FPUnit.unpack(m, a, fmt_in, ew, f"{name}_a")
    pb = FPUnit.unpack(m, b, fmt_b, ew, f"{name}_b")
    e_lsb = Signal(signed(ew), name=f"{name}_e_lsb")
    sig = Signal(fmt_in.sig_bits + fmt_b.sig_bits, name=f"{name}_sig")
    m.d.comb += [e_lsb.eq(pa.e_lsb + pb.e_lsb), sig.eq(pa.sig * pb.sig)]
    nan = pa.nan | pb.nan | (pa.zero & pb.inf) | (pa.inf & pb.zero)
    return Term(nan=nan, inf=(pa.inf | pb.inf) & ~nan, zero=(pa.zero | pb.zero) & ~nan,
                sign=pa.sign ^ pb.sign, sig=sig, e_lsb=e_lsb, width=len(sig))


def int_term(m, a, v, fmt_in, ew, name):
    """The exact product of ``a`` and the signed integer ``v`` (``len(v)`` bits) as a term:
    the significand times ``|v|`` by shift-and-add. ``v = 0`` counts as +0."""
    w = len(v)
    pa = FPUnit.unpack(m, a, fmt_in, ew, f"{name}_a")
    vs = v.as_signed()
    neg = vs < 0
    mag = Signal(w, name=f"{name}_v_mag")          # |v| <= 2**(w-1) fits w bits unsigned
    m.d.comb += mag.eq(Mux(neg, -vs, vs))
    sig = Signal(fmt_in.sig_bits + w, name=f"{name}_sig")
    m.d.comb += sig.eq(sum(Mux(mag[j], pa.sig << j, 0) for j in range(w)))
    v_zero = ~v.any()
    nan = pa.nan | (pa.inf & v_zero)
    return Term(nan=nan, inf=pa.inf & ~nan, zero=(pa.zero | v_zero) & ~nan,
                sign=pa.sign ^ neg, sig=sig, e_lsb=pa.e_lsb, width=len(sig))


def finish(m, term, rounded, fmt):
    """The result of a single product: specials, signed zero, else ``rounded``."""
    res = Signal(fmt.width)
    with m.If(term.nan):
        m.d.comb += res.eq(fmt.qnan)
    with m.Elif(term.inf):
        m.d.comb += res.eq(Cat(Const(fmt.inf, fmt.width - 1), term.sign))
    with m.Elif(term.zero):
        m.d.comb += res.eq(Cat(Const(0, fmt.width - 1), term.sign))
    with m.Else():
        m.d.comb += res.eq(rounded)
    return res


class FPMultiplier(FPUnit):
    """``out = a * b`` with the exact product rounded once (RNE) into ``fmt_out``
    (golden: ``gen.fp.fp_mul``). FP16 x FP16 always fits FP32 exactly; BF16 x BF16 can
    overflow to Inf or underflow into FP32 subnormals and zero.

    Attributes
    ----------
    a, b : Signal(fmt_in.width), in
    out : Signal(fmt_out.width), out
    """

    def __init__(self, fmt_in="fp16", fmt_out="fp32", *, registered=False):
        self.fmt_in = check_format(fmt_in, "fmt_in", IN_FORMATS)
        self.fmt_out = check_format(fmt_out, "fmt_out", ("fp32",))
        super().__init__({"a": In(self.fmt_in.width), "b": In(self.fmt_in.width),
                          "out": Out(self.fmt_out.width)}, registered)

    def elaborate(self, platform):
        m = Module()
        ew = exp_width(self.fmt_in, self.fmt_out)
        p = product_term(m, self.a, self.b, self.fmt_in, ew, "mul")
        rounded = self.round_pack(m, p.sign, p.sig, p.e_lsb, self.fmt_out, ew, "mul")
        self._output(m, finish(m, p, rounded, self.fmt_out))
        return m


class FPAdder(FPUnit):
    """``out = a + b`` in ``fmt``, correctly rounded (RNE), IEEE specials (golden:
    ``gen.fp.fp_add``): the fused adder with two terms, guard, round and sticky bits.

    Attributes
    ----------
    a, b : Signal(fmt.width), in
    out : Signal(fmt.width), out
    """

    def __init__(self, fmt="fp32", *, registered=False):
        self.fmt = check_format(fmt, "fmt", ("fp32",))
        super().__init__({"a": In(self.fmt.width), "b": In(self.fmt.width),
                          "out": Out(self.fmt.width)}, registered)

    def elaborate(self, platform):
        m = Module()
        ew = exp_width(self.fmt)
        terms = [self.unpack(m, self.a, self.fmt, ew, "a"),
                 self.unpack(m, self.b, self.fmt, ew, "b")]
        self._output(m, self.fused_sum(m, terms, self.fmt, default_window(self.fmt), ew))
        return m


class FPDotProduct(FPUnit):
    """``out = acc + sum_{i<g} a_i * b_i``, fused (golden: ``gen.fp.fp_dot``): the ``g``
    products stay exact, every term is aligned to the largest top in a ``window``-bit frame
    (bits shifted out jam into its LSB), one integer adder, one RNE rounding into ``fmt_acc``.
    ``g = 1`` is a fused multiply-add.

    Attributes
    ----------
    a, b : Signal(g * fmt_in.width), in
        Operand ``i`` at ``[i*width +: width]``.
    acc : Signal(fmt_acc.width), in
    out : Signal(fmt_acc.width), out
    """

    def __init__(self, g=4, fmt_in="fp16", fmt_acc="fp32", *, window=None, registered=False):
        if not isinstance(g, int) or isinstance(g, bool) or not 1 <= g <= 16:
            raise ValueError(f"g must be in 1..16, not {g!r}")
        self.g = g
        self.fmt_in = check_format(fmt_in, "fmt_in", IN_FORMATS)
        self.fmt_acc = check_format(fmt_acc, "fmt_acc", ("fp32",))
        self.window = check_window(window, self.fmt_acc)
        if self.window < max(self.fmt_acc.sig_bits, 2 * self.fmt_in.sig_bits):
            raise ValueError(f"window must be >= {self.fmt_acc.sig_bits}, not {self.window}")
        w_in = self.fmt_in.width
        super().__init__({"a": In(g * w_in), "b": In(g * w_in),
                          "acc": In(self.fmt_acc.width), "out": Out(self.fmt_acc.width)},
                         registered)

    def elaborate(self, platform):
        m = Module()
        ew = exp_width(self.fmt_in, self.fmt_acc)
        w = self.fmt_in.width
        terms = [product_term(m, self.a[i * w:(i + 1) * w], self.b[i * w:(i + 1) * w],
                              self.fmt_in, ew, f"p{i}") for i in range(self.g)]
        terms.append(self.unpack(m, self.acc, self.fmt_acc, ew, "acc"))
        self._output(m, self.fused_sum(m, terms, self.fmt_acc, self.window, ew, "dot"))
        return m


class FPIntMultiplier(FPUnit):
    """``out = a * v`` for a signed ``w``-bit integer ``v`` (two's complement), exact in FP32,
    rounded RNE into FP16/BF16 (a dequantizer) (golden: ``gen.fp.fp_int_mul``): the
    significand times ``|v|`` by shift-and-add, one normalization. ``v = 0`` counts as +0
    (so ``-x * 0 = -0``, ``Inf * 0 = NaN``).

    Attributes
    ----------
    a : Signal(fmt_in.width), in
    v : Signal(w), in
    out : Signal(fmt_out.width), out
    """

    def __init__(self, w=4, fmt_in="fp16", fmt_out="fp32", *, registered=False):
        lo, hi = INT_W_RANGE
        if not isinstance(w, int) or isinstance(w, bool) or not lo <= w <= hi:
            raise ValueError(f"w must be in {lo}..{hi}, not {w!r}")
        self.w = w
        self.fmt_in = check_format(fmt_in, "fmt_in", IN_FORMATS)
        self.fmt_out = check_format(fmt_out, "fmt_out", ("fp32", "fp16", "bf16"))
        super().__init__({"a": In(self.fmt_in.width), "v": In(w),
                          "out": Out(self.fmt_out.width)}, registered)

    def elaborate(self, platform):
        m = Module()
        fo = self.fmt_out
        ew = exp_width(self.fmt_in, fo)
        t = int_term(m, self.a, self.v, self.fmt_in, ew, "imul")
        rounded = self.round_pack(m, t.sign, t.sig, t.e_lsb, fo, ew, "imul")
        self._output(m, finish(m, t, rounded, fo))
        return m
