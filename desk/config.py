"""Settings of the desk plugin (KONTOR_CLOSING_*), read when the service starts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeskSettings"]


@dataclass(frozen=True)
class DeskSettings:
    closing_workday: int = 5  # close last month on this working day of the month (0: no automatic closing)
    closing_cron: str = "0 2 * * *"  # when the closing job looks whether today is that day (crontab, UTC)
