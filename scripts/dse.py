#!/usr/bin/env python3
"""Design-space exploration of the LUT Tensor Core array: ``python scripts/dse.py [-j N]``.

A thin wrapper of ``python -m gen.dse`` (see :mod:`gen.dse` for the sweep, its figures and
its cache); same options and outputs.
"""
import sys

from gen.dse.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="scripts/dse.py"))
