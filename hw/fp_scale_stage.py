"""The FP stage of the ``q`` path: table and weight scales, and FP32 accumulation over blocks.

docs/fp-lut.md, section 4. The integer LUT array runs one scale block per operation and gives
twice its integer results, ``r2`` (``result_width`` bits, signed). For every output ``(r, c)``
this stage keeps an FP32 accumulator::

    acc_0     = +0
    acc_{k+1} = fused(acc_k + r2 * ts[r] * ws[c] / 2)

with the product exact (``|r2| * sig(ts) * sig(ws)``, ``scale_product_width`` bits, exponent
``e_lsb(ts) + e_lsb(ws) - 1``), aligned with the accumulator in a frame of ``scale_window``
bits (one sticky bit per term) and rounded once (RNE) into FP32: ``gen.fp.fused_sum``.
"""
from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig
from gen.fp import FP32

from .fp.common import FPUnit, Term, exp_width

__all__ = ["FpScaleStage", "FpScaleLane", "scale_layout", "block_layout", "lane_columns"]


def scale_layout(cfg):
    """``i_scale`` beat: the ``m`` FP32 table scales ``ts`` (row ``r`` at ``[32 r]``), then the
    ``n`` weight scales ``ws`` in the activation format (column ``c`` at
    ``[table_scale_width + c * aw]``)."""
    return data.StructLayout({
        "ts": data.ArrayLayout(cfg.fp_result_width, cfg.m),
        "ws": data.ArrayLayout(cfg.act_fp.width, cfg.n),
    })


def block_layout():
    """Per block: is it the first block of its operation (start from +0), the last (emit)."""
    return data.StructLayout({"first": 1, "last": 1})


def lane_columns(cfg, lane):
    """Columns lane ``lane`` handles, in the order of a row's cycles: ``j * scale_lanes + lane``
    for ``j < row_cycles``, those below ``n``."""
    return [j * cfg.scale_lanes + lane for j in range(cfg.row_cycles)
            if j * cfg.scale_lanes + lane < cfg.n]


class FpScaleLane(wiring.Component):
    """One lane of :class:`FpScaleStage`, a module of its own: ``o_acc = fused(start + r2 *
    ts * ws / 2)`` with ``start = +0`` when ``i_first``, else ``i_acc`` (combinational).

    Every lane is the same module (the stage's column multiplexers stay outside), so a
    synthesis that merges identical modules maps one lane and counts it per instance. The
    arithmetic is the stage's own steps (``stage.lane``, ``stage._start``): a test that
    overrides a step of the stage changes every lane.
    """

    def __init__(self, stage):
        if not isinstance(stage, FpScaleStage):
            raise TypeError(f"stage must be an FpScaleStage, not {stage!r}")
        cfg = stage._cfg
        self._stage = stage
        super().__init__({
            "i_r2": In(cfg.result_width), "i_ts": In(cfg.fp_result_width),
            "i_ws": In(cfg.act_fp.width), "i_acc": In(cfg.fp_result_width), "i_first": In(1),
            "o_acc": Out(cfg.fp_result_width),
        })

    def elaborate(self, platform):
        m = Module()
        st = self._stage
        ew = exp_width(st._cfg.act_fp, FP32)
        m.d.comb += self.o_acc.eq(st.lane(m, self.i_r2, self.i_ts, self.i_ws,
                                          st._start(self.i_first, self.i_acc), ew, "lane"))
        return m


