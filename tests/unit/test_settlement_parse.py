"""Reading settlement report files: what spreadsheets make of them, and how much memory a large one takes."""

from __future__ import annotations

import codecs
import io
import tempfile
import tracemalloc
from pathlib import Path

import pytest

from ledger.errors import Unprocessable
from payments.settlement_parse import parse_report

EXCEL_REPORT = (Path(__file__).parent.parent / "data" / "settlement_excel_semicolon.csv").read_bytes()
EXPECTED = [  # (line, type, transaction, amount, fee) of the real file
    (7, "Transfer", "", -2554, 0),
    (8, "Capture", "P01-1488694-1234567-C034811", 1000, -59),
]


def rows_of(body: bytes) -> list[tuple[int, str, str, int, int]]:
    report = parse_report(io.BytesIO(body), "USD")
    assert (report.seller_id, report.settlement_id) == ("ABCDEFGHIJKLM", "5984869004")
    return [(r.line_no, r.type, r.transaction_id, r.amount, r.fee) for r in report.rows]


def as_comma_csv(body: bytes) -> bytes:
    """The same report as Amazon writes it: comma separated, quoted, decimal points."""
    out = []
    for line in body.decode().splitlines():
        cells = [c.replace(",", ".") for c in line.split(";")]
        out.append(",".join(f'"{c}"' for c in cells))
    return "\n".join(out).encode()


def test_the_real_excel_file() -> None:
    assert rows_of(EXCEL_REPORT) == EXPECTED


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("UTF-8 with BOM (Excel's 'CSV UTF-8')", lambda text: codecs.BOM_UTF8 + text.encode()),
        ("Windows-1252 (Excel's 'CSV')", lambda text: text.encode("cp1252")),
        (
            "UTF-16 with BOM, tab separated (Excel's 'Unicode text')",
            lambda text: text.replace(";", "\t").encode("utf-16"),
        ),
    ],
)
def test_encodings_spreadsheets_write(name: str, encode: object) -> None:
    text = EXCEL_REPORT.decode().replace("SellerPayments_DateRangeReport", "Überweisung")
    body = encode(text)  # type: ignore[operator]
    report = parse_report(io.BytesIO(body), "USD")
    assert [(r.line_no, r.amount, r.fee) for r in report.rows] == [(7, -2554, 0), (8, 1000, -59)], name
    assert report.rows[0].description.startswith("Überweisung"), name


def test_the_comma_separated_original_reads_the_same() -> None:
    assert rows_of(as_comma_csv(EXCEL_REPORT)) == EXPECTED


def test_decimal_points_in_a_semicolon_file() -> None:
    """LibreOffice and English locales write ';' with decimal points: the one separator an amount has is read."""
    assert rows_of(EXCEL_REPORT.replace(b"10,00;-0,29;-0,30;-0,59;9,41", b"10.00;-0.29;-0.30;-0.59;9.41")) == EXPECTED


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (EXCEL_REPORT.replace(b";10,00;", b";1.010,00;"), "line 8, column TransactionAmount", "decimal separator"),
        (b"PK\x03\x04rest of a workbook", "file", "Excel workbook"),
        (b"\xd0\xcf\x11\xe0rest of a workbook", "file", "Excel 97-2003 workbook"),
        (b"Amazon Payments Advanced\x00\x00", "file", "binary"),
        (b"Datum;Betrag\n01.10.2015;10,00\n", "header row", "no column header row"),
        (EXCEL_REPORT.replace(b"SellerId;ABCDEFGHIJKLM\r\n", b""), "line 1, column SellerId", "names no SellerId"),
    ],
)
def test_what_cannot_be_read_is_named(body: bytes, field: str, says: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        parse_report(io.BytesIO(body), "USD")
    assert refused.value.code == "invalid_settlement_report"
    assert refused.value.errors[0].field == field
    assert says in refused.value.errors[0].message


def test_a_large_report_is_streamed_not_copied() -> None:
    """The rows are what is kept (about 2.5 times the file here); the file is never held whole or decoded into
    one string (reading it whole as bytes, text and a StringIO took 6 times its size before the first row)."""
    head = EXCEL_REPORT.decode().splitlines()[:6]
    row = "2015-10-01T11:10:34 -0700;5984869004;P01-1488694-1234567-C{:06d};87654321-0;Capture;P01-1234567-2138100;;;USD;;10,00;-0,29;-0,30;-0,59;9,41"
    with tempfile.TemporaryFile() as file:
        file.write(("\r\n".join(head) + "\r\n").encode())
        for i in range(30_000):
            file.write((row.format(i) + "\r\n").encode())
        size = file.tell()
        file.seek(0)
        tracemalloc.start()
        try:
            report = parse_report(file, "USD")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(report.rows) == 30_000
        assert not file.closed  # the caller's file stays the caller's
    assert peak < 3.5 * size, f"peak {peak / size:.1f} x the file"
