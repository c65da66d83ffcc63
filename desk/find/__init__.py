"""Finding things in a business code's books: customers, orders with their documents, bank statements with
their lines, receivables ageing, the VAT summary and the monthly figures the charts draw.

Everything reads on the reports pool and is bounded: list queries are keyset-paged (a cursor names the last
row shown) with a page limit, searches take a prefix of at most 64 characters, and the yearly summaries read
one year of lines of a handful of accounts through the register index. Dunning's own readers (`load_events`,
`open_items`, `candidates`) compute open items, so "oldest due" and the ageing agree with the customer's open
items and the dunning runs.

The finders live by subject: `customers`, `orders`, `statements` (bank statements), `figures` (ageing, VAT
summary, monthly figures) and `cursors` (their keyset cursors); this module names them all, so callers write
`find.find_customers`, `find.ageing`.
"""

from __future__ import annotations

from desk.find.customers import CUSTOMER_SORTS, SEARCH_MAX, CustomerFilter, CustomerOut, customer_names, find_customers
from desk.find.figures import AGEING_BUCKETS, AgeingOut, ageing, amazon_pay_months, monthly_sales, vat_summary
from desk.find.orders import ORDER_STATUSES, OrderSummaryOut, find_orders
from desk.find.statements import BankStatementOut, bank_statement, bank_statements

__all__ = [
    "AGEING_BUCKETS",
    "CUSTOMER_SORTS",
    "ORDER_STATUSES",
    "SEARCH_MAX",
    "AgeingOut",
    "BankStatementOut",
    "CustomerFilter",
    "CustomerOut",
    "OrderSummaryOut",
    "ageing",
    "amazon_pay_months",
    "bank_statement",
    "bank_statements",
    "customer_names",
    "find_customers",
    "find_orders",
    "monthly_sales",
    "vat_summary",
]
