"""gen.dse.dask_backend: the sweep's points as Dask tasks.

* four real points (emit + Yosys) on a 2-worker LocalCluster give the same CSV as the process
  pool, apart from the timing column; re-run with everything cached, nothing is submitted;
* a worker killed in the middle of a point loses only that point: it starts again on another
  worker and every point completes;
* a worker whose Yosys is missing refuses the points, naming itself and the tool; the points go
  to the worker that passed its check, and with no such worker the sweep stops;
* the CLI's Dask options: bad values exit 2.
"""
from __future__ import annotations

import functools
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from gen.dse import Point, key_context, process_pool, run_sweep  # noqa: E402
from gen.dse.cli import parse_args  # noqa: E402
from gen.dse.dask_backend import ToolchainError, dask_executor  # noqa: E402
from gen.dse.report import CSV_FIELDS, make_row, write_csv  # noqa: E402
from gen.dse.run import Outcome  # noqa: E402

TIMING = {"synth_wall_s"}        # the only CSV column that may differ between two runs


# -- stand-in points (module level: the workers import them from here) --------------------------
@dataclass(frozen=True)
class FakePoint:
    n: int

    @property
    def label(self):
        return f"fake{self.n}"


def _slow_point(marks, seconds, pt):
    """Leaves a mark ``<label>.<pid>`` when it starts, sleeps, returns figures of ``pt``."""
    Path(marks, f"{pt.label}.{os.getpid()}").touch()
    t0 = time.monotonic()
    time.sleep(seconds)
    return Outcome(pt, f"key{pt.n}", {"value": pt.n * pt.n + 1}, False, None,
                   time.monotonic() - t0)


def _never(points, one):
    raise AssertionError(f"the executor was called for {len(list(points))} points")
    yield      # a generator, like a real executor


# -- the same figures as the process pool --------------------------------------------------------
@pytest.mark.synth
def test_same_csv_as_the_process_pool(tmp_path):
    # the smallest points of each kind (a few seconds of emit + Yosys each)
    pts = [Point("lut", 1, 4, 2, 1, 4, True, 16), Point("lut", 2, 4, 2, 1, 4, False, 16),
           Point("mac_direct", 1, 4, 2, 1, 4, True, 16),
           Point("mac_dequant", 1, 4, 2, 1, 4, True, 16)]
    ctx = key_context()

    def sweep(name, executor):
        recs, failures = run_sweep(pts, ctx, tmp_path / name / "cache", tmp_path / name / "work",
                                   600, executor=executor)
        assert failures == []
        rows = [make_row(p, {"tile"}, *recs[p]) for p in pts]
        write_csv(tmp_path / name / "points.csv", rows)
        lines = (tmp_path / name / "points.csv").read_text().splitlines()
        keep = [i for i, f in enumerate(CSV_FIELDS) if f not in TIMING]
        return recs, [[line.split(",")[i] for i in keep] for line in lines]

    _, pool_csv = sweep("pool", process_pool(2))
    dask = dask_executor(workers=2)
    recs, dask_csv = sweep("dask", dask)
    assert dask.stats["submitted"] == 4 and len(dask.stats["workers"]) == 2
    assert not any(cached for _, cached, _ in recs.values())
    assert dask_csv == pool_csv
    assert len(pool_csv) == 5 and "ge" in pool_csv[0]

    # everything cached: the parent resolves every point, the executor is never called
    t0 = time.monotonic()
    again, failures = run_sweep(pts, ctx, tmp_path / "dask" / "cache", tmp_path / "dask" / "work",
                                600, executor=_never)
    assert time.monotonic() - t0 < 10
    assert failures == [] and all(cached for _, cached, _ in again.values())
    assert {p: r for p, (r, _, _) in again.items()} == {p: r for p, (r, _, _) in recs.items()}


