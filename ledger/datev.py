"""DATEV "EXTF Buchungsstapel" (format 700, category 21, version 13) of a month's journal entries.

DATEV books in rows of Umsatz, Soll/Haben-Kennzeichen, Konto and Gegenkonto; VAT is not a row of its own but
computed by DATEV from the gross on the row's revenue, deduction or bad-debt account, either because that
account is an "Automatikkonto" (SKR03 8400, 8300, 8720, 2406, ... : `automatic_accounts`, the default) or
because the row carries a BU key (3: 19 %, 2: 7 %). Kontor books the VAT as lines of its own, so an entry's
taxed line and VAT line of one rate and side are folded into one gross row — but only where DATEV's tax on that
gross (half-up, as Kontor's) is exactly Kontor's VAT line; otherwise, and for taxed accounts booked without VAT,
the row carries BU key 40 (DATEV: no automatic VAT) and the VAT line stays a row of its own. Either way DATEV
ends with Kontor's figures to the cent (the tests import every file back that way).

The file: ';'-separated, text in double quotes, decimal comma, CRLF, Windows-1252 (DATEV's "ANSI"; characters
it cannot hold become '?'). Accounts are the merchant's alternative numbers where set; receivables stay on the
collective account with the customer in "Zusatzinformation" (DATEV debtor numbers are not kept by Kontor), so a
move between two customers on it (or between two accounts with one DATEV number) moves no DATEV account and is
left out: DATEV refuses a row whose Konto is its Gegenkonto.
Belegfeld 1 is the entry's document number (its `reference`: invoice, credit note, goodwill or payment number; else
the entry id), Belegfeld 2 its order (`order_reference`, cut to DATEV's 12 characters; whole in "Auftragsnummer").
"""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

import asyncpg
import msgspec
from msgspec import Meta, Struct

from ledger.context import AccountIndex, Kontor
from ledger.domain import Account, Business, month_end, parse_period
from ledger.errors import Conflict, FieldError, NotFound, Unprocessable
from ledger.money import format_amount, vat_from_gross
from ledger.tenancy import account_index
from ledger.textsafe import ascii_digits, cell

__all__ = [
    "COLUMNS",
    "NO_AUTOMATIC",
    "DatevSettingsIn",
    "DatevSettingsOut",
    "Row",
    "buchungsstapel",
    "file_name",
    "get_settings",
    "put_settings",
]

CHARSET = "windows-1252"
MEDIA_TYPE = f"text/csv; charset={CHARSET}"
BU_KEYS = {Decimal(19): "3", Decimal(7): "2"}  # DATEV's output-VAT keys for the German rates
BELEGFELD_2_LENGTH = 12  # DATEV's length of Belegfeld 2; the whole order id goes to "Auftragsnummer" (30)
AUFTRAGSNUMMER_LENGTH = 30
NO_AUTOMATIC = "40"  # "Aufhebung der Automatik": DATEV computes no VAT on this row
CHART_SKR = {"skr03": "03", "skr04": "04"}

