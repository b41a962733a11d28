"""The acoustic pipeline as a service (shared by the CLI, the API and the store).

- :func:`run_acoustic`: read sensors.csv / detections.csv / weather.csv, locate the events and, with
  an agreement, attribute them (the version in force on each event's day).
- :func:`acoustic_incidents`: turn located events into incidents (``source_type`` acoustic) whose
  uncertainty and origin come from the location covariance and the attribution, so that the rule
  engine's findings carry the same probability.
- :func:`ingest_acoustic`: the same idempotent ingest and rule engine as any other report.
- :func:`simulate_acoustic`: a network along the agreement's line, fire from both sides, detections
  (weather told differently from the truth), duplicate reports by patrols, cameras and parties.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from truceline.core.acoustic import (
    SIGNALS,
    AcousticError,
    AssociationOptions,
    LocatedEvents,
    LocationResult,
    Unassigned,
    Weather,
    locate_detections,
)
from truceline.io import acoustic_csv as io

if TYPE_CHECKING:  # the agreement, attribution, incidents and the store: only with an agreement,
    # so that `truceline locate` without one does not pay for importing them (about a second)
    from sqlalchemy.orm import Session

    from truceline.core.agreement import Agreement
    from truceline.core.attribution import Attribution, PairingOptions, Pairs, SideProbability
    from truceline.core.incidents import Incident
    from truceline.io.incidents_io import Reject as IncidentReject

__all__ = [
    "AcousticIngest",
    "AcousticRun",
    "acoustic_incidents",
    "attribute_events",
    "ingest_acoustic",
    "locate_arrays",
    "run_acoustic",
    "simulate_acoustic",
    "write_locate_outputs",
]

_KIND_OF_SIGNAL = {0: "explosion", 1: "muzzle_flash", 2: "explosion"}


@dataclass(frozen=True)
class AcousticRun:
    """Everything one run of the pipeline produced."""

    sensors: io.Sensors
    detections: io.Detections
    weather: Weather | None
    rejects: list[io.Reject]
    result: LocationResult
    attribution: Attribution | None
    side: SideProbability | None
    pairs: Pairs | None

    @property
    def events(self) -> LocatedEvents:
        return self.result.events


def _empty_result(n_det: int) -> LocationResult:
    return LocationResult(
        LocatedEvents.empty(),
        Unassigned(np.zeros(0, np.intp), np.zeros(0, str), []),
        np.full(n_det, -1, np.intp),
    )


def attribute_events(
    agreement: Agreement,
    events: LocatedEvents,
    *,
    pairing: PairingOptions | None = None,
    sigma_line_m: float = 0.0,
) -> tuple[Attribution, SideProbability, Pairs]:
    """Side probability of every event under the version in force on its day, then attribution.

    An ambiguous event's probability integrates over its modes (each mode's side probability
    weighted by the mode's probability), so that a mirror fix never makes a confident statement.

    The covariance scale is taken as estimated with ``n_sensors - 3`` degrees of freedom (the
    solver scales it by the reduced chi-square when that exceeds 1).
    """
    from truceline.core.attribution import SideProbability, attribute_located, side_probability

    n = len(events)
    sp = SideProbability.empty(n)
    vidx = _version_index(agreement, events)
    dof = np.maximum(events.n_sensors - 3, 1).astype(np.float64)
    for v in np.unique(vidx):  # agreement versions (a handful), not events
        rows = np.flatnonzero(vidx == v)
        sub = side_probability(
            agreement.compiled(int(v)), events.lon[rows], events.lat[rows], events.cov_m2[rows],
            scale_dof=dof[rows], sigma_line_m=sigma_line_m,
        )  # fmt: skip
        for f in SideProbability.__dataclass_fields__:
            getattr(sp, f)[rows] = getattr(sub, f)
        amb = rows[events.ambiguous[rows]]
        if len(amb):
            # an event with two modes is on the left with the probability of each mode's side
            # weighted by the mode's probability
            alt = side_probability(
                agreement.compiled(int(v)), events.alt_lon[amb], events.alt_lat[amb],
                events.alt_cov_m2[amb], scale_dof=dof[amb], sigma_line_m=sigma_line_m,
            )  # fmt: skip
            w = events.alt_weight[amb]
            for f in ("p_left", "p_left_low", "p_left_high"):
                getattr(sp, f)[amb] = (1.0 - w) * getattr(sp, f)[amb] + w * getattr(alt, f)
    attr, pairs = attribute_located(
        sp, events.lon, events.lat, events.emitted_at_s, events.signal,
        left=agreement.left, right=agreement.right, pairing=pairing,
    )  # fmt: skip
    return attr, sp, pairs


def run_acoustic(
    sensors: Path,
    detections: Path,
    weather: Path | None = None,
    *,
    agreement: Agreement | None = None,
    now_s: float | None = None,
    pairing: PairingOptions | None = None,
    max_range_km: float | None = None,
) -> AcousticRun:
    """Read the inputs, locate the events and (with an agreement) attribute them.

    ``max_range_km`` is the association radius (None: derived from the signal and the network,
    :func:`~truceline.core.acoustic.associate.default_max_range_m`).
    """
    sens = io.read_sensors(sensors)
    dets = io.read_detections(detections, sens, now_s=now_s)
    bad = list(sens.rejects) + list(dets.rejects)
    wx: Weather | None = None
    if weather is not None:
        wx, w_rej = io.read_weather(weather)
        bad += w_rej
    return locate_arrays(
        sens, dets, wx, agreement=agreement, pairing=pairing, rejects=bad, max_range_km=max_range_km
    )


def locate_arrays(
    sensors: io.Sensors,
    detections: io.Detections,
    weather: Weather | None = None,
    *,
    agreement: Agreement | None = None,
    pairing: PairingOptions | None = None,
    rejects: Sequence[io.Reject] = (),
    max_range_km: float | None = None,
) -> AcousticRun:
    """Locate (and with an agreement attribute) detections already read, from files or the store.

    ``weather`` None is :meth:`Weather.untold` (15 deg C and calm, both very uncertain: the speed
    of sound and the wind are measured by the network). ``max_range_km``: see :func:`run_acoustic`.
    """
    if max_range_km is not None and not (np.isfinite(max_range_km) and max_range_km > 0):
        raise AcousticError(
            f"max_range_km {max_range_km!r} must be a positive number of kilometres (the association "
            "radius); leave it out to derive it from the network"
        )
    assoc = AssociationOptions(max_range_m=None if max_range_km is None else 1000.0 * max_range_km)
    if sensors.network is None or len(detections.sensor) == 0:
        res = _empty_result(len(detections.sensor))
    else:
        res = locate_detections(
            sensors.network, detections.sensor, detections.arrival_s, weather=weather,
            det_signal=detections.signal, det_amplitude_db=detections.amplitude_db,
            association=assoc,
        )  # fmt: skip
    attr = sp = pairs = None
    if agreement is not None:
        attr, sp, pairs = attribute_events(agreement, res.events, pairing=pairing)
    return AcousticRun(sensors, detections, weather, list(rejects), res, attr, sp, pairs)


def write_locate_outputs(
    run: AcousticRun, output: Path, rejects: Path, *, detections_file: str = "detections.csv"
) -> int:
    """Write events.csv and the rejects file; returns the number of rows in the rejects file."""
    io.write_events(output, run.events, run.detections.detection_id, attribution=run.attribution)
    return io.write_rejects(
        rejects, run.rejects, run.result.unassigned, run.detections.detection_id,
        run.detections.line, detections_file,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Located events as incidents
# --------------------------------------------------------------------------------------------------


def _event_id(detection_ids: list[str]) -> str:
    """A stable id from the event's detections: the same evidence gives the same incident."""
    h = hashlib.sha256("\n".join(sorted(detection_ids)).encode()).hexdigest()
    return f"acoustic-{h[:20]}"


