"""The customer pages (list, one customer with open items, orders and dunning notices) and the order pages."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery, QueryParameter

from desk import find
from desk.formats import signed_minor
from desk.sheets import Cell, Sheet
from desk.web.common import (
    page_url,
    say,
    signed_cell,
)
from desk.web.notices import notices_sheet
from desk.webkit import PAGE, View, open_page
from dunning import notices as dunning_notices
from dunning.accounts import customer_open_items
from ledger import reports
from ledger.books import accounts_by_role
from ledger.errors import BadRequest, NotFound
from ledger.http.deps import BusinessCodePath as Code
from ledger.http.deps import Cursor
from ledger.textsafe import parse_ascii_int
from payments.orders import get_order

__all__ = ["customer", "customers", "order_page", "orders_page"]


@get("/{code:int}/customers")
async def customers(
    request: Request[Any, Any, Any],
    code: Code,
    q: Annotated[str | None, QueryParameter(max_length=find.SEARCH_MAX)] = None,
    as_of: FromQuery[date | None] = None,
    sort: Annotated[str, QueryParameter(max_length=20)] = "customer",
    side: Annotated[str | None, QueryParameter(max_length=10)] = None,
    overdue: Annotated[str | None, QueryParameter(max_length=5)] = None,
    min_level: Annotated[str | None, QueryParameter(max_length=10)] = None,
    cursor: Cursor = None,
) -> Response[Any]:
    v = await open_page(request, code)
    level = parse_ascii_int(min_level or "0", length_max=2)  # the form sends an empty field as ""
    if level is None:
        raise BadRequest("query_parameter_invalid", say(v, "Dunning level at least: “{value}” is not a "
                       "number from 0 to 99.", value=min_level))  # fmt: skip
    if sort not in find.CUSTOMER_SORTS:
        raise BadRequest("query_parameter_invalid", say(v, "Sort by: “{value}” is not one of {choices}.",
                       value=sort, choices=", ".join(v.lang._(SORT_LABELS[s]) for s in find.CUSTOMER_SORTS)))  # fmt: skip
    if side not in (None, "", "DEBIT", "CREDIT", "BALANCED"):
        raise BadRequest("query_parameter_invalid", say(v, "Balance: “{value}” is not one of DEBIT, CREDIT, "
                       "BALANCED.", value=side))  # fmt: skip
    day = as_of or v.ctx.today()
    where = find.CustomerFilter(
        q=q,
        sort=sort,
        side=side or None,  # type: ignore[arg-type]  # checked above
        overdue=overdue in ("1", "on", "true"),
        min_level=level,
    )
    page = await find.find_customers(
        v.ctx, v.business, q=q, cursor=cursor or None, limit=v.rows, as_of=day, where=where
    )
    sheet = v.sheet(
        "customers",
        "",
        [
            ("Customer", "text"),
            ("Name", "text"),
            ("Balance", "amount"),
            ("Oldest due", "date"),
            ("Dunning level", "int"),
        ],
        "No customer found." if q or where.scans or side else "No customer has been booked yet.",
    )
    for c in page.items:
        sheet.add(
            Cell(c.customer, href=page_url(v, f"customers/{c.customer}?as_of={day}")),
            c.name or "",
            signed_cell(v, c.balance, c.side),
            c.oldest_due,
            c.dunning_level or None,
            customer=c.customer,
        )
    filters = {"q": q, "as_of": as_of, "sort": None if sort == "customer" else sort, "side": side,
               "overdue": "1" if where.overdue else None, "min_level": level or None}  # fmt: skip
    shown = {k: str(x) for k, x in filters.items() if x}
    return v.respond(
        "customers.html",
        "customers",
        [sheet],
        page=page,
        q=q or "",
        as_of=day,
        where=where,
        filters=shown,
        sorts=[(s, SORT_LABELS[s]) for s in find.CUSTOMER_SORTS],
        first=cursor is None,
    )


SORT_LABELS = {  # balance: who owes most first; oldest due: longest overdue first; dunning level: highest first
    "customer": "Customer number",
    "balance": "Balance",
    "oldest_due": "Oldest due",
    "dunning_level": "Dunning level",
}


@get("/{code:int}/customers/{customer:str}")
async def customer(
    request: Request[Any, Any, Any], code: Code, customer: FromPath[str], as_of: FromQuery[date | None] = None
) -> Response[Any]:
    v = await open_page(request, code)
    if not 1 <= len(customer) <= 64:
        raise NotFound("customer_not_found", "no such customer")  # the message: errorpages.CODE_MESSAGES
    day = as_of or v.ctx.today()
    account = await reports.customer_account(v.ctx, v.business, customer, as_of=day)
    items = await customer_open_items(v.ctx, v.business, customer, day)
    _ = v.lang._
    open_sheet = v.sheet(
        "open-items",
        "Open items",
        [("Order or reference", "text"), ("Due", "date"), ("Amount", "amount"), ("Overdue", "text"),
         ("Paused", "text")],
        "Nothing open.",
    )  # fmt: skip
    # an open item is an order's, or a posted entry's without one (its `reference`, e.g. a manual sale): only
    # an order that exists is linked
    orders_known = await _existing_orders(v, [p.order_reference for p in items.principal if p.order_reference])
    for p in items.principal:
        ref = p.order_reference
        open_sheet.add(
            (Cell(ref, href=page_url(v, f"orders/{ref}")) if ref in orders_known else ref) if ref else "–",
            p.due_date,
            p.amount,
            _("yes") if p.overdue else "",
            _("yes") if p.paused else "",
            order=ref or "",
        )
    for label, key, value in [
        ("Dunning costs", "costs", items.costs),
        ("Interest", "interest", items.interest),
        ("Unallocated credit", "credit", items.credit),
        ("Total open", "total", items.total),
        ("of which overdue", "overdue", items.overdue_total),
    ]:
        open_sheet.total(_(label), "", Cell(value, attrs=(("id", key),)))
    orders = await find.find_orders(
        v.ctx, v.business, customer=customer, from_date=None, to_date=None, status=None, cursor=None, limit=PAGE
    )
    order_sheet = _orders_sheet(v, orders.items, "Orders")
    notices = await dunning_notices.list_notices(v.ctx, v.business, customer=customer, after=0, limit=PAGE)
    notice_sheet = notices_sheet(v, notices)
    names = await find.find_customers(v.ctx, v.business, q=customer, cursor=None, limit=1, as_of=day)
    name = next((c.name for c in names.items if c.customer == customer), None)
    return v.respond(
        "customer.html",
        "customers",
        [open_sheet, order_sheet, notice_sheet],
        account=account,
        items=items,
        level=items.dunning_level if signed_minor(items.total, v.business.currency) > 0 else 0,  # none once settled
        as_of=day,
        name=name,
        customer=customer,
        ar=(await accounts_by_role(v.ctx, v.business))("AR").number,
    )


async def _existing_orders(v: View, refs: list[str]) -> set[str]:
    rows = await v.ctx.reports_pool.fetch(
        "SELECT order_ref FROM orders WHERE merchant_id = $1 AND business = $2 AND order_ref = ANY($3::text[])",
        v.business.merchant_id,
        v.business.code,
        refs,
    )
    return {r["order_ref"] for r in rows}


# --- orders --------------------------------------------------------------------------------------------
def _orders_sheet(v: View, orders: list[find.OrderSummaryOut], title: str = "") -> Sheet:
    _ = v.lang._
    sheet = v.sheet(
        "orders",
        title,
        [
            ("Order", "text"),
            ("Date", "date"),
            ("Customer", "text"),
            ("Name", "text"),
            ("Status", "text"),
            ("Gross", "amount"),
            ("Documents", "text"),
        ],
        "No orders.",
    )
    for o in orders:
        docs = ", ".join(f"{_(d.kind)} {d.reference}" for d in o.documents)
        sheet.add(
            Cell(o.order_reference, href=page_url(v, f"orders/{o.order_reference}")),
            o.order_date,
            Cell(o.customer, href=page_url(v, f"customers/{o.customer}")),
            o.name or "",
            _(o.status),
            o.gross_amount,
            docs,
            order=o.order_reference,
        )
    return sheet


@get("/{code:int}/orders")
async def orders_page(
    request: Request[Any, Any, Any],
    code: Code,
    customer: Annotated[str | None, QueryParameter(max_length=64)] = None,
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
    status: Annotated[str | None, QueryParameter(max_length=32)] = None,
    cursor: Cursor = None,
) -> Response[Any]:
    v = await open_page(request, code)
    page = await find.find_orders(
        v.ctx,
        v.business,
        customer=customer or None,
        from_date=from_date,
        to_date=to_date,
        status=status or None,
        cursor=cursor or None,
        limit=v.rows,
    )
    filters = {"customer": customer, "from": from_date, "to": to_date, "status": status}
    shown = {k: str(x) for k, x in filters.items() if x}
    return v.respond(
        "orders.html",
        "orders",
        [_orders_sheet(v, page.items)],
        page=page,
        filters=shown,
        statuses=find.ORDER_STATUSES,
        first=cursor is None,
    )


@get("/{code:int}/orders/{order:str}")
async def order_page(request: Request[Any, Any, Any], code: Code, order: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    owner = await v.ctx.reports_pool.fetchval(
        "SELECT customer FROM orders WHERE merchant_id = $1 AND business = $2 AND order_ref = $3",
        v.business.merchant_id,
        v.business.code,
        order[:20],
    )
    if owner is None or len(order) > 20:
        raise NotFound("order_not_found", f"order {order} not found")
    o = await get_order(v.ctx, v.business, owner, order)
    summary = (
        await find.find_orders(
            v.ctx,
            v.business,
            customer=owner,
            from_date=o.order_date,
            to_date=o.order_date,
            status=None,
            cursor=None,
            limit=500,
        )
    ).items
    this = next(s for s in summary if s.order_reference == order)
    _ = v.lang._
    items = v.sheet(
        "items",
        "Items",
        [
            ("Item", "int"),
            ("Description", "text"),
            ("Quantity", "int"),
            ("Unit price (gross)", "amount"),
            ("VAT %", "text"),
            ("State", "text"),
            ("Invoice", "text"),
            ("Returned", "int"),
        ],
    )
    for i in o.items:
        items.add(
            i.item_reference,
            i.description,
            i.quantity,
            i.gross_unit_price,
            i.vat_rate,
            _(i.state),
            i.invoice_reference or "",
            i.returned_quantity,
            item=i.item_reference,
        )
    docs = v.sheet(
        "documents",
        "Documents",
        [("Kind", "text"), ("Number", "text"), ("Date", "date"), ("Gross", "amount"), ("Entry", "int")],
        "No documents yet.",
    )
    for d in this.documents:
        docs.add(
            _(d.kind),
            d.reference,
            d.document_date,
            d.gross_amount,
            Cell(d.entry_id, href=page_url(v, f"journal/{d.entry_id}")) if d.entry_id else None,
            document=d.reference,
        )
    charges = v.sheet(
        "charges",
        "Amazon Pay charges",
        [("Charge", "text"), ("Amount", "amount"), ("Captured", "amount"), ("State", "text"), ("Invoice", "text")],
        "No charges.",
    )
    for c in this.charges:
        charges.add(c.charge_id, c.amount, c.captured, c.state, c.invoice_reference or "", charge=c.charge_id)
    refunds = v.sheet(
        "refunds",
        "Refunds",
        [("Reference", "text"), ("Refund", "text"), ("Amount", "amount"), ("State", "text")],
        "No refunds.",
    )
    for f in this.refunds:
        refunds.add(f.reference, f.refund_id or "", f.amount, f.state, refund=f.reference)
    return v.respond("order.html", "orders", [items, docs, charges, refunds], order=o, summary=this)