COLUMNS = [
    "Umsatz (ohne Soll/Haben-Kz)", "Soll/Haben-Kennzeichen", "WKZ Umsatz", "Kurs", "Basis-Umsatz",
    "WKZ Basis-Umsatz", "Konto", "Gegenkonto (ohne BU-Schlüssel)", "BU-Schlüssel", "Belegdatum", "Belegfeld 1",
    "Belegfeld 2", "Skonto", "Buchungstext", "Postensperre", "Diverse Adressnummer", "Geschäftspartnerbank",
    "Sachverhalt", "Zinssperre", "Beleglink",
    *(f"Beleginfo - {kind} {n}" for n in range(1, 9) for kind in ("Art", "Inhalt")),
    "KOST1 - Kostenstelle", "KOST2 - Kostenstelle", "Kost-Menge", "EU-Land u. UStID (Bestimmung)",
    "EU-Steuersatz (Bestimmung)", "Abw. Versteuerungsart", "Sachverhalt L+L", "Funktionsergänzung L+L",
    "BU 49 Hauptfunktionstyp", "BU 49 Hauptfunktionsnummer", "BU 49 Funktionsergänzung",
    *(f"Zusatzinformation - {kind} {n}" for n in range(1, 21) for kind in ("Art", "Inhalt")),
    "Stück", "Gewicht", "Zahlweise", "Forderungsart", "Veranlagungsjahr", "Zugeordnete Fälligkeit", "Skontotyp",
    "Auftragsnummer", "Buchungstyp", "USt-Schlüssel (Anzahlungen)", "EU-Mitgliedstaat (Anzahlungen)",
    "Sachverhalt L+L (Anzahlungen)", "EU-Steuersatz (Anzahlungen)", "Erlöskonto (Anzahlungen)", "Herkunft-Kz",
    "Buchungs GUID", "KOST-Datum", "SEPA-Mandatsreferenz", "Skontosperre", "Gesellschaftername",
    "Beteiligtennummer", "Identifikationsnummer", "Zeichnernummer", "Postensperre bis",
    "Bezeichnung SoBil-Sachverhalt", "Kennzeichen SoBil-Buchung", "Festschreibung", "Leistungsdatum",
    "Datum Zuord. Steuerperiode", "Fälligkeit", "Generalumkehr (GU)", "Steuersatz", "Land", "Abrechnungsreferenz",
    "BVV-Position", "EU-Mitgliedstaat u. UStID (Ursprung)", "EU-Steuersatz (Ursprung)", "Abw. Skontokonto",
]  # fmt: skip
_AT = {name: i for i, name in enumerate(COLUMNS)}


# --- settings ------------------------------------------------------------------------------------------
class DatevSettingsIn(Struct, kw_only=True, forbid_unknown_fields=True):
    consultant_number: Annotated[int, Meta(ge=1001, le=9_999_999, description="Beraternummer")]
    client_number: Annotated[int, Meta(ge=1, le=99_999, description="Mandantennummer")]
    fiscal_year_start_month: Annotated[int, Meta(ge=1, le=12, description="First month of the fiscal year")] = 1
    account_length: Annotated[int, Meta(ge=4, le=8, description="Sachkontenlänge in DATEV")] = 4
    automatic_accounts: Annotated[
        bool,
        Meta(
            description="The taxed revenue, deduction and bad-debt accounts are DATEV automatic accounts (SKR03/04 "
            "standard): gross rows without BU key. false: gross rows with BU key 3 (19 %) / 2 (7 %)."
        ),
    ] = True


class DatevSettingsOut(DatevSettingsIn, kw_only=True):
    updated_at: datetime


async def get_settings(ctx: Kontor, business: Business, *, route: bool = False) -> DatevSettingsOut:
    """The business code's DATEV settings; without them 404 `datev_settings_not_found` for the settings route
    (`route`), 409 `datev_settings_missing` for the export that needs them."""
    row = await ctx.pool.fetchrow(
        "SELECT settings, updated_at FROM datev_settings WHERE merchant_id = $1 AND business = $2",
        business.merchant_id,
        business.code,
    )
    if row is None:
        text = (
            f"business code {business.code} has no DATEV settings: PUT its consultant and client numbers first "
            f"(/v1/businesses/{business.code}/datev/settings)"
        )
        if route:
            raise NotFound("datev_settings_not_found", text)
        raise Conflict("datev_settings_missing", text)
    return msgspec.convert({**row["settings"], "updated_at": row["updated_at"]}, DatevSettingsOut)


async def put_settings(ctx: Kontor, business: Business, spec: DatevSettingsIn) -> DatevSettingsOut:
    updated_at = await ctx.pool.fetchval(
        "INSERT INTO datev_settings (merchant_id, business, settings) VALUES ($1, $2, $3) "
        "ON CONFLICT (merchant_id, business) DO UPDATE SET settings = excluded.settings, updated_at = now() "
        "RETURNING updated_at",
        business.merchant_id,
        business.code,
        msgspec.to_builtins(spec),
    )
    return DatevSettingsOut(**msgspec.structs.asdict(spec), updated_at=updated_at)


