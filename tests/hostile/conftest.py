"""The hostile-input corpus runs against the API's own fixtures (a real app on SQLite and PostGIS)."""

from __future__ import annotations

from ..api.conftest import agreement_cache, api, sectored_dir  # noqa: F401  (fixtures)
from ..tak.test_listener import ctx, pki  # noqa: F401  (fixtures: the CoT listener's, test_cot_streams)
