"""Amazon Pay settlement reports: the flat file read into validated rows, streamed, in bounded memory.

Split from `payments.settlement` (which books and reconciles the rows) because the file is read in a
worker thread (`payments.uploads.run_parser`): nothing here touches the database or the event loop.

The file is streamed row by row from the uploaded file (never held whole, never decoded into one
string); only the validated rows are kept, sharing repeated values. The whole file is validated before
anything is booked: every row's net must equal its amount plus its fees, the fee components must add up,
every row belongs to the one settlement and the business code's currency; errors name the line and the
column (up to 50), and the upload then books nothing (422).

Files re-saved by a spreadsheet are read as the format allows: UTF-8 with or without a byte-order mark,
UTF-16 with one, otherwise Windows-1252 (what Excel writes as "CSV"); comma, semicolon or tab separated
(taken from the column header row); in a file not separated by commas an amount's one decimal separator
may be a comma (German Excel: `-25,54`), and thousands separators are refused. A file that is not a settlement report at all is refused for what it is (a
workbook, a PDF, no column header row), not for a missing SellerId.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from datetime import date, datetime
from typing import IO, Any, NamedTuple, TypeVar

from ledger.domain import DATE_MAX, DATE_MIN
from ledger.errors import FieldError, Unprocessable, present
from ledger.money import AmountError, parse_amount

__all__ = ["CHARGEBACK_TYPES", "ROWS_MAX", "Report", "Row", "parse_report"]

ROWS_MAX = 1_000_000
ERRORS_LISTED = 50
HEAD_BYTES = 64 * 1024  # the column header row must start within this
COLUMNS = (
    "TransactionPostedDate",
    "SettlementId",
    "AmazonTransactionId",
    "SellerReferenceId",
    "TransactionType",
    "AmazonOrderReferenceId",
    "CurrencyCode",
    "TransactionDescription",
    "TransactionAmount",
    "TransactionPercentageFee",
    "TransactionFixedFee",
    "TotalTransactionFee",
    "NetTransactionAmount",
)
MONEY_COLUMNS = COLUMNS[8:]  # amount, percentage fee, fixed fee, total fee, net
CHARGEBACK_TYPES = {"Chargeback": "chargeback", "A-to-z Guarantee Claim": "a-to-z"}
S = TypeVar("S")
_NOT_TEXT = (
    (b"PK\x03\x04", "a ZIP archive or an Excel workbook (XLSX); save the report as CSV"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (XLS); save the report as CSV"),
    (b"%PDF", "a PDF document; upload the report's CSV file"),
    (b"<?xml", "an XML document; upload the report's CSV file"),
)


class Row(NamedTuple):
    line_no: int
    settlement_id: str
    posted_on: date
    transaction_id: str
    seller_reference_id: str
    type: str
    order_reference_id: str
    description: str
    amount: int  # signed, the merchant's view: + credited to the merchant
    fee: int  # signed, normally <= 0


class Report(NamedTuple):
    seller_id: str
    settlement_id: str
    period_start: datetime | None
    period_end: datetime | None
    rows: list[Row]


def _refuse(message: str, where: str = "file") -> Unprocessable:
    return Unprocessable("invalid_settlement_report", f"{message}; nothing was booked", [FieldError(where, message)])


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []
        self.count = 0

    def add(self, line: int, column: str, message: str) -> None:
        self.count += 1
        if len(self.items) < ERRORS_LISTED:
            self.items.append(FieldError(f"line {line}, column {column}", message))

    def raise_if_any(self) -> None:
        if self.count:
            more = f" (the first {ERRORS_LISTED} are listed)" if self.count > ERRORS_LISTED else ""
            raise Unprocessable(
                "invalid_settlement_report",
                f"the settlement report has {self.count} error(s){more}; nothing was booked",
                self.items,
            )


class _Dialect(NamedTuple):
    encoding: str
    delimiter: str
    decimal_comma: bool  # a comma may be the decimal separator (files not separated by commas)


def _dialect(source: IO[bytes]) -> _Dialect:
    """Encoding and separator of the file, from its start (and, for UTF-8, one pass over it)."""
    head = source.read(HEAD_BYTES)
    if not head.strip():
        raise _refuse("the file is empty")
    for magic, what in _NOT_TEXT:
        if head.startswith(magic):
            raise _refuse(f"the file is {what}")
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif b"\x00" in head:
        raise _refuse("the file is binary, not text (it contains NUL bytes)")
    else:
        encoding = "utf-8" if _is_utf8(source) else "cp1252"
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head)
    for line in text.splitlines():
        if line.lstrip('"').startswith("TransactionPostedDate"):
            counts = {d: line.count(d) for d in (",", ";", "\t")}
            delimiter = max(counts, key=lambda d: counts[d])
            return _Dialect(encoding, delimiter, decimal_comma=delimiter != ",")
    raise _refuse(
        f"no column header row (TransactionPostedDate, SettlementId, ...) within the first {HEAD_BYTES // 1024} KiB: "
        "this is not an Amazon Pay settlement report",
        "header row",
    )


def _is_utf8(source: IO[bytes]) -> bool:
    source.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := source.read(1024 * 1024):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def parse_report(source: IO[bytes], currency: str) -> Report:
    """Validate the whole file; raises 422 listing every error (up to 50) by line and column."""
    dialect = _dialect(source)
    source.seek(0)
    text = io.TextIOWrapper(source, encoding=dialect.encoding, newline="")
    try:
        reader = csv.reader(text, delimiter=dialect.delimiter, strict=True)
        errors = _Errors()
        header: dict[str, tuple[int, str]] = {}
        rows: list[Row] = []
        try:
            index = _read_header(reader, header, errors)
            _read_rows(_Rows(reader, index, currency, dialect.decimal_comma, errors), rows)
        except csv.Error as exc:
            errors.add(reader.line_num, "-", f"not valid CSV: {exc}")
        except UnicodeDecodeError as exc:
            errors.add(reader.line_num + 1, "-", f"not {dialect.encoding} text ({exc.reason})")
    finally:
        text.detach()  # the caller's file stays open
    return _report(header, rows, errors, reader.line_num)


def _report(header: dict[str, tuple[int, str]], rows: list[Row], errors: _Errors, last_line: int) -> Report:
    seller = header.get("SellerId")
    if seller is None:
        errors.add(1, "SellerId", "the report header names no SellerId")
    period: dict[str, datetime] = {}
    for key in ("SettlementStartDate", "SettlementEndDate"):
        if key in header:
            try:
                period[key] = _timestamp(header[key][1])
            except ValueError:
                errors.add(header[key][0], key, "not a timestamp such as '2015-10-01T14:59:44 -0700'")
    if not rows and not errors.count:
        errors.add(last_line, "-", "the report has no transaction rows")
    errors.raise_if_any()
    seller = present(seller, "a report without a seller id has raised an error above")
    return Report(
        seller[1],
        rows[0].settlement_id,
        period.get("SettlementStartDate"),
        period.get("SettlementEndDate"),
        rows,
    )


def _read_header(reader: Any, header: dict[str, tuple[int, str]], errors: _Errors) -> dict[str, int]:
    """The key-value lines (SellerId, dates) up to the column header row; returns the column index."""
    for cells in reader:
        line = reader.line_num
        if not cells or cells[0].lstrip("\ufeff") != "TransactionPostedDate":
            if len(cells) >= 2 and cells[1]:
                header[cells[0].lstrip("\ufeff")] = (line, cells[1])
            continue
        index = {name: i for i, name in enumerate(cells) if name}
        for name in COLUMNS:
            if name not in index:
                errors.add(line, name, "required column missing from the header row")
        errors.raise_if_any()
        return index
    raise _refuse("no column header row (TransactionPostedDate, SettlementId, ...)", "header row")


def _read_rows(source: _Rows, rows: list[Row]) -> None:
    for row in source:
        if len(rows) >= ROWS_MAX:
            raise Unprocessable("settlement_too_large", f"a settlement report has at most {ROWS_MAX} rows")
        if rows and row.settlement_id != rows[0].settlement_id:
            source.errors.add(
                row.line_no,
                "SettlementId",
                f"{row.settlement_id!r}: one report is one settlement ({rows[0].settlement_id!r})",
            )
        rows.append(row)


def _signed(text: str, currency: str) -> int:
    negative = text.startswith("-")
    minor = parse_amount(text[1:] if negative else text, currency, allow_zero=True)
    return -minor if negative else minor


def _timestamp(text: str) -> datetime:
    """Amazon's '2015-10-01T07:06:47 -0700' (ISO 8601 with a space before the offset), a business date the journal
    can hold (DATE_MIN to DATE_MAX); ValueError otherwise."""
    stamp = datetime.fromisoformat(text.replace(" ", ""))
    if stamp.tzinfo is None:
        raise ValueError("no UTC offset")
    if not DATE_MIN <= stamp.date() <= DATE_MAX:
        raise ValueError("outside the dates the journal holds")
    return stamp


class _Rows:
    """The transaction rows of the file, validated one by one (blank rows skipped, invalid ones reported)."""

    def __init__(self, reader: Any, index: dict[str, int], currency: str, decimal_comma: bool, errors: _Errors) -> None:
        self.reader, self.index, self.currency, self.errors = reader, index, currency, errors
        self.decimal_comma = decimal_comma
        self.shared: dict[Any, Any] = {}  # repeated values (types, dates, texts) kept once

    def __iter__(self) -> Iterator[Row]:
        for cells in self.reader:
            if any(c.strip() for c in cells):
                row = self._row(cells, self.reader.line_num)
                if row is not None:
                    yield row

    def _share(self, value: S) -> S:
        shared: S = self.shared.setdefault(value, value)
        return shared

    def _money(self, cells: list[str], line: int, name: str) -> int:
        text = cells[self.index[name]].strip()
        try:
            if self.decimal_comma and "," in text:
                if "." in text or text.count(",") > 1:
                    raise AmountError(f"{text!r}: one decimal separator and no thousands separators, such as '-25,54'")
                text = text.replace(",", ".")
            return _signed(text, self.currency)
        except AmountError as exc:
            self.errors.add(line, name, str(exc))
            return 0

    def _text(self, cells: list[str], line: int, name: str, limit: int = 64, *, required: bool = False) -> str:
        value = cells[self.index[name]].strip()
        if len(value) > limit:
            self.errors.add(line, name, f"longer than {limit} characters")
        elif required and not value:
            self.errors.add(line, name, "required")
        return value

    def _row(self, cells: list[str], line: int) -> Row | None:
        errors, index = self.errors, self.index
        if len(cells) < len(index):
            errors.add(line, "-", f"{len(cells)} columns, the header has {len(index)}")
            return None
        before = errors.count
        try:
            posted: date | None = _timestamp(cells[index["TransactionPostedDate"]]).date()
        except ValueError:
            errors.add(line, "TransactionPostedDate", "not a timestamp such as '2015-10-01T07:06:47 -0700'")
            posted = None
        settlement_id = self._text(cells, line, "SettlementId", required=True)
        kind = self._text(cells, line, "TransactionType", required=True)
        if cells[index["CurrencyCode"]] != self.currency:
            errors.add(
                line, "CurrencyCode", f"{cells[index['CurrencyCode']]!r}: this business code books {self.currency}"
            )
        required = kind in ("Capture", "Refund", *CHARGEBACK_TYPES)
        transaction_id = self._text(cells, line, "AmazonTransactionId", required=required)
        amount, pct, fixed, fee, net = (self._money(cells, line, name) for name in MONEY_COLUMNS)
        if errors.count == before:
            if fee != pct + fixed:
                errors.add(line, "TotalTransactionFee", "is not TransactionPercentageFee + TransactionFixedFee")
            elif net != amount + fee:
                errors.add(line, "NetTransactionAmount", "is not TransactionAmount + TotalTransactionFee")
        if errors.count != before or posted is None:
            return None
        return Row(
            line,
            self._share(settlement_id),
            self._share(posted),
            transaction_id,
            self._text(cells, line, "SellerReferenceId"),
            self._share(kind),
            self._text(cells, line, "AmazonOrderReferenceId"),
            self._share(self._text(cells, line, "TransactionDescription", 500)),
            amount,
            fee,
        )
