"""fer.explain on real validation faces through the shipped model."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fer.config import CLASSES
from fer.errors import ImageError
from fer.explain import (
    METHODS,
    PER_CLASS_METHODS,
    RANDOM_MAPS,
    Explainer,
    layer_names,
    most_faithful,
    overlay,
    random_bar,
    random_map,
    random_maps,
)
from fer.model import ModelConfig


@pytest.fixture(scope="module")
def explainer(classifier):
    return Explainer.for_classifier(classifier)


@pytest.fixture(scope="module")
def faces(val_subset):
    """Two faces of each class."""
    index = np.concatenate([np.flatnonzero(val_subset.labels == k)[:2] for k in range(len(CLASSES))])
    return val_subset.images[index]


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_one_48x48_map_in_0_1_per_face(explainer, faces, method):
    maps = explainer.cams(faces[:3], method, targets=[0, 1, 2])
    assert maps.shape == (3, 48, 48)
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert maps.reshape(3, -1).std(axis=1).min() > 0  # a map that highlights something, not a flat field


def test_every_layer_gives_a_48x48_map(explainer, faces):
    assert explainer.layers == layer_names(explainer.model.config)
    assert explainer.layers[0].startswith("stage 4")  # the last stage is the default
    for layer in explainer.layers:
        maps = explainer.cams(faces[:2], "Grad-CAM", targets=[0, 0], layer=layer)
        assert maps.shape == (2, 48, 48)
        assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_a_network_without_full_resolution_blocks_offers_only_its_three_stages():
    config = ModelConfig(widths=(8, 16, 24, 32), depths=(0, 1, 1, 1))
    assert layer_names(config) == ["stage 4 (6x6)", "stage 3 (12x12)", "stage 2 (24x24)"]


def test_default_target_is_the_predicted_class(explainer, classifier, faces):
    predicted = classifier.predict_proba(faces).argmax(axis=1)
    np.testing.assert_allclose(
        explainer.cams(faces, "Grad-CAM"), explainer.cams(faces, "Grad-CAM", targets=predicted), atol=1e-6
    )


def test_the_map_depends_on_the_class_explained(explainer, faces):
    face = faces[:1]
    per_class = np.stack([explainer.cams(face, "Grad-CAM", targets=[k])[0] for k in range(len(CLASSES))])
    differences = [np.abs(per_class[a] - per_class[b]).mean() for a in range(4) for b in range(a + 1, 4)]
    assert max(differences) > 0.05


@pytest.mark.parametrize("method", ["Grad-CAM", "Layer-CAM"])
def test_class_maps_explain_each_class_in_order(explainer, faces, method):
    face = faces[2]  # a sad face
    maps = explainer.class_maps(face, method, layer="stage 3 (12x12)")
    assert maps.shape == (len(CLASSES), 48, 48)
    for k in range(len(CLASSES)):
        np.testing.assert_allclose(
            maps[k], explainer.cams(face[None], method, targets=[k], layer="stage 3 (12x12)")[0], atol=1e-6
        )
    differences = [np.abs(maps[a] - maps[b]).mean() for a in range(4) for b in range(a + 1, 4)]
    assert max(differences) > 0.05


def test_per_class_methods_leave_out_only_the_class_blind_one(explainer, faces):
    assert [m for m in METHODS if m not in PER_CLASS_METHODS] == ["Eigen-CAM"]
    eigen = explainer.class_maps(faces[0], "Eigen-CAM")
    assert all(np.array_equal(eigen[0], eigen[k]) for k in range(1, len(CLASSES)))  # why it is left out
    with pytest.raises(ValueError, match="one 48x48 face"):
        explainer.class_maps(faces[:2])


def test_explaining_leaves_the_classifier_model_untouched(classifier, explainer, faces):
    before = classifier.predict_proba(faces)
    explainer.cams(faces, "Grad-CAM++")
    assert explainer.model is not classifier.model
    assert not classifier.model._forward_hooks and all(not m._forward_hooks for m in classifier.model.modules())
    assert all(not m._forward_hooks for m in explainer.model.modules())  # pytorch-grad-cam's hooks are released
    np.testing.assert_array_equal(before, classifier.predict_proba(faces))


def test_concurrent_calls_give_the_same_maps_as_sequential_ones(explainer, faces):
    jobs = [(method, i) for method in ("Grad-CAM", "Layer-CAM", "Eigen-CAM", "Grad-CAM++") for i in range(len(faces))]
    sequential = [explainer.cams(faces[i : i + 1], method, targets=[i % 4])[0] for method, i in jobs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        concurrent = list(
            pool.map(lambda job: explainer.cams(faces[job[1] : job[1] + 1], job[0], targets=[job[1] % 4])[0], jobs)
        )
    for expected, got in zip(sequential, concurrent, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_faithfulness_scores_are_finite_and_reproducible(explainer, faces):
    maps = explainer.cams(faces[:2], "Grad-CAM", targets=[0, 1])
    scores = explainer.faithfulness(faces[:2], maps, targets=[0, 1])
    assert len(scores) == 2
    for score in scores:
        assert set(score) == {"road", "drop_most", "drop_least"}
        assert all(np.isfinite(v) and -1.0 <= v <= 1.0 for v in score.values())
        assert score["road"] == pytest.approx((score["drop_most"] - score["drop_least"]) / 2)
    assert explainer.faithfulness(faces[:2], maps, targets=[0, 1]) == scores
    # A face's score does not depend on the other faces in the call.
    assert explainer.faithfulness(faces[1:2], maps[1:2], targets=[1]) == scores[1:]


@pytest.mark.slow
def test_grad_cam_is_more_faithful_than_a_random_map(explainer, classifier, faces):
    predicted = classifier.predict_proba(faces).argmax(axis=1)
    maps = explainer.cams(faces, "Grad-CAM", targets=predicted)
    grad_cam = np.mean([s["road"] for s in explainer.faithfulness(faces, maps, predicted)])
    randoms = np.stack([random_map(seed=i) for i in range(len(faces))])
    baseline = np.mean([s["road"] for s in explainer.faithfulness(faces, randoms, predicted)])
    assert grad_cam > baseline


def test_overlay_is_an_rgb_picture_of_the_face_at_the_asked_size(faces):
    face = faces[0]
    plain = overlay(face, np.zeros((48, 48)), opacity=0.0, size=96)
    assert plain.shape == (96, 96, 3) and plain.dtype == np.uint8
    assert (plain[..., 0] == plain[..., 1]).all()  # opacity 0: just the gray face
    hot = overlay(face, np.ones((48, 48)), opacity=1.0, size=96)
    assert not (hot[..., 0] == hot[..., 2]).all()  # opacity 1: pure heat colour
    assert np.abs(overlay(face, random_map(), 0.5, 96).astype(int) - plain).mean() > 5


def test_bad_inputs_raise_clear_errors(explainer, faces):
    with pytest.raises(ValueError, match="Unknown CAM method"):
        explainer.cams(faces[:1], "Magic-CAM")
    with pytest.raises(ValueError, match="Unknown layer"):
        explainer.cams(faces[:1], "Grad-CAM", layer="stage 9")
    with pytest.raises(ImageError):
        explainer.cams(np.zeros((1, 32, 32), dtype=np.uint8), "Grad-CAM")
    assert explainer.cams(np.zeros((0, 48, 48), dtype=np.uint8), "Grad-CAM").shape == (0, 48, 48)


def test_score_cam_prints_no_progress_bar(explainer, faces, capfd):
    # pytorch-grad-cam's Score-CAM wraps its batches in tqdm: each face drew a bar in the server's log.
    capfd.readouterr()
    maps = explainer.cams(faces[:2], "Score-CAM", targets=[0, 1])
    assert maps.shape == (2, 48, 48)
    out, err = capfd.readouterr()
    assert "it/s" not in err + out and "100%" not in err + out, err


def test_most_faithful_only_above_the_random_bar():
    scores = {"Grad-CAM": 0.07, "Score-CAM": 0.071, "Eigen-CAM": 0.02}
    # The face: a random map at +0.20, the best method at +0.07: no badge for anyone.
    assert most_faithful(scores, bar=0.20) == []
    assert most_faithful(scores, bar=0.05) == ["Grad-CAM", "Score-CAM"]  # both show +0.07
    assert most_faithful(scores, bar=0.068) == []  # +0.07 does not beat a bar shown as +0.07
    assert most_faithful(scores) == ["Grad-CAM", "Score-CAM"]
    assert most_faithful({}, bar=0.0) == []


def test_random_bar_is_the_mean_plus_a_margin_of_spreads():
    assert random_bar([0.1, 0.1, 0.1]) == pytest.approx(0.1)
    wide, narrow = random_bar([-0.2, 0.0, 0.2]), random_bar([-0.02, 0.0, 0.02])
    assert wide > narrow > 0.0


@pytest.mark.slow
def test_on_real_faces_grad_cam_beats_the_random_maps_on_some_and_not_on_others(explainer, classifier, validation):
    # The Explain page's verdict, with Grad-CAM alone, on validation faces until both verdicts were seen.
    verdicts = {}
    for i in range(0, 32 * 150, 150):
        face = validation.images[i : i + 1]
        target = int(classifier.predict_proba(face).argmax())
        score = explainer.faithfulness(face, explainer.cams(face, "Grad-CAM", targets=[target]), [target])[0]["road"]
        randoms = explainer.faithfulness(np.repeat(face, RANDOM_MAPS, axis=0), random_maps(), [target] * RANDOM_MAPS)
        bar = random_bar([s["road"] for s in randoms])
        verdict = most_faithful({"Grad-CAM": score}, bar)
        assert verdict == (["Grad-CAM"] if round(score, 2) > round(bar, 2) else [])
        verdicts.setdefault(bool(verdict), (i, round(score, 3), round(bar, 3)))
        if len(verdicts) == 2:
            break
    assert set(verdicts) == {True, False}, verdicts  # a map that clearly beats chance on one face, not on another
