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

import hw.lut_pe
from hw.lookup import TableLookup

__all__ = ["mutant", "MUTANTS"]


class _NoNegate(TableLookup):
    """Symmetric lookup that forgets the negation: ``T[idx] = +T[~idx]`` for index MSB = 1."""

    def _sign(self, selected, msb):
        return selected


class _NoInvert(TableLookup):
    """Symmetric lookup that forgets to invert the low index bits: ``-T[idx & low]``."""

    def _select(self, low, msb):
        return low


_CLASSES = {"no_negate": _NoNegate, "no_invert": _NoInvert}

#: the names :func:`mutant` accepts
MUTANTS = tuple(_CLASSES)


@contextlib.contextmanager
def mutant(name):
    """Within the block, every PE built uses the faulty lookup ``name``; yields its class.

    Elaboration is lazy: emit, or construct the ``Simulator``, inside the block.
    """
    if name not in _CLASSES:
        raise ValueError(f"mutant must be one of {', '.join(MUTANTS)}, not {name!r}")
    saved = hw.lut_pe.TableLookup
    hw.lut_pe.TableLookup = _CLASSES[name]
    try:
        yield _CLASSES[name]
    finally:
        hw.lut_pe.TableLookup = saved
