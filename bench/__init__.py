"""Benchmarks of the README's Performance table (P1-P7) against a raw-SQL baseline run alongside: `python -m bench`."""
