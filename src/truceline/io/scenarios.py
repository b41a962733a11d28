"""Read the candidate scenarios of an agreement folder (the ``scenarios:`` list of ``agreement.yaml``).

Each scenario names what it changes; everything else is the agreement's own::

    scenarios:
      - id: frozen                       # [A-Za-z0-9_.-]
        name: Front frozen as is
      - id: salient
        name: Withdrawal from the Pokrovsk salient
        description: ...
        line: {file: scenarios/line-salient.geojson}
        zones:                           # merged into the agreement's zone with the same id
          - {id: buffer, bands: {UA: [0, 20], RU: [0, 20]}}
        sectors: {file: scenarios/sectors-salient.geojson}

A folder without ``scenarios:`` has one scenario, ``agreement``: the agreement as it is.
Like agreements, scenarios are read from the files by name (:func:`load_scenarios_files`), a folder
being one way to fill them (:func:`load_scenarios`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from truceline.core.planner import Scenario, apply_scenario
from truceline.errors import AgreementError
from truceline.io.agreement_files import (
    _Files,
    _geometry,
    _read_yaml,
    _sectors,
    _zones,
    files_of_folder,
    load_agreement_files,
)

__all__ = ["load_scenarios", "load_scenarios_files"]

_YAML = "agreement.yaml"
_KEYS = {"id", "name", "description", "line", "zones", "sectors"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def load_scenarios(path: str | Path, ids: Sequence[str] | None = None) -> list[Scenario]:
    """The scenarios of an agreement folder (or of its ``agreement.yaml``'s folder).

    See :func:`load_scenarios_files`.
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    return load_scenarios_files(files_of_folder(folder), ids, origin=str(folder))


def load_scenarios_files(
    files: Mapping[str, bytes], ids: Sequence[str] | None = None, *, origin: str | None = None
) -> list[Scenario]:
    """The agreement's scenarios, in file order or in the order of ``ids``.

    ``files`` and ``origin`` as for :func:`truceline.io.agreement_files.load_agreement_files`.

    Raises
    ------
    AgreementError
        A scenario that cannot be built (the message names ``scenarios[i]``, the field and the fix),
        or an unknown id in ``ids``.
    """
    fs = _Files(files, origin)
    base = load_agreement_files(files, origin=origin)
    raw = _read_yaml(fs)
    items = raw.get("scenarios")
    if not items:
        out = [Scenario("agreement", base.name, base.description, base)]
    else:
        if not isinstance(items, list):
            raise AgreementError("`scenarios` must be a list", file=_YAML, field="scenarios")
        base_zones = {str(z.get("id")): z for z in (raw.get("zones") or []) if isinstance(z, dict)}
        out = [_scenario(fs, base, base_zones, item, i) for i, item in enumerate(items)]
        seen: set[str] = set()
        for i, sc in enumerate(out):
            if sc.id in seen:
                raise AgreementError(
                    f"scenario id {sc.id!r} is used twice; give each scenario its own id",
                    file=_YAML,
                    field=f"scenarios[{i}].id",
                )
            seen.add(sc.id)
    if not ids:
        return out
    by_id = {sc.id: sc for sc in out}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise AgreementError(
            f"no scenario {', '.join(map(repr, unknown))}; known: {', '.join(by_id)}",
            file=_YAML,
            field="scenarios",
        )
    return [by_id[i] for i in ids]


def _scenario(
    fs: _Files, base: Any, base_zones: dict[str, dict[str, Any]], item: Any, i: int
) -> Scenario:
    where = f"scenarios[{i}]"
    if not isinstance(item, dict):
        raise AgreementError("each scenario must be a mapping", file=_YAML, field=where)
    extra = sorted(set(item) - _KEYS)
    if extra:
        raise AgreementError(
            f"unknown key(s) {', '.join(extra)}; a scenario may set {', '.join(sorted(_KEYS))}",
            file=_YAML,
            field=where,
        )
    sid = str(item.get("id", ""))
    if not _ID.match(sid):
        raise AgreementError(
            f"scenario id {sid!r} is missing or invalid; use letters, digits, '-', '_' or '.'",
            file=_YAML,
            field=f"{where}.id",
        )
    line = None
    if item.get("line") is not None:
        line = _geometry(fs, item["line"], f"{where}.line", ("LineString", "MultiLineString"))
    zones_raw = item.get("zones") or []
    if not isinstance(zones_raw, list):
        raise AgreementError("`zones` must be a list", file=_YAML, field=f"{where}.zones")
    merged = []
    for z in zones_raw:
        if not isinstance(z, dict):
            raise AgreementError("each zone must be a mapping", file=_YAML, field=f"{where}.zones")
        old = base_zones.get(str(z.get("id")))
        same_type = old is not None and z.get("type", old.get("type")) == old.get("type")
        merged.append({**old, **z} if old is not None and same_type else z)
    zones = _zones(fs, merged, f"{where}.zones")
    sectors = _sectors(fs, item["sectors"]) if item.get("sectors") else None
    try:
        ag = apply_scenario(base, line=line, zones=zones, sectors=sectors)
    except AgreementError as exc:
        msg = exc.message.removeprefix(f"field {exc.field}: ")
        raise AgreementError(
            msg, file=_YAML, field=f"{where}.{exc.field}" if exc.field else where
        ) from exc
    return Scenario(sid, str(item.get("name") or sid), str(item.get("description") or ""), ag)