# --- entries -> rows -------------------------------------------------------------------------------------
@dataclass
class _Leg:
    account: Account
    debit: bool
    amount: int
    customer: str | None
    key: str = ""
    gross: bool = False  # a taxed line and its VAT folded into one: DATEV splits the VAT out


@dataclass(frozen=True)
class Row:
    amount: int
    debit_konto: bool  # S: the Konto is debited, H: credited
    konto: Account
    gegenkonto: Account
    key: str
    customer: str | None


def _taxed(account: Account) -> bool:
    return bool(account.vat_rate) and not (account.role or "").startswith("VAT_")


def _is_vat(account: Account) -> bool:
    return bool(account.vat_rate) and (account.role or "").startswith("VAT_")


def _fold(legs: list[_Leg], automatic: bool, *, fold: bool = True) -> list[_Leg]:
    """Fold each taxed line with the VAT line of its rate and side into one gross leg where DATEV's tax on the
    gross equals that VAT line; mark every other taxed leg so that DATEV computes no VAT on it.

    A gross leg must become exactly one row (DATEV rounds the VAT per row): when the other side of the entry has
    more than one line, nothing is folded."""
    out = [leg for leg in legs if not (_taxed(leg.account) or _is_vat(leg.account))]
    groups: dict[tuple[Decimal, bool], tuple[list[_Leg], list[_Leg]]] = {}
    for leg in legs:
        if _taxed(leg.account) or _is_vat(leg.account):
            rate = leg.account.vat_rate or Decimal(0)
            taxed, vat = groups.setdefault((rate, leg.debit), ([], []))
            (taxed if _taxed(leg.account) else vat).append(leg)
    for (rate, _), (taxed, vat) in groups.items():
        key = "" if automatic else BU_KEYS.get(rate)
        if fold and len(taxed) == 1 and len(vat) == 1 and key is not None:
            gross = taxed[0].amount + vat[0].amount
            if vat_from_gross(gross, rate) == vat[0].amount:
                out.append(_Leg(taxed[0].account, taxed[0].debit, gross, taxed[0].customer, key, gross=True))
                continue
        out += [_Leg(t.account, t.debit, t.amount, t.customer, NO_AUTOMATIC if automatic else "") for t in taxed]
        out += vat
    if fold and any(g.gross and sum(o.debit != g.debit for o in out) > 1 for g in out):
        return _fold(legs, automatic, fold=False)
    return out


def _datev_number(account: Account) -> str:
    return account.alt_number or account.number


def _rows(legs: list[_Leg], entry_id: int) -> list[Row]:
    """Pair debit and credit legs in order (an entry with one line on one side gives one row per other line).

    A pair on one DATEV account (the same account, or two whose DATEV numbers agree) gives no row: DATEV refuses
    a row whose Konto is its Gegenkonto, and such a pair moves no DATEV account. The G/L report and the journal
    still show it; an entry made only of such pairs is not in the file."""
    debits = [replace(g) for g in legs if g.debit]  # copies: their amounts are used up below
    credits = [replace(g) for g in legs if not g.debit]
    rows: list[Row] = []
    d = c = 0
    while d < len(debits) and c < len(credits):
        dr, cr = debits[d], credits[c]
        amount = min(dr.amount, cr.amount)
        if _taxed(dr.account) and _taxed(cr.account) and (dr.gross or cr.gross):
            raise Unprocessable(
                "datev_entry_unrepresentable",
                f"entry {entry_id} books {dr.account.number} with its VAT against {cr.account.number}, both taxed: "
                "a DATEV row computes the VAT of one account; book it in two entries through a clearing account",
            )
        # DATEV's habit: the taxed account is the Gegenkonto
        credit_side_konto = _taxed(dr.account) and not _taxed(cr.account)
        konto, gegen = (cr, dr) if credit_side_konto else (dr, cr)
        if _datev_number(dr.account) != _datev_number(cr.account):
            rows.append(
                Row(
                    amount=amount,
                    debit_konto=not credit_side_konto,
                    konto=konto.account,
                    gegenkonto=gegen.account,
                    key=dr.key or cr.key,
                    customer=dr.customer or cr.customer,
                )
            )
        # else: a move within one DATEV account (a credit from one customer to another on the collective
        # receivables account) changes no DATEV account, and DATEV refuses Konto = Gegenkonto: no row
        dr.amount -= amount
        cr.amount -= amount
        d += dr.amount == 0
        c += cr.amount == 0
    return rows


