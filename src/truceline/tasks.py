"""The one function a Dask cluster's scheduler sees of Truceline's tasks (light: standard library).

A task's function and arguments travel pickled inside it (:func:`call_pickled`): the scheduler,
which unpickles every task it is sent, then imports only this module, not the planner's stack (tens
of seconds on a loaded machine, during which its event loop stops and clients lose it). The worker
unpickles and runs the function. The bytes come from the Truceline client that submitted the task,
as Dask's own pickled tasks do.
"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = ["call_pickled"]


def call_pickled(payload: bytes, *more: Any) -> Any:
    """Run ``fn(*args, *more)`` for the pickled ``(fn, args)`` in ``payload``; ``more``: arguments
    Dask resolves (futures of scattered data)."""
    fn, args = pickle.loads(payload)  # the submitting client's own task, as Dask's are
    return fn(*args, *more)
