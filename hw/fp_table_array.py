"""The LUT array with ``fp`` tables: FP16/BF16 table entries, an FP32 accumulator in every PE.

docs/fp-lut.md section 5 states the math and the ports; the golden model is
``gen.fp_lut_fp.lut_fp_mpgemm``. The controller, the table register, the weight stream and the
double-buffered output are the integer array's (``hw/lut_array.py``, docs/interface.md); the
command's scale beat is taken with it as in ``hw/fp_mac_array.py``.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth import *
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig, WeightFormat
from gen.fp import FP32, default_window, dot_window

from .control import OperationControl, OutputDrain, add_pe
from .fp.common import FPUnit, Term, exp_width
from .fp.units import finish, product_term
from .fp_column_share import SharedColumnDrain
from .fp_table_pe import FpTablePE
from .layouts import cmd_layout, stream_ports, table_layout, weight_plane_layout

__all__ = ["FpTableArray", "FpTableColumn", "check_config", "scale_layout",
           "fp_result_row_layout"]


def check_config(cfg):
    """``cfg`` if the ``fp``-table array can be built from it, else TypeError / ValueError."""
    if not isinstance(cfg, LutConfig):
        raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
    if cfg.table_format != "fp":
        raise ValueError(f"cfg.table_format must be 'fp', not {cfg.table_format!r}")
    for name, value, allowed in (("tables_per_pe", cfg.tables_per_pe, 1),
                                 ("output_buffer", cfg.output_buffer, "double"),
                                 ("accumulation", cfg.accumulation, "partial")):
        if value != allowed:
            raise ValueError(f"{name} must be {allowed!r} with fp tables, not {value!r}")
    return cfg


def scale_layout(cfg):
    """``i_scale`` beat of the ``fp``-table array: the ``n`` weight scales, ``ws[c]`` at
    ``[table_scale_width + c * 16]`` (``table_scale_width`` = 0: no table scales)."""
    return data.ArrayLayout(cfg.act_fp.width, cfg.n)


def fp_result_row_layout(cfg):
    """``o_result`` beat: one row of ``n`` FP32 results, column ``c`` at ``[c * 32]``."""
    return data.ArrayLayout(cfg.fp_result_width, cfg.n)


class FpTableArray(FPUnit):
    """An ``m x n`` tile of :class:`~hw.fp_table_pe.FpTablePE` with its controller, the row
    sums ``S`` and a per-column output stage.

    One operation: ``i_cmd`` (format, ``w``, groups) with one ``i_scale`` beat (``n`` weight
    scales), ``groups`` ``i_table`` beats (the ``m`` stored tables of a group, entries in the
    activation format), ``groups * w`` ``i_weight`` beats (planes MSB first), then ``m``
    ``o_result`` rows of ``n`` FP32 results. Per row ``r``, on the last plane of each group,
    ``S_r = fused(S_r - E_r[0])`` (FP32, from +0). Per column ``c`` the output stage turns the
    drained row into ``R = RNE_fp32(corr(acc, S) * ws[c])`` with ``corr`` one fused sum of
    ``acc`` and ``S`` (binary: ``acc``; int/ternary: ``(acc - S)/2``; uint:
    ``(acc + S*2**w - S)/2``) in the dot product's frame (``gen.fp.dot_window``).
    With ``cfg.fp_column_lanes = L`` the ``n`` column stages are ``L`` lanes shared over the
    columns (:class:`~hw.fp_column_share.SharedColumnDrain`): a row in ``n / L`` cycles into a
    registered result row, the same results.

    Parameters
    ----------
    cfg : LutConfig
        ``act_format`` fp16/bf16, ``table_format`` fp; ``tables_per_pe`` 1 and
        ``output_buffer`` double (the FP PE keeps the per-PE output register);
        ``fp_column_lanes`` None (a stage per column) or a divisor of ``n``.
    pe_module : str or None
        As :class:`~hw.lut_array.LutArray`: the PE's Verilog module name, emitted once.
    """

    def __init__(self, cfg: LutConfig, *, pe_module=None, column_module=None):
        check_config(cfg)
        for name, value in (("pe_module", pe_module), ("column_module", column_module)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a module name or None, not {value!r}")
        self._cfg = cfg
        self._pe_module = pe_module
        self._column_module = column_module
        self.payload_layouts = {
            "i_cmd": cmd_layout(cfg),
            "i_scale": scale_layout(cfg),
            "i_table": table_layout(cfg),
            "i_weight": weight_plane_layout(cfg),
            "o_result": fp_result_row_layout(cfg),
        }
        super().__init__({**stream_ports(self.payload_layouts), "o_busy": Out(1)}, False)

    @property
    def cfg(self):
        return self._cfg

    def make_pe(self):
        """The PE that ``pe_module`` names (gen.emit converts it once)."""
        return FpTablePE(self._cfg)

    def make_column(self):
        """The per-column output stage that ``column_module`` names (gen.emit converts it
        once: its ``n`` copies inlined into the top made Yosys crawl at M2N64)."""
        return FpTableColumn(self._cfg)

    def elaborate(self, platform):
        cfg, act = self._cfg, self._cfg.act_fp
        m = Module()
        ew = exp_width(act, FP32)

        # -- operation state: the command and its scale beat are taken together ------------
        op = OperationControl(cfg)
        shared = cfg.fp_column_lanes is not None
        drain = (SharedColumnDrain if shared else OutputDrain)(cfg, self.o_result)
        plane = Signal(cfg.plane_width)          # counts down: w-1 (MSB) .. 0
        first_plane, last_plane = Signal(), Signal()
        table = Signal(cfg.table_width, name="table_reg")
        table_valid = Signal()
        tables = data.View(table_layout(cfg), table)
        step, group_done, op_done = Signal(), Signal(), Signal()
        cmd = SimpleNamespace(payload=self.i_cmd.payload, valid=Signal(name="cmd_valid"),
                              ready=Signal(name="cmd_ready"))
        m.d.comb += [
            first_plane.eq(plane == op.w_bits - 1),
            last_plane.eq(plane == 0),
            cmd.valid.eq(self.i_cmd.valid & self.i_scale.valid),
            self.i_cmd.ready.eq(cmd.ready & self.i_scale.valid),
            self.i_scale.ready.eq(cmd.ready & self.i_cmd.valid),
            # the final plane of an operation waits for a free output buffer
            self.i_weight.ready.eq(op.active & table_valid
                                   & ~(last_plane & op.last_group & ~drain.free)),
            step.eq(self.i_weight.valid & self.i_weight.ready),
            group_done.eq(step & last_plane),
            op_done.eq(group_done & op.last_group),
            self.i_table.ready.eq(~table_valid | group_done),
            self.o_busy.eq(op.active | drain.valid),
        ]
        with m.If(group_done):
            m.d.sync += table_valid.eq(0)
        with m.If(self.i_table.valid & self.i_table.ready):
            m.d.sync += [table.eq(self.i_table.payload), table_valid.eq(1)]
        fields = op.elaborate(m, cmd, group_done, op_done)
        with m.If(step):
            m.d.sync += plane.eq(Mux(last_plane, op.w_bits - 1, plane - 1))
        with m.If(op.accept):
            m.d.sync += plane.eq(fields.w_bits - 1)
        scales = Signal(cfg.weight_scale_width, name="op_scales")
        with m.If(op.accept):
            m.d.sync += scales.eq(self.i_scale.payload)

        # -- row sums S_r = -sum_j E_rj[0] in FP32, one adder per row -------------------------
        sums = []
        for r in range(cfg.m):
            s = Signal(FP32.width, name=f"act_sum_{r}")
            s_out = Signal(FP32.width, name=f"act_sum_out_{r}")
            e0 = Value.cast(tables[r][0])
            terms = [self.unpack(m, Mux(op.first_group, 0, s), FP32, ew, f"s{r}"),
                     self.unpack(m, Cat(e0[:-1], ~e0[-1]), act, ew, f"e0_{r}")]
            s_next = self.fused_sum(m, terms, FP32, default_window(FP32), ew, f"sum{r}")
            with m.If(group_done):
                m.d.sync += s.eq(s_next)
            with m.If(op_done):
                m.d.sync += s_out.eq(s_next)
            sums.append(s_out)

        # -- the PE array -----------------------------------------------------------------------
        indices = data.View(weight_plane_layout(cfg), self.i_weight.payload)
        controls = dict(plane=plane, step=step, first=op.first_group & first_plane,
                        capture=op_done)
        pe_outs = [[add_pe(m, f"pe_{r}_{c}", self.make_pe, self._pe_module,
                           dict(table_row=tables[r], index=indices[c], **controls),
                           FP32.width)
                    for c in range(cfg.n)] for r in range(cfg.m)]

        # -- output stage: the drained row through the correction and the weight scales ------
        out_format = Signal(WeightFormat)
        out_w = Signal(cfg.plane_width)
        out_scales = Signal(cfg.weight_scale_width, name="out_scales")
        row = Signal(cfg.fp_result_row_width, name="out_row_values")
        row_sum = Signal(FP32.width, name="out_row_sum")
        m.d.comb += [row.eq(Array(Cat(*outs) for outs in pe_outs)[drain.row]),
                     row_sum.eq(Array(sums)[drain.row])]
        latch = [(out_format, op.format), (out_w, op.w_bits), (out_scales, scales)]
        columns = [dict(acc=row[c * 32:(c + 1) * 32],
                        scale=out_scales[c * act.width:(c + 1) * act.width])
                   for c in range(cfg.n)]
        shared_ins = dict(s=row_sum, fmt=out_format, w=out_w)
        if shared:
            # fp_column_lanes stages shared by the columns into a registered result row
            # (hw.fp_column_share.SharedColumnDrain)
            drain.elaborate(m, op_done, latch, columns, shared_ins,
                            lambda m, lane, ins: self._add_column(m, f"lane_{lane}", ins))
            return m
        cols = [self._add_column(m, f"col_{c}", dict(acc=columns[c]["acc"], **shared_ins,
                                                    scale=columns[c]["scale"]))
                for c in range(cfg.n)]
        m.d.comb += self.o_result.payload.eq(Cat(*cols))
        drain.elaborate(m, op_done, latch)
        return m

    def _add_column(self, m, name, ins):
        """One column output stage as submodule ``name`` (a :class:`FpTableColumn`, or an
        instance of ``column_module``) on the inputs ``ins``; its ``out``."""
        if self._column_module is None:
            unit = self.make_column()
            m.d.comb += [getattr(unit, k).eq(v) for k, v in ins.items()]
            out = unit.out
        else:
            out = Signal(FP32.width, name=f"{name}_out")
            unit = Instance(self._column_module, o_out=out,
                            **{f"i_{k}": v for k, v in ins.items()})
        m.submodules[name] = unit
        return out


class FpTableColumn(FPUnit):
    """Column output stage of :class:`FpTableArray`: ``out = RNE_fp32(corr(acc, s) * scale)``
    (:meth:`_column`), one module per column so synthesis sees (and counts) one."""

    def __init__(self, cfg: LutConfig):
        check_config(cfg)
        self._cfg = cfg
        super().__init__({"acc": In(FP32.width), "s": In(FP32.width), "fmt": In(WeightFormat),
                          "w": In(cfg.plane_width), "scale": In(cfg.act_fp.width),
                          "out": Out(FP32.width)}, False)

    def elaborate(self, platform):
        m = Module()
        ew = exp_width(self._cfg.act_fp, FP32)
        m.d.comb += self.out.eq(self._column(m, self.acc, self.s, self.fmt, self.w, self.scale,
                                             ew, 0))
        return m

    def _column(self, m, acc, s, fmt, w, scale, ew, c):
        """Column ``c``'s result: the correction as one fused sum of three FP32 terms
        (``acc * 2**-h``, ``-S/2``, ``S * 2**(w-1)``; ``h`` = 0 for binary, else 1; the S terms
        zero where the format has none), rounded once, times ``scale`` rounded once."""
        act = self._cfg.act_fp
        binary = fmt == WeightFormat.BINARY
        uint = fmt == WeightFormat.UINT
        t_acc = self.unpack(m, acc, FP32, ew, f"c{c}_acc")
        t_s = self.unpack(m, s, FP32, ew, f"c{c}_s")
        e_half = Signal(signed(ew), name=f"c{c}_e_half")
        e_acc = Signal(signed(ew), name=f"c{c}_e_acc")
        e_up = Signal(signed(ew), name=f"c{c}_e_up")
        m.d.comb += [e_half.eq(t_s.e_lsb - 1), e_acc.eq(t_acc.e_lsb - ~binary),
                     e_up.eq(t_s.e_lsb + w - 1)]

        def gated(t, on, sign, e_lsb):
            return Term(nan=t.nan & on, inf=t.inf & on, zero=t.zero | ~on, sign=sign & on,
                        sig=t.sig, e_lsb=e_lsb, width=t.width)

        terms = [Term(nan=t_acc.nan, inf=t_acc.inf, zero=t_acc.zero, sign=t_acc.sign,
                      sig=t_acc.sig, e_lsb=e_acc, width=t_acc.width),
                 gated(t_s, ~binary, ~t_s.sign, e_half),
                 gated(t_s, uint, t_s.sign, e_up)]
        res = self.fused_sum(m, terms, FP32, dot_window(FP32), ew, f"corr{c}")
        p = product_term(m, res, scale, FP32, ew, f"scale{c}", fmt_b=act)
        rounded = self.round_pack(m, p.sign, p.sig, p.e_lsb, FP32, ew, f"scale{c}")
        return finish(m, p, rounded, FP32)
