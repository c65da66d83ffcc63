"""The desk plugin: the accountant's commands (reports, exports, closing) on the `kontor` command line."""

from __future__ import annotations

from typing import Any

from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from desk.cli import export, period, report

__all__ = ["DeskPlugin", "plugin"]


class DeskPlugin(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        return app_config

    def commands(self) -> list[Any]:
        return [report, export, period]


plugin = DeskPlugin()
