"""FP MAC baselines: the FP16/BF16 dequantizing tensor core and the FP x INT-w direct MAC.

Same ``i_cmd`` (format, ``w``, groups), ``i_weight`` (codes) and ``o_result`` streams as
:class:`hw.mac_array.MacArray` (docs/interface.md), with FP activations and FP32 results, plus
one ``i_scale`` beat per operation (``n`` per-output-channel scales in the activation format),
taken together with its ``i_cmd`` beat. Golden model: ``gen.fp.fp_mac_tile``; docs/fp.md.

* ``dequant``: each weight value ``v`` becomes ``fp(v * scale)`` in the activation format (RNE,
  once per column, shared by the ``m`` rows); each PE computes the fused dot product of ``g``
  activation x weight products and its FP32 accumulator (an HMMA-style unit).
* ``direct``: each PE computes the fused dot product of ``g`` exact activation x integer
  products and its accumulator; the scale multiplies the FP32 result once, at the output.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig, WeightFormat
from gen.fp import FP32, dot_window
from gen.mac_config import MacConfig

from .control import OperationControl, OutputDrain, add_pe
from .fp.common import FPUnit, check_format, exp_width
from .fp.units import finish, int_term, product_term

__all__ = ["FpMacPE", "FpMacArray", "FpDequantizer", "FpOutputScaler", "fp_mac_widths",
           "ACT_FORMATS"]

ACT_FORMATS = ("fp16", "bf16")
FP_MAC_KINDS = ("dequant", "direct")


def _check_cfg(cfg):
    # a MacConfig reaches the paper's M8N4K16 tile (g = 16), beyond a LutConfig's 2**g tables
    if not isinstance(cfg, (LutConfig, MacConfig)):
        raise TypeError(f"cfg must be a LutConfig or a MacConfig, not {cfg!r}")


def fp_mac_widths(cfg, act):
    """The FP array's port widths (its one source): activations and scales are ``act``
    patterns, results FP32; weight codes and commands are the integer MAC array's."""
    act = check_format(act, "act", ACT_FORMATS)
    return {"act": act, "act_width": cfg.m * cfg.g * act.width, "scale_width": cfg.n * act.width,
            "result_width": FP32.width, "result_row_width": cfg.n * FP32.width,
            "value_width": cfg.direct_width, "window": dot_window(FP32)}


class FpMacPE(FPUnit):
    """``out`` = FP32 ``acc`` after the operation's last group; per group
    ``acc = fused(Mux(first_group, +0, acc) + sum_i acts_i * weights_i)``.

    ``weights``: ``g`` patterns of ``act`` (dequant) or ``g`` signed ``value_width``-bit
    integers (direct), weight ``i`` at ``[i*width +: width]``.
    """

    def __init__(self, cfg, kind="dequant", act="fp16"):
        _check_cfg(cfg)
        if kind not in FP_MAC_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FP_MAC_KINDS)}, not {kind!r}")
        self._cfg, self._kind = cfg, kind
        self._w = fp_mac_widths(cfg, act)
        self._wop = self._w["act"].width if kind == "dequant" else self._w["value_width"]
        super().__init__({
            "acts": In(cfg.g * self._w["act"].width),
            "weights": In(cfg.g * self._wop),
            "step": In(1), "first_group": In(1), "capture": In(1),
            "out": Out(FP32.width),
        }, False)

    def elaborate(self, platform):
        cfg, act = self._cfg, self._w["act"]
        m = Module()
        ew = exp_width(act, FP32)
        acc = Signal(FP32.width)
        terms = []
        for i in range(cfg.g):
            a = self.acts[i * act.width:(i + 1) * act.width]
            w = self.weights[i * self._wop:(i + 1) * self._wop]
            terms.append(product_term(m, a, w, act, ew, f"p{i}") if self._kind == "dequant"
                         else int_term(m, a, w, act, ew, f"p{i}"))
        terms.append(self.unpack(m, Mux(self.first_group, 0, acc), FP32, ew, "acc"))
        acc_next = self.fused_sum(m, terms, FP32, self._w["window"], ew, "dot")
        with m.If(self.step):
            m.d.sync += acc.eq(acc_next)
            with m.If(self.capture):
                m.d.sync += self.out.eq(acc_next)
        return m


