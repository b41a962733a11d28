"""Truceline: the information system of a ceasefire-verification mission.

The package is split into a pure core (:mod:`truceline.core`: geodesy, the agreement model, the rule
engine, simulation) that knows nothing of files, databases or web frameworks, and edges around it
(:mod:`truceline.io`, :mod:`truceline.store`, :mod:`truceline.report`, :mod:`truceline.cli`) that parse,
call the core and format.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
