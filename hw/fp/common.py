"""Building blocks of the FP units: unpack, align-and-add with sticky, normalize and round.

Every block mirrors a step of the golden model ``gen.fp`` (same names: ``decode``,
``fused_sum``, ``round_pack``); docs/fp.md states the arithmetic rules.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import wiring
from amaranth.utils import bits_for

from gen.fp import FPFormat, dot_window, fp_format

__all__ = ["Term", "FPUnit", "exp_width", "normalize"]


def exp_width(*fmts):
    """Signed width of every exponent signal: the products of the widest format, the frame
    below them and the biased result all fit (``2 * (2**exp_bits + sig_bits)`` plus a margin)."""
    return max(bits_for(2 * ((1 << f.exp_bits) + 2 * f.sig_bits + 64)) for f in fmts) + 1


def normalize(m, sig, width, name):
    """``sig`` shifted left until bit ``width - 1`` is set, and the shift (``sig`` != 0): the
    leading-zero count of every rounding (:meth:`FPUnit.round_pack`) and of the precompute's
    quantizer."""
    lz = Signal(range(width), name=f"{name}_lz")
    for i in range(width):                        # later (higher) set bits win
        with m.If(sig[i]):
            m.d.comb += lz.eq(width - 1 - i)
    norm = Signal(width, name=f"{name}_norm")
    m.d.comb += norm.eq(sig << lz)
    return norm, lz


@dataclass
class Term:
    """One addend: ``(-1)**sign * sig * 2**e_lsb`` with ``sig`` a ``width``-bit field, plus
    its class flags (exactly one of nan/inf/zero or none = finite)."""
    nan: Value
    inf: Value
    zero: Value
    sign: Value
    sig: Value
    e_lsb: Value
    width: int


class FPUnit(wiring.Component):
    """Base of the FP units: the shared steps, and the optional output register.

    ``_round_up`` and ``_jam`` are the two decisions a rounding mutant changes (tests subclass
    the unit and override them); everything else is fixed arithmetic.
    """

    def __init__(self, signature, registered):
        if not isinstance(registered, bool):
            raise TypeError(f"registered must be a bool, not {registered!r}")
        self.registered = registered
        super().__init__(signature)

    # -- overridable decisions ---------------------------------------------------------------
    def _round_up(self, lsb, round_bit, sticky):
        """RNE: add one ulp when above half, or at half and the kept LSB is odd."""
        return round_bit & (sticky | lsb)

    def _jam(self, aligned, lost):
        """A term's bits shifted out of the frame OR into the frame's LSB (sticky)."""
        return aligned | lost

    # -- steps ---------------------------------------------------------------------------------
    def _output(self, m, value):
        """Drive ``self.out`` from ``value``, through a register when ``registered``."""
        if self.registered:
            m.d.sync += self.out.eq(value)
        else:
            m.d.comb += self.out.eq(value)

    @staticmethod
    def unpack(m, bits, fmt: FPFormat, ew, name):
        """Class flags, sign, significand (hidden bit included) and ``e_lsb`` of a pattern."""
        e = bits[fmt.man_bits:fmt.man_bits + fmt.exp_bits]
        f = bits[:fmt.man_bits]
        special = e == fmt.exp_all_ones
        e_lsb = Signal(signed(ew), name=f"{name}_e_lsb")
        # a subnormal has no hidden bit and the exponent of the smallest normal number
        m.d.comb += e_lsb.eq(Mux(e.any(), e, 1) - (fmt.bias + fmt.man_bits))
        return Term(nan=special & f.any(), inf=special & ~f.any(), zero=~e.any() & ~f.any(),
                    sign=bits[-1], sig=Cat(f, e.any()), e_lsb=e_lsb, width=fmt.sig_bits)

    def round_pack(self, m, sign, mag, e_lsb, fmt: FPFormat, ew, name):
        """Bits of ``(-1)**sign * mag * 2**e_lsb`` rounded RNE into ``fmt``; ``mag`` != 0.

        Normalize with a leading-zero count, shift right again below the smallest normal
        exponent (subnormal result, shifted-out bits kept as sticky), keep ``sig_bits``, round,
        and form the pattern as ``(biased exponent - 1) << man_bits + significand`` so that a
        rounding carry moves into the exponent; a pattern at or above Inf becomes Inf.
        """
        pad = max(0, fmt.sig_bits + 2 - len(mag))   # room for the round and sticky bits
        mag = Cat(Const(0, pad), mag)
        n = len(mag)
        e_lsb_p = Signal(signed(ew), name=f"{name}_e_lsb_p")
        m.d.comb += e_lsb_p.eq(e_lsb - pad)

        norm, lz = normalize(m, mag, n, name)
        e_msb = Signal(signed(ew), name=f"{name}_e_msb")
        m.d.comb += e_msb.eq(e_lsb_p + (n - 1) - lz)

        tiny = Signal(name=f"{name}_tiny")            # result below the normal range
        sub = Signal(range(n + 2), name=f"{name}_sub")
        m.d.comb += tiny.eq(e_msb < fmt.emin)
        with m.If(tiny):
            m.d.comb += sub.eq(Mux(fmt.emin - e_msb > n + 1, n + 1, fmt.emin - e_msb))
        ext = Signal(2 * n + 1, name=f"{name}_ext")
        m.d.comb += ext.eq(Cat(Const(0, n + 1), norm) >> sub)
        high, lost = ext[n + 1:], ext[:n + 1].any()

        q = high[n - fmt.sig_bits:]
        round_bit = high[n - fmt.sig_bits - 1]
        sticky = high[:n - fmt.sig_bits - 1].any() | lost
        q1 = Signal(fmt.sig_bits + 1, name=f"{name}_q")
        m.d.comb += q1.eq(q + self._round_up(q[0], round_bit, sticky))

        body = Signal(signed(ew + fmt.man_bits + 2), name=f"{name}_body")
        e_eff = Mux(tiny, fmt.emin, e_msb)
        m.d.comb += body.eq(((e_eff + (fmt.bias - 1)) << fmt.man_bits) + q1)
        out = Signal(fmt.width, name=f"{name}_out")
        m.d.comb += out.eq(Cat(Mux(body >= fmt.inf, fmt.inf, body)[:fmt.width - 1], sign))
        return out

    def fused_sum(self, m, terms, fmt: FPFormat, window, ew, name="sum"):
        """``fmt`` bits of the sum of ``terms``: align to the largest top in a ``window``-bit
        frame (bits shifted out jam into the LSB), add as integers, round once."""
        for t in terms:
            if t.width > window:
                raise ValueError(f"window must be >= every term width {t.width}, not {window}")
        lowest = -(1 << (ew - 1))
        tops = []
        for i, t in enumerate(terms):
            top = Signal(signed(ew), name=f"{name}_top{i}")
            live = ~(t.nan | t.inf | t.zero)
            m.d.comb += top.eq(Mux(live, t.e_lsb + t.width, lowest))
            tops.append((top, live))
        big = tops[0][0]
        for i, (top, _) in enumerate(tops[1:], 1):    # the largest top: a chain of maxima
            nxt = Signal(signed(ew), name=f"{name}_max{i}")
            m.d.comb += nxt.eq(Mux(top > big, top, big))
            big = nxt

        sum_width = window + bits_for(len(terms)) + 1
        total = Signal(signed(sum_width), name=f"{name}_total")
        addends = []
        for i, (t, (top, live)) in enumerate(zip(terms, tops)):
            diff = Signal(signed(ew + 1), name=f"{name}_diff{i}")
            sh = Signal(range(window + 2), name=f"{name}_sh{i}")
            m.d.comb += [diff.eq(big - top),
                         sh.eq(Mux(diff > window + 1, window + 1, diff))]
            framed = Cat(Const(0, window - t.width), t.sig)
            ext = Signal(2 * window + 1, name=f"{name}_ext{i}")
            m.d.comb += ext.eq(Cat(Const(0, window + 1), framed) >> sh)
            aligned = ext[window + 1:]
            lost = ext[:window + 1].any()
            term = Signal(window, name=f"{name}_al{i}")
            m.d.comb += term.eq(Mux(live, self._jam(aligned, lost), 0))
            addends.append(Mux(t.sign, -term, term))
        m.d.comb += total.eq(sum(addends))

        neg = Signal(name=f"{name}_neg")
        mag = Signal(sum_width, name=f"{name}_mag")
        m.d.comb += [neg.eq(total < 0), mag.eq(Mux(neg, -total, total))]
        e_frame = Signal(signed(ew), name=f"{name}_e_frame")
        m.d.comb += e_frame.eq(big - window)
        rounded = self.round_pack(m, neg, mag, e_frame, fmt, ew, name)
        return self._sum_result(m, terms, total == 0, rounded, fmt, name)

    def _sum_result(self, m, terms, exact_zero, rounded, fmt, name):
        """The result of a fused sum: NaN, Inf, the signed exact zero, else ``rounded``."""
        pos_inf = Cat(*(t.inf & ~t.sign for t in terms)).any()
        neg_inf = Cat(*(t.inf & t.sign for t in terms)).any()
        any_nan = Cat(*(t.nan for t in terms)).any()
        all_neg_zero = Cat(*(t.zero & t.sign for t in terms)).all()
        out = Signal(fmt.width, name=f"{name}_result")
        with m.If(any_nan | (pos_inf & neg_inf)):
            m.d.comb += out.eq(fmt.qnan)
        with m.Elif(pos_inf | neg_inf):
            m.d.comb += out.eq(Cat(Const(fmt.inf, fmt.width - 1), neg_inf))
        with m.Elif(exact_zero):                      # exact zero: -0 only if every addend is -0
            m.d.comb += out.eq(Mux(all_neg_zero, fmt.sign_bit, 0))
        with m.Else():
            m.d.comb += out.eq(rounded)
        return out

    def fused_pair(self, m, a: Term, b: Term, fmt: FPFormat, window, ew, name="pair"):
        """:meth:`fused_sum` of two terms, the same bits with one alignment shifter.

        With two terms the one with the larger top is never shifted (its shift is 0), so the
        terms are swapped to put it first and only the other one is shifted (bits shifted out
        jam into the frame's LSB); the two signs then decide between one addition and one
        subtraction, whose magnitude and sign go to the same rounding. A term that is not
        finite has the lowest top and a zero field, so it adds nothing, as in ``fused_sum``.
        """
        for t in (a, b):
            if t.width > window:
                raise ValueError(f"window must be >= every term width {t.width}, not {window}")
        lowest = -(1 << (ew - 1))
        tops, fields = [], []
        for i, t in enumerate((a, b)):
            live = ~(t.nan | t.inf | t.zero)
            top = Signal(signed(ew), name=f"{name}_top{i}")
            field = Signal(window, name=f"{name}_field{i}")
            m.d.comb += [top.eq(Mux(live, t.e_lsb + t.width, lowest)),
                         field.eq(Mux(live, Cat(Const(0, window - t.width), t.sig), 0))]
            tops.append(top)
            fields.append(field)
        diff = Signal(signed(ew + 1), name=f"{name}_diff")
        a_big = Signal(name=f"{name}_a_big")
        m.d.comb += [diff.eq(tops[0] - tops[1]), a_big.eq(diff >= 0)]
        big = Signal(signed(ew), name=f"{name}_big")
        dist = Signal(signed(ew + 1), name=f"{name}_dist")
        sh = Signal(range(window + 2), name=f"{name}_sh")
        m.d.comb += [big.eq(Mux(a_big, tops[0], tops[1])),
                     dist.eq(Mux(a_big, diff, -diff)),
                     sh.eq(Mux(dist > window + 1, window + 1, dist))]
        hi = Signal(window, name=f"{name}_hi")           # the unshifted term
        lo = Signal(window, name=f"{name}_lo")           # the term to shift
        m.d.comb += [hi.eq(Mux(a_big, fields[0], fields[1])),
                     lo.eq(Mux(a_big, fields[1], fields[0]))]
        ones = Const((1 << window) - 1, window)
        lost = Signal(name=f"{name}_lost")               # a set bit below the shift
        m.d.comb += lost.eq((lo & ~(ones << sh)[:window]).any())
        aligned = Signal(window, name=f"{name}_aligned")
        m.d.comb += aligned.eq(self._jam(lo >> sh, lost))
        # one adder: hi + lo or hi - lo, then the sign of the larger term (flipped if negative)
        sum_width = window + bits_for(2) + 1
        sign_hi = Mux(a_big, a.sign, b.sign)
        sub = a.sign ^ b.sign
        total = Signal(signed(sum_width), name=f"{name}_total")
        m.d.comb += total.eq(hi + Mux(sub, -aligned, aligned))
        neg = Signal(name=f"{name}_neg")
        mag = Signal(sum_width, name=f"{name}_mag")
        m.d.comb += [neg.eq(sign_hi ^ (total < 0)), mag.eq(Mux(total < 0, -total, total))]
        e_frame = Signal(signed(ew), name=f"{name}_e_frame")
        m.d.comb += e_frame.eq(big - window)
        rounded = self.round_pack(m, neg, mag, e_frame, fmt, ew, name)
        return self._sum_result(m, (a, b), total == 0, rounded, fmt, name)


def check_window(window, fmt_acc):
    """The validated alignment frame (None: the dot product's, ``gen.fp.dot_window``)."""
    if window is None:
        return dot_window(fmt_acc)
    if not isinstance(window, int) or isinstance(window, bool) or not 8 <= window <= 128:
        raise ValueError(f"window must be in 8..128, not {window!r}")
    return window


def check_format(value, name, allowed):
    try:
        fmt = fp_format(value)
    except ValueError:
        fmt = None
    if fmt is None or fmt.name not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return fmt
