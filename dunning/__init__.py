"""Dunning, collection and write-offs.

Depends on `ledger` (and `payments`) only through their public modules; never imported by `ledger`.
"""
