"""``truceline agreement from-territory``: an agreement folder from a control-of-territory map."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from truceline.cli.options import (
    AGREEMENT_DIR,
    DIR,
    FILE,
    KM,
    console,
    date_option,
    fail,
    output_option,
    working,
)
from truceline.errors import TrucelineError

__all__ = ["from_territory_cmd"]


def _pair(text: str | None, option: str) -> tuple[str, str] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise typer.BadParameter(f"{text!r}: give two different names, LEFT,RIGHT", param_hint=option)
    return parts[0], parts[1]


def _buffer(text: str) -> tuple[float, float]:
    try:
        kms = [float(p) for p in text.split(",")]
    except ValueError:
        kms = []
    if len(kms) not in (1, 2) or any(k < 0 for k in kms):
        raise typer.BadParameter(
            f"{text!r}: give KM (both sides) or LEFT_KM,RIGHT_KM, each >= 0", param_hint="--buffer-km"
        )
    return (kms[0], kms[-1])


def from_territory_cmd(
    control: Annotated[
        Path,
        typer.Argument(
            metavar="CONTROL_FILE",
            help="Control map: polygons (GeoJSON, GeoPackage, KML, ...) with the holding party "
            "in a property (see --party-field)",
        ),
    ],
    output: Annotated[Path, output_option("The agreement folder to write", metavar=DIR)],
    parties: Annotated[
        str | None,
        typer.Option(
            metavar="LEFT,RIGHT",
            help="The two parties as the map names them, left of the line first (default: the "
            "map's two parties in their order)",
        ),
    ] = None,
    country: Annotated[
        Path | None,
        typer.Option(
            metavar=FILE,
            help="The country's outline: the map then holds one party's polygons (--holder) and "
            "the other party holds the rest of the outline",
        ),
    ] = None,
    holder: Annotated[
        str | None,
        typer.Option(
            metavar="PARTY",
            help="With --country: whose polygons the map holds (default: the party the map "
            "names, else the first of --parties)",
        ),
    ] = None,
    party_field: Annotated[
        str, typer.Option(metavar="FIELD", help="The property naming a polygon's party")
    ] = "party",
    buffer_km: Annotated[
        str | None,
        typer.Option(
            metavar="KM,KM",
            help="Width of the buffer zone: one KM for both sides, or LEFT,RIGHT (0: none on that "
            "side; default 15, none with --template)",
        ),
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option(
            metavar=AGREEMENT_DIR,
            help="An agreement whose zones, rules, sectors and observation posts the new one "
            "takes (its parties named as the map's); the area is cut to the template's",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(metavar="NAME", help="The agreement's name")] = None,
    agreement_id: Annotated[
        str | None,
        typer.Option("--id", metavar="ID", help="The agreement's id (default: the folder's name)"),
    ] = None,
    effective_from: Annotated[
        str | None, date_option("When the agreement takes effect (default: today)", "--effective-from")
    ] = None,
    tolerance_m: Annotated[
        float,
        typer.Option(
            metavar="M",
            help="Gaps and slivers between the territories narrower than twice this (metres) are "
            "closed; boundary this close to the coast or border is not line of contact",
        ),
    ] = 100.0,
    simplify_m: Annotated[
        float, typer.Option(metavar="M", help="Simplify the line to this many metres")
    ] = 50.0,
    area_km: Annotated[
        float | None,
        typer.Option(
            metavar=KM,
            help="Cut the area of application (the union of the territories) to this far from the line",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an agreement already in the folder")] = False,
) -> None:
    """Build an agreement folder from a control-of-territory map (line, area, buffer zone).

    The line of contact is where the two parties' territories meet (not the coast or the border);
    the area of application is their union; the folder is checked as `agreement check` does."""
    from truceline.services.territory import agreement_from_territory

    pair = _pair(parties, "--parties")
    band = _buffer(buffer_km) if buffer_km is not None else None
    day = dt.date.fromisoformat(effective_from) if effective_from else dt.date.today()
    try:
        with working(f"Deriving the line of contact from {control}"):
            res = agreement_from_territory(
                control,
                output,
                parties=pair,
                country=country,
                holder=holder,
                party_field=party_field,
                buffer_km=band,
                name=name,
                agreement_id=agreement_id,
                effective_from=day,
                tolerance_m=tolerance_m,
                simplify_m=simplify_m,
                area_km=area_km,
                template=template,
                force=force,
            )
    except TrucelineError as exc:
        raise fail(exc) from exc
    left, right = res["parties"]
    c = res["contact"]
    v = res["summary"]["versions"][0]
    console.print(f"[bold]Wrote {res['folder']}[/] - valid (loads as `agreement check` reads it)")
    console.print(
        f"Line of contact: {v['line_length_km']:.1f} km geodesic ({c['raw_length_km']:.1f} km "
        f"before simplifying; Hausdorff distance to the shared boundary {c['hausdorff_m']:.1f} m); "
        f"left {left}, right {right}; ends {'of its longest part ' if len(c['part_km']) > 1 else ''}"
        f"carried {c['snapped_m'][0]:.0f} m and {c['snapped_m'][1]:.0f} m to the area's boundary",
        highlight=False,
    )
    if len(c["part_km"]) > 1:
        km = ", ".join(f"{x:.1f}" for x in c["part_km"][:8]) + (", ..." if len(c["part_km"]) > 8 else "")
        console.print(
            f"The front is in {len(c['part_km'])} separate pieces ({km} km): the line has one "
            f"part per piece, each with {left} on its left",
            highlight=False,
        )
    console.print(
        "Sides: each place takes the side of the party whose ground (territory.geojson) it lies "
        "in; ground neither holds, the side of the nearest part of the line",
        highlight=False,
    )
    if c["overlap_km2"] >= 0.01:
        console.print(f"Both parties' polygons claim {c['overlap_km2']:,.2f} km2", highlight=False)
    t = Table("party", "territory km2 (map)", "side of the line km2", title="Territory")
    for p in (left, right):
        t.add_row(p, f"{res['territory_km2'][p]:,.1f}", f"{v['territory_km2'][p]:,.1f}")
    console.print(t)
    for p in c["left_out"]:
        what = f"an enclave of {p['area_km2']:,.1f} km2" if p["kind"] == "enclave" else "a piece"
        console.print(
            f"Left out of the line: {what}, {p['length_km']:.1f} km of shared boundary "
            "(contact-left-out.geojson; places there take their side from the map's ground)",
            highlight=False,
        )
