"""The emit CLI as a user runs it: files, determinism, errors, and both simulators' parsers."""
import json
import os
import subprocess
import sys

import pytest

from gen.config import LutConfig
from gen.emit import emit, main
from gen.tools import tool_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Warnings Verilator -Wall raises on Amaranth's output that the generator cannot avoid; the
#: README explains each. Anything else fails the lint test.
VERILATOR_WAIVERS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL",
                     "-Wno-PROCASSINIT", "-Wno-DECLFILENAME"]


def run_emit(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "gen.emit", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_verilog_and_manifest(tmp_path):
    r = run_emit("--w-bits", "2", "--a-bits", "8", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    cfg = LutConfig(w_bits=2, a_bits=8)
    assert sorted(os.listdir(tmp_path)) == [f"{cfg.name}.json", f"{cfg.name}.v"]
    manifest = json.loads((tmp_path / f"{cfg.name}.json").read_text())
    assert LutConfig.from_dict(manifest) == cfg
    assert manifest["derived"] == cfg.derived()
    ports = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert ports["i_table__payload"] == ("input", cfg.table_width)
    assert ports["i_weight__payload"] == ("input", cfg.weight_width)
    assert ports["o_result__payload"] == ("output", cfg.result_row_width)
    assert ports["clk"] == ("input", 1) and ports["rst"] == ("input", 1)
    text = (tmp_path / f"{cfg.name}.v").read_text()
    assert f"module {cfg.name}(" in text
    for name, (direction, width) in ports.items():
        decl = f"{direction} [{width - 1}:0] {name};" if width > 1 else f"{direction} {name};"
        assert decl in text, decl
    assert manifest["versions"]["amaranth"]


def test_mac_names_and_config_kinds(tmp_path):
    """A LutConfig's MAC top is named from MacConfig.from_lut, so both spell the same build
    alike; the LUT tops need a LutConfig (tests/test_layouts.py emits a MacConfig MAC top)."""
    from gen.emit import default_name
    from gen.mac_config import MacConfig
    lut = LutConfig(m=2, n=2, g=4, k_max=64)
    mac = MacConfig.from_lut(lut)
    assert default_name(lut, "mac_direct") == default_name(mac, "mac_direct") == \
        "mac_direct_array_w2a8_g4_m2n2_k64"
    assert default_name(lut, "engine") == "lut_engine_w2a8_g4_m2n2_k64_sym"
    with pytest.raises(TypeError, match=r"^cfg must be a LutConfig for top 'array'"):
        emit(mac, tmp_path, top="array")
    assert not list(tmp_path.iterdir())


def test_output_is_deterministic_and_has_no_paths(tmp_path):
    cfg = LutConfig(w_bits=3, a_bits=8, m=2, n=8)
    a = emit(cfg, tmp_path / "a")
    b = emit(cfg, tmp_path / "b")
    for key in ("verilog", "manifest"):
        assert a[key].read_bytes() == b[key].read_bytes()
    text = a["verilog"].read_text()
    for fragment in (ROOT, "/tmp/", "/root/", "/home/", str(tmp_path)):
        assert fragment not in text


@pytest.mark.parametrize("args, message", [
    (["--w-bits", "0"], "--w-bits: w_bits must be in 1..4, not 0"),
    (["--w-bits", "5"], "--w-bits: w_bits must be in 1..4, not 5"),
    (["--a-bits", "40"], "--a-bits: a_bits must be in 2..16, not 40"),
    (["--group", "7"], "--group: g must be in 2..6, not 7"),
    (["--m", "0"], "--m: m must be in 1..16, not 0"),
    (["--n", "257"], "--n: n must be in 1..256, not 257"),
    (["--k-max", "0"], "--k-max: k_max must be in 1..1048576, not 0"),
    (["--weight-format", "float"], "--weight-format: weight format must be one of int, uint, "
                                   "binary, ternary, not 'float'"),
    (["--w-bits", "1", "--weight-format", "ternary"],
     "--weight-format: weight format ternary needs w_bits >= 2, not w_bits = 1"),
    (["--name", "9bad"], "--name must be a Verilog identifier ([A-Za-z_][A-Za-z0-9_]*), "
                         "not '9bad'"),
    (["--w-bits", "two"], "argument --w-bits: invalid int value: 'two'"),
])
def test_bad_option_exits_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    r = run_emit(*args, "--out", str(out))
    assert r.returncode == 2
    assert r.stderr == f"python -m gen.emit: error: {message}\n"
    assert not out.exists()


def test_out_must_be_a_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit) as e:
        main(["--out", str(f)])
    assert e.value.code == 2
    assert f.read_text() == "x"


def test_help_names_every_option():
    r = run_emit("--help")
    assert r.returncode == 0
    for opt in ("--w-bits", "--a-bits", "--group", "--m", "--n", "--k-max", "--weight-format",
                "--no-symmetric", "--out", "--name"):
        assert opt in r.stdout


@pytest.fixture(scope="module")
def default_verilog(tmp_path_factory):
    return emit(LutConfig(w_bits=2, a_bits=8), tmp_path_factory.mktemp("emit"))["verilog"]


@pytest.mark.parametrize("generation", ["-g2012", "-g2005"])
def test_icarus_accepts(default_verilog, tmp_path, generation):
    r = subprocess.run(["iverilog", generation, "-o", str(tmp_path / "x.vvp"),
                        str(default_verilog)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_verilator_lint_accepts(default_verilog):
    name = default_verilog.stem
    r = subprocess.run(["verilator", "--lint-only", "-Wall", *VERILATOR_WAIVERS,
                        "--top-module", name, str(default_verilog)],
                       capture_output=True, text=True, timeout=120, env=tool_env())
    assert r.returncode == 0, r.stderr
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr
