"""Build and run the cocotb tests of one emitted LUT array on Icarus or Verilator.

``run_sim(cfg, sim, workdir)`` emits the design with :func:`gen.emit.emit`, builds it with
``cocotb_tools.runner``, runs ``tb.test_lut_array`` and returns the measured speed (simulated
cycles per wall-second, also written to ``<build dir>/speed.json``). A failing simulation raises
:class:`SimulationFailed`, whose message names the failing tests, the seed, the log and, with
waves on, the waveform file.

Usable from the command line too::

    python -m tb.runner --sim verilator --waves --m 2 --n 4
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

from gen.config import LutConfig
from gen.tools import apply_tool_env

__all__ = ["run_sim", "SimulationFailed", "SIMULATORS", "VERILATOR_WARNING_FLAGS",
           "CLOCK_PERIOD_NS"]

SIMULATORS = ("icarus", "verilator")
CLOCK_PERIOD_NS = 10
REPO = Path(__file__).resolve().parent.parent
TEST_MODULE = "tb.test_lut_array"
#: cocotb module per gen.emit top (the MAC baselines run the array's tests)
TEST_MODULES = {"array": TEST_MODULE, "engine": "tb.test_engine",
                "mac_dequant": TEST_MODULE, "mac_direct": TEST_MODULE}

#: Verilator warnings switched off for the Amaranth-emitted Verilog. Each one was seen on the
#: real emitted code (``verilator --lint-only`` over the test matrix) and is harmless there;
#: every other warning still stops the build, so new kinds of warnings get noticed.
VERILATOR_WARNING_FLAGS = (
    # Amaranth widens operands by context, e.g. `$signed(\$2) + $signed(entry)` (11-bit entry
    # into a 14-bit sum) or `group == 12'd...` with an 11-bit `group`: Verilog extends them as
    # intended (sign-extends signed ones), Verilator flags every one.
    "-Wno-WIDTHEXPAND",
    # `assign last_plane = ! plane;` on a multi-bit counter: Amaranth's `~x.any()` / `x == 0`
    # written as a logical NOT, which is a reduction in Verilog and exactly what is meant.
    "-Wno-WIDTHTRUNC",
    # `casez (out_row)` over a row counter whose range (0..m-1) is not a power of two (m = 1,
    # m = 3): Amaranth assigns the default before the case, so the uncovered codes keep it.
    "-Wno-CASEINCOMPLETE",
)


#: Icarus compiles the emitted Verilog as Verilog-2005 (it comes after the runner's -g2012, so
#: it wins). Yosys' Verilog starts every `always @*` block at time 0 through a register with a
#: declaration initializer; in Verilog-2005 that initializer is an event at time 0, in
#: SystemVerilog mode (-g2012) Icarus applies it silently before time 0, so a combinational
#: block whose inputs never change (e.g. a row mux of a 1-row tile whose first result equals
#: the initial value) keeps X. Seen: m = 1, o_result payload X while valid.
ICARUS_FLAGS = ("-g2005",)


class SimulationFailed(AssertionError):
    """The cocotb tests failed (or the simulator died); the message says where to look."""


@contextlib.contextmanager
def _environ(**values):
    """Set (str) or remove (None) environment variables for the duration of the block."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _env_bool(name):
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")


