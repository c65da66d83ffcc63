"""The dunning plugin, found by the service through the `kontor.plugins` entry-point group.

It registers no routes or jobs yet: the use cases arrive with their issues. Keeping the plugin in
place now fixes the wiring (and the dependency rule) before the package grows.
"""

from __future__ import annotations

from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

__all__ = ["DunningPlugin", "plugin"]


class DunningPlugin(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        return app_config


plugin = DunningPlugin()
