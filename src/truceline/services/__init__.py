"""Services shared by the CLI, the API and the web page: no logic lives only in a command or route."""

from __future__ import annotations

from truceline.services.adjudication import Adjudication, adjudicate, agreement_rejects

__all__ = ["Adjudication", "adjudicate", "agreement_rejects"]
