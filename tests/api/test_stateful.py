"""A stateful fuzz run (schemathesis) along the OpenAPI links: no input yields a 500.

schemathesis builds a hypothesis state machine from the links of the server's own OpenAPI
document (:mod:`truceline.api.links`): each scenario starts at an operation that lists or creates
records (submit a batch, list findings, create a token, ...) and follows links to the operations
that read, change or remove what came back (read the incident, review it, read its finding and
its ledger proof, publish the day, revoke the token, merge or split events, ...), with generated
values everywhere else. Every answer is checked: no 500, status codes, content types, headers and
bodies as documented; nothing the server logs carries a traceback.

`make test` runs a few scenarios per database (``TRUCELINE_FUZZ_SCENARIOS``, default 6, of at most
``TRUCELINE_FUZZ_STEPS`` steps, default 10); `make bench` runs many more. The run prints how many
steps ran, how many followed a link and the statuses seen.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from truceline.context import SYSTEM
from truceline.services.agreement_store import AgreementCache
from truceline.services.auth import create_token

from .conftest import Api, make_api, rec
from .test_schemathesis import EXCLUDED, REQUEST_TIMEOUT_S

SCENARIOS = int(os.environ.get("TRUCELINE_FUZZ_SCENARIOS", "6"))
STEPS = int(os.environ.get("TRUCELINE_FUZZ_STEPS", "10"))


def _seed() -> list[dict[str, Any]]:
    """Records made here (not by the simulator): incidents in the buffer zone on both sides, and
    pairs of reports of one event by two sources, so fusion links some and leaves possible
    duplicates for the analyst routes."""
    out = [rec(i, lon=36.9 + i * 0.01) for i in range(4)]
    out += [rec(f"s{i}", lon=37.3 + i * 0.02, lat=48.5, kind="explosion") for i in range(2)]
    for i in range(3):
        lon, lat = 36.8 + 0.05 * i, 48.7
        out.append(rec(f"p{i}", lon=lon, lat=lat, kind="explosion", uncertainty_m=300))
        out.append(
            rec(f"c{i}", lon=lon + 0.004, lat=lat, kind="explosion", source_type="camera",
                uncertainty_m=400)
        )  # fmt: skip
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def walked(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sectored_dir: Path,
    agreement_cache: AgreementCache,
) -> Iterator[Api]:
    """A server of its own on each database (the run revokes tokens it lists)."""
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("stateful") / "stateful.db")
    else:
        db = request.getfixturevalue("pg_cluster").new_database()
    api = make_api(db, sectored_dir, agreement_cache)
    with api.client:
        r = api.post("/incidents/batch", json={"incidents": _seed()})
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
        sensors = {"sensors": [{"id": "S1", "lon": 36.9, "lat": 48.6}]}
        assert api.post("/sensors", json=sensors).status_code == 200
        yield api
    api.ctx.close()


def _drops_token(case: Any) -> bool:
    """Whether schemathesis generated ``case`` without its bearer token on purpose."""
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    names = [getattr(data, "parameter", None)]
    names += [getattr(m, "parameter", None) for m in getattr(data, "mutations", None) or ()]
    return any(isinstance(n, str) and n.lower() == "authorization" for n in names)


def _scenario_records(n: int) -> list[dict[str, Any]]:
    """Scenario ``n``'s batch, on a day of its own: three reports in the buffer zone, and a
    patrol 600 m-uncertain with two cameras 500 m either side of it and an observation post
    300 m north (fusion links some and offers the others to an analyst as possible duplicates)."""
    day = dt.date(2025, 1, 1) + dt.timedelta(days=n % 60)  # before the server's clock
    out = [
        rec(f"walk-{n}-{i}", lon=36.9 + 0.01 * i, day=day, kind=kind)
        for i, kind in enumerate(("armed_personnel", "heavy_weapon", "explosion"))
    ]
    lon, lat = 37.1, 48.6
    for rid, dx_m, dy_m, second, source, unc in (
        ("P", 0, 0, 30, "patrol", 600),
        ("C1", 500, 0, 0, "camera", 25),
        ("C2", -500, 0, 5, "camera", 25),
        ("O", 0, 300, 40, "observation_post", 600),
    ):
        out.append(
            rec(f"walk-{n}-{rid}", lon=lon + dx_m / 74_000, lat=lat + dy_m / 111_200, day=day,
                kind="explosion", source_type=source, uncertainty_m=unc, time_precision="second",
                observed_at=f"{day}T10:00:{second:02d}Z")
        )  # fmt: skip
    return out


class _Tally:
    """What a run did: steps, linked steps, statuses, and the failures of every check."""

    def __init__(self) -> None:
        self.scenarios = 0
        self.steps = 0
        self.linked: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.failures: dict[str, str] = {}
        self.slowest: tuple[float, str] = (0.0, "")


def test_stateful_walk_along_the_links(walked: Api, caplog: pytest.LogCaptureFixture) -> None:
    """Scenarios along the links: no 500, every answer as documented, no traceback logged."""
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", walked.client.app)
    tally = _Tally()
    ctx = walked.ctx

    class Walk(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # a token of its own per scenario: a scenario may revoke the tokens it lists
            token = ctx.db.write(
                lambda s: create_token(s, role="admin", name="walk", actor=SYSTEM, now=walked.clock())
            )
            self.headers = {"Authorization": f"Bearer {token.secret}"}
            # each scenario starts from real answers (a batch stored on a day of its own, the
            # findings, the possible duplicates, a new token), so its links have records to follow
            tally.scenarios += 1
            batch = self._open(
                "POST", "/api/v1/incidents/batch", body={"incidents": _scenario_records(tally.scenarios)}
            )
            pk = batch.response.json()["results"][0]["pk"]
            self._open("GET", "/api/v1/incidents/{pk}", path_parameters={"pk": pk})
            self._open("GET", "/api/v1/findings")
            self._open("GET", "/api/v1/duplicates")
            self._open("POST", "/api/v1/tokens", body={"role": "sensor", "name": "walk"})

        def _open(self, method: str, path: str, **kw: Any) -> StepOutput:
            """One opening request, stepped as schemathesis's own rules step (recorded and
            counted), its answer kept for the links to follow."""
            if "body" in kw:
                kw["media_type"] = "application/json"
            case = schema[path][method].Case(**kw)
            opener = StepInput.initial(case)
            self.recorder.record_case(case=case)
            self.control.record_step(opener, self.recorder)
            output = self.step(opener)
            self._add_results_to_targets((), [output])
            return output

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            # a negative case that leaves the token out on purpose goes without it (a 401 is due)
            auth = {} if _drops_token(case) else {"headers": self.headers}
            return {**auth, "timeout": REQUEST_TIMEOUT_S}

        def step(self, input: StepInput) -> StepOutput:
            tally.steps += 1
            if input.transition is not None and input.is_applied:
                tally.linked[input.transition.id] += 1
            return super().step(input)  # type: ignore[no-any-return]

        def validate_response(self, response: Any, case: Any, *_: Any, **kwargs: Any) -> None:
            tally.statuses[response.status_code] += 1
            tally.slowest = max(tally.slowest, (response.elapsed, case.operation.label))
            try:
                case.validate_response(
                    response, excluded_checks=EXCLUDED, transport_kwargs=kwargs or None,
                    recorder=self.recorder,
                )  # fmt: skip
            except (FailureGroup, AssertionError) as exc:  # every failure, not only the first
                key = f"{case.operation.label} -> {response.status_code}: {type(exc).__name__}"
                tally.failures.setdefault(key, f"{exc}"[:1500] + f"\n  {case.as_curl_command()}")

    # The server's state outlives a scenario, so a replayed choice sequence may find other
    # records and pick other rules: hypothesis calls that flaky (as schemathesis's own runner
    # does, a new run takes the remaining scenarios; failures are collected above, not raised).
    restarts = 0
    with caplog.at_level(logging.WARNING):
        while tally.scenarios < SCENARIOS:
            try:
                run_state_machine_as_test(
                    Walk,
                    settings=settings(
                        max_examples=SCENARIOS - tally.scenarios,
                        stateful_step_count=STEPS,
                        deadline=None,
                        database=None,
                        phases=[Phase.generate],
                        suppress_health_check=list(HealthCheck),
                    ),
                )
            except Flaky:
                restarts += 1
                assert restarts <= 50, "the run keeps restarting"
                continue
            break
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    print(
        f"\nstateful fuzz: {tally.scenarios} scenarios ({restarts} restarts), {tally.steps} steps, "
        f"{sum(tally.linked.values())} along a link ({len(tally.linked)} links), "
        f"statuses {dict(sorted(tally.statuses.items()))}, 500s: {tally.statuses[500]}, "
        f"failures: {len(tally.failures)}, tracebacks: {len(tracebacks)}, "
        f"slowest answer {tally.slowest[0]:.1f} s ({tally.slowest[1]})"
    )
    for name, n in tally.linked.most_common():
        print(f"  {n:5d}  {name}")
    assert not tally.failures, "\n\n".join(f"{k}\n{v}" for k, v in tally.failures.items())
    assert not tracebacks, "\n".join(caplog.text.splitlines()[:80])
    assert tally.statuses[500] == 0
    # the run walked: at least a step per scenario, and some of them along a link
    assert tally.steps >= SCENARIOS
    assert tally.linked, "no step followed a link"