# -- a worker killed mid-point -------------------------------------------------------------------
def test_killed_worker_loses_only_its_point(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    points = [FakePoint(i) for i in range(5)]
    victim = points[1].label
    killed = []

    def killer():
        # the victim point's first start: kill the worker process that runs it
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for m in marks.glob(f"{victim}.*"):
                os.kill(int(m.suffix[1:]), signal.SIGKILL)
                killed.append(int(m.suffix[1:]))
                break
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    execute = dask_executor(workers=2, retries=0)       # a lost worker is not an exception
    outs = list(execute(points, functools.partial(_slow_point, marks, 1.5)))
    t.join()
    assert len(killed) == 1
    assert execute.stats["submitted"] == len(points)
    assert sorted((o.point.n, o.error, o.record["value"]) for o in outs) == \
        [(p.n, None, p.n * p.n + 1) for p in points]
    starts = sorted(m.name for m in marks.iterdir() if m.name.startswith(f"{victim}."))
    assert len(starts) == 2 and f"{victim}.{killed[0]}" in starts    # started again elsewhere
    others = [m.name for m in marks.iterdir() if not m.name.startswith(f"{victim}.")]
    assert len(others) == len(points) - 1                            # each ran exactly once


# -- a worker without its tools ------------------------------------------------------------------
MISSING = "/nonexistent/lutcore-test-yosys"


def test_worker_without_yosys_refuses(tmp_path):
    from distributed import Nanny, Scheduler, SpecCluster
    opts = {"nthreads": 1, "memory_limit": 0, "silence_logs": 40}
    cluster = SpecCluster(
        workers={"good": {"cls": Nanny, "options": opts},
                 "bad": {"cls": Nanny, "options": {**opts, "env": {"LUTCORE_YOSYS": MISSING}}}},
        scheduler={"cls": Scheduler, "options": {"dashboard_address": "127.0.0.1:0"}},
        silence_logs=40)
    messages = []

    class Stream:
        def write(self, s):
            messages.append(s)

        def flush(self):
            pass

    try:
        # no retries: a point sent to the bad worker would fail instead of being retried
        execute = dask_executor(cluster.scheduler_address, retries=0, stream=Stream())
        points = [FakePoint(i) for i in range(4)]
        outs = list(execute(points, functools.partial(_slow_point, tmp_path, 0.2)))
        addr = {spec: w.worker_address for spec, w in cluster.workers.items()}
    finally:
        cluster.close()
    assert sorted(o.point.n for o in outs if o.error is None) == [0, 1, 2, 3]
    assert execute.stats["workers"] == [addr["good"]]
    ran = {m.name.split(".")[1] for m in tmp_path.iterdir()}
    assert len(ran) == 1                                   # all on the one good worker
    msg = execute.stats["refused"][addr["bad"]]
    assert list(execute.stats["refused"]) == [addr["bad"]]
    assert addr["bad"] in msg and f"$LUTCORE_YOSYS={MISSING}" in msg and "not found" in msg
    assert any(msg in m for m in messages)


def test_no_capable_worker_stops_the_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("LUTCORE_YOSYS", MISSING)      # the local cluster's workers inherit it
    execute = dask_executor(workers=1)
    with pytest.raises(ToolchainError, match=r"dask worker tcp://\S+ cannot run sweep points: "
                                             r"yosys \(\$LUTCORE_YOSYS=.*not found"):
        list(execute([FakePoint(0)], functools.partial(_slow_point, tmp_path, 0.0)))
    assert list(tmp_path.iterdir()) == []


# -- the CLI -------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, says", [
    (["--scheduler", "localhost:8786"], "--scheduler must be an address like tcp://HOST:PORT"),
    (["--backend", "pool", "--scheduler", "tcp://h:1"], "--scheduler needs --backend dask"),
    (["--scheduler", "tcp://h:1", "-j", "2"], "--workers sizes a local cluster"),
    (["--workers", "0"], "--workers must be at least 1, not 0"),
])
def test_bad_dask_options_exit_2(argv, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args([*argv, "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_scheduler_from_the_environment(tmp_path):
    import dask
    # what $DASK_SCHEDULER_ADDRESS sets when dask is imported
    with dask.config.set({"scheduler-address": "tcp://10.0.0.1:8786"}):
        args = parse_args(["--out", str(tmp_path / "o")])
    assert (args.backend, args.scheduler) == ("dask", "tcp://10.0.0.1:8786")
    args = parse_args(["--backend", "pool", "-j", "3", "--out", str(tmp_path / "o")])
    assert (args.backend, args.jobs) == ("pool", 3)


def test_scheduler_without_workers(tmp_path):
    from distributed import Scheduler, SpecCluster
    cluster = SpecCluster(workers={}, silence_logs=40,
                          scheduler={"cls": Scheduler,
                                     "options": {"dashboard_address": "127.0.0.1:0"}})
    try:
        execute = dask_executor(cluster.scheduler_address, wait_s=1)
        with pytest.raises(ToolchainError, match="no Dask worker joined the scheduler at "
                                                 + cluster.scheduler_address):
            list(execute([FakePoint(0)], functools.partial(_slow_point, tmp_path, 0.0)))
    finally:
        cluster.close()
