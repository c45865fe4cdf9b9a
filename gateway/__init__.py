"""The station dashboard: MQTT ingest into its own store, and a FastAPI app over it.

Public API (imported lazily, so `import gateway.errors` stays light for the CLI):

    Gateway(config, *, store=None, mqtt=True)   every part; .start() -> self, .url, .stop()
    run_gateway(config, stop, *, store=None)    run until the threading.Event `stop` is set
    create_app(config, store, publisher=None, counters=None, broadcaster=None) -> FastAPI
    Store(path)                                 the gateway's SQLite store

See gateway/README.md for operations (rebuilding the store, accounts, kiosk mode).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Gateway": "gateway.server",
    "run_gateway": "gateway.server",
    "create_app": "gateway.app",
    "Store": "gateway.store",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gateway' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
