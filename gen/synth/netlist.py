"""Merging identical Verilog modules before synthesis.

Amaranth writes one Verilog module per component *instance*. Modules whose text is identical
apart from their name and Amaranth's auto-numbered internal names (``\\$auto$...``) are merged
into one definition, so Yosys synthesizes each distinct module once and ``stat`` counts it per
instance. The merge works on the text with regular expressions and only touches modules whose
every reference is an instantiation it recognizes.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter

__all__ = ["dedup_modules", "yosys_id", "has_module"]


def yosys_id(name):
    """``name`` as a Verilog/Yosys identifier: escaped (``\\name``) unless it is a plain one."""
    return name if re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", name) else "\\" + name


def has_module(text, top):
    """Whether the Verilog ``text`` defines module ``top``."""
    return bool(re.search(r"^[ \t]*module\s+" + re.escape(yosys_id(top)) + r"[\s(;#]", text,
                          re.M))


_ID = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_MODULE_RE = re.compile(r"((?:^[ \t]*\(\*[^\n]*\*\)[ \t]*\n)*)^[ \t]*module\s+(" + _ID + r")"
                        r"(.*?)^[ \t]*endmodule\b[^\n]*(?:\n|$)", re.M | re.S)
_INST_RE = re.compile(r"^([ \t]*)(" + _ID + r")(\s+)(" + _ID + r")(\s*\()", re.M)
_AUTO_RE = re.compile(r"\\\$auto\$[^\s]*")


def _split_modules(text):
    """[(start, end, name, header_attrs, rest)] of every module in ``text``."""
    return [(m.start(), m.end(), m.group(2), m.group(1), m.group(3))
            for m in _MODULE_RE.finditer(text)]


def dedup_modules(text, top):
    """Merge modules that are identical apart from their names; return ``(text, merged)``.

    ``merged`` maps every dropped module name to the module that replaces it. A module is only
    merged when every reference to its name is an instantiation this function recognizes;
    ``top`` is never merged. The merge is iterated bottom-up, so parents whose children were
    merged become identical in turn.
    """
    mods = _split_modules(text)
    names = [m[2] for m in mods]
    if len(set(names)) != len(names):
        return text, {}
    body = {m[2]: m[3] + "module " + m[2] + m[4] for m in mods}
    name_set = set(names)

    def refs(name, src):
        return len(re.findall(r"(?<![\w$\\.])" + re.escape(name) + r"(?=[\s(;])", src))

    # instantiations per module body: [(type, instance)]
    insts = {n: [(m.group(2), m.group(4)) for m in _INST_RE.finditer(body[n])
                 if m.group(2) in name_set] for n in names}
    found = Counter(t for n in names for t, _ in insts[n])
    mergeable = {n for n in names if n != top
                 and found[n] == refs(n, text) - refs(n, body[n])}
    canon = {n: n for n in names}
    for _ in range(len(names) + 1):
        keys = {}
        for n in names:
            b = body[n]
            b = _INST_RE.sub(lambda m: (m.group(1) + canon.get(m.group(2), m.group(2))
                                        + m.group(3) + m.group(4) + m.group(5))
                             if m.group(2) in name_set else m.group(0), b)
            b = b.replace("module " + n, "module @@", 1)
            autos = {}
            b = _AUTO_RE.sub(lambda m: autos.setdefault(m.group(0), f"\\$auto$@{len(autos)}"), b)
            keys[n] = hashlib.sha256(b.encode()).hexdigest()
        first = {}
        new = {}
        for n in names:
            if n in mergeable:
                new[n] = first.setdefault(keys[n], n)
            else:
                new[n] = n
        if new == canon:
            break
        canon = new
    merged = {n: c for n, c in canon.items() if c != n}
    if not merged:
        return text, {}
    out, pos = [], 0
    for start, end, name, _, _ in mods:
        out.append(text[pos:start])
        if name not in merged:
            seg = text[start:end]
            seg = _INST_RE.sub(lambda m: (m.group(1) + merged.get(m.group(2), m.group(2))
                                          + m.group(3) + m.group(4) + m.group(5)), seg)
            out.append(seg)
        pos = end
    out.append(text[pos:])
    return "".join(out), merged
