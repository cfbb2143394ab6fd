"""Running the sweep: one point (emit, key, cache or synthesize), the executor, progress.

The executor is pluggable: any function ``execute(points, run_one)`` that calls the picklable
``run_one(point)`` for every point (anywhere) and yields the results as they complete.
:func:`process_pool` is the local one; a distributed engine can take its place.
"""
from __future__ import annotations

import concurrent.futures as cf
import functools
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..synth.script import build_script
from . import cache as cache_mod
from . import ppa as ppa_mod
from .record import make_record

__all__ = ["Outcome", "SourcesChanged", "run_point", "run_one", "process_pool", "run_sweep",
           "Progress"]


@dataclass
class Outcome:
    """What running one point gave: a record (from the cache or synthesized) or an error."""
    point: object
    key: str | None = None
    record: dict | None = None
    cached: bool = False
    error: str | None = None
    seconds: float = 0.0


class SourcesChanged(RuntimeError):
    """The generator or the flow changed while the sweep ran: the point's key would lie."""


def _check_sources(context, when):
    now = {"generator": cache_mod.generator_hash(), "flow": cache_mod.flow_hash()}
    changed = [k for k, v in now.items() if context.get(k) != v]
    if changed:
        raise SourcesChanged(f"the {' and '.join(changed)} sources changed since the sweep "
                             f"started ({when}); not cached, re-run the sweep")


def run_point(point, context, cache_dir, work_dir, timeout, force=False, ppa=None):
    """Emit ``point``, key it by its netlist, and take its record from the cache or
    synthesize it (and cache it); return ``(key, record, cached)``.

    The generator and flow sources are checked against ``context`` (the sweep's, taken when
    it started) before and after: a source edited during a sweep cannot put figures of the
    new code under the old key (a worker process also keeps the modules it imported).
    ``ppa``: a :func:`gen.dse.ppa.ppa_context`; the point's PPA record (cached apart, under
    ``<cache>/ppa/``) is then the record's ``ppa``; ``cached`` means both came from the cache.
    """
    from ..emit import emit
    _check_sources(context, "before the run")
    work_dir = Path(work_dir)
    tmp = work_dir / f".{point.label}.emit"
    if tmp.exists():
        shutil.rmtree(tmp)
    t0 = time.monotonic()
    cfg = point.config()
    res = emit(cfg, tmp, top=point.top, act=point.emit_act)
    manifest = json.loads(Path(res["manifest"]).read_text())
    name = manifest["name"]
    t_emit = time.monotonic() - t0
    sha = cache_mod.netlist_sha(res["verilog"])
    cache_mod.store_memo(cache_dir, point, context, sha, name)
    key = cache_mod.point_key(sha, build_script(name, depth=point.depth), context)
    record = None if force else cache_mod.load_record(cache_dir, key)
    pkey = ppa_mod.ppa_key(key, ppa) if ppa else None
    prec = ppa_mod.load_ppa(cache_dir, pkey) if ppa and not force else None
    if record is not None and (not ppa or prec is not None):
        shutil.rmtree(tmp)
        return key, (record if not ppa else {**record, "ppa": prec}), True
    workdir = work_dir / f"{point.label}_{key[:10]}"
    if workdir.exists():
        shutil.rmtree(workdir)
    tmp.rename(workdir)
    verilog = workdir / Path(res["verilog"]).name
    if record is None:
        record = make_record(point, verilog, name, workdir, timeout, cfg.derived(),
                             depth=point.depth)
        record["emit_s"] = round(t_emit, 3)
        _check_sources(context, "during the run")
        # cached as soon as it is done: an interrupted sweep keeps its results
        cache_mod.store_record(cache_dir, key, point, context, record)
    if ppa and prec is None:
        prec = ppa_mod.run_ppa(point, verilog, name, manifest.get("pe_module"),
                               workdir / "ppa", ppa, timeout)
        if ppa_mod.ppa_context(ppa["parts"], ppa["clock_ns"], ppa["liberty"]) != ppa:
            raise SourcesChanged("the PPA sources or tools changed since the sweep started; "
                                 "not cached, re-run the sweep")
        ppa_mod.store_ppa(cache_dir, pkey, point.label, ppa, prec)
    # keep the evidence (log, statistics, script, manifest), drop the bulky Verilog
    for p in (verilog, workdir / "yosys" / "design.v"):
        p.unlink(missing_ok=True)
    return key, (record if not ppa else {**record, "ppa": prec}), False


