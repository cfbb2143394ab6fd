"""Real PPA on open tools: standard-cell area (µm²), static timing and simulated power.

``python -m gen.ppa`` (:mod:`gen.ppa.cli`) runs one design point; :func:`ppa_design` is the
function API. Modules: :mod:`~gen.ppa.liberty` (reading Liberty), :mod:`~gen.ppa.mapped`
(Yosys mapping and ``stat -liberty``), :mod:`~gen.ppa.sta` (OpenSTA), :mod:`~gen.ppa.gatesim`
(gate-level simulation via Icarus/Verilator and VCD toggles), :mod:`~gen.ppa.cyclesim`
(the default cycle-based NumPy simulator), :mod:`~gen.ppa.power` (energy from the Liberty tables),
:mod:`~gen.ppa.stimulus` (operand streams), :mod:`~gen.ppa.flow` (the whole flow).
"""
from .flow import ppa_design  # noqa: F401

__all__ = ["ppa_design"]
