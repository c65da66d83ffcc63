"""The web pages' language: German for German-speaking business codes, English for every other one.

Labels are looked up in gettext catalogues (desk/locale/<lang>/LC_MESSAGES/kontor.po, compiled to kontor.mo
with Babel: `pybabel compile -d desk/locale -D kontor`; both files are committed and a test checks that the .mo
is the compiled .po). The page's language follows the business code's country, like its number format
(`desk.formats.locale_of`): DE, AT, CH, LI, LU -> German; the others -> English. Debit and credit read S and H
(Soll, Haben) in German, Dr and Cr in English.

Account names are the merchant's text. The names the chart templates seed (`ledger.charts`) are translated,
including the per-rate ones ("Revenue 19 %" -> "Erlöse 19 %"); a name the merchant changed is shown as it is.
"""

from __future__ import annotations

import gettext
import re
from functools import cache
from pathlib import Path

from babel.languages import get_official_languages

__all__ = ["DOMAIN", "LOCALE_DIR", "Language", "language_of"]

DOMAIN = "kontor"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("de", "en")
_PER_RATE = re.compile(r"^(Revenue|Output VAT|Sales deductions|Bad-debt write-off) ([0-9.]+) %( \(tax-free\))?$")


@cache
def language_of(country: str) -> str:
    """ "de" where the country's first official language is German, else "en"."""
    languages = get_official_languages(country, de_facto=True)
    return "de" if languages and languages[0] == "de" else "en"


class Language:
    """The catalogue of one language: `_` for labels, `account` for account names, `side` for S/H or Dr/Cr."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.translations = gettext.translation(DOMAIN, LOCALE_DIR, languages=[code], fallback=True)
        self._known: frozenset[str | tuple[str, int]] = frozenset(getattr(self.translations, "_catalog", {}))

    missing: set[str] | None = None  # tests set a set here to collect labels without a translation

    def _(self, message: str) -> str:
        if not message:
            return ""  # gettext("") is the catalogue's header
        if Language.missing is not None and self.code != "en" and message not in self._known:
            Language.missing.add(message)
        return self.translations.gettext(message)

    def n_(self, singular: str, plural: str, n: int) -> str:
        """The singular or plural label for `n` things, by the catalogue's plural rule (ngettext)."""
        if Language.missing is not None and self.code != "en" and (singular, 0) not in self._known:
            Language.missing.add(singular)
        return self.translations.ngettext(singular, plural, n)

    def account(self, name: str) -> str:
        """A seeded account name in this language; any other name as it is."""
        if self.code == "en":
            return name
        translated = self.translations.gettext(name)
        if translated != name:
            return translated
        m = _PER_RATE.match(name)
        if m is None:
            return name
        rate = m.group(2).replace(".", ",")
        return f"{self._(m.group(1))} {rate} %" + (f" {self._('(tax-free)')}" if m.group(3) else "")

    def side(self, side: str) -> str:
        """DEBIT -> S / Dr, CREDIT -> H / Cr, BALANCED -> ""."""
        return {"DEBIT": self._("Dr"), "CREDIT": self._("Cr")}.get(side, "")

    @staticmethod
    @cache
    def of(code: str) -> Language:
        return Language(code if code in LANGUAGES else "en")
