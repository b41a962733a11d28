"""Services shared by the CLI, the API and the web page: no logic lives only in a command or route."""

from __future__ import annotations

from truceline.services.incidents import (
    CLASSIFY_COLUMNS,
    Adjudication,
    adjudicate,
    agreement_rejects,
    classification_rows,
)

__all__ = [
    "CLASSIFY_COLUMNS",
    "Adjudication",
    "adjudicate",
    "agreement_rejects",
    "classification_rows",
]
