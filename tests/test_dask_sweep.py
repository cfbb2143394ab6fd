"""gen.dask_sweep: the sweep on a Dask cluster.

* four real points (emit + Yosys) on a 2-worker LocalCluster give the same CSV as the process
  pool, apart from the timing column;
* a worker killed in the middle of a point loses only that point: it is run again elsewhere and
  every point completes; a re-run with everything cached submits nothing and starts no cluster;
* a worker whose Yosys is missing refuses the points, naming itself and the tool; the points go
  to the worker that passed its check, and with no such worker the sweep stops.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from gen import dask_sweep
from gen.dask_sweep import DirCache, ToolchainError, run_points

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]


def _dse():
    """scripts/dse.py as a module (loaded once per process: the client's and each worker's)."""
    mod = sys.modules.get("lutcore_dse")
    if mod is None:
        spec = importlib.util.spec_from_file_location("lutcore_dse", ROOT / "scripts" / "dse.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    return mod


# -- run_one callables (module level: the workers import them from here) -----------------------
def _synth_point(workroot, expected, fields):
    """One real point; ``fields`` are a dse.Point's fields (the worker builds its own Point)."""
    dse = _dse()
    pt = dse.Point(*fields)
    return dse.run_point(pt, Path(workroot) / pt.label, 600, expected)


def _slow_point(marks, seconds, p):
    """A stand-in point: leaves a mark ``<p>.<pid>`` when it starts, sleeps, returns figures."""
    Path(marks, f"{p}.{os.getpid()}").touch()
    time.sleep(seconds)
    return {"point": p, "value": p * p + 1}


def _never(p):
    raise AssertionError(f"point {p} was run, but every point is cached")


# -- the same figures as the process pool ------------------------------------------------------
@pytest.mark.synth
def test_same_csv_as_the_process_pool(tmp_path):
    dse = _dse()
    # the smallest points of each kind (a few seconds of emit + Yosys each)
    pts = [dse.Point("lut", 1, 4, 2, 1, 4, True, 16), dse.Point("lut", 2, 4, 2, 1, 4, False, 16),
           dse.Point("mac_direct", 1, 4, 2, 1, 4, True, 16),
           dse.Point("mac_dequant", 1, 4, 2, 1, 4, True, 16)]
    ctx = dse.key_context()
    keys = {p: dse.point_key(p, ctx) for p in pts}
    expected = {"generator": ctx["generator"], "flow": ctx["flow"]}
    fam = {p: {"tile"} for p in pts}

    def csv_of(records, name):
        rows = [dse.make_row(p, fam[p], records[p], keys[p], False) for p in pts]
        dse.write_csv(tmp_path / name, rows)
        lines = (tmp_path / name).read_text().splitlines()
        head = lines[0].split(",")
        timing = head.index("synth_wall_s")
        return [[c for i, c in enumerate(line.split(",")) if i != timing] for line in lines]

    with cf.ProcessPoolExecutor(max_workers=2) as pool:
        futs = [pool.submit(dse._worker, p, tmp_path / "pool" / p.label, 600, expected)
                for p in pts]
        pool_recs = {}
        for f in futs:
            p, rec, err, _ = f.result()
            assert err is None, err
            pool_recs[p] = rec

    fields = {dataclasses.astuple(p): p for p in pts}
    run = run_points(list(fields), functools.partial(_synth_point, tmp_path / "dask", expected),
                     key=lambda f: keys[fields[f]], cache=DirCache(tmp_path / "cache", ctx),
                     workers=2, label=lambda f: fields[f].label)
    assert run.failures == {} and run.submitted == 4
    assert len({o.worker for o in run.outcomes.values()}) == 2     # both workers ran points
    dask_recs = {fields[f]: o.record for f, o in run.outcomes.items()}
    assert csv_of(dask_recs, "dask.csv") == csv_of(pool_recs, "pool.csv")
    # the workers stored each result under its key, as the pool sweep's cache does
    for p in pts:
        data = json.loads((tmp_path / "cache" / f"{keys[p]}.json").read_text())
        assert data["key"] == keys[p] and data["point"] == p.label
        assert data["record"]["total"] == pool_recs[p]["total"]


