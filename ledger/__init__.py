"""Kontor's ledger core: the immutable double-entry journal, balances, reports and the service host.

Public entry points: `ledger.app.create_app` (HTTP service), `ledger.cli.main` (the `kontor` command).
"""
