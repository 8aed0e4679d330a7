import numpy as np
import pytest
import torch

from fer import data
from fer.calibrate import (
    OTHER_HEAD_L2_GRID,
    choose_other_expression_head,
    choose_threshold,
    cross_fitted_calibration,
    fit_temperature,
    people_shares,
    softmax,
    uncertainty_report,
)
from fer.metrics import auroc, expected_calibration_error
from fer.predict import other_expression_scores

pytestmark = pytest.mark.slow  # the real model and dataset end to end (AppTest, training, calibration)


@pytest.fixture(scope="module")
def votes(data_root):
    return data.load_votes(data.find_votes_file(data_root))


def test_temperature_undoes_a_known_overconfidence(validation_outputs, validation):
    logits, _ = validation_outputs
    # Logits made 3x sharper than the model's: the fitted temperature must grow by that same factor.
    t = fit_temperature(3 * logits, validation.labels)
    assert t / fit_temperature(logits, validation.labels) == pytest.approx(3, rel=0.02)
    before = expected_calibration_error(softmax(3 * logits), validation.labels)
    after = expected_calibration_error(softmax(3 * logits, t), validation.labels)
    assert after < before / 2


def test_cross_fitted_calibration_scores_each_half_with_the_other_halfs_temperature(
    validation_outputs, validation, card
):
    """The model card's calibration numbers, re-derived from the served model's validation logits: the
    probabilities' temperature fitted to the crowd's label, the people's to the crowd's vote shares."""
    logits, _ = validation_outputs
    votes = data.load_votes(data.find_votes_file(data.find_data_dir()))
    crowd, _ = data.crowd_labels(validation, votes)
    shares, _ = data.crowd_distribution(validation, votes)
    report = cross_fitted_calibration(logits, crowd, shares)
    stored = card["calibration"]
    assert stored["target"] == report["target"] == "crowd_label"
    assert stored["people"]["target"] == report["people"]["target"] == "crowd_vote_shares"
    assert [f["n_fit"] + f["n_scored"] for f in report["folds"]] == [len(validation)] * 2
    # int8 kernels differ a little between CPUs (AVX2, AVX-512 VNNI), which moves an ECE by about 0.001.
    for fold, stored_fold in zip(report["folds"], stored["folds"], strict=True):
        assert fold["temperature"] == pytest.approx(stored_fold["temperature"], rel=2e-3)
        assert fold["ece_after"] == pytest.approx(stored_fold["ece_after"], abs=0.0015)
        assert fold["tv_after"] == pytest.approx(stored_fold["tv_after"], abs=0.001)
    assert report["ece_after"] == pytest.approx(stored["ece_after"], abs=0.0015)
    assert report["tv_after"] == pytest.approx(stored["tv_after"], abs=0.001)
    assert report["temperature"] == pytest.approx(stored["temperature"], rel=2e-3)
    assert report["people"]["temperature"] == pytest.approx(stored["people"]["temperature"], rel=2e-3)
    assert report["people"]["share_ece_after"] == pytest.approx(stored["people"]["share_ece_after"], abs=0.0015)
    # Each T does its own job better than the other T does it, on faces it was not fitted to.
    assert report["ece_after"] < report["people"]["ece_after"]
    assert report["people"]["share_ece_after"] < report["share_ece_after"]


def test_people_shares_are_the_same_logits_at_the_peoples_temperature(validation_outputs):
    logits, _ = validation_outputs
    probs = softmax(logits, 0.5)
    people = people_shares(probs, 0.5, 0.8)
    np.testing.assert_allclose(people, softmax(logits, 0.8), atol=1e-9)
    assert (people.argmax(axis=1) == probs.argmax(axis=1)).all() and (people.max(axis=1) < probs.max(axis=1)).all()
    np.testing.assert_allclose(people_shares(probs[0], 0.5, 0.8), people[0], atol=1e-12)  # one face as well


def test_another_expression_head_finds_out_of_scope_faces_far_better_than_top_probability(
    classifier, data_root, validation, validation_outputs, votes
):
    """Fitted on train only, scored on validation faces the FERPlus crowd put outside the four classes.

    To keep the test short the head is fitted on the crowd's out-of-scope train faces and every 4th
    other train face, one view each (`fer card` uses all of train)."""
    train = data.load_folder(data_root, "train")
    train_out = data.crowd_out_of_scope(train, votes)
    chosen = np.flatnonzero(train_out | (np.arange(len(train)) % 4 == 0))
    train_embeddings = classifier.with_tta(False).outputs(train.images[chosen])[1].numpy()
    logits, embeddings = validation_outputs
    val_out = data.crowd_out_of_scope(validation, votes)
    head, penalty = choose_other_expression_head(train_embeddings, train_out[chosen], embeddings, val_out)
    scores = other_expression_scores(embeddings, head)
    # The penalty kept is the one whose head scores best on validation, and the head returned is its head.
    by_l2 = penalty["validation_auroc_by_l2"]
    assert list(by_l2) == [f"{l2:g}" for l2 in OTHER_HEAD_L2_GRID]
    assert by_l2[f"{penalty['l2']:g}"] == max(by_l2.values()) == pytest.approx(auroc(scores, val_out))
    assert min(by_l2.values()) < max(by_l2.values())  # the penalty matters, so choosing it does too
    probs = softmax(logits, classifier.temperature)
    assert val_out.sum() == 74 and train_out.sum() > 200
    assert auroc(scores, val_out) > 0.75
    assert auroc(scores, val_out) > auroc(1 - probs.max(1), val_out) + 0.1
    assert scores.min() >= 0 and scores.max() <= 1 and head["weight"].shape == (embeddings.shape[1],)
    threshold = choose_threshold(scores, val_out)
    report = uncertainty_report(scores, val_out, threshold, probs)
    assert 0.75 <= report["out_of_scope_flagged"] < 0.75 + 1 / 74  # the lowest threshold's worth above the bar
    assert report["in_scope_flagged"] < 0.3


def test_shipped_classifier_uses_the_head_and_threshold_from_its_model_card(
    classifier, validation_outputs, card, validation, votes
):
    assert classifier.other_expression_head is not None
    assert classifier.uncertainty_threshold == pytest.approx(card["uncertainty"]["threshold"])
    logits, embeddings = validation_outputs
    probs = torch.softmax(torch.from_numpy(logits) / classifier.temperature, 1).numpy()
    np.testing.assert_allclose(
        classifier.uncertainty(probs, embeddings), other_expression_scores(embeddings, classifier.other_expression_head)
    )
    stored = card["uncertainty"]
    assert stored["auroc_out_of_scope"] > stored["auroc_out_of_scope_max_probability"]
    # The shipped head is the card's choice of penalty: its validation AUROC is the best one the card tried.
    by_l2 = stored["head_validation_auroc_by_l2"]
    assert by_l2[f"{stored['head_l2']:g}"] == max(by_l2.values()) == stored["auroc_out_of_scope"]
    shipped_scores = other_expression_scores(embeddings, classifier.other_expression_head)
    val_out = data.crowd_out_of_scope(validation, votes)
    assert auroc(shipped_scores, val_out) == pytest.approx(stored["auroc_out_of_scope"], abs=2e-3)
