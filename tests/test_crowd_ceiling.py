"""scripts/crowd_ceiling.py: a second crowd drawn from the votes, and the shares read as probabilities."""

import numpy as np
import pytest

from fer import data
from scripts import crowd_ceiling


def votes(**columns) -> np.ndarray:
    row = np.zeros(len(data.ALL_VOTE_COLUMNS))
    for name, count in columns.items():
        row[data.ALL_VOTE_COLUMNS.index(name)] = count
    return row


def test_a_second_crowd_follows_the_votes():
    counts = np.stack([votes(happiness=10), votes(NF=10), votes(sadness=5, neutral=5), votes(anger=9, neutral=1)])
    rng = np.random.default_rng(0)
    drawn = np.stack([crowd_ceiling.second_crowd_labels(counts, rng) for _ in range(400)])
    assert (drawn[:, 0] == data.CLASSES.index("happy")).all()  # unanimous: always the same label
    assert (drawn[:, 1] == data.NO_CROWD_LABEL).all()  # "not a face" is never one of the four
    split = drawn[:, 2]
    assert 0.15 < (split == data.NO_CROWD_LABEL).mean() < 0.4  # a 5/5 face often ties again
    assert {data.CLASSES.index("sad"), data.CLASSES.index("neutral")} <= set(split.tolist())
    assert (drawn[:, 3] != data.CLASSES.index("neutral")).mean() > 0.99


def test_the_ceiling_on_validation(data_root, capsys):
    crowd_ceiling.main(["--data", str(data_root), "--repeats", "3"])
    out = capsys.readouterr().out
    assert "4688 faces with a crowd label" in out
    overall = float(out.split("agrees with the first on ")[1].split()[0])
    assert 0.85 < overall < 0.97  # ten people per face disagree with ten others on some faces, not most
    assert "T 1.0: total variation 0.000" in out


@pytest.mark.slow
def test_each_served_temperature_is_the_best_of_those_printed_for_what_it_says(data_root, capsys):
    """Sharper temperatures lower the ECE against the majority label and raise the share error: the
    probabilities' T (fitted to the crowd's label) is near the lowest ECE of those printed, the people's T
    (fitted to the shares) has the lowest share error, and neither does the other's job."""
    crowd_ceiling.main(["--data", str(data_root), "--repeats", "1", "--model"])
    rows = [line for line in capsys.readouterr().out.splitlines() if "against the share of people" in line]
    share_errors = [float(line.rsplit(" ", 1)[1]) for line in rows]
    label_eces = [float(line.split("crowd label ")[1].split()[0]) for line in rows]
    assert len(rows) == 8 and "(the probabilities')" in rows[0] and "(the people's)" in rows[1]
    assert label_eces[0] < 0.03 and label_eces[0] <= min(label_eces) + 0.01
    assert share_errors[1] == min(share_errors) < 0.03
    assert label_eces[1] > 2 * label_eces[0] and share_errors[0] > 2 * share_errors[1]
