"""Find modules and ports in the Verilog that ``gen.emit`` wrote, by their Amaranth path.

Amaranth writes a submodule as a Verilog module named ``<owner>.<path>`` (an escaped
identifier such as ``\\lut_array_w2a8_g4_m2n64_sym_pe.lookup``), and may rename a port that
clashes with an internal name (``acc`` becomes ``\\acc$6``). The proofs instantiate those
modules from the emitted text itself, so they check the very file users get; nothing here
hard-codes a module name.
"""
from __future__ import annotations

import re

__all__ = ["EmittedVerilog", "Port", "instance_name"]

_ID = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_MODULE_RE = re.compile(r"^module\s+(" + _ID + r")\s*\((.*?)\);(.*?)^endmodule\b", re.M | re.S)
_PORT_RE = re.compile(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s*)?(" + _ID
                      + r")\s*;", re.M)


class Port:
    """One port: its name in the Verilog, its Amaranth name (``base``), direction, width."""

    def __init__(self, name, direction, width):
        self.name = name
        self.base = re.sub(r"\$\d+$", "", name)
        self.direction = direction
        self.width = width

    def __repr__(self):
        return f"Port({self.name!r}, {self.direction}, {self.width})"


def instance_name(module):
    """``module`` as it must be written in an instantiation (escaped when not plain)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", module):
        return module
    return "\\" + module + " "


def port_ref(port):
    """A port name as written in ``.name(...)`` of an instantiation."""
    return instance_name(port.name)


class EmittedVerilog:
    """The modules of one emitted file: ``modules[name] = {base: Port}`` (names unescaped)."""

    def __init__(self, text):
        self.text = text
        self.modules = {}
        for m in _MODULE_RE.finditer(text):
            name = m.group(1).lstrip("\\")
            ports = {}
            for p in _PORT_RE.finditer(m.group(3)):
                pname = p.group(4).lstrip("\\")
                width = int(p.group(2)) - int(p.group(3)) + 1 if p.group(2) else 1
                port = Port(pname, p.group(1), width)
                ports[port.base] = port
            self.modules[name] = ports

    def submodule(self, owner, *path):
        """The name of the module Amaranth wrote for ``owner``'s submodule at ``path``."""
        name = ".".join((owner, *path))
        if name not in self.modules:
            near = sorted(k for k in self.modules if k.startswith(owner))
            raise LookupError(f"the emitted Verilog has no module {name!r} (modules of "
                              f"{owner!r}: {', '.join(near) or 'none'})")
        return name

    def ports(self, module):
        return self.modules[module]

    def connect(self, module, **nets):
        """The port list ``.port(net), ...`` for an instance of ``module``; every port of the
        module must be given (by Amaranth name), so a renamed or new port is an error here."""
        ports = self.modules[module]
        missing = sorted(set(ports) - set(nets))
        unknown = sorted(set(nets) - set(ports))
        if missing or unknown:
            raise LookupError(f"module {module!r} has ports {sorted(ports)}; harness gives "
                              f"{sorted(nets)} (missing {missing}, unknown {unknown})")
        return ",\n    ".join(f".{port_ref(ports[b])}({nets[b]})" for b in ports)
