"""An accountant's month-end in a real headless Chromium, on books with real activity (Amazon Pay orders through
the simulator, a settlement, a bank statement, a dunning run): sign in, read the ageing chart, open a customer
and the letter, resolve the bank line nobody could match, post and reverse a correction, read the VAT summary,
close the month and download DATEV. Every page of the way is screenshot into $KONTOR_SCREENSHOTS when set."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from desk.web import COOKIE
from tests.conftest import Simulator
from tests.e2e.desk_books import german_books
from tests.e2e.test_dunning_letters import text_of
from tests.e2e.test_web_browser import CHROMEDRIVER, CHROMIUM, browser, german, submit  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Chromium and ChromeDriver are not installed (apt install chromium chromium-driver)",
)

if CHROMIUM and CHROMEDRIVER:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.select import Select

SHOTS = os.environ.get("KONTOR_SCREENSHOTS")


def shot(driver: WebDriver, name: str) -> None:
    """A full-page screenshot (the window grown to the page's height), when $KONTOR_SCREENSHOTS names a folder."""
    if not SHOTS:
        return
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(800, min(int(height) + 40, 6000)))
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(Path(SHOTS) / f"{name}.png"))
    driver.set_window_size(1280, 900)


def go(driver: WebDriver, text: str) -> None:
    submit(driver, driver.find_element(By.LINK_TEXT, text))


def amounts(driver: WebDriver, css: str) -> list[str | None]:
    return [td.get_attribute("data-amount") for td in driver.find_elements(By.CSS_SELECTOR, css)]


