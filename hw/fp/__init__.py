"""Floating-point units (FP16/BF16 inputs, FP32 results); golden model in ``gen.fp``."""
from .common import FPUnit
from .units import FPAdder, FPDotProduct, FPIntMultiplier, FPMultiplier

__all__ = ["FPUnit", "FPMultiplier", "FPAdder", "FPDotProduct", "FPIntMultiplier"]
