"""Wide additions cut into pieces with registered carries (``pipeline`` 3): each piece is a
short two-operand adder between registers, so no carry chain is longer than one piece."""
from amaranth import *

__all__ = ["piece_bounds", "add_with_carry", "pieced_accumulator", "pieced_difference"]


def piece_bounds(width, pieces):
    """``[(lo, hi)]``: bits ``lo .. hi-1`` of each piece, low piece first, each
    ``ceil(width / pieces)`` bits but the last (so there may be fewer than ``pieces``, as
    ``LutConfig.sum_pieces`` and ``term_pieces`` count them)."""
    size = -(-width // pieces)
    return [(lo, min(lo + size, width)) for lo in range(0, width, size)]


def add_with_carry(a, b, carry):
    """``a + b + carry`` (``len(a) + 1`` bits, unsigned) as one two-operand add:
    ``((2a + carry) + (2b + 1)) >> 1``, so synthesis sees an adder with a carry-in rather
    than a three-operand sum."""
    return (Cat(carry, a) + Cat(C(1, 1), b))[1:]


def pieced_accumulator(m, name, width, pieces, operand, carry_in, add, capture):
    """``acc += operand + carry_in`` on every ``add`` edge; on a ``capture`` edge ``out``
    takes that sum and ``acc`` is cleared (as reset does). Piece ``j`` does its part ``j``
    edges later than the low piece, with the carry out of piece ``j-1`` registered; the
    operand's upper bits and the controls travel along. ``out`` is complete ``pieces - 1``
    edges after the capture edge and holds until the next capture. Returns ``out``
    (``width`` bits, two's complement)."""
    out = Signal(width, name=f"{name}_out")
    carry, rest, offset = carry_in, operand, 0
    for j, (lo, hi) in enumerate(piece_bounds(width, pieces)):
        if j:
            # the next piece works one edge later: its operand bits, carry and controls too
            carry_d = Signal(name=f"{name}_carry_{j}")
            rest_d = Signal(width - lo, name=f"{name}_operand_{j}")
            add_d = Signal(name=f"{name}_add_{j}")
            capture_d = Signal(name=f"{name}_capture_{j}")
            m.d.sync += [carry_d.eq(carry), rest_d.eq(rest[lo - offset:]), add_d.eq(add),
                         capture_d.eq(capture)]
            carry, rest, offset, add, capture = carry_d, rest_d, lo, add_d, capture_d
        acc = Signal(hi - lo, name=f"{name}_{j}")
        total = Signal(hi - lo + 1, name=f"{name}_{j}_next")
        m.d.comb += total.eq(add_with_carry(acc, rest[lo - offset:hi - offset], carry))
        with m.If(add):
            m.d.sync += acc.eq(total[:hi - lo])
        with m.If(capture):
            m.d.sync += [out[lo:hi].eq(total[:hi - lo]), acc.eq(0)]
        carry = total[hi - lo]
    return out


def pieced_difference(m, name, a, b, width, pieces):
    """``a - b`` (``width`` bits) as ``a + ~b + 1`` in pieces, every piece registered on every
    edge with the carry out of the piece below registered too: with ``a`` and ``b`` held, the
    result is right ``pieces`` edges later. Returns the result register."""
    result = Signal(width, name=f"{name}")
    carry = C(1, 1)
    for j, (lo, hi) in enumerate(piece_bounds(width, pieces)):
        total = add_with_carry(a[lo:hi], (~b)[lo:hi], carry)
        m.d.sync += result[lo:hi].eq(total[:hi - lo])
        if hi < width:
            carry = Signal(name=f"{name}_carry_{j + 1}")
            m.d.sync += carry.eq(total[hi - lo])
    return result
