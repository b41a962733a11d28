"""The acoustic simulator's scoring of an association."""

from __future__ import annotations

import numpy as np

from truceline.core.simulate import acoustic as S  # noqa: N812 - short module aliases read like the maths


def test_score_forgives_only_what_time_cannot_tell() -> None:
    """A detection of event 1 given to event 0 counts as right only when it lies within 21 ms of
    where event 0's own (missed) arrival was expected at that sensor."""
    sensor = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5])
    t = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5])
    event = np.repeat([0, 1], 6)
    # event 0's arrival at sensor 5 was missed; it was expected at 0.5 s (detection 5 is event 1's)
    event[5] = 1
    exp_s = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5])
    exp_e = np.repeat([0, 1], 6)
    n = len(t)
    det = S.SimDetections(
        np.array([f"D{i}" for i in range(n)]), sensor, t, np.ones(n, np.intp), np.zeros(n), event,
        np.zeros(n, bool), sensor, exp_e, exp_s,
    )  # fmt: skip
    located = [np.arange(6), np.arange(6, 12)]
    exact, right, n_ev = S.score_association(located, det)
    assert (exact, right, n_ev) == (0, 2, 2)
    # the same swap 100 ms away from any expected arrival is a wrong association (both events)
    det2 = S.SimDetections(
        det.detection_id, sensor, np.where(np.arange(n) == 5, 0.45, t), det.signal,
        det.amplitude_db, event, det.echo, sensor, exp_e, np.where(np.arange(n) == 5, 0.55, exp_s),
    )  # fmt: skip
    assert S.score_association(located, det2)[1] == 0
