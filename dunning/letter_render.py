"""A `Letter` laid out as PDF and as HTML; pure given the letter (no database). The fonts are
`dunning.letter_fonts`'s.

Layout (`render_pdf`): DIN 5008 form B on A4 for a DL window envelope (C6/5 or DL with a window at the left).
The address field is 85 x 45 mm at 20 mm from the left and 45 mm from the top: its first 17.7 mm are the
"Zusatz- und Vermerkzone", whose last line is the sender line (the return address, 7 pt), then the
"Anschriftzone" with the addressee (27.3 mm), written from 25 mm and never wider than 80 mm: lines wrap, the
size steps from 10 pt (6 lines) to 9 pt (7) and 8 pt (8), then the name lines are shortened with "…"; street
and place are never cut (409 `address_too_long` if they alone do not fit; `fit_address`). The information block
(date, customer number, the document number "Mahnungsnr."/"Notice no.", payment reference) stands at
125 mm; fold marks at 105 and 210 mm and the hole mark at 148.5 mm on the left edge; text from 25 mm to 190 mm;
the footer carries the legal name and address, register, VAT id and tax number, managing directors, contact,
and the bank.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from html import escape
from typing import cast

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from dunning.letter_address import (
    ADDRESS_FIELD,
    ADDRESS_SIZES,
    ADDRESS_TEXT_LEFT,
    ADDRESS_TEXT_WIDTH,
    NAME_FIELDS,
    SENDER_SIZES,
    VERMERK_ZONE_H,
    AddressBlock,
    fit_address,
    fit_line,
)
from dunning.letter_fonts import BOLD, FONTS, REGULAR, close_fonts, fallback_fonts, unprintable
from dunning.letter_text import (
    Letter,
    Words,
    bank_lines,
    document_name,
    footer_columns,
    info_block,
    interest_line,
    item_rows,
    paragraphs,
    sender_line,
    title,
)
from ledger.errors import Conflict, FieldError

__all__ = ["FOLD_MARKS", "HOLE_MARK", "INFO_LEFT", "address_block", "render_html", "render_pdf"]

# DIN 5008 form B (mm from the top-left corner of the A4 page)
PAGE_W, PAGE_H = 210.0, 297.0
TEXT_LEFT, TEXT_RIGHT = 25.0, 190.0
INFO_LEFT = 125.0
FOLD_MARKS = (105.0, 210.0)
HOLE_MARK = 148.5
FOOTER_TOP = 270.0


# --- HTML -------------------------------------------------------------------------------------------------
def render_html(letter: Letter) -> str:
    """The letter as one HTML page (printable; every value escaped; no scripts, no external resources)."""
    w = Words(letter)
    e = escape
    salutation, before, after = paragraphs(letter, w)
    measure = _Pdf(letter)  # the PDF's fonts measure the window's lines (Liberation Sans is metric-compatible
    try:  # with Arial); a browser prints what no font here has with its own fonts
        block = fit_address(letter.addressee, letter.addressee_names, measure.width_at)
        sender_size, sender = fit_line(sender_line(letter), SENDER_SIZES, ADDRESS_TEXT_WIDTH, measure.width_at)
    finally:
        close_fonts(measure)
    if block is None:
        block = AddressBlock(ADDRESS_SIZES[-1][0], ADDRESS_SIZES[-1][1], letter.addressee)
    de = letter.language == "de"
    heads = ("Beleg", "Datum", "fällig seit", "offen") if de else ("Document", "Date", "Due since", "Open")
    rows = "".join(
        "<tr>" + "".join(f"<td{' class=num' if n == 3 else ''}>{e(v).replace(chr(10), '<br>')}</td>"
                         for n, v in enumerate(row)) + "</tr>"
        for row in item_rows(letter, w)
    )  # fmt: skip
    interest = interest_line(letter, w)
    bank = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in bank_lines(letter))
    info = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in info_block(letter, w))
    footer = "".join("<div>" + "<br>".join(e(x) for x in col) + "</div>" for col in footer_columns(letter))
    logo = ""
    if letter.logo is not None:
        data = base64.b64encode(letter.logo.data).decode()
        logo = f'<img class=logo alt="" src="data:{letter.logo.media_type};base64,{data}">'
    total = "Gesamtbetrag" if de else "Total"
    return f"""<!DOCTYPE html>
