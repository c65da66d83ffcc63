"""Benchmarks of quality.md (P1-P4, P7) against a raw-SQL baseline run alongside: `python -m bench`."""
