"""Bit-serial accumulator of one PE."""
from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.config import LutConfig

__all__ = ["BitSerialAccumulator", "CONTROL", "control_ports"]

#: The control inputs of the accumulator, shared by every PE of the array (the PE forwards them)
CONTROL = ("step", "first_plane", "last_plane", "first_group", "capture")


def control_ports(cfg):
    """``{name: width}`` of the control inputs a PE of ``cfg`` takes: :data:`CONTROL`, plus the
    plane index ``plane`` (``plane_width`` bits) for ``shifted`` accumulation."""
    ports = {name: 1 for name in CONTROL}
    if cfg.accumulation == "shifted":
        ports["plane"] = cfg.plane_width
    return ports


class BitSerialAccumulator(wiring.Component):
    """Accumulate one step's entry (the PE's adder-tree sum) over bit-planes and steps.

    ``partial`` accumulation, on every edge with ``step``::

        p_next = (0 if first_plane else p << 1) + entry        # MSB first
        p     <= p_next
        if last_plane:  acc <= (0 if first_group else acc) + p_next

    Per-step partials keep the shift inside a step (steps outer, planes inner), so the wide
    accumulator only adds. ``shifted`` accumulation has no partial register::

        acc <= (0 if first_group and first_plane else acc) + (entry << plane)

    ``pipeline`` 2 registers ``p_next`` (and ``first_group``, ``capture``) at the last plane
    and adds it into ``acc`` (and ``out``) on the next edge.

    ``pipeline`` 3 also splits that add at ``h = acc_low_width`` bits, the high half one cycle
    behind the low half (a carry-save pipeline of two short adders instead of one long one)::

        lo, c  <= lo + partial[:h]            # c: the carry out of bit h-1
        hi     <= hi + partial'[h:] + c'      # ' : one cycle later

    so ``acc = hi * 2**h + lo`` once ``hi`` has caught up; ``out`` takes its low half with the
    low add and its high half one edge later (the array waits ``pe_stages`` edges for it).
    Instead of ``first_group`` the capture clears both halves (so does reset): the next
    operation starts from 0 with no multiplexer in front of the adders.

    Output: with ``output_buffer = "double"``, ``capture`` (the last step of the operation)
    copies the final value into the register ``out`` so the next operation can start while
    ``out`` drains; otherwise ``out`` is ``acc`` itself and the array stalls the next
    operation's accumulator writes until the drain is done.

    Attributes
    ----------
    entry : Signal(signed(tree_width)), in
    step, first_plane, last_plane, first_group, capture : Signal(1), in
    plane : Signal(plane_width), in (``shifted`` only)
    out : Signal(signed(acc_width)), out
    """

    def __init__(self, cfg: LutConfig):
        if not isinstance(cfg, LutConfig):
            raise TypeError(f"cfg must be a LutConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "entry": In(signed(cfg.tree_width)),
            **{name: In(width) for name, width in control_ports(cfg).items()},
            "out": Out(signed(cfg.acc_width)),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        acc = Signal(signed(cfg.acc_width))
        acc_next = Signal(signed(cfg.acc_width))
        if cfg.accumulation == "shifted":
            term = Signal(signed(cfg.partial_width))
            m.d.comb += [
                term.eq(self.entry << self.plane),
                acc_next.eq(Mux(self.first_group & self.first_plane, 0, acc) + term),
            ]
        else:
            p_next = Signal(signed(cfg.partial_width))
            if cfg.w_bits == 1:
                # one plane per step: the partial is the entry itself, no register needed
                m.d.comb += p_next.eq(self.entry)
            else:
                p = Signal(signed(cfg.partial_width))
                m.d.comb += p_next.eq(Mux(self.first_plane, 0, p << 1) + self.entry)
                with m.If(self.step):
                    m.d.sync += p.eq(p_next)
            if cfg.pipeline >= 3:
                return self._split_halves(m, p_next)
            if cfg.pipeline >= 2:
                # the step's partial is registered and enters the accumulator one cycle later,
                # so the partial's adder and the wide accumulator adder are separate paths
                return self._split_add(m, acc, acc_next, p_next)
            m.d.comb += acc_next.eq(Mux(self.first_group, 0, acc) + p_next)
        with m.If(self.step):
            if cfg.accumulation == "shifted":
                m.d.sync += acc.eq(acc_next)
            else:
                with m.If(self.last_plane):
                    m.d.sync += acc.eq(acc_next)
            if cfg.output_buffer == "double":
                with m.If(self.capture):
                    m.d.sync += self.out.eq(acc_next)
        if cfg.output_buffer != "double":
            m.d.comb += self.out.eq(acc)
        return m

    def _split_add(self, m, acc, acc_next, p_next):
        """``pipeline`` 2: ``acc <= (0 if first_group else acc) + p_next`` one cycle after the
        last plane's step, from registered copies of ``p_next`` and the controls it needs."""
        partial = Signal(signed(self._cfg.partial_width), name="partial_done")
        add = Signal(name="add_partial")
        first_group = Signal(name="first_group_d")
        capture = Signal(name="capture_d")
        m.d.sync += [partial.eq(p_next), add.eq(self.step & self.last_plane),
                     first_group.eq(self.first_group),
                     capture.eq(self.step & self.last_plane & self.capture)]
        m.d.comb += acc_next.eq(Mux(first_group, 0, acc) + partial)
        with m.If(add):
            m.d.sync += acc.eq(acc_next)
        with m.If(capture):
            m.d.sync += self.out.eq(acc_next)
        return m

    def _split_halves(self, m, p_next):
        """``pipeline`` 3: the registered partial of ``pipeline`` 2 is added in two halves,
        the high half one cycle later with the low half's carry (registered)."""
        cfg = self._cfg
        h = cfg.acc_low_width
        partial = Signal(signed(cfg.partial_width), name="partial_done")
        add = Signal(name="add_partial")
        capture = Signal(name="capture_d")
        m.d.sync += [partial.eq(p_next), add.eq(self.step & self.last_plane),
                     capture.eq(self.step & self.last_plane & self.capture)]
        # low half: h bits and the carry out of them
        lo = Signal(h, name="acc_lo")
        lo_next = Signal(h + 1, name="acc_lo_next")
        part_lo = Signal(h, name="partial_lo")   # the partial's low h bits (sign-extended)
        # the halves are cleared when the operation's result is captured (and by reset), so
        # no first_group multiplexer lies in front of their adders
        m.d.comb += [part_lo.eq(partial),
                     lo_next.eq(lo + part_lo)]
        with m.If(add):
            m.d.sync += lo.eq(lo_next[:h])
        with m.If(capture):
            m.d.sync += [self.out[:h].eq(lo_next[:h]), lo.eq(0)]
        # high half, one edge behind: the partial's bits from h up (their sign extends them;
        # the register is only as wide as those bits plus the sign) and the registered carry
        carry = self._high_carry(m, lo_next[h])
        part_hi = Signal(signed(max(cfg.partial_width - h, 0) + 1), name="partial_hi_d")
        add_hi = Signal(name="add_hi")
        capture_hi = Signal(name="capture_hi")
        m.d.sync += [part_hi.eq(partial >> h), add_hi.eq(add), capture_hi.eq(capture)]
        hi = Signal(signed(cfg.acc_width - h), name="acc_hi")
        hi_next = Signal(signed(cfg.acc_width - h), name="acc_hi_next")
        m.d.comb += hi_next.eq(hi + part_hi + carry)
        with m.If(add_hi):
            m.d.sync += hi.eq(hi_next)
        with m.If(capture_hi):
            m.d.sync += [self.out[h:].eq(hi_next), hi.eq(0)]
        return m

    # its own method so that a test can override it (tests/mutants.py) and check that the
    # testbenches catch a lost or mistimed carry
    def _high_carry(self, m, carry_out):
        """The carry the high half adds: ``carry_out`` of the low half, registered (the high
        half adds one edge after the low half)."""
        carry = Signal(name="acc_carry")
        m.d.sync += carry.eq(carry_out)
        return carry
