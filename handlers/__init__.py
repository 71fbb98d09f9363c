"""Chat commands: subscribers manage their alerts, operators run the service.

Every command is registered here, in one place: `build_router()` puts the routers of the
handler modules together. Which commands are operator-only is said where each is
registered (`operator=True`) and enforced once, by `handlers.router.Dispatcher`.
"""

from __future__ import annotations

from handlers import operators, subscribers
from handlers.router import Router

__all__ = ["build_router"]


def build_router() -> Router:
    """Return a router holding every command and button handler."""
    router = Router()
    router.include(subscribers.router)
    router.include(operators.router)
    return router
