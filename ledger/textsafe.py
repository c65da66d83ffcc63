"""Text that crosses Kontor's edge: identifiers read from outside, and text written into files and terminals.

Why one module: both faults are the same kind of trust mistake, fixed once here and used by every reader
and writer.

In: `str.isdigit()` and `int()` accept every Unicode decimal digit ('²' passes isdigit, int('٣') is 3), so
an id, key, cookie or period checked with them lets non-ASCII text through to places that expect ASCII
(a 500, a file name that cannot be sent). Identifiers are parsed here with ASCII digits only.

Out: a spreadsheet evaluates a cell that begins with = + - @ (and, after its own trimming, TAB or CR) as a
formula (OWASP "CSV Injection"); a terminal executes the escape sequences in what it prints. `cell()`
neutralises text for CSV, XLSX and DATEV cells by prefixing an apostrophe, the way OWASP recommends
(numbers such as "-12.50" stay numbers); `csv_writer()` quotes every field that holds a CR or LF
(RFC 4180 line ends); `terminal()` shows control characters as visible escapes.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

__all__ = [
    "FORMULA_PREFIXES",
    "ascii_digits",
    "cell",
    "cells",
    "csv_writer",
    "looks_like_formula",
    "parse_ascii_int",
    "terminal",
]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_ASCII_DIGITS = re.compile(r"[0-9]+")


def ascii_digits(text: str, *, length_max: int = 18) -> bool:
    """True when `text` is 1..length_max ASCII digits 0-9 (no sign, no space, no other script's digits)."""
    return 0 < len(text) <= length_max and _ASCII_DIGITS.fullmatch(text) is not None


def parse_ascii_int(text: str, *, length_max: int = 18) -> int | None:
    """`text` as a non-negative integer if it is 1..length_max ASCII digits, else None (never raises)."""
    return int(text) if ascii_digits(text, length_max=length_max) else None


def looks_like_formula(text: str) -> bool:
    """True when a spreadsheet could read `text` as a formula: it begins with = + - @ TAB CR or LF and is not a
    plain number (such as "-12.50")."""
    return text.startswith(FORMULA_PREFIXES) and _PLAIN_NUMBER.fullmatch(text) is None


def cell(value: Any) -> str:
    """A value as spreadsheet-safe cell text: a text that a spreadsheet would read as a formula gets a
    leading apostrophe (OWASP); plain numbers, including negative ones, are left as they are."""
    text = "" if value is None else str(value)
    return "'" + text if looks_like_formula(text) else text


def cells(row: Iterable[Any]) -> list[str]:
    """`cell()` for every value of a row."""
    return [cell(v) for v in row]


def csv_writer(out: Any, **options: Any) -> Any:
    """A csv.writer whose rows are written with RFC 4180 line ends (CRLF), so that Python's csv module quotes
    every field containing a CR or an LF; a bare CR in a field cannot end the row for a reader.

    Write rows through `cells()` to neutralise formulas."""
    return csv.writer(out, lineterminator="\r\n", **options)


def terminal(text: str) -> str:
    """`text` safe to print on a terminal: control and format characters (C0, DEL, C1, line and paragraph
    separators, bidi overrides) become visible escapes such as \\x1b or \\u202e, so no escape sequence reaches
    the terminal; letters, marks, symbols and spaces stay as they are."""
    if text.isprintable():
        return text
    return "".join(_escape(ch) if _is_control(ch) else ch for ch in text)


def _is_control(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] == "C" or category in ("Zl", "Zp")


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
