"""HTTP routes of the payments plugin: Amazon Pay settings and the order use cases of a customer.

The routes are by area: `payments.http_orders` (settings, orders, documents), `payments.http_reconciliation`
(settlements, bank statements, exceptions), `payments.http_disputes` (disputes, the IPN, notification callbacks);
this module puts them on the business code's router.
"""

from __future__ import annotations

from litestar import Router

from payments import http_disputes, http_orders, http_reconciliation
from payments.http_disputes import amazon_pay_ipn, merchant_router

__all__ = ["amazon_pay_ipn", "merchant_router", "router"]

router = Router(
    path="/v1/businesses/{business_code:int}",
    route_handlers=[*http_orders.ROUTES, *http_disputes.ROUTES, *http_reconciliation.ROUTES],
)