<html lang="{letter.language}"><head><meta charset="utf-8"><title>{e(document_name(letter))}</title>
<style>
@page{{size:A4;margin:0}}
body{{font-family:"Liberation Sans",Arial,Helvetica,sans-serif;font-size:10.5pt;margin:0}}
.page{{position:relative;width:210mm;min-height:297mm;box-sizing:border-box;padding:0 20mm 0 25mm}}
.head{{position:absolute;top:12mm;left:25mm;right:20mm;height:30mm}}
.head .name{{font-size:15pt;font-weight:bold}}
.logo{{position:absolute;right:0;top:0;max-height:25mm;max-width:60mm}}
.window{{position:absolute;left:20mm;top:45mm;width:85mm;height:45mm;padding-left:5mm;box-sizing:border-box}}
.sender{{position:absolute;top:12.7mm;font-size:{sender_size:g}pt;border-bottom:.2mm solid #000;white-space:nowrap}}
.address{{position:absolute;top:17.7mm;width:80mm;height:27.3mm;overflow:hidden;white-space:nowrap;
font-size:{block.size:g}pt;line-height:{block.leading:g}mm}}
.info{{position:absolute;left:125mm;top:50mm;font-size:9pt;border-collapse:collapse}}
.info th{{text-align:left;font-weight:normal;padding-right:3mm;color:#333}}
.body{{padding-top:98mm}}
h1{{font-size:12pt;margin:0 0 6mm}}
table.items{{width:100%;border-collapse:collapse;margin:4mm 0}}
table.items th{{text-align:left;border-bottom:.3mm solid #000}}
table.items td,table.items th{{padding:1mm 1.5mm;vertical-align:top}}
table.items th.num{{text-align:right}}
.num{{text-align:right;white-space:nowrap}}
table.items tfoot td{{border-top:.3mm solid #000;font-weight:bold}}
.bank th{{text-align:left;font-weight:normal;padding-right:4mm}}
.mark{{position:absolute;left:4mm;width:5mm;border-top:.2mm solid #000}}
footer{{position:absolute;top:270mm;left:25mm;right:20mm;display:flex;gap:6mm;font-size:7pt;color:#333;
border-top:.2mm solid #999;padding-top:2mm}}
</style></head>
<body><div class=page>
<div class=mark style="top:105mm"></div><div class=mark style="top:148.5mm;width:8mm"></div>
<div class=mark style="top:210mm"></div>
<div class=head><div class=name>{e(letter.sender.legal_name)}</div>{logo}</div>
<div class=window><div class=sender>{e(sender)}</div>
<div class=address>{"<br>".join(e(x) for x in block.lines)}</div></div>
<table class=info>{info}</table>
<div class=body>
<h1>{e(title(letter))}</h1>
<p>{e(salutation)}</p>
{"".join(f"<p>{e(p)}</p>" for p in before)}
<table class=items><thead><tr><th>{heads[0]}</th><th>{heads[1]}</th><th>{heads[2]}</th><th class=num>{heads[3]}</th></tr></thead>
<tbody>{rows}</tbody>
<tfoot><tr><td colspan=3>{total}</td><td class=num>{e(w.money(letter.total_minor))}</td></tr></tfoot></table>
{f"<p>{e(interest)}</p>" if interest else ""}
{"".join(f"<p>{e(p)}</p>" for p in after)}
<table class=bank>{bank}</table>
<p>{"Mit freundlichen Grüßen" if de else "Yours sincerely"}<br>{e(letter.sender.legal_name)}</p>
</div>
<footer>{footer}</footer>
</div></body></html>
"""


# --- PDF --------------------------------------------------------------------------------------------------
class _Pdf(FPDF):
    def __init__(self, letter: Letter) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.letter = letter
        self.add_font("Sans", "", str(FONTS / REGULAR))
        self.add_font("Sans", "B", str(FONTS / BOLD))
        needed = fallback_fonts(letter)
        for family, file in needed:
            self.add_font(family, "", str(FONTS / file))
        if needed:  # regular glyphs serve bold text too: better than none
            self.set_fallback_fonts([family for family, _ in needed], exact_match=False)
        self.set_margins(TEXT_LEFT, 20, PAGE_W - TEXT_RIGHT)
        self.c_margin = 0  # text starts where DIN 5008 puts it (25 mm), not a cell padding further right
        self.set_auto_page_break(True, margin=PAGE_H - FOOTER_TOP + 6)
        self.set_creation_date(_midnight(letter.issued_on))
        self.set_title(document_name(letter))
        self.set_author(letter.sender.legal_name)
        self.set_creator("Kontor")
        self.set_lang(letter.language)

    def header(self) -> None:
        self.set_draw_color(0)
        self.set_line_width(0.2)
        for y in FOLD_MARKS:
            self.line(4, y, 9, y)
        self.line(4, HOLE_MARK, 12, HOLE_MARK)
        if self.page_no() > 1:
            self.set_font("Sans", "", 8)
            self.set_xy(TEXT_LEFT, 12)
            customer = "Kundennummer" if self.letter.language == "de" else "Customer number"
            self.cell(0, 4, f"{document_name(self.letter)} · {customer} {self.letter.customer}")
            self.set_y(22)

    def width_at(self, text: str, size: float) -> float:
        """The printed width (mm) of a text in the regular font at `size` pt (fallback glyphs included)."""
        style, current = self.font_style, self.font_size_pt
        self.set_font("Sans", "", size)
        width = self.get_string_width(text)
        self.set_font("Sans", style, current)
        return width

    def footer(self) -> None:
        columns = footer_columns(self.letter)
        self.set_draw_color(150)
        self.line(TEXT_LEFT, FOOTER_TOP, TEXT_RIGHT, FOOTER_TOP)
        self.set_font("Sans", "", 6.5)
        self.set_text_color(60)
        # each column as wide as its longest line, the space left shared out between them
        needed = [max(self.get_string_width(t) for t in column) + 2 * self.c_margin + 0.5 for column in columns]
        spare = max(0.0, (TEXT_RIGHT - TEXT_LEFT - sum(needed)) / max(len(columns) - 1, 1))
        x = TEXT_LEFT
        for column, width in zip(columns, needed, strict=True):
            self.set_xy(x, FOOTER_TOP + 1.5)
            self.multi_cell(width, 3, "\n".join(column), align="L", new_x=XPos.RIGHT, new_y=YPos.TOP)
            x += width + spare
        self.set_text_color(0)
        self.set_font("Sans", "", 7)
        self.set_xy(TEXT_LEFT, PAGE_H - 10)
        self.cell(TEXT_RIGHT - TEXT_LEFT, 3, f"{self.page_no()}/{{nb}}", align="R")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _head(pdf: _Pdf, letter: Letter, w: Words) -> None:
    """Letterhead (legal name, logo), the window (sender line, addressee) and the information block."""
    pdf.set_font("Sans", "B", 15)
    pdf.set_xy(TEXT_LEFT, 15)
    pdf.cell(100, 7, letter.sender.legal_name)
    if letter.logo is not None:
        height = 22.0
        width = min(60.0, height * letter.logo.width / letter.logo.height)
        height = width * letter.logo.height / letter.logo.width
        pdf.image(io.BytesIO(letter.logo.data), x=TEXT_RIGHT - width, y=12, w=width, h=height)
    # the window: sender line at the bottom of the Vermerkzone, then the Anschriftzone; nothing wider than 80 mm
    _, y0, _, _ = ADDRESS_FIELD
    size, line = fit_line(sender_line(letter), SENDER_SIZES, ADDRESS_TEXT_WIDTH, pdf.width_at)
    pdf.set_font("Sans", "", size)
    pdf.set_xy(ADDRESS_TEXT_LEFT, y0 + VERMERK_ZONE_H - 4.2)  # text from 25 mm (c_margin is 0)
    pdf.cell(ADDRESS_TEXT_WIDTH, 3.5, line)
    pdf.set_line_width(0.1)
    underline_y = y0 + VERMERK_ZONE_H - 0.6
    pdf.line(ADDRESS_TEXT_LEFT, underline_y, ADDRESS_TEXT_LEFT + pdf.get_string_width(line), underline_y)
    block = address_block(letter, pdf.width_at)
    pdf.set_font("Sans", "", block.size)
    pdf.set_xy(ADDRESS_TEXT_LEFT, y0 + VERMERK_ZONE_H + 0.5)
    for text in block.lines:
        pdf.set_x(ADDRESS_TEXT_LEFT)
        pdf.cell(ADDRESS_TEXT_WIDTH, block.leading, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    # information block
    pdf.set_font("Sans", "", 8.5)
    y = 50.0
    for label, value in info_block(letter, w):
        pdf.set_xy(INFO_LEFT - pdf.c_margin, y)
        pdf.set_text_color(70)
        pdf.cell(28, 4.2, label)
        pdf.set_text_color(0)
        pdf.cell(TEXT_RIGHT - INFO_LEFT - 28, 4.2, value)
        y += 4.2


def address_block(letter: Letter, width_of: Callable[[str, float], float]) -> AddressBlock:
    """The addressee fitted into the window (`fit_address`); 409 `address_too_long` when street, place and
    country alone need more than the window's 8 lines at 8 pt."""
    block = fit_address(letter.addressee, letter.addressee_names, width_of)
    if block is None:
        fields = [name for name, _ in letter.sources if name not in NAME_FIELDS] or ["addressee"]
        raise Conflict(
            "address_too_long",
            f"the address of customer {letter.customer} does not fit the window of the envelope "
            f"({ADDRESS_TEXT_WIDTH:g} mm wide, 8 lines at 8 pt) even with the names shortened",
            [FieldError(name, "too long for the address window") for name in fields],
        )
    return block


def render_pdf(letter: Letter) -> bytes:
    """The letter as PDF (A4, DIN 5008 form B; the positions are in this module's docstring). 409
    `characters_unprintable` when a stored text has a character no font of the letter has (each field named),
    409 `address_too_long` when the address cannot fit the window."""
    errors = unprintable(letter)
    if errors:
        raise Conflict(
            "characters_unprintable",
            "the letter would print text with characters none of its fonts has, and lose them: "
            + "; ".join(f"{e.field}: {e.message}" for e in errors)
            + ". Correct the text, or print the HTML letter with a browser's fonts",
            errors,
        )
    pdf = _Pdf(letter)
    try:
        _write(pdf, letter)
        return bytes(pdf.output())
    finally:
        close_fonts(pdf)


def _write(pdf: _Pdf, letter: Letter) -> None:
    w = Words(letter)
    pdf.alias_nb_pages()
    pdf.add_page()
    _head(pdf, letter, w)
    # subject and text
    pdf.set_xy(TEXT_LEFT, 98.5)
    pdf.set_font("Sans", "B", 12)
    pdf.cell(0, 6, title(letter), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(5)
    pdf.set_font("Sans", "", 10)
    salutation, before, after = paragraphs(letter, w)
    pdf.multi_cell(0, 4.5, salutation, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    for text in before:
        pdf.multi_cell(0, 4.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    _table(pdf, letter, w)
    interest = interest_line(letter, w)
    if interest:
        pdf.set_font("Sans", "", 8.5)
        pdf.multi_cell(0, 4, interest, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    pdf.set_font("Sans", "", 10)
    for text in after:
        pdf.multi_cell(0, 4.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    _bank_block(pdf, letter)
    pdf.ln(4)
    pdf.multi_cell(
        0,
        4.5,
        ("Mit freundlichen Grüßen" if letter.language == "de" else "Yours sincerely") + f"\n{letter.sender.legal_name}",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )


_COLUMNS = (86.0, 27.0, 25.0, 27.0)  # document, its date, due since, open: 165 mm


def _table(pdf: _Pdf, letter: Letter, w: Words) -> None:
    de = letter.language == "de"
    heads = ("Beleg", "Datum", "fällig seit", "offen") if de else ("Document", "Date", "Due since", "Open")

    def head() -> None:
        pdf.set_font("Sans", "B", 9)
        for n, (text, width) in enumerate(zip(heads, _COLUMNS, strict=True)):
            pdf.cell(width, 5.5, text, border="B", align="R" if n == 3 else "L")
        pdf.ln()
        pdf.set_font("Sans", "", 9)
        pdf.ln(0.8)

    head()
    for row in item_rows(letter, w):
        lines = max(len(cast(list[str], pdf.multi_cell(width, 4.4, text, dry_run=True, output="LINES")))
                    for text, width in zip(row, _COLUMNS, strict=True))  # fmt: skip
        if pdf.will_page_break(lines * 4.4):
            pdf.add_page()
            head()  # the table goes on under its head
        y, x = pdf.get_y(), TEXT_LEFT
        for n, (text, width) in enumerate(zip(row, _COLUMNS, strict=True)):
            pdf.set_xy(x, y)
            pdf.multi_cell(width, 4.4, text, align="R" if n == 3 else "L", new_x=XPos.RIGHT, new_y=YPos.TOP)
            x += width
        pdf.set_xy(TEXT_LEFT, y + lines * 4.4 + 0.8)
    pdf.set_font("Sans", "B", 9.5)
    pdf.cell(sum(_COLUMNS[:3]), 6, "Gesamtbetrag" if de else "Total", border="T")
    pdf.cell(_COLUMNS[3], 6, w.money(letter.total_minor), border="T", align="R")
    pdf.ln(9)


def _bank_block(pdf: _Pdf, letter: Letter) -> None:
    rows = bank_lines(letter)
    if pdf.will_page_break(5 * len(rows) + 2):
        pdf.add_page()
    pdf.set_font("Sans", "", 10)
    for label, value in rows:
        pdf.set_x(TEXT_LEFT)
        pdf.cell(38, 4.6, label)
        pdf.set_font("Sans", "B" if label in ("IBAN", "Verwendungszweck", "Reference") else "", 10)
        pdf.cell(0, 4.6, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Sans", "", 10)