async def test_an_accountants_month_end(
    app_client: httpx.AsyncClient,
    simulator: Simulator,
    app_url: str,
    browser: WebDriver,  # noqa: F811 - the fixture
) -> None:
    books = await german_books(app_client, simulator, name="Monatsabschluss GmbH")
    t = books.tenant
    key = t.accountant_key
    settings = {"consultant_number": 1234567, "client_number": 4711}
    assert (await t.client.put(t.url("/datev/settings"), json=settings, headers=t.headers())).status_code == 200
    ageing = (await t.get("/reports/receivables-ageing", key=key)).json()
    exceptions = (await t.get("/reconciliation/exceptions", key=key, state="open")).json()["items"]
    (unknown,) = [e for e in exceptions if e["amount"] == "12.34"]
    found: dict[str, Any] = {}

    def walk() -> None:
        b = browser
        b.delete_all_cookies()
        b.set_window_size(1280, 900)
        # sign in: the pages ask for the key, then show the page that was asked for
        b.get(f"{app_url}/ui/1001/ageing")
        shot(b, "01-sign-in")
        b.find_element(By.ID, "key").send_keys(key)
        submit(b, b.find_element(By.ID, "sign-in"))
        assert b.current_url == f"{app_url}/ui/1001/ageing"

        # the ageing chart: one bar per bucket, labelled in German, the bars' values are the API's totals
        chart = b.find_element(By.CSS_SELECTOR, "figure#chart-ageing svg")
        labels = [e.text for e in chart.find_elements(By.CSS_SELECTOR, ".axis.x text")]
        assert labels == ["Noch nicht fällig", "0–30 Tage", "31–60 Tage", "61–90 Tage", "über 90 Tage"]
        values = [e.text for e in chart.find_elements(By.CSS_SELECTOR, "text.value") if e.text]
        totals = ageing["totals"]
        expected = [german(totals[k]) for k in ("days_0_30", "days_31_60", "days_61_90", "days_over_90")]
        assert values == expected, values
        assert chart.size["width"] > 500
        assert (
            b.find_element(By.CSS_SELECTOR, "#ageing tfoot td:last-child").get_attribute("data-amount")
            == totals["total"]
        )
        # the whole table fits a 1280 px window (QA14 #18): no column cut off, no scroll bar
        widths = b.execute_script(
            "const s = document.querySelector('#ageing').closest('section'); return [s.scrollWidth, s.clientWidth]"
        )
        assert widths[0] <= widths[1], widths
        owing = b.find_element(By.ID, "owing").text
        assert owing.endswith(("Kunde schuldet etwas.", "Kunden schulden etwas.")), owing
        assert owing != "1 Kunden schulden etwas."
        shot(b, "02-ageing")

        # a customer, found by name; the open items and the notice's letter
        go(b, "Kunden")
        b.find_element(By.ID, "q").send_keys("muster")
        submit(b, b.find_element(By.ID, "search"))
        rows = b.find_elements(By.CSS_SELECTOR, "#customers tbody tr[data-customer]")
        assert [r.get_attribute("data-customer") for r in rows] == [books.dunned]
        assert "Erika Mustermann" in rows[0].text
        shot(b, "03-customers")
        go(b, books.dunned)
        assert b.find_element(By.ID, "customer-name").text == "Erika Mustermann"
        assert b.find_element(By.ID, "level").text == "1"
        assert b.find_element(By.ID, "total").get_attribute("data-amount") == "119.00"
        letter = b.find_element(By.LINK_TEXT, "Brief (PDF)").get_attribute("href")
        found["letter"] = letter
        found["cookie"] = next(c["value"] for c in b.get_cookies() if c["name"] == COOKIE)
        shot(b, "04-customer")
        go(b, "wd-1")
        assert "Rechnung" in b.find_element(By.ID, "documents").text
        shot(b, "05-order")

        # reconciliation: the bank line nobody could match is booked to interest income with a reason
        go(b, "Abstimmung")
        shot(b, "06-reconciliation")
        Select(b.find_element(By.ID, "exception")).select_by_value(str(unknown["exception_id"]))
        Select(b.find_element(By.ID, "action")).select_by_value("resolve")
        Select(b.find_element(By.ID, "account")).select_by_value("2650")
        b.find_element(By.ID, "reason").send_keys("Zinsgutschrift der Bank")
        submit(b, b.find_element(By.ID, "resolve"))
        row = b.find_element(By.CSS_SELECTOR, f'#exceptions tr[data-exception="{unknown["exception_id"]}"]')
        assert "gebucht" in row.text
        shot(b, "07-reconciliation-resolved")

        # a correction entry, then its reversal
        go(b, "Journal")
        shot(b, "08-journal")
        go(b, "Korrekturbuchung erfassen")

        def fill(debit: str, credit: str) -> None:
            form = b.find_element(By.ID, "correction-form")
            form.find_element(By.NAME, "description").send_keys("Umbuchung 7 % auf 19 %")
            form.find_element(By.NAME, "reason").send_keys("falscher Steuersatz")
            Select(form.find_element(By.NAME, "account_1")).select_by_value("8300")
            form.find_element(By.NAME, "debit_1").send_keys(debit)
            Select(form.find_element(By.NAME, "account_2")).select_by_value("8400")
            form.find_element(By.NAME, "credit_2").send_keys(credit)

        # an amount written the English way on a German page is refused, naming the field (QA14 #1)
        assert b.find_element(By.NAME, "debit_1").get_attribute("placeholder") == "1.234,56"
        fill("10.00", "10,00")
        submit(b, b.find_element(By.ID, "post-correction"))
        assert b.find_element(By.ID, "error-title").text == "Nicht ausführbar (422)"
        assert "Zeile 1, Soll: „10.00“" in b.find_element(By.ID, "error-message").text
        shot(b, "09a-correction-refused")
        go(b, "Zurück zum Formular")
        b.get(b.current_url)  # a fresh form
        fill("10,00", "10,00")
        shot(b, "09-correction-form")
        submit(b, b.find_element(By.ID, "post-correction"))
        found["correction"] = int(b.current_url.rsplit("/", 1)[1])
        assert "Umbuchung 7 % auf 19 %" in b.find_element(By.TAG_NAME, "h1").text
        assert amounts(b, "#lines tbody td.num[data-amount]") == ["10.00", "", "", "10.00"]
        assert "falscher Steuersatz" in b.find_element(By.ID, "entry").text
        assert b.find_element(By.ID, "posted-by").text == f"accountant (Schlüssel {key.split('_')[2]})"
        shot(b, "10-entry")
        b.find_element(By.CSS_SELECTOR, "#reverse-form input[name=reason]").send_keys("doch richtig")
        submit(b, b.find_element(By.ID, "reverse"))
        found["reversal"] = int(b.current_url.rsplit("/", 1)[1])
        assert b.find_element(By.ID, "reverses").text == f"Buchung {found['correction']}"
        shot(b, "11-reversal")

        # the VAT summary: November nets to 0 at 19 % (sold and returned), 15.00 at 7 % (sold less goodwill)
        go(b, "USt")
        november = b.find_element(By.CSS_SELECTOR, '#ustva tr[data-month="2026-11"]')
        cells = [td.get_attribute("data-amount") for td in november.find_elements(By.CSS_SELECTOR, "td.num")]
        assert cells[:4] == ["0.00", "0.00", "15.00", "1.05"]
        shot(b, "12-vat")

        # close October with a reason, then its G/L report and DATEV file
        go(b, "Perioden")
        Select(b.find_element(By.ID, "period")).select_by_value("2026-10")
        b.find_element(By.CSS_SELECTOR, "#close-form input[name=reason]").send_keys("Voranmeldung Oktober abgegeben")
        submit(b, b.find_element(By.ID, "close"))
        assert (
            "Voranmeldung Oktober abgegeben"
            in b.find_element(By.CSS_SELECTOR, '#periods tr[data-period="2026-10"]').text
        )
        shot(b, "13-periods")
        go(b, "2026-10")
        found["datev"] = b.find_element(By.ID, "download-datev").get_attribute("href")
        shot(b, "14-gl-report")

        # the other pages of the month-end, for the pictures
        for text, name in [("Summen- und Saldenliste", "15-trial-balance"), ("Gewinn- und Verlustrechnung", "16-income"),
                           ("Bilanz", "17-balance-sheet"), ("Bestellungen", "18-orders"), ("Abrechnungen", "19-settlements"),
                           ("Kontoauszüge", "20-bank-statements"), ("Streitfälle", "21-disputes"),
                           ("Mahnwesen", "22-dunning"), ("Mahnungen", "23-notices")]:  # fmt: skip
            go(b, text)
            shot(b, name)
        go(b, "Abrechnungen")
        go(b, books.settlement_id)
        shot(b, "24-settlement")
        go(b, "Kontoauszüge")
        go(b, books.statement_id)
        assert "payout" in b.page_source or "Auszahlung" in b.find_element(By.ID, "statement-lines").text
        assert f"Abrechnung {books.settlement_id}" in b.find_element(By.ID, "statement-lines").text
        shot(b, "25-bank-statement")

        # error pages in German, HTML, naming what was wrong (QA14 #3, #13)
        b.get(f"{app_url}/ui/1001/journal?from=2026-13-01")
        assert (
            b.find_element(By.ID, "error-fields").text
            == "Von: „2026-13-01“ ist ungültig (ein Datum wird JJJJ-MM-TT geschrieben)."
        )
        shot(b, "26-error-bad-date")
        b.get(f"{app_url}/ui/1001/dunning/notices/99999999999999999999/letter.pdf")
        assert b.find_element(By.ID, "error-title").text == "Nicht gefunden (404)"
        shot(b, "27-error-letter")
        b.get(f"{app_url}/ui/1001/")
        assert b.find_element(By.ID, "error-message").text == "Diese Seite gibt es nicht."
        # the customers, sorted by balance and only those in dunning (QA14 #23)
        b.get(f"{app_url}/ui/1001/customers")
        Select(b.find_element(By.ID, "sort")).select_by_value("balance")
        b.find_element(By.ID, "min_level").send_keys("1")
        submit(b, b.find_element(By.ID, "search"))
        rows = b.find_elements(By.CSS_SELECTOR, "#customers tbody tr[data-customer]")
        assert rows
        assert rows[0].get_attribute("data-customer") == books.dunned
        shot(b, "28-customers-sorted")
        b.get(f"{app_url}/ui/1001/reconciliation?state=all")
        assert "Eingang ohne Zuordnung" in b.find_element(By.ID, "exceptions").text
        shot(b, "29-reconciliation-all")

    await asyncio.to_thread(walk)

    # what the links gave, fetched with the browser's session
    async with httpx.AsyncClient(cookies={COOKIE: found["cookie"]}, follow_redirects=True) as session:
        letter = await session.get(found["letter"])
        datev = await session.get(found["datev"])
    assert (letter.status_code, letter.headers["content-type"]) == (200, "application/pdf")
    text = text_of(letter.content)
    for element in ["Müller Versand GmbH", "Erika Mustermann", "Lindenweg 5", "80331 München", books.dunned,
                    "I-wd-1", "119,00", "DE89 3704 0044 0532 0130 00", "Zahlungserinnerung"]:  # fmt: skip
        assert element in text, element
    assert datev.status_code == 200
    lines = datev.content.decode("cp1252").split("\r\n")
    rows = list(csv.reader(io.StringIO("\r\n".join(lines[1:])), delimiter=";"))
    header, bookings = rows[0], [r for r in rows[1:] if r]
    konto, gegenkonto = header.index("Konto"), header.index("Gegenkonto (ohne BU-Schlüssel)")
    assert bookings
    assert [r for r in bookings if r[konto] == r[gegenkonto]] == []
    entries = {e["id"] for e in (await t.get("/entries", key=key, limit="500")).json()["items"]}
    assert {found["correction"], found["reversal"]} <= entries
