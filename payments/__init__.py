"""Orders and Amazon Pay.

Depends on `ledger` only through its public modules; never imported by `ledger`.
"""