def _results(path: Path):
    """(tests, failed, [(name, message)], sim_time_ns, wall_s) from a cocotb results XML."""
    root = ElementTree.parse(path).getroot()
    tests = failed = 0
    failures, sim_ns, wall = [], 0.0, 0.0
    for case in root.iter("testcase"):
        tests += 1
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        unit = props.get("sim_time_unit", "ns")
        scale = {"fs": 1e-6, "ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}.get(unit, 1.0)
        sim_ns += float(props.get("sim_time_duration", 0) or 0) * scale
        wall += float(case.get("time", 0) or 0)
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            failed += 1
            failures.append((case.get("name"), (bad.get("message") or bad.text or "").strip()))
    return tests, failed, failures, sim_ns, wall


def _waves_path(sim, build_dir: Path, test_dir: Path, top):
    if sim == "icarus":
        return build_dir / f"{top}.fst"
    return test_dir / "dump.fst"


def run_sim(cfg: LutConfig, sim: str, workdir, waves=False, testcase=None,
            seed=None, effort=None, build_args=(), top="array", test_module=None,
            extra_env=None, verilog=None, manifest=None):
    """Emit ``cfg``, build it for ``sim`` and run the cocotb tests of ``tb.test_lut_array``.

    ``top``: what to emit (``gen.emit`` tops; ``engine`` runs ``tb.test_engine`` by default).
    ``test_module`` overrides the cocotb module; ``extra_env`` (dict) is set for the run.

    ``verilog`` and ``manifest`` (both or neither): simulate that emitted design instead of
    emitting ``cfg`` (its ``name`` is the top module). ``waves`` (or ``WAVES=1`` in the
    environment) dumps FST waveforms. ``testcase``: one name or a list (default
    all). ``seed``: the testbench seed (default ``LUTCORE_SEED`` or a fresh random one).
    ``effort``: ``quick`` / ``full`` (default ``LUTCORE_EFFORT`` or quick).

    Returns a dict with the speed (``cycles_per_s``) and run facts, also written to
    ``<workdir>/sim_<sim>/speed.json``. Raises :class:`SimulationFailed` on any failure.
    """
    from cocotb_tools.runner import get_runner
    from gen.emit import emit

    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    apply_tool_env()
    waves = bool(waves) or _env_bool("WAVES")
    if seed is None:
        env_seed = os.environ.get("LUTCORE_SEED", "").strip()
        seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1 << 31)
    effort = effort or os.environ.get("LUTCORE_EFFORT", "").strip() or "quick"
    workdir = Path(workdir).resolve()
    rtl_dir = workdir / "rtl"
    build_dir = workdir / f"sim_{sim}"
    test_dir = build_dir

    t0 = time.perf_counter()
    if (verilog is None) != (manifest is None):
        raise ValueError("verilog and manifest must be given together")
    if verilog is None:
        paths = emit(cfg, rtl_dir, top=top)
        verilog, manifest = paths["verilog"], paths["manifest"]
    verilog, manifest = Path(verilog).resolve(), Path(manifest).resolve()
    test_module = test_module or TEST_MODULES.get(top, TEST_MODULE)
    top_module = json.loads(manifest.read_text())["name"]
    t_emit = time.perf_counter() - t0

    args = list(build_args)
    if sim == "verilator":
        args = [*VERILATOR_WARNING_FLAGS, *args]
        if waves:
            args.append("--trace-fst")
    else:
        args = [*ICARUS_FLAGS, *args]
    sources = [verilog]
    build_waves = waves
    if waves and sim == "icarus":
        # cocotb's own dump module declares a SystemVerilog `string`, which -g2005 refuses:
        # dump through a Verilog-2005 module of ours instead (vvp still gets -fst from test()).
        build_dir.mkdir(parents=True, exist_ok=True)
        dump = build_dir / "lutcore_dump.v"
        dump.write_text("module lutcore_dump;\n"
                        "initial begin\n"
                        f"    $dumpfile(\"{build_dir / (top_module + '.fst')}\");\n"
                        f"    $dumpvars(0, {top_module});\n"
                        "end\n"
                        "endmodule\n")
        sources.append(dump)
        args += ["-s", "lutcore_dump"]
        build_waves = False
    if str(REPO) not in sys.path:          # the simulator's Python imports tb/ and gen/
        sys.path.insert(0, str(REPO))

    runner = get_runner(sim)
    log_file = build_dir / "sim.log"
    results_xml = build_dir / "results.xml"
    waves_file = _waves_path(sim, build_dir, test_dir, top_module) if waves else None
    where = f"log {log_file}" + (f", waveform {waves_file}" if waves_file else
                                  f" (no waveform: repeat with WAVES=1 LUTCORE_SEED={seed})")
    note = f"{sim}, {top_module}, seed {seed} (LUTCORE_SEED={seed})"

    stream_file = build_dir / "stream_speed.json"
    stream_file.unlink(missing_ok=True)
    with _environ(**(extra_env or {}), LUTCORE_CONFIG=manifest, LUTCORE_SEED=seed,
                  LUTCORE_EFFORT=effort,
                  LUTCORE_SPEED_FILE=stream_file, WAVES=None):
        t1 = time.perf_counter()
        try:
            runner.build(sources=sources, hdl_toplevel=top_module, build_dir=build_dir,
                         build_args=args, timescale=("1ns", "1ps"), waves=build_waves,
                         always=True, log_file=build_dir / "build.log")
        except (RuntimeError, SystemExit) as exc:
            tail = _tail(build_dir / "build.log")
            raise SimulationFailed(f"build failed ({note}): {exc}; build log "
                                   f"{build_dir / 'build.log'}:\n{tail}") from None
        t_build = time.perf_counter() - t1
        t2 = time.perf_counter()
        crashed = None
        try:
            runner.test(test_module=test_module, hdl_toplevel=top_module,
                        build_dir=build_dir,
                        test_dir=test_dir, testcase=testcase, waves=waves,
                        timescale=("1ns", "1ps"), results_xml=str(results_xml),
                        log_file=log_file)
        except SystemExit as exc:                # pytest mode: failures exit(1)
            crashed = f"exit {exc.code}"
        except RuntimeError as exc:              # the simulator process itself failed
            crashed = str(exc)
        t_run = time.perf_counter() - t2

    if not results_xml.is_file():
        raise SimulationFailed(f"simulation died without results ({note}; {crashed}); "
                               f"{where}:\n{_tail(log_file)}")
    tests, failed, failures, sim_ns, wall = _results(results_xml)
    if failed or tests == 0:
        lines = "\n".join(f"  {name}: {msg}" for name, msg in failures) or "  (no tests ran)"
        raise SimulationFailed(f"{failed} of {tests} cocotb tests failed ({note}); "
                               f"{where}\n{lines}")
    if crashed:
        raise SimulationFailed(f"simulator ended badly after passing tests ({note}; "
                               f"{crashed}); {where}")

    cycles = sim_ns / CLOCK_PERIOD_NS
    speed = {
        "sim": sim, "design": top_module, "config": cfg.params(),
        "seed": seed, "effort": effort, "tests": tests, "waves": waves,
        "cycles": int(round(cycles)), "test_wall_s": round(wall, 3),
        "cycles_per_s": round(cycles / wall, 1) if wall > 0 else None,
        "emit_s": round(t_emit, 3), "build_s": round(t_build, 3), "run_s": round(t_run, 3),
    }
    if stream_file.is_file():                # written by test_speed (steady streaming)
        stream = json.loads(stream_file.read_text())
        speed["stream_cycles"] = stream["cycles"]
        speed["stream_cycles_per_s"] = stream["cycles_per_s"]
    if waves_file:
        speed["waves_file"] = str(waves_file)
    (build_dir / "speed.json").write_text(json.dumps(speed, indent=2) + "\n")
    return speed


def _tail(path: Path, lines=40):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tb.runner", description=__doc__.split("\n")[0])
    p.add_argument("--sim", choices=SIMULATORS, default=os.environ.get("SIM") or "icarus")
    p.add_argument("--out", default="build/sim_cli")
    p.add_argument("--waves", action="store_true")
    p.add_argument("--testcase", default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--effort", choices=("quick", "full"), default=None)
    for name in ("w_bits", "a_bits", "g", "m", "n", "k_max"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    p.add_argument("--full-table", action="store_true", help="symmetric=False")
    a = p.parse_args(argv)
    changes = {k: getattr(a, k) for k in ("w_bits", "a_bits", "g", "m", "n", "k_max")
               if getattr(a, k) is not None}
    cfg = LutConfig(**changes, symmetric=not a.full_table)
    try:
        speed = run_sim(cfg, a.sim, a.out, waves=a.waves, testcase=a.testcase, seed=a.seed, effort=a.effort)
    except SimulationFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(speed, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
