"""The accountant's web pages: server-rendered, script-free, signed in with an accountant (or admin) API key.

Every page reads through the same functions the API's handlers call, scoped by the session's merchant, so a
page shows exactly the API's figures; amounts and dates are written in the business code's locale, labels in
its language (`desk.i18n`). Every table downloads as CSV or XLSX (`desk.sheets`); charts are inline SVG
(`desk.charts`). The forms (resolve or dismiss a reconciliation exception, post a correction entry, reverse an
entry, close a month) each need a reason and the session's CSRF token (`desk.webkit`), and call the same
use cases as the API; amounts typed into them are read as the page's locale writes them
(`desk.formats.parse_local_amount`). An id in a page's path is checked by the page (`desk.web.common.path_id`: 404 for one that
cannot exist); every error is an HTML page in the page's language (`desk.errorpages.error_page`).

The pages, by group: `signin` (sign-in, sign-out, business codes), `journal` (registers, journal, entry,
correction and reversal forms), `reports` (trial balance, income statement, balance sheet, VAT, ageing),
`customers` (customers and orders), `bank` (settlements, bank statements, reconciliation), `notices` (disputes,
dunning notices and runs), `periods` (month closing, G/L report); `common` holds their shared helpers. This
module collects their routes into `router`, which `desk.plugin` registers.
"""

from __future__ import annotations

from litestar import Router
from litestar.exceptions import HTTPException

from desk.errorpages import before_page, error_page
from desk.formats import Formats, locale_of
from desk.web.bank import reconciliation, resolve, settlement_page, settlements_page, statement_page, statements_page
from desk.web.customers import customer, customers, order_page, orders_page
from desk.web.journal import correction_form, entry_page, journal_page, post_correction, register, reverse_entry
from desk.web.notices import disputes_page, dunning, notice_document, notice_letter, notices_page
from desk.web.periods import close_month, gl_download, gl_report, periods
from desk.web.reports import ageing_page, balance_sheet, income_statement, trial_balance, vat_page
from desk.web.signin import businesses, sign_in, sign_in_form, sign_out, to_sign_in
from desk.webkit import COOKIE, SESSION_HOURS, SignInRequired, template_config
from ledger.errors import KontorError

__all__ = ["COOKIE", "SESSION_HOURS", "Formats", "locale_of", "router", "template_config"]

router = Router(
    path="/ui",
    route_handlers=[
        sign_in_form,
        sign_in,
        sign_out,
        businesses,
        trial_balance,
        register,
        journal_page,
        correction_form,
        post_correction,
        entry_page,
        reverse_entry,
        income_statement,
        balance_sheet,
        vat_page,
        ageing_page,
        customers,
        customer,
        orders_page,
        order_page,
        settlements_page,
        settlement_page,
        statements_page,
        statement_page,
        disputes_page,
        notices_page,
        notice_document,
        notice_letter,
        dunning,
        reconciliation,
        resolve,
        periods,
        close_month,
        gl_report,
        gl_download,
    ],
    exception_handlers={SignInRequired: to_sign_in, KontorError: error_page, HTTPException: error_page},
    before_request=before_page,
    include_in_schema=False,
)
