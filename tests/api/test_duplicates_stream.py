"""The analyst's queue of possible duplicates when reports arrive one at a time: an offer an
earlier batch made is withdrawn or updated when a later batch links its reports or weighs them
again, so the queue is the one a single batch of the same reports gives (no stale entries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text

from truceline.core.geodesy import GEOD

from .conftest import Api, make_api
from .test_event_counts import _r

LON, LAT = 37.1, 48.6


def _at(d: float, az: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(LON, LAT, az, d)
    return float(lon), float(lat)


#: A patrol 600 m-uncertain; two cameras (one source) 500 m either side of it; then an
#: observation post 300 m north that links with the patrol: the patrol's offers change.
REPORTS: list[tuple[dict[str, Any], str]] = [
    (_r("P", LON, LAT, 0, 30, "patrol", uncertainty_m=600), "monitor"),
    (_r("C1", *_at(500, 90), 0, 0, "camera", uncertainty_m=25), "admin"),
    (_r("C2", *_at(500, 270), 0, 5, "camera", uncertainty_m=25), "admin"),
    (_r("O", *_at(300, 0), 0, 40, "observation_post", uncertainty_m=600), "analyst"),
]


def _queue(api: Api) -> list[tuple[str, str, float]]:
    """Every ``possible`` row (not only those the API lists), as (report, report, probability)."""
    with api.ctx.db.read() as s:
        rows = s.execute(
            text(
                "SELECT a.report_id, b.report_id, p.probability FROM fusion_pairs p "
                "JOIN incidents a ON a.pk = p.a_pk JOIN incidents b ON b.pk = p.b_pk "
                "WHERE p.status = 'possible'"
            )
        ).all()
    return sorted((min(a, b), max(a, b), round(float(p), 6)) for a, b, p in rows)


def _ingest(
    tmp_path: Path, sectored_dir: Path, cache: Any, *, stream: bool
) -> list[tuple[str, str, float]]:
    api = make_api(str(tmp_path / f"{'stream' if stream else 'one'}.db"), sectored_dir, cache)
    with api.client:
        groups = [[r] for r in REPORTS] if stream else [
            [r for r in REPORTS if r[1] == role] for role in ("admin", "monitor", "analyst")
        ]  # fmt: skip
        for g in groups:
            got = api.post("/incidents/batch", json={"incidents": [r for r, _ in g]}, role=g[0][1])
            assert got.status_code in (200, 201), got.text
        queue = _queue(api)
        listed = api.get("/duplicates", role="analyst")
        assert listed.status_code == 200, listed.text
    api.ctx.close()
    return queue


def test_streamed_queue_is_the_one_batch_queue(
    tmp_path: Path, sectored_dir: Path, agreement_cache: Any
) -> None:
    streamed = _ingest(tmp_path, sectored_dir, agreement_cache, stream=True)
    one = _ingest(tmp_path, sectored_dir, agreement_cache, stream=False)
    assert one, "the mix leaves pairs to an analyst"
    # the patrol's offer with the second camera (made before the post linked the patrol) is
    # gone: its event is offered once, through the post; the first camera's is re-weighed
    assert streamed == one
    assert len({(a, b) for a, b, _ in streamed}) == len(streamed)