def run_one(point, context, cache_dir, work_dir, timeout, force=False, ppa=None):
    """:func:`run_point` that never raises: an error is reported in the :class:`Outcome`."""
    t0 = time.monotonic()
    try:
        key, record, cached = run_point(point, context, cache_dir, work_dir, timeout, force,
                                        ppa)
        return Outcome(point, key, record, cached, None, time.monotonic() - t0)
    except Exception as e:   # noqa: BLE001 -- reported per point; the sweep goes on
        return Outcome(point, error=f"{type(e).__name__}: {e}", seconds=time.monotonic() - t0)


def process_pool(jobs):
    """An executor running points in ``jobs`` local worker processes."""
    def execute(points, one):
        pool = cf.ProcessPoolExecutor(max_workers=max(1, min(jobs, len(points))))
        try:
            futs = [pool.submit(one, pt) for pt in points]
            for fut in cf.as_completed(futs):
                yield fut.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    return execute


def run_sweep(points, context, cache_dir, work_dir, timeout, *, executor, force=False,
              progress=None, ppa=None):
    """Run ``points`` not found in the cache; return ``({point: (record, cached, key)},
    failures)``.

    ``executor``: see the module docstring. Points the parent finds in the cache (through
    the remembered netlist hash) are not handed to it. ``ppa``: see :func:`run_point`.
    """
    records, todo = {}, []
    for pt in points:
        key, rec = (None, None) if force else cache_mod.lookup(cache_dir, pt, context)
        if rec is not None and ppa:
            prec = ppa_mod.load_ppa(cache_dir, ppa_mod.ppa_key(key, ppa))
            rec = {**rec, "ppa": prec} if prec is not None else None
        if rec is not None:
            records[pt] = (rec, True, key)
        else:
            todo.append(pt)
    # the slowest first (MAC arrays at A16, wide tiles), so the pool does not end on a long tail
    todo.sort(key=lambda p: -(p.m * p.n * p.g * p.a_bits * (3 if p.kind == "mac_dequant" else 1)))
    failures = []
    if progress is not None:
        progress.total, progress.done = len(points), len(records)
        progress.cached = len(records)
    if todo:
        if progress is not None:
            progress.start()
        # absolute paths: a worker of a cluster may run in another directory
        one = functools.partial(run_one, context=context, cache_dir=Path(cache_dir).resolve(),
                                work_dir=Path(work_dir).resolve(), timeout=timeout, force=force,
                                ppa=ppa)
        for out in executor(todo, one):
            if out.error is None:
                records[out.point] = (out.record, out.cached, out.key)
            else:
                failures.append({"label": out.point.label, "error": out.error})
            if progress is not None:
                progress.step(out.point.label, out.seconds, out.error is None, out.cached)
        if progress is not None:
            progress.finish()
    return records, failures


# -- progress ----------------------------------------------------------------------------------
def _fmt_s(s):
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


class Progress:
    """A text progress bar on stderr: done/total, cached, failed, elapsed and ETA."""

    def __init__(self, total, cached, stream=None, width=28):
        self.total, self.done, self.cached, self.failed = total, cached, cached, 0
        self.computed = 0
        self.t0 = time.monotonic()
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.width = width

    def line(self, last=""):
        frac = self.done / self.total if self.total else 1.0
        fill = int(round(frac * self.width))
        el = time.monotonic() - self.t0
        todo = self.total - self.done
        if todo == 0:
            eta = "0:00"
        elif self.computed:
            eta = _fmt_s(el / self.computed * todo)
        else:
            eta = "?"
        s = (f"dse [{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.total} points"
             f" ({self.cached} cached" + (f", {self.failed} FAILED" if self.failed else "")
             + f") elapsed {_fmt_s(el)} eta {eta}")
        return s + (f"  {last}" if last else "")

    def start(self):
        self._emit(self.line("starting"), final=not self.tty)

    def step(self, label, seconds, ok, cached=False):
        self.done += 1
        self.computed += 1
        if not ok:
            self.failed += 1
        if cached:
            self.cached += 1
        state = "cached" if cached else ("ok" if ok else "FAILED")
        self._emit(self.line(f"{state} {label} ({seconds:.1f} s)"), final=not self.tty)

    def finish(self):
        if self.tty:
            self._emit(self.line(), final=True)

    def _emit(self, text, final):
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
