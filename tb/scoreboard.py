"""In-order, bit-exact checker of the LUT array's result rows against ``gen.golden``.

Each operation queues its expected ``m x n`` tile (from :func:`gen.golden.tile_stream`); every
``o_result`` beat is one row and is compared column by column with the next expected row.
A mismatch names the operation, row, column, expected and received value (plus the seed, so the
run can be repeated). :meth:`Scoreboard.finish` asserts that nothing is left over either way.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from gen.config import LutConfig
from gen.golden import unpack_results

__all__ = ["Scoreboard", "ExpectedOp", "ScoreboardError"]


class ScoreboardError(AssertionError):
    pass


@dataclass
class ExpectedOp:
    index: int               # running operation number of this test
    label: str               # e.g. "int w2 K=9"
    rows: np.ndarray         # m x n expected results
    next_row: int = 0
    cycles: list = field(default_factory=list)   # edge numbers of the received rows


class Scoreboard:
    """Compares result beats, in order, with the queued expectations.

    ``fail_fast`` raises on the first mismatching beat (the test stops right there, which keeps
    the waveform short); otherwise mismatches are collected and :meth:`finish` raises.
    """

    def __init__(self, cfg: LutConfig, log=None, seed=None, fail_fast=True, max_report=20):
        self.cfg = cfg
        self.log = log
        self.seed = seed
        self.fail_fast = fail_fast
        self.max_report = max_report
        self.pending: deque[ExpectedOp] = deque()
        self.done: list[ExpectedOp] = []
        self.dropped: list[ExpectedOp] = []
        self.errors: list[str] = []
        self.unexpected: list[tuple[int, int]] = []
        self.rows_checked = 0
        self._ops = 0

    def expect(self, expected, label=""):
        """Queue one operation's expected ``m x n`` tile; returns its :class:`ExpectedOp`."""
        rows = np.asarray(expected, dtype=np.int64)
        if rows.shape != (self.cfg.m, self.cfg.n):
            raise ValueError(f"expected tile must be {self.cfg.m} x {self.cfg.n}, "
                             f"not {rows.shape}")
        op = ExpectedOp(self._ops, label, rows)
        self._ops += 1
        self.pending.append(op)
        return op

    def drop_pending(self):
        """Forget every operation not fully received (a reset dropped them)."""
        self.dropped.extend(self.pending)
        self.pending.clear()

    @property
    def outstanding_rows(self):
        return sum(self.cfg.m - op.next_row for op in self.pending)

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
        """Sink callback: ``transfer.data`` is one ``o_result`` row, ``transfer.cycle`` its edge."""
        if not self.pending:
            self.unexpected.append((transfer.data, transfer.cycle))
            self._error(f"unexpected result row {transfer.data:#x} at edge {transfer.cycle}: "
                        f"no operation is waiting for results")
            return
        op = self.pending[0]
        r = op.next_row
        got = unpack_results(self.cfg, [transfer.data])[0]
        want = op.rows[r]
        bad = np.flatnonzero(got != want)
        if bad.size:
            shown = ", ".join(f"col {c}: expected {want[c]}, got {got[c]}" for c in bad[:8])
            more = f" (+{bad.size - 8} more columns)" if bad.size > 8 else ""
            self._error(f"op {op.index} ({op.label}) row {r} at edge {transfer.cycle}: "
                        f"{bad.size} of {self.cfg.n} columns differ: {shown}{more}")
        self.rows_checked += 1
        op.cycles.append(transfer.cycle)
        op.next_row += 1
        if op.next_row == self.cfg.m:
            self.done.append(self.pending.popleft())

    def finish(self):
        """Assert that every expected row arrived, none more, and nothing mismatched."""
        problems = []
        if self.errors:
            problems.append(f"{len(self.errors)} mismatching or unexpected rows; first: "
                            f"{self.errors[0]}")
        if self.pending:
            first = self.pending[0]
            problems.append(f"{len(self.pending)} operations still expect "
                            f"{self.outstanding_rows} rows (first: op {first.index} "
                            f"({first.label}), next row {first.next_row})")
        if problems:
            raise ScoreboardError("; ".join(problems) + self._seed_note())
