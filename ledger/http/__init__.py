"""HTTP controllers of the ledger: thin translations from HTTP to use cases and back."""
