"""all-MiniLM-L6-v2 end to end in NumPy with its linear layers on the LUT engine
(``python -m gen.model``; docs/model.md)."""