class FpDequantizer(FPUnit):
    """``out = fp(v * scale)`` in the activation format (RNE): one weight value ``v`` (signed,
    ``value_width`` bits) dequantized with its column's ``scale`` (golden:
    ``gen.fp.fp_int_mul``, ``act -> act``). The dequant array has ``n * g`` of them."""

    def __init__(self, cfg, act="fp16"):
        _check_cfg(cfg)
        self._w = fp_mac_widths(cfg, act)
        super().__init__({"scale": In(self._w["act"].width), "v": In(self._w["value_width"]),
                          "out": Out(self._w["act"].width)}, False)

    def elaborate(self, platform):
        m = Module()
        act = self._w["act"]
        ew = exp_width(act, FP32)
        t = int_term(m, self.scale, self.v, act, ew, "deq")
        rounded = self.round_pack(m, t.sign, t.sig, t.e_lsb, act, ew, "deq")
        m.d.comb += self.out.eq(finish(m, t, rounded, act))
        return m


class FpOutputScaler(FPUnit):
    """``out = fp32(r * scale)``, the FP32 result times its column's scale (activation
    format), rounded once (golden: ``gen.fp.fp_mul`` FP32 x act). The direct array has ``n``."""

    def __init__(self, cfg, act="fp16"):
        _check_cfg(cfg)
        self._w = fp_mac_widths(cfg, act)
        super().__init__({"r": In(FP32.width), "scale": In(self._w["act"].width),
                          "out": Out(FP32.width)}, False)

    def elaborate(self, platform):
        m = Module()
        act = self._w["act"]
        ew = exp_width(act, FP32)
        p = product_term(m, self.r, self.scale, FP32, ew, "scale", fmt_b=act)
        rounded = self.round_pack(m, p.sign, p.sig, p.e_lsb, FP32, ew, "scale")
        m.d.comb += self.out.eq(finish(m, p, rounded, FP32))
        return m


def _add_unit(m, name, make, module, ins, out_width):
    """A combinational unit as submodule ``name``; with ``module`` an instance of the Verilog
    module of that name (converted once by gen.emit, so synthesis sees one per kind)."""
    if module is None:
        unit = make()
        m.d.comb += [getattr(unit, k).eq(v) for k, v in ins.items()]
        out = unit.out
    else:
        out = Signal(out_width, name=f"{name}_out")
        unit = Instance(module, o_out=out, **{f"i_{k}": v for k, v in ins.items()})
    m.submodules[name] = unit
    return out


