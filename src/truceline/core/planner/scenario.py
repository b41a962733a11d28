"""Scenarios: an agreement with some of its terms replaced (another line, other zones, other sectors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from truceline.core.agreement import Agreement, Sector, Zone
from truceline.errors import ValidationError

__all__ = ["PlannerError", "Scenario", "apply_scenario"]


class PlannerError(ValidationError):
    """A scenario or planning parameter that cannot be used (the message names it and the fix)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A candidate: the agreement with the scenario's line, zones and sectors in place of its own.

    ``territory``: the ground each party holds (lon/lat (Multi)Polygons by party id) when the
    scenario comes from a control map; the planner's land figures are then the polygons', not the
    sides of the line. ``notes``: what was assumed in building it (printed with the comparison).
    """

    id: str
    name: str
    description: str
    agreement: Agreement
    territory: Mapping[str, Any] | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()


def apply_scenario(
    base: Agreement,
    *,
    line: Any = None,
    zones: Sequence[Zone] = (),
    sectors: Sequence[Sector] | None = None,
    sides: Mapping[str, Any] | None = None,
) -> Agreement:
    """The agreement with another line, zones replaced by id, and/or other sectors; validated again.

    The line replaces the line of every version that kept the agreement's original line (amendments
    that moved the line keep theirs). A zone replaces the zone with its id in every version, or is
    added when no version has that id. ``sides`` (the ground each party holds under the scenario)
    replaces the agreement's; a new line without them drops the agreement's (they were its line's).
    """
    line0 = base.versions[0].line
    by_id = {z.id: z for z in zones}
    versions = []
    for v in base.versions:
        new_zones = tuple(by_id.get(z.id, z) for z in v.zones)
        have = {z.id for z in v.zones}
        new_zones += tuple(z for z in zones if z.id not in have)
        new_line = line if (line is not None and v.line.equals(line0)) else v.line
        versions.append(v.model_copy(update={"line": new_line, "zones": new_zones}))
    data = {name: getattr(base, name) for name in type(base).model_fields}
    data["versions"] = tuple(versions)
    if sectors is not None:
        data["sectors"] = tuple(sectors)
    if sides is not None:
        data["sides"] = dict(sides)
    elif line is not None:
        data["sides"] = {}
    # Built anew (not model_copy) so that the agreement's cross-checks run on the new terms.
    return Agreement(**data)
