"""The emit CLI as a user runs it: files, determinism, errors, and both simulators' parsers."""
import json
import os
import subprocess
import sys

import pytest

from gen import emit as emit_mod
from gen import tools
from gen.config import LutConfig
from gen.emit import emit, main
from gen.tools import tool_env, verilator_waiver_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    # the same waivers as the cocotb builds (gen.tools.VERILATOR_WAIVERS, each with its reason)
    r = subprocess.run(["verilator", "--lint-only", "-Wall", *verilator_waiver_flags(),
                        "--top-module", name, str(default_verilog)],
                       capture_output=True, text=True, timeout=120, env=tool_env())
    assert r.returncode == 0, r.stderr
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr


# -- file-system errors under --out: one line, exit 2, nothing left behind ---------------------

DEFAULT_NAME = LutConfig().name


def _tree(path):
    """Every file and directory under ``path`` (relative), to compare before and after."""
    return sorted(os.path.relpath(os.path.join(d, n), path)
                  for d, dirs, files in os.walk(path) for n in dirs + files)


def _expect_one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("python -m gen.emit: error: "), \
        r.stderr
    for f in fragments:
        assert f in r.stderr, (f, r.stderr)
    assert r.stdout == ""


def test_out_through_a_regular_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    before = _tree(tmp_path)
    r = run_emit("--out", "afile/sub", cwd=tmp_path)
    _expect_one_line_error(r, "--out 'afile/sub'", "Not a directory")
    assert _tree(tmp_path) == before


def test_out_that_cannot_be_created(tmp_path):
    """A directory under /proc cannot be made, whoever runs the test (root too)."""
    before = _tree(tmp_path)
    r = run_emit("--out", "/proc/lutcore_no/such/dir", cwd=tmp_path)
    _expect_one_line_error(r, "--out '/proc/lutcore_no/such/dir'", "[Errno")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("suffix", [".json", ".v"])
def test_output_name_blocked_by_a_directory(tmp_path, suffix):
    """Neither file appears (the other one is not renamed into place) and no temp file stays."""
    out = tmp_path / "out"
    (out / f"{DEFAULT_NAME}{suffix}").mkdir(parents=True)
    before = _tree(tmp_path)
    r = run_emit("--out", "out", cwd=tmp_path)
    _expect_one_line_error(r, "--out 'out'", "Is a directory", f"{DEFAULT_NAME}{suffix}")
    assert _tree(tmp_path) == before


def _emit_in_process(capsys, args):
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    return e.value.code, err


@pytest.mark.parametrize("step", ["mkstemp", "replace"])
@pytest.mark.parametrize("fresh", [True, False], ids=["new-dirs", "existing-dir"])
def test_unwritable_directory(tmp_path, capsys, monkeypatch, step, fresh):
    """A read-only --out. The tests run as root, for whom a read-only directory is writable,
    so the refusal is simulated in-process: creating the temporary file, or renaming it into
    place, raises PermissionError as the OS would. With ``fresh`` the directories --out names
    do not exist yet: those made for it are removed again."""
    out = tmp_path / ("new/deeper" if fresh else "ro")
    if not fresh:
        out.mkdir()
    before = _tree(tmp_path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(out))

    if step == "mkstemp":
        monkeypatch.setattr(tools.tempfile, "mkstemp", refuse)
    else:
        monkeypatch.setattr(tools.os, "replace", refuse)
    code, err = _emit_in_process(capsys, ["--out", str(out)])
    assert code == 2
    assert err == f"python -m gen.emit: error: --out {str(out)!r}: [Errno 13] Permission " \
                  f"denied: {str(out)!r}\n"
    assert _tree(tmp_path) == before


def test_second_rename_fails_first_file_is_restored(tmp_path, monkeypatch, capsys):
    """Both files exist from an earlier run; the .json rename fails after the .v went in: the
    old .v comes back, byte for byte, and no temporary file stays."""
    out = tmp_path / "out"
    old = emit(LutConfig(), out)
    old_v = old["verilog"].read_bytes()
    old["verilog"].write_bytes(old_v + b"// earlier run\n")
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(tools.os, "replace", replace)
    code, err = _emit_in_process(capsys, ["--out", str(out)])
    assert code == 2 and "No space left on device" in err and err.count("\n") == 1
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before


def test_precompute_needs_the_engine(tmp_path):
    r = run_emit("--precompute", "--out", "out", cwd=tmp_path)
    _expect_one_line_error(r, "--precompute needs --top engine")
    assert os.listdir(tmp_path) == []
    r = run_emit("--precompute", "--top", "engine", "--out", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(tmp_path / "out")) == 2


def test_atomic_write_removes_its_temp_file_when_the_rename_fails(tmp_path):
    (tmp_path / "x.json").mkdir()
    with pytest.raises(IsADirectoryError):
        tools.atomic_write(tmp_path / "x.json", "{}")
    assert os.listdir(tmp_path) == ["x.json"]


def test_render_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build = emit_mod.render(LutConfig(m=1, n=2))
    assert build["name"] in build["text"] and build["manifest"]["name"] == build["name"]
    assert os.listdir(tmp_path) == []
