"""Chart-of-accounts templates (SKR03 / SKR04) seeded into every new business code.

Why this module exists: docs/accounting.md fixes a template of role keys (AR, PSP, VAT_19, ...) mapped to
DATEV account numbers. The service identifies accounts by role, never by number, so merchants may
rename accounts or give them their own G/L number (`alt_number`). Rates other than the German 19 % /
7 % get numbers next to the German ones; 0 % revenue and deductions get the tax-free accounts.
PSP, PSP_RESERVE and VAT_PREPAY are "merchant-defined" (docs/accounting.md): the numbers below are
conventional defaults inside the right ranges; check them with the tax adviser.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

__all__ = ["CHARTS", "DEFAULT_VAT_RATES", "TemplateAccount", "chart_template", "default_vat_rates", "rate_key"]

AccountType = Literal["asset", "liability", "equity", "revenue", "expense"]
CHARTS = ("skr03", "skr04")


@dataclass(frozen=True, slots=True)
class TemplateAccount:
    number: str
    name: str
    type: AccountType
    role: str
    vat_rate: Decimal | None = None
    customer_ledger: bool = False


# role -> (name, type, SKR03, SKR04)
_FIXED: tuple[tuple[str, str, AccountType, str, str], ...] = (
    ("BANK", "Bank", "asset", "1200", "1800"),
    ("TRANSIT", "Money in transit", "asset", "1360", "1460"),
    ("PSP", "Amazon Pay clearing", "asset", "1210", "1810"),
    ("PSP_RESERVE", "Amazon Pay reserve", "asset", "1211", "1811"),
    ("AR", "Receivables (customer accounts)", "asset", "1400", "1200"),
    ("SUSPENSE", "Settlement items awaiting an accountant", "asset", "1590", "1370"),
    ("VAT_PREPAY", "VAT on prepayments received (clearing)", "asset", "1549", "1429"),
    ("PSP_FEE", "Payment and chargeback fees", "expense", "4970", "6855"),
    ("DUN_FEE_INC", "Dunning fees and flat fees (no VAT)", "revenue", "2700", "4830"),
    ("INT_INC", "Default interest income (no VAT)", "revenue", "2650", "7100"),
    ("LOSS0", "Bad-debt write-off without VAT", "expense", "2400", "6930"),
    ("RECOV", "Income from written-off receivables", "revenue", "2732", "4925"),
)

# Per-rate accounts: numbers for the 1st (standard), 2nd, 3rd and 4th positive rate, and for 0 %.
_PER_RATE: dict[str, tuple[str, AccountType, dict[str, tuple[str, ...]], dict[str, str]]] = {
    "REV": (
        "Revenue",
        "revenue",
        {"skr03": ("8400", "8300", "8310", "8320"), "skr04": ("4400", "4300", "4310", "4320")},
        {"skr03": "8120", "skr04": "4120"},
    ),
    "VAT": (
        "Output VAT",
        "liability",
        {"skr03": ("1776", "1771", "1772", "1773"), "skr04": ("3806", "3801", "3802", "3803")},
        {},
    ),
    "RED": (
        "Sales deductions",
        "revenue",
        {"skr03": ("8720", "8710", "8711", "8712"), "skr04": ("4720", "4710", "4711", "4712")},
        {"skr03": "8700", "skr04": "4700"},
    ),
    "LOSS": (
        "Bad-debt write-off",
        "expense",
        {"skr03": ("2406", "2401", "2402", "2403"), "skr04": ("6936", "6931", "6932", "6933")},
        {},
    ),
}

# Standard and reduced VAT rates per country (docs/accounting.md, "Chart of accounts: roles").
# A starting point only: pass vat_rates explicitly when creating a business code to override.
DEFAULT_VAT_RATES: dict[str, tuple[str, ...]] = {
    "DE": ("19", "7"),
    "AT": ("20", "13", "10"),
    "BE": ("21", "12", "6"),
    "FR": ("20", "10", "5.5"),
    "IT": ("22", "10", "5"),
    "NL": ("21", "9"),
    "ES": ("21", "10", "4"),
    "PT": ("23", "13", "6"),
    "IE": ("23", "13.5", "9"),
    "FI": ("25.5", "14", "10"),
    "LT": ("21", "9", "5"),
    "LV": ("21", "12", "5"),
    "EE": ("24", "9"),
    "SK": ("23", "19", "5"),
    "SI": ("22", "9.5", "5"),
    "CZ": ("21", "12"),
    "DK": ("25",),
    "HR": ("25", "13", "5"),
    "HU": ("27", "18", "5"),
    "PL": ("23", "8", "5"),
    "SE": ("25", "12", "6"),
    "CH": ("8.1", "3.8", "2.6"),
    "GB": ("20", "5"),
    "UK": ("20", "5"),
    "NO": ("25", "15", "12"),
}


def default_vat_rates(country: str) -> tuple[Decimal, ...]:
    """The positive VAT rates a business code in `country` starts with (German rates if unknown)."""
    return tuple(Decimal(r) for r in DEFAULT_VAT_RATES.get(country, DEFAULT_VAT_RATES["DE"]))


def rate_key(rate: Decimal) -> str:
    """Role suffix of a rate: 19 -> '19', 5.5 -> '5_5'."""
    return format(rate.normalize(), "f").replace(".", "_")


def chart_template(chart: str, vat_rates: tuple[Decimal, ...]) -> list[TemplateAccount]:
    """Accounts for a new business code: the fixed accounts plus REV/VAT/RED/LOSS per VAT rate."""
    if chart not in CHARTS:
        raise ValueError(f"unknown chart {chart!r}")
    positive = sorted({r for r in vat_rates if r > 0}, reverse=True)
    if len(positive) > 4:
        raise ValueError("at most 4 positive VAT rates per business code")
    accounts = [
        TemplateAccount(
            number=(skr03 if chart == "skr03" else skr04),
            name=name,
            type=type_,
            role=role,
            customer_ledger=(role == "AR"),
        )
        for role, name, type_, skr03, skr04 in _FIXED
    ]
    for prefix, (name, type_, numbers, zero_numbers) in _PER_RATE.items():
        for slot, rate in enumerate(positive):
            accounts.append(
                TemplateAccount(
                    number=numbers[chart][slot],
                    name=f"{name} {format(rate.normalize(), 'f')} %",
                    type=type_,
                    role=f"{prefix}_{rate_key(rate)}",
                    vat_rate=rate,
                )
            )
        if chart in zero_numbers:
            accounts.append(
                TemplateAccount(
                    number=zero_numbers[chart],
                    name=f"{name} 0 % (tax-free)",
                    type=type_,
                    role=f"{prefix}_0",
                    vat_rate=Decimal(0),
                )
            )
    return accounts
