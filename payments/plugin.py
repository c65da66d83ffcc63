"""The payments plugin: Amazon Pay settings, orders and their documents, IPNs, settlement, bank statements.

Found by the service through the `kontor.plugins` entry-point group. Its routes sit behind the ledger's
API-key middleware; the IPN endpoint is public and authenticated by its SNS signature instead.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import certifi
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.plugins import InitPluginProtocol

from ledger.config import settings_from_env
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import KontorError
from ledger.scheduler import Jobs
from ledger.secrets import SealedColumn
from ledger.tenancy import get_business
from payments.amazon.client import AmazonPayClient
from payments.amazon.sns import SnsVerifier
from payments.cli import simulate
from payments.closing import book_prepayment_vat
from payments.config import PaymentsSettings
from payments.egress import webhook_client
from payments.http import amazon_pay_ipn, merchant_router, router
from payments.ipn import process_pending_ipns
from payments.notify import emit_period_closed
from payments.refunds import poll_pending_refunds, send_requested_refunds
from payments.reports import fetch_reports, import_due_reports
from payments.reversals import refuse_reversal
from payments.runtime import BackgroundTasks, Payments, ProviderKey
from payments.settings import AUTH_TOKEN, PRIVATE_KEY, load_settings
from payments.webhooks import WebhookWorker

__all__ = ["PaymentsPlugin", "plugin"]

log = logging.getLogger("kontor.payments")


class PaymentsPlugin(InitPluginProtocol):
    def __init__(self, settings: PaymentsSettings | None = None) -> None:
        self._given = settings
        self.settings = settings or PaymentsSettings()
        self._http: httpx.AsyncClient | None = None
        self._webhook_http: httpx.AsyncClient | None = None
        self.runtime: Payments | None = None
        self.webhooks: WebhookWorker | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        return app_config

    def route_handlers(self) -> list[Any]:
        return [router, merchant_router]

    def public_route_handlers(self) -> list[Any]:
        return [amazon_pay_ipn]

    def commands(self) -> list[Any]:
        return [simulate]

    def sealed_columns(self) -> list[SealedColumn]:
        """The Amazon Pay private keys and delegated tokens, for `kontor secrets rotate`."""
        return [PRIVATE_KEY, AUTH_TOKEN]

    async def start(self, state: State, ctx: Kontor) -> None:
        settings = self._given or settings_from_env(PaymentsSettings)
        self._http = httpx.AsyncClient()
        gateway = AmazonPayClient(
            self._http,
            endpoint=settings.amazon_pay_endpoint,
            attempts_max=settings.amazon_pay_attempts_max,
            timeout_s=settings.amazon_pay_timeout_s,
        )
        sns = SnsVerifier(
            trusted_roots=_trusted_roots(settings), http=self._http, fetch_base=settings.amazon_pay_sns_cert_base
        )
        self.runtime = Payments(
            gateway=gateway,
            sns=sns,
            settings=settings,
            provider=_provider_key(settings),
            background=BackgroundTasks(
                limit=settings.background_tasks_max, concurrency=settings.background_concurrency
            ),
        )
        if emit_period_closed not in ctx.period_closed_hooks:
            ctx.period_closed_hooks.append(emit_period_closed)
        if book_prepayment_vat not in ctx.period_closing_hooks:
            ctx.period_closing_hooks.append(book_prepayment_vat)
        if refuse_reversal not in ctx.reversal_guards:
            ctx.reversal_guards.append(refuse_reversal)
        state.payments = self.runtime
        # its own client: every connection checks that the address is public (payments/egress.py)
        self._webhook_http = webhook_client(allow_private=settings.webhook_allow_http)
        self.webhooks = WebhookWorker(
            self._webhook_http,
            attempts_max=settings.webhook_attempts_max,
            backoff_s=settings.webhook_backoff_s,
            timeout_s=settings.webhook_timeout_s,
            concurrency=settings.webhook_concurrency,
        )
        self.settings = settings

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.background.aclose()
        if self._http is not None:
            await self._http.aclose()
        if self._webhook_http is not None:
            await self._webhook_http.aclose()

    def register_jobs(self, jobs: Jobs) -> None:
        jobs.add("amazon-pay-refunds", self.follow_refunds, "interval", seconds=self.settings.refund_retry_interval_s)
        jobs.add("amazon-pay-ipns", self.process_ipns, "interval", seconds=10)
        jobs.add(
            "amazon-pay-reports", self.fetch_reports, "interval", seconds=self.settings.amazon_pay_report_interval_s
        )
        jobs.add("webhooks", self.deliver_webhooks, "interval", seconds=1)

    async def deliver_webhooks(self, ctx: Kontor) -> None:
        if self.webhooks is None:
            raise RuntimeError("the payments plugin has not started")
        await self.webhooks.run_once(ctx)

    def _runtime(self) -> Payments:
        if self.runtime is None:
            raise RuntimeError("the payments plugin has not started")
        return self.runtime

    async def process_ipns(self, ctx: Kontor) -> None:
        """IPNs stored but not applied (a crash, Amazon unreachable while re-reading, a retry due) are applied here."""
        await process_pending_ipns(ctx, self._runtime())

    async def fetch_reports(self, ctx: Kontor) -> None:
        """Settlement reports: list new ones at Amazon, import those due."""
        await fetch_reports(ctx, self._runtime())
        await import_due_reports(ctx, self._runtime())

    async def follow_refunds(self, ctx: Kontor) -> None:
        """Request refunds whose request was lost, and re-read refunds Amazon is still working on."""
        rt = self._runtime()
        rows = await ctx.pool.fetch(
            "SELECT DISTINCT r.merchant_id, r.business FROM amazon_refunds r WHERE r.state IN ('Requested', "
            "'RefundInitiated') LIMIT 1000"
        )
        for row in rows:  # each business code on its own: one that fails never holds up the others
            try:
                business: Business = await get_business(ctx, row["merchant_id"], row["business"])
                creds = (await load_settings(ctx, rt, business)).credentials
                await send_requested_refunds(ctx, rt, business, creds)
                await poll_pending_refunds(ctx, rt, business, creds)
            except KontorError as exc:
                log.warning("refunds not followed", extra={"business": row["business"], "reason": exc.code})
            except Exception:
                log.exception("refunds not followed", extra={"business": row["business"]})


def _provider_key(settings: PaymentsSettings) -> ProviderKey | None:
    """Kontor's solution-provider key pair, when configured (SystemExit at start when it cannot be read)."""
    if not settings.amazon_pay_provider_public_key_id:
        return None
    path = Path(settings.amazon_pay_provider_private_key_file)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SystemExit(f"KONTOR_AMAZON_PAY_PROVIDER_PRIVATE_KEY_FILE={path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SystemExit(f"KONTOR_AMAZON_PAY_PROVIDER_PRIVATE_KEY_FILE={path}: not an RSA private key")
    return ProviderKey(settings.amazon_pay_provider_public_key_id, key)


def _trusted_roots(settings: PaymentsSettings) -> list[x509.Certificate]:
    """Roots trusted for Amazon SNS signing certificates: a configured file, else the certifi bundle."""
    path = Path(settings.amazon_pay_sns_ca_file) if settings.amazon_pay_sns_ca_file else Path(certifi.where())
    with warnings.catch_warnings():  # certifi carries legacy roots with non-positive serial numbers
        warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive")
        return x509.load_pem_x509_certificates(path.read_bytes())


plugin = PaymentsPlugin()
