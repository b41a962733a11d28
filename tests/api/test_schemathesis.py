"""Property-based tests against the server's own OpenAPI spec: no input yields a 500.

A bounded number of examples per operation keeps this fast; the database is seeded so that the
generated ids sometimes hit real records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import ignored_auth, positive_data_acceptance

from truceline.services.agreement_store import AgreementCache

from .conftest import Api, make_api, rec


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sectored_dir: Path,
    agreement_cache: AgreementCache,
) -> Iterator[Api]:
    """The server on each database (PostgreSQL refuses some text SQLite keeps, e.g. NUL)."""
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    else:
        db = request.getfixturevalue("pg_cluster").new_database()
    api = make_api(db, sectored_dir, agreement_cache)
    with api.client:
        api.post("/incidents/batch", json={"incidents": [rec(i, lon=36.9 + i * 0.01) for i in range(5)]})
        yield api
    api.ctx.close()


#: Examples per operation: enough to reach every parameter, few enough to stay fast.
EXAMPLES = 8
#: A request valid by the schema may still break a rule of the domain (an agreement upload
#: without agreement.yaml, a box whose south is north of its north): 422 with the reason is right.
# Public routes (published reports, ledger roots, OGC landing) answer without a token by design;
# who may call what is the role matrix's job (test_roles.py).
EXCLUDED = [positive_data_acceptance, ignored_auth]


def test_no_server_errors(fuzzed: Api) -> None:
    """Every operation, positive and negative examples: no 500, responses as documented."""
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", fuzzed.client.app)
    failures: list[str] = []
    n_ops = 0
    for result in schema.get_all_operations():
        op = result.ok()
        n_ops += 1

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=fuzzed.h("admin"), excluded_checks=EXCLUDED)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failures, reported together
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:2000]}")
    assert n_ops >= 30
    assert not failures, "\n\n".join(failures)
