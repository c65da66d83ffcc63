"""CAMT.053 pieces read alone: one entry mapped to its lines (payments/camt_entries.py) and the upload as files, a
document or a ZIP of them (payments/camt_files.py)."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from xml.etree.ElementTree import Element, fromstring

import pytest

from ledger.errors import Unprocessable
from payments.camt_entries import Part, entry_parts
from payments.camt_files import MEMBERS_MAX, HashingReader, check_member, read_documents

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def ntry(body: str, amount: str = "150.00", indicator: str = "CRDT") -> Element:
    return fromstring(
        f'<Ntry xmlns="{NS}"><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>'
        f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-11-03</Dt></BookgDt><AcctSvcrRef>REF-1</AcctSvcrRef>{body}</Ntry>"
    )


def detail(amount: str, name: str, text: str, indicator: str = "") -> str:
    ind = f"<CdtDbtInd>{indicator}</CdtDbtInd>" if indicator else ""
    return (
        f'<TxDtls><Amt Ccy="EUR">{amount}</Amt>{ind}<RltdPties><Dbtr><Pty><Nm>{name}</Nm></Pty></Dbtr>'
        f"<DbtrAcct><Id><IBAN>DE02100100100006820101</IBAN></Id></DbtrAcct></RltdPties>"
        f"<RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls>"
    )


def parts(node: Element) -> tuple[list[Part], list[tuple[str, str]]]:
    errors: list[tuple[str, str]] = []
    found = entry_parts(node, "Stmt[1]/Ntry[1]", 1, "EUR", lambda where, message: errors.append((where, message)))
    return found, errors


def test_a_batch_that_adds_up_is_one_line_per_payment() -> None:
    found, errors = parts(
        ntry(f"<NtryDtls>{detail('100.00', 'Anna', 'I-1')}{detail('50.00', 'Ben', 'I-2')}</NtryDtls>")
    )
    assert errors == []
    assert [(p.detail_no, p.amount, p.reference, p.remittance, p.counterparty) for p in found] == [
        (1, 10000, "REF-1/1", "I-1", "Anna"),
        (2, 5000, "REF-1/2", "I-2", "Ben"),
    ]
    assert {(p.booked, p.booking_date, p.counterparty_iban) for p in found} == {
        (True, date(2026, 11, 3), "DE02100100100006820101")
    }


def test_a_batch_that_does_not_add_up_stays_one_line() -> None:
    found, _ = parts(ntry(f"<NtryDtls>{detail('100.00', 'Anna', 'I-1')}{detail('40.00', 'Ben', 'I-2')}</NtryDtls>"))
    assert [(p.detail_no, p.amount, p.remittance, p.counterparty) for p in found] == [(0, 15000, "I-1 I-2", "Anna")]


def test_money_out_names_the_creditor_and_older_versions_name_the_party_directly() -> None:
    body = (
        "<NtryDtls><TxDtls><RltdPties><Dbtr><Nm>Us</Nm></Dbtr><Cdtr><Nm>Supplier GmbH</Nm></Cdtr>"
        "<CdtrAcct><Id><Othr><Id>ACC-7</Id></Othr></Id></CdtrAcct></RltdPties></TxDtls></NtryDtls>"
    )
    [line], _ = parts(ntry(body, "20.00", "DBIT"))
    assert (line.amount, line.counterparty, line.counterparty_iban) == (-2000, "Supplier GmbH", "ACC-7")


def test_pending_entries_move_no_balance_and_missing_fields_are_named() -> None:
    pending = fromstring(
        f'<Ntry xmlns="{NS}"><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>PDNG</Sts>'
        "<ValDt><Dt>2026-11-04</Dt></ValDt></Ntry>"
    )
    [line], _ = parts(pending)
    assert (line.booked, line.booking_date, line.reference) == (False, date(2026, 11, 4), "1")
    broken = fromstring(f'<Ntry xmlns="{NS}"><Amt Ccy="USD">1.00</Amt><CdtDbtInd>X</CdtDbtInd></Ntry>')
    assert parts(broken) == (
        [],
        [
            ("Stmt[1]/Ntry[1]/Amt/@Ccy", "'USD': this business code books EUR"),
            ("Stmt[1]/Ntry[1]/CdtDbtInd", "CRDT or DBIT required"),
            ("Stmt[1]/Ntry[1]/BookgDt/Dt", "a booking date (YYYY-MM-DD) is required"),
        ],
    )


def zipped(members: dict[str, bytes]) -> io.BytesIO:
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    body.seek(0)
    return body


def read_all(reader: HashingReader, prefix: str) -> list[tuple[str, bytes, str]]:
    data = b"".join(iter(lambda: reader.read(7), b""))
    return [(prefix, data, reader.digest.hexdigest()[:8])]


def test_a_plain_document_and_each_zip_member_are_read_through_a_hashing_reader() -> None:
    assert [p[:2] for p in read_documents(io.BytesIO(b"<Document/>"), read_all)] == [("", b"<Document/>")]
    archive = zipped({"a.xml": b"<A/>", "__MACOSX/._a.xml": b"junk", "dir/b.XML": b"<B/>"})
    assert [p[:2] for p in read_documents(archive, read_all)] == [("a.xml: ", b"<A/>"), ("dir/b.XML: ", b"<B/>")]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("/etc/a.xml", "a member name with an absolute path"),
        ("x/../a.xml", "a member name with an absolute path, '..'"),
        ("C:\\a.xml", "a member name with an absolute path"),
        ("a.txt", "only CAMT.053 .xml files"),
        ("inner.zip", "only CAMT.053 .xml files"),
    ],
)
def test_unsafe_members_are_refused_by_name(name: str, why: str) -> None:
    with pytest.raises(Unprocessable) as raised:
        check_member(zipfile.ZipInfo(name))
    [error] = raised.value.errors
    assert error.message.startswith(why), error


def test_an_encrypted_member_is_refused() -> None:
    member = zipfile.ZipInfo("a.xml")
    member.flag_bits |= 0x1
    with pytest.raises(Unprocessable) as raised:
        check_member(member)
    assert [(e.field, e.message) for e in raised.value.errors] == [("a.xml", "the member is encrypted")]


def test_too_many_members_are_refused_before_any_is_read() -> None:
    archive = zipped({f"s{n}.xml": b"<A/>" for n in range(MEMBERS_MAX + 1)})
    with pytest.raises(Unprocessable) as raised:
        read_documents(archive, read_all)
    assert [e.message for e in raised.value.errors] == [
        f"the ZIP archive holds {MEMBERS_MAX + 1} files; at most {MEMBERS_MAX} are read"
    ]


def test_the_unpacking_budget_is_counted_while_reading() -> None:
    budget = [10]
    reader = HashingReader(io.BytesIO(b"x" * 11), budget, "big.xml")
    with pytest.raises(Unprocessable) as raised:
        reader.read()
    assert [e.field for e in raised.value.errors] == ["big.xml"]
    assert budget == [-1]
