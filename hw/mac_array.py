"""Multiply-accumulate baseline with the LUT array's tile, command and results."""
from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig, WeightFormat
from gen.mac_config import MAC_KINDS, MacConfig

from .control import DirectDrain, OperationControl, OutputDrain, add_pe
from .layouts import (act_layout, act_row_layout, cmd_layout, code_layout, operand_layout,
                      result_row_layout, stream_ports)

__all__ = ["MacPE", "MacArray", "MAC_KINDS"]


def _mac_config(cfg):
    """``cfg`` as a :class:`~gen.mac_config.MacConfig` (a LutConfig converted, same tile)."""
    if isinstance(cfg, MacConfig):
        return cfg
    if isinstance(cfg, LutConfig):
        return MacConfig.from_lut(cfg)
    raise TypeError(f"cfg must be a MacConfig or a LutConfig, not {cfg!r}")


class MacPE(wiring.Component):
    """``out = sum over groups of sum_i a_i * w_i``: ``g`` multipliers and an adder tree.

    The tree's sum is its own ``dot_width`` signal (narrow), added once into the
    ``result_width`` accumulator, like the LUT PE's adder tree. ``out`` is a register captured
    at the last group (``output_buffer = "double"``) or the accumulator itself.

    Attributes
    ----------
    acts : Signal(g * a_bits), in
        Activation ``i`` at ``[i*a_bits +: a_bits]``.
    weights : Signal(g * operand_width), in
        Decoded signed weight ``i`` at ``[i*operand_width +: operand_width]``.
    step, first_group, capture : Signal(1), in
    out : Signal(signed(result_width)), out
        The captured accumulator of the last finished operation (the exact result).
    """

    def __init__(self, cfg, kind="dequant"):
        cfg = _mac_config(cfg)
        self._cfg = cfg
        self._wop = cfg.operand_width(kind)
        super().__init__({
            "acts": In(act_row_layout(cfg).size),
            "weights": In(operand_layout(cfg, self._wop).size),
            "step": In(1),
            "first_group": In(1),
            "capture": In(1),
            "out": Out(signed(cfg.result_width)),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        acts = data.View(act_row_layout(cfg), self.acts)
        weights = data.View(operand_layout(cfg, self._wop), self.weights)
        acc = Signal(signed(cfg.result_width))
        dot = Signal(signed(cfg.dot_width))
        m.d.comb += dot.eq(sum(acts[i] * weights[i] for i in range(cfg.g)))
        acc_next = Signal(signed(cfg.result_width))
        m.d.comb += acc_next.eq(Mux(self.first_group, 0, acc) + dot)
        with m.If(self.step):
            m.d.sync += acc.eq(acc_next)
        if cfg.output_buffer == "double":
            with m.If(self.step & self.capture):
                m.d.sync += self.out.eq(acc_next)
        else:
            m.d.comb += self.out.eq(acc)
        return m


class MacArray(wiring.Component):
    """An ``m x n`` tile of MAC PEs: the baseline the LUT array is compared with.

    Same ``i_cmd`` and ``o_result`` as :class:`~hw.lut_array.LutArray`; instead of tables and
    bit-planes it takes one beat per group on each of:

    * ``i_act``: the ``m x g`` activations of the group (``gen.golden.pack_activations``);
    * ``i_weight``: the ``g x n`` weight codes, ``w_bits`` each (``gen.golden.pack_weight_codes``).

    Codes are decoded to signed values once per column (shared by the ``m`` rows): int/ternary
    ``q - 2**(w-1)``, uint ``q``, binary ``2q - 1``.

    Parameters
    ----------
    cfg : MacConfig or LutConfig
        The design point; a LutConfig is converted by :meth:`MacConfig.from_lut` (same tile).
    kind : str
        ``dequant`` or ``direct`` (:data:`MAC_KINDS`).
    pe_module : str or None
        As for :class:`~hw.lut_array.LutArray`.
    """

    def __init__(self, cfg, kind="dequant", *, pe_module=None):
        cfg = _mac_config(cfg)
        self._cfg = cfg
        self._kind = kind
        self._wop = cfg.operand_width(kind)
        self._pe_module = pe_module
        #: the layout of every stream payload, by port (gen.emit writes them into the manifest)
        self.payload_layouts = {
            "i_cmd": cmd_layout(cfg),
            "i_act": act_layout(cfg),
            "i_weight": code_layout(cfg),
            "o_result": result_row_layout(cfg),
        }
        super().__init__({**stream_ports(self.payload_layouts), "o_busy": Out(1)})

    def make_pe(self):
        return MacPE(self._cfg, self._kind)

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        op = OperationControl(cfg)
        double = cfg.output_buffer == "double"
        if double:
            # the last group waits for a free output buffer
            drain = OutputDrain(cfg, self.o_result)
            blocked = op.last_group & ~drain.free
        else:
            # every step writes the accumulators: each waits until the drain released them
            drain = DirectDrain(cfg, self.o_result, registered=cfg.output_buffer == "row")
            blocked = ~drain.free
        step = Signal()
        op_done = Signal()
        go = Signal()
        m.d.comb += [
            go.eq(op.active & ~blocked),
            self.i_act.ready.eq(go & self.i_weight.valid),
            self.i_weight.ready.eq(go & self.i_act.valid),
            step.eq(self.i_act.valid & self.i_act.ready),
            op_done.eq(step & op.last_group),
            self.o_busy.eq(op.active | drain.valid),
        ]
        op.elaborate(m, self.i_cmd, step, op_done)
        first_group = op.first_group
        op_format, op_w = op.format, op.w_bits

        # -- weight decode, once per column ---------------------------------------------------
        codes = data.View(code_layout(cfg), self.i_weight.payload)
        offset = Signal(cfg.code_offset_width)  # 2**(w-1) of the running operation
        with m.Switch(op_w):
            for w in range(1, cfg.w_bits + 1):
                with m.Case(w):
                    m.d.comb += offset.eq(1 << (w - 1))
        decoded = []                            # per column, its g decoded weights
        for c in range(cfg.n):
            column = []
            for i in range(cfg.g):
                q = codes[c][i]
                v = Signal(signed(self._wop), name=f"w_dec_{c * cfg.g + i}")
                with m.Switch(op_format):
                    with m.Case(WeightFormat.UINT):
                        m.d.comb += v.eq(q)
                    with m.Case(WeightFormat.BINARY):
                        m.d.comb += v.eq((q << 1) - 1)
                    with m.Default():
                        m.d.comb += v.eq(q - offset)
                column.append(v)
            decoded.append(Cat(column))

        acts = data.View(act_layout(cfg), self.i_act.payload)
        pe_outs = [Cat(add_pe(m, f"pe_{r}_{c}", self.make_pe, self._pe_module,
                              dict(acts=acts[r], weights=decoded[c],
                                   step=step, first_group=first_group, capture=op_done),
                              signed(cfg.result_width))
                       for c in range(cfg.n)) for r in range(cfg.m)]
        if double:
            m.d.comb += self.o_result.payload.eq(Array(pe_outs)[drain.row])
            drain.elaborate(m, op_done, [])
        else:
            drain.elaborate(m, op_done, [], Array(pe_outs)[drain.row])
        return m
