"""Deliberate faults of the hardware, for tests only: each must make the testbenches fail.

A mutant is a subclass of a hardware block that overrides one step. :func:`mutant` installs it
where the hardware looks the block up, so everything built inside the ``with`` block --
``gen.emit.emit(...)`` writing Verilog, or an amaranth.sim ``Simulator`` elaborating a design --
carries the fault; nothing of it reaches the product API, the manifest or the CLIs::

    with mutant("no_negate"):
        paths = emit(cfg, out_dir)
"""
from __future__ import annotations

import contextlib

from amaranth import C

import hw.lut_pe
import hw.pieces
from hw.accumulator import BitSerialAccumulator
from hw.lookup import TableLookup

__all__ = ["mutant", "MUTANTS", "PIPELINE_MUTANTS"]


class _NoNegate(TableLookup):
    """Symmetric lookup that forgets the negation: ``T[idx] = +T[~idx]`` for index MSB = 1."""

    def _sign(self, selected, msb):
        return selected


class _NoInvert(TableLookup):
    """Symmetric lookup that forgets to invert the low index bits: ``-T[idx & low]``."""

    def _select(self, low, msb):
        return low


class _NoCarry(BitSerialAccumulator):
    """``pipeline`` 3 accumulator that drops the carry from its low half into its high half."""

    def _high_carry(self, m, carry_out):
        return C(0, 1)


class _EarlyCarry(BitSerialAccumulator):
    """``pipeline`` 3 accumulator that adds the low half's carry without its register: the
    high half gets the carry of the next add, one cycle early."""

    def _high_carry(self, m, carry_out):
        return carry_out


def _add_without_carry(a, b, carry):
    """``hw.pieces.add_with_carry`` that forgets the carry from the piece below."""
    return a + b


_CLASSES = {"no_negate": _NoNegate, "no_invert": _NoInvert}
#: faults of the ``pipeline`` 3 accumulator (a build without it does not contain them)
_PIPELINE_CLASSES = {"no_carry": _NoCarry, "early_carry": _EarlyCarry,
                     "pieces_no_carry": _add_without_carry}

#: the lookup faults :func:`mutant` accepts (every build contains the lookup)
MUTANTS = tuple(_CLASSES)
#: the faults of the split accumulator and of the pieced adders (hw.pieces) :func:`mutant`
#: accepts (only a ``pipeline`` 3 build has them)
PIPELINE_MUTANTS = tuple(_PIPELINE_CLASSES)


@contextlib.contextmanager
def mutant(name):
    """Within the block, every PE built uses the faulty lookup (or, for the names of
    :data:`PIPELINE_MUTANTS`, the faulty accumulator) ``name``; yields its class.

    Elaboration is lazy: emit, or construct the ``Simulator``, inside the block.
    """
    module = hw.lut_pe
    if name in _CLASSES:
        attr, cls = "TableLookup", _CLASSES[name]
    elif name == "pieces_no_carry":
        module, attr, cls = hw.pieces, "add_with_carry", _PIPELINE_CLASSES[name]
    elif name in _PIPELINE_CLASSES:
        attr, cls = "BitSerialAccumulator", _PIPELINE_CLASSES[name]
    else:
        raise ValueError(f"mutant must be one of {', '.join(MUTANTS + PIPELINE_MUTANTS)}, "
                         f"not {name!r}")
    saved = getattr(module, attr)
    setattr(module, attr, cls)
    try:
        yield cls
    finally:
        setattr(module, attr, saved)
