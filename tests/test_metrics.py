"""fer/metrics.py: calibration against people, on the real validation faces and the served model."""

import numpy as np
import pytest

from fer import data
from fer.calibrate import people_shares, softmax
from fer.metrics import expected_calibration_error, share_calibration_error


@pytest.fixture(scope="module")
def crowd(validation, data_root):
    votes = data.load_votes(data.find_votes_file(data_root))
    labels, _ = data.crowd_labels(validation, votes)
    shares, has = data.crowd_distribution(validation, votes)
    return labels, shares, has


def test_the_crowds_own_shares_match_people_but_not_the_majority_label(crowd):
    labels, shares, _ = crowd
    labelled = labels != data.NO_CROWD_LABEL
    assert share_calibration_error(shares[labelled], shares[labelled]) == pytest.approx(0, abs=1e-6)
    # A face 6 of 10 people call neutral is neutral by majority every time: the shares look under-confident.
    assert expected_calibration_error(shares[labelled], labels[labelled]) > 0.1


def test_the_served_peoples_reading_matches_the_shares_and_the_probabilities_the_majority(
    validation_outputs, classifier, crowd
):
    labels, shares, has = crowd
    logits, _ = validation_outputs
    people = people_shares(
        softmax(logits[has], classifier.temperature), classifier.temperature, classifier.people_temperature
    )
    overconfident = softmax(logits[has], classifier.people_temperature / 3)
    assert share_calibration_error(people, shares[has]) < 0.04
    assert share_calibration_error(overconfident, shares[has]) > 2 * share_calibration_error(people, shares[has])
    labelled = labels != data.NO_CROWD_LABEL
    probs = softmax(logits[labelled], classifier.temperature)
    assert expected_calibration_error(probs, labels[labelled]) < 0.03


def test_share_calibration_error_by_hand():
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1]])
    assert share_calibration_error(probs, np.array([[0.7, 0.3, 0, 0], [0, 0.7, 0, 0.3]])) == pytest.approx(0)
    # Both in the 0.67-0.73 bin: mean share 0.4 against mean probability 0.7.
    assert share_calibration_error(probs, np.array([[0.5, 0.5, 0, 0], [0, 0.3, 0, 0.7]])) == pytest.approx(0.3)
