"""The accountant's desk: reports and exports for the command line (and, later, read-only web pages)."""
