"""``python -m gen.formal``: run the formal proofs for a design point (see gen.formal)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