class FpScaleStage(FPUnit):
    """Applies the scales of each block to the integer array's ``r2`` rows and accumulates
    in FP32 (module docstring has the math).

    **Sharing.** ``scale_lanes`` lanes (each one exact multiplier ``|r2| x 24 x sig_bits``
    and one fused two-term adder), ``row_cycles`` cycles per row: in cycle ``j`` of row ``r``
    lane ``l`` updates output ``(r, j * scale_lanes + l)``. A block's ``m`` rows take
    ``m * row_cycles <= scale_block / tables_per_pe`` cycles, no more than the integer array
    needs for one block at ``w = 1``.

    **Accumulators.** The ``m x n`` FP32 accumulators are kept per lane as a ring of the
    ``m * len(lane_columns)`` values the lane updates, in the order it updates them: each
    update reads the ring's head and writes its tail, so no lane needs a read multiplexer over
    the accumulators.

    **Output.** During an operation's last block each lane also writes its new values into a
    one-row output register (``n`` FP32); the row goes out on ``o_result`` once complete, and
    the next row's first update waits while the register still holds a row not taken.

    Attributes
    ----------
    i_row : stream, in, ``result_row_width`` bits
        One row of ``n`` signed ``r2`` values (column ``c`` at ``[c * result_width]``); ``m``
        per block, row 0 first. Read during the row's ``row_cycles`` cycles and taken in the
        last one: the source must hold the payload while ``valid`` (the LUT array's output
        buffer does).
    i_scale : stream, in, ``scale_width`` bits (:func:`scale_layout`)
        One beat per block, taken into a register (any source).
    i_block : stream, in, 2 bits (:func:`block_layout`)
        One beat per block (read while valid, taken at the block's end).
    o_result : stream, out, ``fp_result_row_width`` bits
        ``n`` FP32 results (column ``c`` at ``[32 c]``); ``m`` beats per operation.
    o_busy : Signal(1), out
    """

    def __init__(self, cfg: LutConfig):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        if cfg.table_format != "q":
            raise ValueError(f"cfg.table_format must be q for the scale stage, "
                             f"not {cfg.table_format!r}")
        self._cfg = cfg
        super().__init__({
            "i_row": In(stream.Signature(cfg.result_row_width)),
            "i_scale": In(stream.Signature(cfg.scale_width)),
            "i_block": In(stream.Signature(block_layout().size)),
            "o_result": Out(stream.Signature(cfg.fp_result_row_width)),
            "o_busy": Out(1),
        }, False)

    # -- overridable steps (mutants in the tests replace one) ---------------------------------
    def _start(self, first, acc):
        """The accumulator a block adds to: +0 for an operation's first block."""
        return Mux(first, 0, acc)

    def _scale_exponent(self, ts_e_lsb, ws_e_lsb):
        """Exponent of the product's LSB: the two scales', minus one for the 1/2 of ``r2``."""
        return ts_e_lsb + ws_e_lsb - 1

    def _round_scale(self, m, ts):
        """``ts`` rounded (RNE) to ``scale_sig_bits`` significant bits as a pattern operation
        (golden ``gen.fp_lut.round_scale``): NaN and Inf unchanged, else the magnitude's low
        ``24 - p`` bits dropped with a rounding increment whose carry may reach the exponent.
        One rounder per stage: every lane takes the row's rounded ``ts``."""
        k = 24 - self._cfg.scale_sig_bits
        if k == 0:
            return ts
        keep, low = ts[k:31], ts[:k]
        up = (low[k - 1] & (low[:k - 1].any() | keep[0])) if k > 1 else (low[0] & keep[0])
        special = ts[23:31].all()
        out = Signal(32, name="ts_rounded")
        m.d.comb += out.eq(Mux(special, ts, Cat(Const(0, k), (keep + up)[:31 - k], ts[31])))
        return out

    # -- one lane -----------------------------------------------------------------------------
    def product_term(self, m, r2, ts, ws, ew, name):
        """``r2 * ts * ws / 2`` as an exact term (docs/fp-lut.md, section 4: NaN scale or an
        infinite scale times a zero factor is NaN; an infinite scale otherwise is Inf;
        ``r2 = 0`` or a zero scale gives a zero term signed as the product of the signs,
        ``r2 = 0`` counting as positive: golden ``gen.fp_lut.scale_product_term``)."""
        cfg, act = self._cfg, self._cfg.act_fp
        pt = self.unpack(m, ts, FP32, ew, f"{name}_ts")
        k = 24 - cfg.scale_sig_bits               # ts arrives rounded: its low k bits are 0
        ts_sig, ts_e_lsb = pt.sig[k:], pt.e_lsb + k
        pw = self.unpack(m, ws, act, ew, f"{name}_ws")
        r2s = r2.as_signed()
        neg = Signal(name=f"{name}_r2_neg")
        mag = Signal(cfg.result_width, name=f"{name}_r2_mag")   # |r2| fits unsigned
        m.d.comb += [neg.eq(r2s < 0), mag.eq(Mux(neg, -r2s, r2s))]
        r2_zero = ~r2.any()
        sig = Signal(cfg.scale_product_width, name=f"{name}_sig")
        e_lsb = Signal(signed(ew), name=f"{name}_e_lsb")
        m.d.comb += [sig.eq(mag * ts_sig * pw.sig),
                     e_lsb.eq(self._scale_exponent(ts_e_lsb, pw.e_lsb))]
        nan = (pt.nan | pw.nan | (pt.inf & (pw.zero | r2_zero))
               | (pw.inf & (pt.zero | r2_zero)))
        return Term(nan=nan, inf=(pt.inf | pw.inf) & ~nan,
                    zero=(pt.zero | pw.zero | r2_zero) & ~nan,
                    sign=neg ^ pt.sign ^ pw.sign, sig=sig, e_lsb=e_lsb,
                    width=cfg.scale_product_width)

    def lane(self, m, r2, ts, ws, acc, ew, name):
        """FP32 bits of ``fused(acc + r2 * ts * ws / 2)``: the two-term fused add
        (``FPUnit.fused_pair``, the bits of ``fused_sum`` with one alignment shifter)."""
        return self.fused_pair(m, self.product_term(m, r2, ts, ws, ew, name),
                               self.unpack(m, acc, FP32, ew, f"{name}_acc"), FP32,
                               self._cfg.scale_window, ew, name)

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        lanes, cycles = cfg.scale_lanes, cfg.row_cycles

        # -- the scales of the current block, and its flags -----------------------------------
        scales = Signal(scale_layout(cfg), name="scales")
        scale_full = Signal()
        flags = data.View(block_layout(), self.i_block.payload)

        # at least one bit each: a zero-width signal is a `[-1:0]` wire Verilator refuses
        row = Signal(range(max(2, cfg.m)), name="row")
        cyc = Signal(range(max(2, cycles)), name="row_cycle")
        last_cyc = cyc == cycles - 1
        block_end = Signal()

        out_row = Signal(cfg.fp_result_row_width, name="out_row")
        out_valid = Signal()
        out_free = ~out_valid | self.o_result.ready

        # an update: a row to read, the block's scales and flags, and (last block) room in
        # the output register
        fire = Signal()
        m.d.comb += [
            fire.eq(self.i_row.valid & scale_full & self.i_block.valid
                    & (~flags.last | out_free)),
            self.i_row.ready.eq(fire & last_cyc),
            block_end.eq(fire & last_cyc & (row == cfg.m - 1)),
            self.i_block.ready.eq(block_end),
            self.i_scale.ready.eq(~scale_full | block_end),
            self.o_result.valid.eq(out_valid),
            self.o_result.payload.eq(out_row),
            self.o_busy.eq(self.i_row.valid | self.i_block.valid | out_valid),
        ]
        with m.If(fire):
            m.d.sync += cyc.eq(Mux(last_cyc, 0, cyc + 1))
            with m.If(last_cyc):
                m.d.sync += row.eq(Mux(row == cfg.m - 1, 0, row + 1))
        with m.If(block_end):
            m.d.sync += scale_full.eq(0)
        with m.If(self.i_scale.valid & self.i_scale.ready):
            m.d.sync += [scales.eq(self.i_scale.payload), scale_full.eq(1)]
        with m.If(self.o_result.valid & self.o_result.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(fire & flags.last & last_cyc):
            m.d.sync += out_valid.eq(1)

        # -- the lanes ------------------------------------------------------------------------
        r2s = data.View(data.ArrayLayout(cfg.result_width, cfg.n), self.i_row.payload)
        outs = data.View(data.ArrayLayout(cfg.fp_result_width, cfg.n), out_row)
        ts_row = Signal(cfg.fp_result_width, name="ts_row")
        m.d.comb += ts_row.eq(scales.ts[row])
        ts = self._round_scale(m, ts_row)
        for lane in range(lanes):
            cols = lane_columns(cfg, lane)
            active = cyc < len(cols) if len(cols) < cycles else C(1)
            if len(cols) == 1:
                r2, ws = r2s[cols[0]], scales.ws[cols[0]]
            else:
                r2 = Signal(cfg.result_width, name=f"lane{lane}_r2")
                ws = Signal(cfg.act_fp.width, name=f"lane{lane}_ws")
                with m.Switch(cyc):
                    for j, c in enumerate(cols):
                        with m.Case(j):
                            m.d.comb += [r2.eq(r2s[c]), ws.eq(scales.ws[c])]
            ring = [Signal(cfg.fp_result_width, name=f"lane{lane}_acc{i}")
                    for i in range(cfg.m * len(cols))]
            unit = FpScaleLane(self)
            m.submodules[f"lane{lane}"] = unit
            new = Signal(cfg.fp_result_width, name=f"lane{lane}_new")
            m.d.comb += [unit.i_r2.eq(r2), unit.i_ts.eq(ts), unit.i_ws.eq(ws),
                         unit.i_acc.eq(ring[0]), unit.i_first.eq(flags.first),
                         new.eq(unit.o_acc)]
            with m.If(fire & active):
                m.d.sync += [a.eq(b) for a, b in zip(ring, ring[1:] + [new])]
                with m.If(flags.last):
                    with m.Switch(cyc):
                        for j, c in enumerate(cols):
                            with m.Case(j):
                                m.d.sync += outs[c].eq(new)
        return m
