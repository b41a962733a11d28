"""The map's layers built ahead of the first request, and never twice at once."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

import truceline.services.agreement as agreement_service
from truceline.io.agreement_files import load_agreement
from truceline.services.agreement import agreement_layers, warm_layers


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[dt.date]:
    built: list[dt.date] = []
    real = agreement_service.zones_feature_collection

    def counted(ag, day):  # type: ignore[no-untyped-def]
        built.append(day)
        return real(ag, day)

    monkeypatch.setattr(agreement_service, "zones_feature_collection", counted)
    return built


def test_warmed_layers_are_what_the_map_gets_without_a_second_build(
    small_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ag = load_agreement(small_dir)  # its own copy: nothing built yet
    built = _counting(monkeypatch)
    warm_layers([ag], dt.date(2025, 3, 10))
    assert built == [dt.date(2025, 3, 10)]
    fc = agreement_layers(ag, dt.date(2025, 4, 2))  # same version, same withdrawal rules in force
    assert built == [dt.date(2025, 3, 10)]
    assert {f["properties"]["layer"] for f in fc["features"]} >= {"line", "zone", "withdrawal"}
    # The outlines simplified for a first view's zoom are built too: asked, none is simplified.
    simplified: list[int] = []
    real = agreement_service.simplified_for_zoom
    monkeypatch.setattr(
        agreement_service, "simplified_for_zoom", lambda fc, z: simplified.append(z) or real(fc, z)
    )
    agreement_layers(ag, dt.date(2025, 4, 2), zoom=7)
    assert simplified == [] and built == [dt.date(2025, 3, 10)]
    agreement_layers(ag, dt.date(2025, 4, 2), zoom=13)  # not warmed: built when asked
    assert simplified == [13]
    agreement_layers(ag, dt.date(2025, 1, 15))  # before the tank rule starts: other layers
    assert built == [dt.date(2025, 3, 10), dt.date(2025, 1, 15)]


def test_an_agreement_not_yet_in_force_is_warmed_at_its_first_day(
    small_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ag = load_agreement(small_dir)
    built = _counting(monkeypatch)
    warm_layers([ag], dt.date(2024, 6, 1))
    assert built == [ag.effective_from]


def test_two_threads_asking_at_once_build_the_layers_once(
    small_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ag = load_agreement(small_dir)
    ag.version_at(dt.date(2025, 3, 10))  # compiled first, as the server's start-up does
    built = _counting(monkeypatch)
    start = threading.Barrier(4)
    got: list[object] = []

    def ask() -> None:
        start.wait()
        got.append(agreement_layers(ag, dt.date(2025, 3, 10)))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 4 and all(g is got[0] for g in got)
    assert built == [dt.date(2025, 3, 10)]
