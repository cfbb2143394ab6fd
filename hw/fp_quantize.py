"""The quantize step of the FP table precompute (docs/fp-lut-q-hw.md, "Hardware precompute"):
``q = clip(RNE(T / s), +-Qmax)`` for the stored table sums of one row, as a pipeline of
``stages`` cycles (golden: ``gen.fp_lut.quantize_tables``)."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring

from gen.config_fp import quantize_stage_cuts
from gen.fp import FP32

from .fp.common import FPUnit, exp_width, normalize

__all__ = ["EntryQuantizer", "normalize", "stage_register"]


def stage_register(m, value, name, en=None):
    """A pipeline register holding ``value`` (loaded on every cycle, or when ``en``). Data
    only: it needs no reset, the valid bit travelling with it (in the caller) has one."""
    reg = Signal(len(value), name=name, reset_less=True)
    if en is None:
        m.d.sync += reg.eq(value)
    else:
        with m.If(en):
            m.d.sync += reg.eq(value)
    return reg


class EntryQuantizer(FPUnit):
    """``q_i = clip(RNE(T_i / s), -Qmax, Qmax)`` for ``lanes`` FP32 entries sharing one FP32
    scale (golden: ``gen.fp_lut.quantize_tables``), in ``stages`` cycles.

    Both significands normalized to 24 bits (``MT``, ``Ms``), ``T / s = (MT / Ms) * 2**d``
    with ``MT / Ms`` in (1/2, 2): ``d >= t`` clips, ``d <= -2`` gives 0, otherwise a restoring
    divider forms ``X = floor(MT * 2**(t+1) / Ms)`` (``t + 2`` quotient bits) and the
    remainder; ``X >> (t + 1 - d)`` is the integer part, the next bit the round bit, the rest
    of ``X`` and the remainder the sticky bit. ``s`` zero, NaN or Inf, or ``T`` zero, gives 0.

    ``stages = 1``: combinational. ``stages > 1``: ``stages - 1`` registers cut the divider
    between its steps (:func:`gen.config_fp.quantize_stage_cuts`), each loaded when ``en`` is
    high; ``q`` is the result of the ``entries`` and ``scale`` of ``stages - 1`` enabled
    cycles earlier (each register carries the scale's normalized significand along).

    Attributes
    ----------
    entries : Signal(32 * lanes), in     entry ``i`` at ``[32 i +: 32]``
    scale : Signal(32), in
    en : Signal(1), in                   (``stages > 1``) advance the pipeline
    q : Signal(table_bits * lanes), out  two's complement, entry ``i`` at ``[t i +: t]``
    """

    def __init__(self, table_bits, lanes=1, stages=1):
        for name, v, lo, hi in (("table_bits", table_bits, 4, 16), ("lanes", lanes, 1, 64)):
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"{name} must be in {lo}..{hi}, not {v!r}")
        if (not isinstance(stages, int) or isinstance(stages, bool)
                or not 1 <= stages <= table_bits + 2):
            raise ValueError(f"stages must be in 1..{table_bits + 2}, not {stages!r}")
        self.t = table_bits
        self.lanes = lanes
        self.stages = stages
        ports = {"entries": wiring.In(32 * lanes), "scale": wiring.In(32),
                 "q": wiring.Out(table_bits * lanes)}
        if stages > 1:
            ports["en"] = wiring.In(1)
        super().__init__(ports, False)

    def _q_round_up(self, lsb, round_bit, sticky):
        """RNE to an integer (the decision a rounding mutant changes)."""
        return self._round_up(lsb, round_bit, sticky)

    def elaborate(self, platform):
        m = Module()
        t, sw = self.t, FP32.sig_bits
        qmax = (1 << (t - 1)) - 1
        ew = exp_width(FP32)
        cuts = quantize_stage_cuts(t, self.stages)
        ps = self.unpack(m, self.scale, FP32, ew, "s")
        ms, ls = normalize(m, ps.sig, sw, "s")
        s_dead = ps.zero | ps.nan | ps.inf
        # per lane: [remainder, quotient bits so far, result is 0, clips, shift, sign]
        lanes = []
        for i in range(self.lanes):
            pt = self.unpack(m, self.entries[32 * i:32 * (i + 1)], FP32, ew, f"t{i}")
            mt, lt = normalize(m, pt.sig, sw, f"t{i}")
            d = Signal(signed(ew + 1), name=f"d{i}")
            m.d.comb += d.eq((pt.e_lsb - lt) - (ps.e_lsb - ls))
            r = Signal(sw + 1, name=f"r{i}_0")    # remainder < 2 Ms: sw + 1 bits
            m.d.comb += r.eq(mt)
            sh = Signal(range(t + 3), name=f"sh{i}")
            m.d.comb += sh.eq(t + 1 - d)                # in 2..t+2 where it is used
            lanes.append([r, C(0, 0), s_dead | pt.zero | (d <= -2), d >= t, sh, pt.sign])

        for k in range(t + 3):           # before step k (k = t + 2: after the last step)
            if k in cuts:                # the state between two steps goes into a register
                c = cuts.index(k)
                ms = stage_register(m, ms, f"ms_c{c}", self.en)
                lanes = [[stage_register(m, Value.cast(x), f"l{i}_{j}_c{c}", self.en)
                          for j, x in enumerate(lane)] for i, lane in enumerate(lanes)]
            if k == t + 2:
                break
            for i, lane in enumerate(lanes):
                r, x = lane[0], lane[1]
                fits = r >= ms
                diff = Signal(sw + 1, name=f"r{i}_{k}_d")
                m.d.comb += diff.eq(Mux(fits, r - ms, r))
                lane[1] = Cat(fits, x)                  # quotient bits, LSB the newest
                if k < t + 1:
                    nr = Signal(sw + 1, name=f"r{i}_{k + 1}")
                    m.d.comb += nr.eq(diff << 1)
                    lane[0] = nr
                else:
                    lane[0] = diff

        for i, (r, x, zero, clip, sh, sign) in enumerate(lanes):
            ext = Signal(2 * (t + 2), name=f"ext{i}")
            m.d.comb += ext.eq(Cat(C(0, t + 2), x) >> sh)
            whole = ext[t + 2:]
            round_bit = ext[t + 1]
            sticky = ext[:t + 1].any() | r.any()
            mag = Signal(t + 3, name=f"mag{i}")
            m.d.comb += mag.eq(whole + self._q_round_up(whole[0], round_bit, sticky))
            clipped = Signal(t, name=f"qabs{i}")
            with m.If(zero):
                m.d.comb += clipped.eq(0)
            with m.Elif(clip | (mag > qmax)):
                m.d.comb += clipped.eq(qmax)
            with m.Else():
                m.d.comb += clipped.eq(mag)
            m.d.comb += self.q[t * i:t * (i + 1)].eq(Mux(sign, -clipped, clipped))
        return m