# -- a worker killed mid-point -----------------------------------------------------------------
def test_killed_worker_loses_only_its_point(tmp_path, monkeypatch):
    marks = tmp_path / "marks"
    marks.mkdir()
    victim, points = 1, list(range(5))
    killed = []

    def killer():
        # the victim point's first start: kill the worker process that runs it
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for m in marks.glob(f"{victim}.*"):
                pid = int(m.suffix[1:])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    run = run_points(points, functools.partial(_slow_point, marks, 2.0), key=lambda p: f"pt{p}",
                     cache=tmp_path / "cache", workers=2, retries=0)
    t.join()
    assert len(killed) == 1
    assert run.submitted == len(points) and run.failures == {}
    assert {p: o.record for p, o in run.outcomes.items()} == \
        {p: {"point": p, "value": p * p + 1} for p in points}
    starts = sorted(m.name for m in marks.iterdir() if m.name.startswith(f"{victim}."))
    assert len(starts) == 2 and f"{victim}.{killed[0]}" in starts    # started again elsewhere
    assert len(list((tmp_path / "cache").glob("pt*.json"))) == len(points)

    # everything cached: nothing is submitted, no cluster is started or reached
    monkeypatch.setattr(dask_sweep, "_open", lambda *a: pytest.fail("opened a cluster"))
    t0 = time.monotonic()
    again = run_points(points, _never, key=lambda p: f"pt{p}", cache=tmp_path / "cache",
                       scheduler="tcp://192.0.2.1:8786")
    assert time.monotonic() - t0 < 10
    assert again.submitted == 0
    assert all(o.cached for o in again.outcomes.values())
    assert {p: o.record for p, o in again.outcomes.items()} == \
        {p: o.record for p, o in run.outcomes.items()}


# -- a worker without its tools ------------------------------------------------------------------
MISSING = "/nonexistent/lutcore-test-yosys"


def test_worker_without_yosys_refuses(tmp_path, capsys):
    from distributed import Nanny, Scheduler, SpecCluster
    opts = {"nthreads": 1, "memory_limit": 0, "silence_logs": 40}
    cluster = SpecCluster(
        workers={"good": {"cls": Nanny, "options": opts},
                 "bad": {"cls": Nanny, "options": {**opts, "env": {"LUTCORE_YOSYS": MISSING}}}},
        scheduler={"cls": Scheduler, "options": {"dashboard_address": None}},
        silence_logs=40)
    try:
        run = run_points(range(4), functools.partial(_slow_point, tmp_path, 0.2),
                         key=lambda p: f"pt{p}", cache=tmp_path / "cache",
                         scheduler=cluster.scheduler_address)
        addr = {spec: w.worker_address for spec, w in cluster.workers.items()}
    finally:
        cluster.close()
    assert run.failures == {}
    assert {o.worker for o in run.outcomes.values()} == {addr["good"]}
    assert list(run.refused) == [addr["bad"]]
    msg = run.refused[addr["bad"]]
    assert addr["bad"] in msg and f"$LUTCORE_YOSYS={MISSING}" in msg and "not found" in msg
    assert msg in capsys.readouterr().err


def test_no_capable_worker_stops_the_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("LUTCORE_YOSYS", MISSING)      # the local cluster's workers inherit it
    with pytest.raises(ToolchainError, match=r"dask worker tcp://\S+ cannot run sweep points: "
                                             r"yosys \(\$LUTCORE_YOSYS=.*not found"):
        run_points(range(2), _never, key=lambda p: f"pt{p}", cache=tmp_path / "cache",
                   workers=1)
    assert not (tmp_path / "cache").exists()
