"""The fonts of the PDF letter and the check that they print every stored text of a letter.

The PDF embeds Liberation Sans (SIL Open Font License 1.1, `dunning/fonts/`), so umlauts, ß and € render in
every viewer, and takes what it lacks from DejaVu Sans (symbols, some emoji) and WenQuanYi Micro Hei (Chinese,
Japanese, Korean); fpdf2 embeds only the glyphs used. A stored text with a character none of them has is refused
(409 `characters_unprintable`, naming the field) rather than printed without it. HTML is escaped throughout.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import TTFFont

from dunning.letter_text import Letter
from ledger.errors import FieldError

__all__ = ["BOLD", "FONTS", "REGULAR", "close_fonts", "fallback_fonts", "printed_values", "unprintable"]

FONTS = Path(__file__).parent / "fonts"
# The fonts: Liberation Sans for the text; a character it lacks is taken from DejaVu Sans (symbols, Arabic,
# Armenian, Georgian, some emoji), then from WenQuanYi Micro Hei (Chinese, Japanese, Korean); fpdf2 switches font
# per character (`set_fallback_fonts`). A fallback is loaded only for a letter that needs it.
REGULAR, BOLD = "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"
FALLBACK_FONTS = (("SansSymbols", "DejaVuSans.ttf"), ("SansCJK", "wqy-microhei.ttc"))


@functools.cache
def _coverage(file: str) -> frozenset[int]:
    """The code points a font file has glyphs for (read once per process)."""
    probe = FPDF()
    probe.add_font("Probe", "", str(FONTS / file))
    try:
        return frozenset(code for font in probe.fonts.values() if isinstance(font, TTFFont) for code in font.cmap)
    finally:
        close_fonts(probe)


def close_fonts(pdf: FPDF) -> None:
    """Close the font files fpdf2 keeps open (its `output()` does that; a PDF only measured or abandoned needs
    it done)."""
    for font in pdf.fonts.values():
        if isinstance(font, TTFFont):
            font.close()


def fallback_fonts(letter: Letter) -> list[tuple[str, str]]:
    """The fallback fonts (family, file) this letter needs: those with a glyph the main font lacks."""
    main = _coverage(REGULAR)
    lacking = {ord(c) for _, text in printed_values(letter) for c in text} - main
    return [(family, file) for family, file in FALLBACK_FONTS if lacking and lacking & _coverage(file)]


def unprintable(letter: Letter) -> list[FieldError]:
    """The printed values with a character that none of the letter's fonts has, each with the characters: such
    a PDF would silently drop them (and misaddress the letter), so `render_pdf` refuses it instead."""
    values = printed_values(letter)
    main = _coverage(REGULAR)
    if all(ord(c) in main for _, text in values for c in text if not c.isspace()):
        return []  # the common case: the fallback fonts need not even be read
    covered = main.union(*(_coverage(file) for _, file in FALLBACK_FONTS))
    errors = []
    for name, text in values:
        lacking = sorted({c for c in text if ord(c) not in covered and not c.isspace()}, key=ord)
        if lacking:
            chars = ", ".join(f"'{c}' (U+{ord(c):04X})" for c in lacking)
            errors.append(FieldError(name, f"{chars}: no font of the letter has this character"))
    return errors


def printed_values(letter: Letter) -> list[tuple[str, str]]:
    """Every stored text the letter prints, with where it comes from: the bill-to's fields (`bill_to.street`),
    the customer number, the orders and invoices, the business profile (`profile.legal_name`). The letter's own
    wording is Kontor's and always in the main font."""
    s = letter.sender
    values = list(letter.sources) or [("addressee", line) for line in letter.addressee]
    values.append(("customer", letter.customer))
    for item in letter.items:
        if item.order:
            values.append(("order_reference", item.order))
        values += [("invoice_number", number) for number, _ in item.invoices]
    profile = [
        ("legal_name", s.legal_name),
        ("address.street", s.address.street),
        ("address.postcode", s.address.postcode),
        ("address.city", s.address.city),
        ("bank.account_holder", s.bank.account_holder),
        ("bank.bank_name", s.bank.bank_name),
        ("managing_directors", s.managing_directors),
        ("register.court", s.register.court if s.register else None),
        ("register.number", s.register.number if s.register else None),
        ("tax_number", s.tax_number),
        ("contact.phone", s.contact.phone if s.contact else None),
        ("contact.email", s.contact.email if s.contact else None),
        ("contact.web", s.contact.web if s.contact else None),
    ]
    values += [(f"profile.{name}", value) for name, value in profile if value]
    return values
