"""In-order, exact checker of a DUT's output beats against expected values from a model.

Each transaction (one operation of the DUT) queues the beats it must produce, in the form the
model gives them (for the LUT array: one ``m x n`` tile from :func:`gen.golden.tile_stream`,
i.e. ``m`` rows of ``n`` results). Every received beat is decoded with ``decode`` (raw payload
int -> the model's form; for the LUT array :func:`gen.golden.unpack_results` of one row) and
compared element by element with the next expected beat. A mismatch names the transaction,
beat, element, expected and received value (plus the seed, so the run can be repeated).
:meth:`Scoreboard.finish` asserts that nothing is left over either way. Nothing here knows the
design: the model (expected beats and ``decode``) comes from the caller.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Scoreboard", "ExpectedOp", "ScoreboardError"]


class ScoreboardError(AssertionError):
    pass


@dataclass
class ExpectedOp:
    index: int               # running transaction number of this test
    label: str               # e.g. "int w2 K=9"
    beats: list              # the expected beats, in order, in the model's form
    next_beat: int = 0
    cycles: list = field(default_factory=list)   # edge numbers of the received beats


class Scoreboard:
    """Compares received beats, in order, with the queued expectations.

    ``decode(raw_int)`` turns a payload into the model's form (default: the int itself); a
    beat matches when every element of ``np.asarray(decoded)`` equals the expected one.
    ``fail_fast`` raises on the first mismatching beat (the test stops right there, which keeps
    the waveform short); otherwise mismatches are collected and :meth:`finish` raises.
    """

    def __init__(self, decode=None, log=None, seed=None, fail_fast=True, max_report=20,
                 beat_shape=None):
        self.decode = decode if decode is not None else (lambda raw: raw)
        self.beat_shape = beat_shape      # checked on expect() when given (catches model slips)
        self.log = log
        self.seed = seed
        self.fail_fast = fail_fast
        self.max_report = max_report
        self.pending: deque[ExpectedOp] = deque()
        self.done: list[ExpectedOp] = []
        self.dropped: list[ExpectedOp] = []
        self.errors: list[str] = []
        self.unexpected: list[tuple[int, int]] = []
        self.beats_checked = 0
        self._ops = 0

    def expect(self, beats, label=""):
        """Queue one transaction's expected beats (a sequence, e.g. the rows of a 2-D array);
        returns its :class:`ExpectedOp`."""
        beats = [np.asarray(b) for b in beats]
        if not beats:
            raise ValueError("a transaction must expect at least one beat")
        if self.beat_shape is not None:
            for b in beats:
                if b.shape != tuple(self.beat_shape):
                    raise ValueError(f"expected beats must have shape {tuple(self.beat_shape)},"
                                     f" not {b.shape}")
        op = ExpectedOp(self._ops, label, beats)
        self._ops += 1
        self.pending.append(op)
        return op

    def drop_pending(self):
        """Forget every transaction not fully received (a reset dropped them)."""
        self.dropped.extend(self.pending)
        self.pending.clear()

    @property
    def outstanding(self):
        """Beats still expected."""
        return sum(len(op.beats) - op.next_beat for op in self.pending)

    def idle(self):
        return not self.pending

    def _seed_note(self):
        return f" [seed {self.seed}]" if self.seed is not None else ""

    def _error(self, msg):
        self.errors.append(msg)
        if self.log is not None and len(self.errors) <= self.max_report:
            self.log.error("%s", msg)
        if self.fail_fast:
            raise ScoreboardError(msg + self._seed_note())

    def on_beat(self, transfer):
        """Sink callback: ``transfer.data`` is one raw beat, ``transfer.cycle`` its edge."""
        if not self.pending:
            self.unexpected.append((transfer.data, transfer.cycle))
            self._error(f"unexpected beat {transfer.data:#x} at edge {transfer.cycle}: "
                        f"no transaction is waiting for one")
            return
        op = self.pending[0]
        r = op.next_beat
        got = np.asarray(self.decode(transfer.data))
        want = op.beats[r]
        bad = np.flatnonzero(got != want)
        if bad.size:
            g, w = got.reshape(-1), want.reshape(-1)
            shown = ", ".join(f"[{c}]: expected {w[c]}, got {g[c]}" for c in bad[:8])
            more = f" (+{bad.size - 8} more)" if bad.size > 8 else ""
            self._error(f"op {op.index} ({op.label}) beat {r} at edge {transfer.cycle}: "
                        f"{bad.size} of {w.size} elements differ: {shown}{more}")
        self.beats_checked += 1
        op.cycles.append(transfer.cycle)
        op.next_beat += 1
        if op.next_beat == len(op.beats):
            self.done.append(self.pending.popleft())

    def finish(self):
        """Assert that every expected beat arrived, none more, and nothing mismatched."""
        problems = []
        if self.errors:
            problems.append(f"{len(self.errors)} mismatching or unexpected beats; first: "
                            f"{self.errors[0]}")
        if self.pending:
            first = self.pending[0]
            problems.append(f"{len(self.pending)} transactions still expect "
                            f"{self.outstanding} beats (first: op {first.index} "
                            f"({first.label}), next beat {first.next_beat})")
        if problems:
            raise ScoreboardError("; ".join(problems) + self._seed_note())