# --- the file --------------------------------------------------------------------------------------------
_BELEGFELD = re.compile(r"[^A-Za-z0-9$&%*+\-/]")


def _number(account: Account, length: int) -> str:
    number = _datev_number(account)
    if not ascii_digits(number, length_max=length):
        raise Unprocessable(
            "datev_account_invalid",
            f"account {account.number} would be {number!r} in DATEV, which takes numbers of up to {length} digits: "
            "set its alt_number, or the account length in the DATEV settings",
            [FieldError("account_length", f"{number!r} does not fit")],
        )
    return number


def _amount(minor: int, currency: str) -> str:
    return format_amount(minor, currency).replace(".", ",")


def file_name(business: Business, period: str) -> str:
    return f"EXTF_Buchungsstapel_{business.code}_{period}.csv"


async def buchungsstapel(ctx: Kontor, business: Business, period: str, *, created: datetime) -> bytes:
    """The month's entries as a DATEV Buchungsstapel (409 without DATEV settings)."""
    first = parse_period(period)
    settings = await get_settings(ctx, business)
    last = month_end(first)
    index = await account_index(ctx, business)
    async with ctx.reports_pool.acquire() as conn:
        # one index lookup of the lines per entry (LATERAL): no join order for a planner with stale statistics
        # to get wrong after a month's bulk import (a nested loop over all lines was seen: 3 s for 3,000 entries)
        entries = await conn.fetch(
            "SELECT e.entry_id, e.effective_date, e.description, e.reference, e.order_reference, l.* FROM entries e "
            "CROSS JOIN LATERAL "
            "(SELECT array_agg(account_id ORDER BY line_no) AS accounts, array_agg(side ORDER BY line_no) AS sides, "
            "array_agg(amount_minor ORDER BY line_no) AS amounts, array_agg(customer ORDER BY line_no) AS customers, "
            "bool_and(currency = $5) AS own_currency FROM lines WHERE lines.merchant_id = e.merchant_id "
            "AND lines.business = e.business AND lines.entry_id = e.entry_id) l "
            "WHERE e.merchant_id = $1 AND e.business = $2 AND e.effective_date BETWEEN $3 AND $4 "
            "ORDER BY e.effective_date, e.entry_id",
            business.merchant_id,
            business.code,
            first,
            last,
            business.currency,
        )
        closed = await conn.fetchval(
            "SELECT closed_through >= $3 FROM businesses WHERE merchant_id = $1 AND business = $2",
            business.merchant_id,
            business.code,
            last,
        )
    # the file is built in a worker thread: a month of tens of thousands of entries held the event loop ~2 s
    return await asyncio.to_thread(_file, business, period, settings, index, entries, closed, created)