def acoustic_incidents(
    agreement: Agreement,
    run: AcousticRun,
    *,
    reliability: str = "B",
    credibility: int = 2,
) -> tuple[list[Incident], list[int]]:
    """Incidents for the located events, and the detections.csv line of each one's first detection.

    - muzzle blasts become ``muzzle_flash`` incidents, impacts and unknown signals ``explosion``;
    - ``uncertainty_m`` is the standard deviation across the line, ``sqrt(n^T Sigma n)`` from the
      location covariance (the quantity every zone and side test of the rule engine uses);
    - an impact paired with muzzle blasts gets the most likely blast on the more likely side as its
      origin, with ``origin_uncertainty_m`` the standard deviation across the line that reproduces
      the attribution probability (:func:`~truceline.core.attribution.equivalent_sigma_m`), so the
      fire-across finding carries it;
    - an ambiguous event (two fixes) is stored at its most probable fix with the uncertainty that
      gives its side probability integrated over both fixes, and the narrative names the other;
    - the narrative keeps the ellipse, the sensors, the attribution and the detection ids.
    """
    from truceline.core.attribution import equivalent_sigma_m
    from truceline.core.incidents import Incident, second_fix_text
    from truceline.core.times import utc_from_epoch_s

    ev = run.events
    n = len(ev)
    if run.attribution is None or run.side is None or run.pairs is None:
        attr, sp, pairs = attribute_events(agreement, ev)
    else:
        attr, sp, pairs = run.attribution, run.side, run.pairs
    lam_max = (ev.semi_major_m / np.sqrt(5.991464547107979)) ** 2
    unc = np.where(np.isfinite(sp.sigma_across_m), sp.sigma_across_m, np.sqrt(lam_max))
    amb = np.flatnonzero(ev.ambiguous & np.isfinite(sp.p_left))
    if len(amb):
        # an ambiguous event travels as its most probable fix with the uncertainty that gives the
        # rule engine its side probability integrated over both fixes (never more confident)
        by_version = _version_index(agreement, ev)[amb]
        for v in np.unique(by_version):  # agreement versions (a handful)
            m = amb[by_version == v]
            eq = equivalent_sigma_m(agreement.compiled(int(v)), ev.lon[m], ev.lat[m], sp.p_left[m])
            unc[m] = np.fmax(unc[m], eq)
    origin, o_sig = _paired_origins(agreement, ev, attr, sp, pairs)
    lo, hi = attr.interval
    resp, prob, term = attr.responsible, attr.probability, attr.likelihood
    det_id = run.detections.detection_id
    det_line = run.detections.line
    out: list[Incident] = []
    rows: list[int] = []
    for i in range(n):  # building validated records for the store: an edge step
        ids = det_id[ev.detections[i]].tolist()
        sig = SIGNALS[int(ev.signal[i])]
        text = (
            f"acoustic {sig.replace('_', ' ')} located by {int(ev.n_sensors[i])} sensors "
            f"(residual {ev.residual_rms_ms[i]:.1f} ms, sound speed {ev.c_mps[i]:.1f} m/s); 95 % "
            f"ellipse {ev.semi_major_m[i]:.0f} x {ev.semi_minor_m[i]:.0f} m, major axis "
            f"{ev.orientation_deg[i]:.0f} deg"
        )
        if np.isfinite(attr.p_left[i]):
            how = "its own position" if attr.method[i] == "muzzle_blast" else "paired muzzle blasts"
            text += (
                f"; fired by {resp[i]} (from {how}): P={prob[i]:.3f} "
                f"[{lo[i]:.3f}, {hi[i]:.3f}], {term[i]}"
            )
        if ev.ambiguous[i]:
            alt = second_fix_text(float(ev.alt_lon[i]), float(ev.alt_lat[i]), float(ev.alt_weight[i]))
            text += f"; {alt}; the position uncertainty covers both"
        if ev.salvo_size[i] > 1:
            text += (
                f"; one of a salvo of {int(ev.salvo_size[i])} rounds from one firing point "
                f"(within their ellipses, seconds apart)"
            )
        text += f"; detections {' '.join(ids)}"
        o = int(origin[i])
        has_o = o >= 0 and np.isfinite(o_sig[i])
        out.append(
            Incident(
                id=_event_id(ids),
                observed_at=utc_from_epoch_s(float(ev.emitted_at_s[i])),
                time_precision="second",
                lon=float(ev.lon[i]),
                lat=float(ev.lat[i]),
                uncertainty_m=round(float(unc[i]), 3),
                kind=_KIND_OF_SIGNAL[int(ev.signal[i])],
                origin_lon=float(ev.lon[o]) if has_o else None,
                origin_lat=float(ev.lat[o]) if has_o else None,
                origin_uncertainty_m=round(float(o_sig[i]), 3) if has_o else None,
                source_type="acoustic",
                reliability=reliability,
                credibility=credibility,
                narrative=text[:4000],
            )
        )
        rows.append(int(det_line[ev.detections[i][0]]) if len(ev.detections[i]) else i + 1)
    return out, rows


