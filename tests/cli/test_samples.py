"""Every sample in ``examples/samples`` (one per real input format) imports through the CLI."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from truceline.cli import app
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import IncidentRow

ROOT = Path(__file__).parents[2]
SAMPLES = ROOT / "examples" / "samples"
ACTORS = [
    "--actor",
    "Military Forces of Russia (2000-)=RU",
    "--actor",
    "Military Forces of Ukraine (2019-)=UA",
]
#: (file, format, extra options, what the command must print), in the README's order
STEPS = [
    ("acled-events.csv", "acled", ACTORS, "3 accepted, 0 duplicates, 0 rejected"),
    ("acled-events.json", "acled", ACTORS, "2 accepted, 0 duplicates, 0 rejected"),
    ("acled-deletions.csv", "acled-deletions", [], "1 withdrawn, 0 already withdrawn, 1 not stored"),
    ("acled-deletions.json", "acled-deletions", [], "1 withdrawn, 0 already withdrawn, 1 not stored"),
    ("tak-capture.cot", "cot", [], "3 accepted, 1 revised, 8 duplicates, 2 rejected"),
    ("smm-observations.csv", "smm", [], "3 accepted, 0 duplicates, 0 rejected"),
]


def test_the_samples_table_names_every_sample() -> None:
    table = (SAMPLES / "README.md").read_text()
    # not imported: evidence files (truceline attach) and a control map (agreement from-territory)
    other = {p.name: "attachment" for p in SAMPLES.glob("*.jpg")} | {
        "control-map.geojson": "agreement from-territory"
    }
    files = sorted(p.name for p in SAMPLES.iterdir() if p.suffix != ".md" and p.name not in other)
    assert files == sorted(name for name, *_ in STEPS)
    for name, use in other.items():
        assert f"| `{name}` | {use} |" in table
    for name, fmt, *_ in STEPS:
        assert f"| `{name}` | `{fmt}` |" in table


def test_each_sample_imports_through_the_cli(tmp_path: Path) -> None:
    db_path = tmp_path / "samples.db"
    for name, fmt, extra, said in STEPS:
        res = CliRunner().invoke(
            app,
            [
                "import",
                str(SAMPLES / name),
                "--format",
                fmt,
                "-a",
                str(ROOT / "examples" / "ukraine-2024"),
                "--db",
                str(db_path),
                *extra,
            ],
        )
        assert res.exit_code == 0, f"{name}: {res.output}"
        assert said in res.output, f"{name}: {res.output}"
    db = Database(str(db_path))
    try:
        with db.read() as s:
            live = select(func.count()).where(IncidentRow.withdrawn_at.is_(None))
            gone = select(func.count()).where(IncidentRow.withdrawn_at.is_not(None))
            assert s.execute(gone).scalar_one() == 2
            assert s.execute(live).scalar_one() >= 3 + 3 + 1  # ACLED, SMM, at least a marker
            v = ledger.verify(s)
            assert v.ok, v.problems
    finally:
        db.dispose()