def _file(
    business: Business,
    period: str,
    settings: DatevSettingsOut,
    index: AccountIndex,
    entries: list[asyncpg.Record],
    closed: bool,
    created: datetime,
) -> bytes:
    """The Buchungsstapel of the month's entries (CPU work only: no database, no event loop)."""
    first = parse_period(period)
    last = month_end(first)
    out = io.StringIO()
    length = settings.account_length
    fiscal_year = date(first.year if first.month >= settings.fiscal_year_start_month else first.year - 1,
                       settings.fiscal_year_start_month, 1)  # fmt: skip
    header = [
        _text("EXTF"), "700", "21", _text("Buchungsstapel"), "13", created.strftime("%Y%m%d%H%M%S%f")[:17], "",
        _text("RE"), _text("Kontor"), _text(""), str(settings.consultant_number), str(settings.client_number),
        fiscal_year.strftime("%Y%m%d"), str(length), first.strftime("%Y%m%d"), last.strftime("%Y%m%d"),
        _text(f"Kontor {business.code} {period}"), _text(""), "1", "0", "1" if closed else "0",
        _text(business.currency), "", _text(""), "", "", _text(CHART_SKR.get(business.chart, "")), "", "",
        _text(""), _text(""),
    ]  # fmt: skip
    out.write(";".join(header) + "\r\n")
    out.write(";".join(_text(name) for name in COLUMNS) + "\r\n")
    for e in entries:
        if not e["own_currency"]:
            raise Unprocessable(
                "datev_foreign_currency",
                f"entry {e['entry_id']} has lines in another currency than {business.currency}; "
                "the DATEV export carries the business code's currency only",
            )
        legs = [
            _Leg(index.by_id[a], s == "D", m, c)
            for a, s, m, c in zip(e["accounts"], e["sides"], e["amounts"], e["customers"], strict=True)
        ]
        for row in _rows(_fold(legs, settings.automatic_accounts), e["entry_id"]):
            fields = [""] * len(COLUMNS)
            fields[_AT["Umsatz (ohne Soll/Haben-Kz)"]] = _amount(row.amount, business.currency)
            fields[_AT["Soll/Haben-Kennzeichen"]] = _text("S" if row.debit_konto else "H")
            fields[_AT["WKZ Umsatz"]] = _text(business.currency)
            fields[_AT["Konto"]] = _number(row.konto, length)
            fields[_AT["Gegenkonto (ohne BU-Schlüssel)"]] = _number(row.gegenkonto, length)
            fields[_AT["BU-Schlüssel"]] = _text(row.key)
            fields[_AT["Belegdatum"]] = e["effective_date"].strftime("%d%m")
            fields[_AT["Belegfeld 1"]] = _text(_belegfeld(e["reference"]) or str(e["entry_id"]))
            if e["order_reference"]:
                fields[_AT["Belegfeld 2"]] = _text(_belegfeld(e["order_reference"], BELEGFELD_2_LENGTH))
                fields[_AT["Auftragsnummer"]] = _text(_belegfeld(e["order_reference"], AUFTRAGSNUMMER_LENGTH))
            fields[_AT["Buchungstext"]] = _text(cell(e["description"])[:60])
            fields[_AT["Zusatzinformation - Art 1"]] = _text("Kontor-Buchung")
            fields[_AT["Zusatzinformation - Inhalt 1"]] = _text(str(e["entry_id"]))
            if row.customer:
                fields[_AT["Zusatzinformation - Art 2"]] = _text("Kunde")
                fields[_AT["Zusatzinformation - Inhalt 2"]] = _text(cell(row.customer)[:210])
            out.write(";".join(fields) + "\r\n")
    return out.getvalue().encode("cp1252", errors="replace")


def _belegfeld(reference: str | None, length: int = 36) -> str:
    """Belegfeld 1 and 2 take DATEV's characters A-Z a-z 0-9 $ & % * + - / only (no apostrophe to neutralise a
    formula with): a reference reduced to them loses its leading + and -, so no cell starts a formula. DATEV's
    lengths: Belegfeld 1 36, Belegfeld 2 12, Auftragsnummer 30 characters."""
    return _BELEGFELD.sub("", reference or "").lstrip("+-")[:length]


def _text(value: str) -> str:
    """A DATEV text field: in double quotes, quotes doubled, no line breaks or separators' confusion.
    Free text reaches it through `ledger.textsafe.cell` first, so a spreadsheet never reads it as a formula."""
    clean = value.replace("\r", " ").replace("\n", " ").replace('"', '""')
    return f'"{clean}"'