def _version_index(agreement: Agreement, events: LocatedEvents) -> NDArray[np.intp]:
    """Index of the agreement version in force on each event's day."""
    if len(events) == 0:
        return np.zeros(0, np.intp)
    days = (events.emitted_at_s * 1e6).astype("datetime64[us]").astype("datetime64[D]")
    return agreement.version_index_at(days)


def _paired_origins(
    agreement: Agreement, ev: LocatedEvents, attr: Attribution, sp: SideProbability, pairs: Pairs
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Origin event and equivalent circular sigma for each paired impact (-1 / NaN otherwise).

    The origin is the most likely paired blast on the side the attribution favours; its sigma is
    the one with which the rule engine recovers the attribution probability at that origin.
    """
    from truceline.core.attribution import equivalent_sigma_m

    n = len(ev)
    origin = np.full(n, -1, np.intp)
    o_sig = np.full(n, np.nan)
    paired = attr.method == "paired_impact"
    if not paired.any() or len(pairs.blast) == 0:
        return origin, o_sig
    # candidates on the side the attribution favours, best weight first
    want_left = attr.p_left[pairs.impact] >= 0.5
    on_side = np.where(want_left, sp.signed_distance_m[pairs.blast] > 0,
                       sp.signed_distance_m[pairs.blast] < 0)  # fmt: skip
    k = np.flatnonzero(on_side)
    if len(k) == 0:
        return origin, o_sig
    order = k[np.lexsort((-pairs.weight[k], pairs.impact[k]))]
    first = order[np.r_[True, pairs.impact[order][1:] != pairs.impact[order][:-1]]]
    imp, bl = pairs.impact[first], pairs.blast[first]
    origin[imp] = bl
    by_version = _version_index(agreement, ev)[imp]
    for v in np.unique(by_version):  # agreement versions (a handful)
        m = by_version == v
        o_sig[imp[m]] = equivalent_sigma_m(
            agreement.compiled(int(v)), ev.lon[bl[m]], ev.lat[bl[m]], attr.p_left[imp[m]]
        )
    return origin, o_sig


def _incident_rejects(run: AcousticRun) -> list[IncidentReject]:
    """Input rejects and unassigned detections, in the store's reject format."""
    from truceline.io.incidents_io import Reject as IncidentReject

    out = [IncidentReject(r.line, r.record, r.field, f"{r.file}: {r.reason}") for r in run.rejects]
    un = run.result.unassigned
    det_id = run.detections.detection_id
    line = run.detections.line
    out += [
        IncidentReject(int(line[d]), str(det_id[d]), "detection", f"{code}: {msg}")
        for d, code, msg in zip(un.detection.tolist(), un.reason.tolist(), un.message, strict=True)
    ]
    return out


@dataclass(frozen=True)
class AcousticIngest:
    """Counts of one acoustic ingest."""

    batch_id: int
    events: int
    accepted: int
    duplicates: int
    rejected: int
    unassigned: int
    findings: int


def ingest_acoustic(
    session: Session,
    agreement: Agreement,
    sensors: Path,
    detections: Path,
    weather: Path | None = None,
    *,
    now_s: float | None = None,
    reliability: str = "B",
    credibility: int = 2,
    max_range_km: float | None = None,
) -> AcousticIngest:
    """Locate and attribute acoustic detections, and ingest the events as incidents.

    Goes through :func:`truceline.services.ingest.ingest_incidents`: the same idempotency (an event's
    id comes from its detection ids), the same rule engine. Input rejects and detections that fit no
    event are stored as rejects of the batch, each with its reason. The agreement is registered
    already (:func:`truceline.services.agreement_store.register_agreement`); the caller owns the
    transaction.
    """
    from truceline.services.ingest import ingest_incidents

    run = run_acoustic(
        sensors, detections, weather, agreement=agreement, now_s=now_s, max_range_km=max_range_km
    )
    incidents, rows = acoustic_incidents(
        agreement, run, reliability=reliability, credibility=credibility
    )
    res = ingest_incidents(
        session, agreement, incidents, rows, source=f"acoustic:{detections}",
        earlier_rejects=_incident_rejects(run),
    )  # fmt: skip
    return AcousticIngest(
        batch_id=res.batch_id,
        events=len(run.events),
        accepted=len(res.accepted),
        duplicates=len(res.duplicates),
        rejected=len(res.rejects) - len(run.result.unassigned.detection),
        unassigned=len(run.result.unassigned.detection),
        findings=res.findings,
    )


# --------------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------------


def simulate_acoustic(
    agreement: Agreement,
    folder: Path,
    *,
    seed: int = 0,
    start: dt.date | None = None,
    n_shots: int = 200,
    duration_s: float = 3600.0,
    sector_km: tuple[float, float] | None = None,
    spacing_km: float = 5.0,
    depths_km: tuple[float, ...] = (2.0, 8.0),
    timing_sigma_ms: float = 5.0,
    told_temperature_c: float = 15.0,
    true_temperature_c: float = 5.0,
    true_wind_mps: float = 5.0,
    true_wind_from_deg: float = 70.0,
    p_miss: float = 0.10,
    p_false: float = 0.05,
    p_echo: float = 0.02,
) -> dict[str, int]:
    """Simulate an acoustic network along the agreement's line and its detections, with truth.

    Writes ``sensors.csv``, ``detections.csv``, ``weather.csv`` (what the solver is told: no wind,
    ``told_temperature_c``), ``acoustic_truth.csv`` (every muzzle blast and impact, with the party
    that fired), ``acoustic_reports.csv`` (duplicate reports of the same events by patrols, cameras
    and the parties, as incidents) and ``acoustic_reports_truth.csv`` (the true event of each report).
    """
    from truceline.core.incidents import Incident
    from truceline.core.simulate import acoustic as sim
    from truceline.core.times import utc_from_epoch_s
    from truceline.io.incidents_io import write_incidents_csv

    cv = agreement.compiled(0)
    line_lon, line_lat = cv.line.lon, cv.line.lat
    total_km = cv.line.length_m / 1e3
    sector = sector_km or (max(0.0, total_km / 2 - 40.0), min(total_km, total_km / 2 + 40.0))
    day = start or agreement.effective_from
    t0 = dt.datetime.combine(day, dt.time(6, 0), tzinfo=dt.UTC).timestamp()
    net = sim.line_network(
        line_lon, line_lat, spacing_km=spacing_km, depths_left_km=depths_km,
        depths_right_km=depths_km, chainage_km=sector, timing_sigma_ms=timing_sigma_ms,
    )  # fmt: skip
    inner = (sector[0] + 0.15 * (sector[1] - sector[0]), sector[1] - 0.15 * (sector[1] - sector[0]))
    shots = sim.simulate_fire(
        line_lon, line_lat, n_shots=n_shots, duration_s=duration_s, seed=seed,
        chainage_km=inner, start_s=t0,
    )  # fmt: skip
    det = sim.simulate_detections(
        net, shots, seed=seed + 1, temperature_c=true_temperature_c, wind_speed_mps=true_wind_mps,
        wind_from_deg=true_wind_from_deg, p_miss=p_miss, p_false=p_false, p_echo=p_echo,
    )  # fmt: skip
    reports = sim.simulate_reports(shots, seed=seed + 2)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "sensors.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(io.SENSOR_COLUMNS)
        for i in range(len(net.lon)):  # writing files
            w.writerow([net.sensor_id[i], f"{net.lon[i]:.7f}", f"{net.lat[i]:.7f}",
                        f"{net.elevation_m[i]:.1f}", f"{net.timing_sigma_ms[i]:g}"])  # fmt: skip
    with (folder / "detections.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*io.DETECTION_COLUMNS, "amplitude_db", "signal"])
        for i in range(len(det)):  # writing files
            w.writerow([det.detection_id[i], net.sensor_id[det.sensor[i]],
                        io.format_time(float(det.arrival_s[i])), f"{det.amplitude_db[i]:.1f}",
                        SIGNALS[int(det.signal[i])]])  # fmt: skip
    with (folder / "weather.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "temperature_c", "wind_speed_mps", "wind_from_deg"])
        w.writerow([io.format_time(t0), f"{told_temperature_c:g}", "0", "0"])
    party = {1: agreement.left, -1: agreement.right}
    with (folder / "acoustic_truth.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["event", "emitted_at", "lon", "lat", "signal", "fired_by", "shot",
                    "firing_depth_km", "range_km", "true_temperature_c", "true_wind_mps",
                    "true_wind_from_deg"])  # fmt: skip
        for i in range(len(shots)):  # writing files
            w.writerow([i, io.format_time(float(shots.emitted_at_s[i])), f"{shots.lon[i]:.7f}",
                        f"{shots.lat[i]:.7f}", SIGNALS[int(shots.signal[i])],
                        party[int(shots.side[i])], int(shots.shot[i]),
                        f"{shots.depth_km[i]:.3f}", f"{shots.range_km[i]:.3f}",
                        true_temperature_c, true_wind_mps, true_wind_from_deg])  # fmt: skip
    rep = reports.reports
    incs = [
        Incident(
            id=f"acr-{seed}-{rep.report_id[i]}",
            observed_at=utc_from_epoch_s(float(rep.time_s[i])),
            time_precision="second",
            lon=float(rep.lon[i]),
            lat=float(rep.lat[i]),
            uncertainty_m=round(float(np.sqrt(rep.cov_m2[i, 0, 0])), 1),
            kind=str(rep.kind[i]),
            source_type=str(rep.source_type[i]),
            reliability=str(rep.reliability[i]),
            credibility=int(rep.credibility[i]),
            narrative=f"reported by {rep.source_id[i]}",
        )
        for i in range(len(rep))  # building records for a file
    ]
    write_incidents_csv(folder / "acoustic_reports.csv", incs)
    with (folder / "acoustic_reports_truth.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "source_id", "event"])
        for i in range(len(rep)):  # writing files
            w.writerow([incs[i].id, rep.source_id[i], int(reports.event[i])])
    return {
        "sensors": len(net.lon),
        "events": len(shots),
        "detections": len(det),
        "reports": len(rep),
    }
