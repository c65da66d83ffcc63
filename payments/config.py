"""Settings of the payments plugin (KONTOR_AMAZON_PAY_*, KONTOR_WEBHOOK_*, ...), read when the service starts."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PaymentsSettings"]


@dataclass(frozen=True)
class PaymentsSettings:
    # Amazon's hosts by region (pay-api.amazon.com/.eu/.jp) unless set: the simulator, or a proxy
    amazon_pay_endpoint: str | None = None
    # calls to Amazon: attempts on 429/5xx/timeouts (backoff doubling from 0.2 s), timeout per attempt
    amazon_pay_attempts_max: int = 4
    amazon_pay_timeout_s: float = 10.0
    # Kontor as an Amazon Pay solution provider: its own key pair, used with a merchant's delegated
    # authorization token (settings with an MWS auth token); empty: merchants connect with their own keys only
    amazon_pay_provider_public_key_id: str = ""
    amazon_pay_provider_private_key_file: str = ""
    # SNS: roots trusted for the signing certificate (default: the certifi bundle), and, for development and
    # tests only, where to fetch certificates from instead of the (pattern-checked) URL in the message
    amazon_pay_sns_ca_file: str | None = None
    amazon_pay_sns_cert_base: str | None = None
    # the AWS accounts that publish Amazon Pay's IPN topics (payments, and live chargebacks from another one)
    amazon_pay_topic_accounts: str = "291180941288,598607868003"
    # how often settlement reports are looked for through the Reporting API, per connected business code
    amazon_pay_report_interval_s: float = 3600.0
    refund_retry_interval_s: float = 60.0
    # a bank transfer matches an invoice or a customer when it differs from what is open by at most this
    # (a decimal amount in the business code's currency; an upload may pass ?tolerance= to override it)
    bank_match_tolerance: str = "0.00"
    # webhooks to merchants: attempts per delivery, first retry delay (doubling each time), request timeout;
    # plain http and private addresses only for development and tests
    webhook_attempts_max: int = 12
    webhook_backoff_s: float = 30.0
    webhook_timeout_s: float = 10.0
    webhook_allow_http: bool = False
    # webhook deliveries sent at once by one process
    webhook_concurrency: int = field(default=16, metadata={"range": (1, 1000)})
    # IPNs applied right after their 200: at most this many waiting or running (beyond it the amazon-pay-ipns job
    # applies them), at most background_concurrency running at once
    background_tasks_max: int = field(default=256, metadata={"range": (1, 100_000)})
    background_concurrency: int = field(default=8, metadata={"range": (1, 1000)})

    def topic_accounts(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.amazon_pay_topic_accounts.split(",") if a.strip())
