"""What the payments use cases need at run time besides the ledger context: the Amazon Pay client, the SNS
verifier, the plugin's settings, Kontor's own provider key, and a bounded set of background tasks.

Built once per process by the plugin (payments/plugin.py) and passed to the use cases; nothing here is global.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from payments.amazon.client import AmazonPayClient, Credentials
from payments.amazon.sns import SnsVerifier
from payments.config import PaymentsSettings

__all__ = ["BACKGROUND_TASKS_MAX", "CREDENTIALS_CACHED_MAX", "Payments", "ProviderKey"]

log = logging.getLogger("kontor.payments")
BACKGROUND_TASKS_MAX = 256  # IPNs applied right after their 200; beyond this the job picks them up
CREDENTIALS_CACHED_MAX = 1024  # parsed private keys (parsing one costs milliseconds)


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """Kontor's own key pair as an Amazon Pay solution provider (signs calls for delegated merchants)."""

    public_key_id: str
    private_key: Any  # rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"ProviderKey(public_key_id={self.public_key_id!r})"


@dataclass
class Payments:
    gateway: AmazonPayClient
    sns: SnsVerifier
    settings: PaymentsSettings
    provider: ProviderKey | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    credentials: OrderedDict[tuple[int, int, str], Credentials] = field(default_factory=OrderedDict)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Run `work` after the response (at most BACKGROUND_TASKS_MAX at once); False when full: the caller's
        work then waits for the job that picks up whatever is left."""
        if len(self.tasks) >= BACKGROUND_TASKS_MAX:
            work.close()
            log.warning("background tasks full: left to the job")
            return False
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    def cached_credentials(self, key: tuple[int, int, str]) -> Credentials | None:
        found = self.credentials.get(key)
        if found is not None:
            self.credentials.move_to_end(key)
        return found

    def cache_credentials(self, key: tuple[int, int, str], credentials: Credentials) -> None:
        self.credentials[key] = credentials
        while len(self.credentials) > CREDENTIALS_CACHED_MAX:
            self.credentials.popitem(last=False)