class FpMacArray(wiring.Component):
    """An ``m x n`` tile of FP MAC PEs (module docstring). Ports: ``i_cmd``, ``i_scale``,
    ``i_act`` (row ``r`` activation ``i`` at ``[(r*g + i) * act.width +: act.width]``),
    ``i_weight`` (codes, as the integer MAC array), ``o_result`` (column ``c`` FP32 at
    ``[c*32 +: 32]``), ``o_busy``."""

    def __init__(self, cfg, kind="dequant", act="fp16", *, pe_module=None, unit_module=None):
        """``pe_module``, ``unit_module``: instantiate the PEs and the per-column units
        (:meth:`make_unit`) as Verilog modules of these names (gen.emit converts each once)."""
        _check_cfg(cfg)
        if kind not in FP_MAC_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FP_MAC_KINDS)}, not {kind!r}")
        self._cfg, self._kind, self._act = cfg, kind, act
        self._w = fp_mac_widths(cfg, act)
        self._pe_module = pe_module
        self._unit_module = unit_module
        super().__init__({
            "i_cmd": In(stream.Signature(cfg.cmd_width)),
            "i_scale": In(stream.Signature(self._w["scale_width"])),
            "i_act": In(stream.Signature(self._w["act_width"])),
            "i_weight": In(stream.Signature(cfg.code_width)),
            "o_result": Out(stream.Signature(self._w["result_row_width"])),
            "o_busy": Out(1),
        })

    def make_pe(self):
        return FpMacPE(self._cfg, self._kind, self._act)

    def make_unit(self):
        """The per-column unit outside the PEs: the dequantizer (``dequant``, ``n * g`` of
        them) or the output scaler (``direct``, ``n``)."""
        return (FpDequantizer if self._kind == "dequant" else FpOutputScaler)(self._cfg,
                                                                              self._act)

    def elaborate(self, platform):
        cfg, act = self._cfg, self._w["act"]
        m = Module()
        op = OperationControl(cfg)
        drain = OutputDrain(cfg, self.o_result)
        step, op_done, go = Signal(), Signal(), Signal()
        # the command and its scales are taken together: the control sees one stream
        cmd = SimpleNamespace(payload=self.i_cmd.payload, valid=Signal(name="cmd_valid"),
                              ready=Signal(name="cmd_ready"))
        m.d.comb += [
            cmd.valid.eq(self.i_cmd.valid & self.i_scale.valid),
            self.i_cmd.ready.eq(cmd.ready & self.i_scale.valid),
            self.i_scale.ready.eq(cmd.ready & self.i_cmd.valid),
            go.eq(op.active & ~(op.last_group & ~drain.free)),
            self.i_act.ready.eq(go & self.i_weight.valid),
            self.i_weight.ready.eq(go & self.i_act.valid),
            step.eq(self.i_act.valid & self.i_act.ready),
            op_done.eq(step & op.last_group),
            self.o_busy.eq(op.active | drain.valid),
        ]
        op.elaborate(m, cmd, step, op_done)
        scales = Signal(self._w["scale_width"], name="op_scales")
        with m.If(op.accept):
            m.d.sync += scales.eq(self.i_scale.payload)

        # -- weight decode (and dequantization), once per column ------------------------------
        vw = self._w["value_width"]
        codes = data.View(data.ArrayLayout(cfg.w_bits, cfg.g * cfg.n), self.i_weight.payload)
        offset = Signal(cfg.w_bits + 1)
        with m.Switch(op.w_bits):
            for w in range(1, cfg.w_bits + 1):
                with m.Case(w):
                    m.d.comb += offset.eq(1 << (w - 1))
        operands = []
        for k in range(cfg.g * cfg.n):
            q = codes[k]
            v = Signal(signed(vw), name=f"w_dec_{k}")
            with m.Switch(op.format):
                with m.Case(WeightFormat.UINT.value):
                    m.d.comb += v.eq(q)
                with m.Case(WeightFormat.BINARY.value):
                    m.d.comb += v.eq((q << 1) - 1)
                with m.Default():
                    m.d.comb += v.eq(q - offset)
            if self._kind == "dequant":
                scale = scales[(k // cfg.g) * act.width:(k // cfg.g + 1) * act.width]
                operands.append(_add_unit(m, f"deq_{k}", self.make_unit, self._unit_module,
                                          dict(scale=scale, v=v), act.width))
            else:
                operands.append(v)

        acts = data.View(data.ArrayLayout(cfg.g * act.width, cfg.m), self.i_act.payload)
        pe_outs = [[add_pe(m, f"pe_{r}_{c}", self.make_pe, self._pe_module,
                           dict(acts=acts[r], weights=Cat(operands[c * cfg.g:(c + 1) * cfg.g]),
                                step=step, first_group=op.first_group, capture=op_done),
                           FP32.width)
                    for c in range(cfg.n)] for r in range(cfg.m)]
        row = Signal(self._w["result_row_width"], name="out_row_values")
        m.d.comb += row.eq(Array(Cat(*outs) for outs in pe_outs)[drain.row])
        if self._kind == "direct":     # the scale once per result, on the way out
            out_scales = Signal(self._w["scale_width"], name="out_scales")
            latch = [(out_scales, scales)]
            cols = []
            for c in range(cfg.n):
                r_c = row[c * 32:(c + 1) * 32]
                s_c = out_scales[c * act.width:(c + 1) * act.width]
                cols.append(_add_unit(m, f"scale_{c}", self.make_unit, self._unit_module,
                                      dict(r=r_c, scale=s_c), FP32.width))
            m.d.comb += self.o_result.payload.eq(Cat(*cols))
        else:
            latch = []
            m.d.comb += self.o_result.payload.eq(row)
        drain.elaborate(m, op_done, latch)
        return m
