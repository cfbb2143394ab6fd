"""The register stages of ``pipeline`` (docs/ppa.md, *Pipelining*; the latency rule in
docs/interface.md), part of :class:`gen.config.LutConfig`: which adders are cut into pieces
and how many cycles each level adds between an operation's last weight beat and its results.
"""
from __future__ import annotations

__all__ = ["PipelineStages"]


class PipelineStages:
    """Mixin of :class:`gen.config.LutConfig`: the stage counts and piece widths of every
    ``pipeline`` level, read by the hardware, the golden streams and the testbenches."""

    @property
    def pe_stages(self):
        """Cycles from a weight beat to the PE output register write it causes, beyond the
        first: ``pipeline`` (the lookup register, the partial register, the accumulator's
        high half one cycle behind its low half)."""
        return self.pipeline

    @property
    def acc_low_width(self):
        """Bits of the accumulator's low half with ``pipeline`` 3 (the high half adds one
        cycle later, with the registered carry out of these): ``ceil(acc_width / 2)``."""
        return (self.acc_width + 1) // 2

    @staticmethod
    def _pieces(width, most):
        """How many pieces of ``ceil(width / most)`` bits make up ``width`` bits."""
        return -(-width // -(-width // most))

    @property
    def correction_piece_width(self):
        """Bits of each piece of the output stage's ``acc + corr`` adder but the top one
        (which takes the rest of ``acc`` and ``corr`` with their signs): ``ceil(acc_width /
        4)`` with ``pipeline`` 3, else ``acc_width`` (one adder)."""
        return -(-self.acc_width // 4) if self.pipeline >= 3 else self.acc_width

    @property
    def correction_pieces(self):
        """Pieces of the correction adder, one register stage each (``pipeline`` 3: 4 for
        ``acc_width >= 10``), else 1."""
        return -(-self.acc_width // self.correction_piece_width)

    @property
    def sum_pieces(self):
        """Pieces (one edge each) of the activation sum's adder (``pipeline`` 3: up to 3 of
        ``ceil(sum_width / 3)`` bits), else 1."""
        return self._pieces(self.sum_width, 3) if self.pipeline >= 3 else 1

    @property
    def term_pieces(self):
        """Pieces (one edge each) of the correction term's subtraction (``pipeline`` 3: up to
        3 of ``ceil(correction_width / 3)`` bits), else 1."""
        return self._pieces(self.correction_width, 3) if self.pipeline >= 3 else 1

    @property
    def drain_delay(self):
        """Edges from an operation's capture to the output drain's load: ``pe_stages`` (the PE
        output registers are written then); with ``pipeline`` 3 at least ``sum_pieces +
        term_pieces + 1`` (the pieced activation sum, the shift, the pieced correction term)."""
        if self.pipeline >= 3:
            return max(self.pe_stages, self.sum_pieces + self.term_pieces + 1)
        return self.pe_stages

    @property
    def out_stages(self):
        """Registers between the output drain and ``o_result``: none without pipelining, the
        result register (``pipeline`` 1, 2); with ``pipeline`` 3 also the selected
        accumulator row before the correction adder and one register per correction piece but
        the top one (``1 + correction_pieces``)."""
        return 1 + self.correction_pieces if self.pipeline >= 3 else 1 if self.pipeline else 0

    @property
    def pipeline_latency(self):
        """Cycles ``pipeline`` adds between an operation's last weight beat and each of its
        result beats: ``drain_delay + out_stages`` (0 without pipelining)."""
        return self.drain_delay + self.out_stages
