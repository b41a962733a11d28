"""Services shared by the CLI, the API and the web page: no logic lives only in a command or route."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from truceline.services.adjudication import Adjudication, adjudicate, agreement_rejects

__all__ = ["Adjudication", "adjudicate", "agreement_rejects"]


def __getattr__(name: str) -> Any:
    # the adjudication pulls in the rule engine, fusion and pyarrow: imported when first asked
    # for, so that a service that does not need it (``truceline locate``) does not pay for it
    if name in __all__:
        from truceline.services import adjudication

        return getattr(adjudication, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
