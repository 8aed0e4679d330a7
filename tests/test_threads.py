"""Thread safety of the shared model: many threads predicting at once get exactly what one thread gets."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import encode, make_photo

THREADS = 16


@pytest.fixture(scope="module")
def photos(detectable_faces, validation):
    """Photos with 0 to 4 faces, of different sizes and formats, plus a bad file."""
    photos = [
        ("four.jpg", encode(make_photo(detectable_faces, size=(1100, 600), face_side=180)[0], "JPEG")),
        ("three.png", encode(make_photo(detectable_faces[:3])[0], "PNG")),
        ("one.webp", encode(make_photo(detectable_faces[3:], size=(300, 300), face_side=150)[0], "WEBP")),
        ("none.jpg", encode(make_photo([], size=(500, 400))[0], "JPEG")),
        ("bad.jpg", b"not a photo"),
    ]
    return photos


def summary(result):
    return (
        result.file,
        result.error,
        tuple(result.notes),
        tuple(tuple(face.box.as_list()) for face in result.faces),
        np.stack([face.probs for face in result.faces]) if result.faces else None,
        np.stack([face.face for face in result.faces]) if result.faces else None,
    )


def assert_same(a, b):
    assert a[:4] == b[:4]
    for x, y in zip(a[4:], b[4:], strict=True):
        assert (x is None and y is None) or np.array_equal(x, y)


def test_predictor_shared_by_16_threads_matches_one_thread(predictor, photos):
    expected = {name: summary(predictor.predict(data, name=name)) for name, data in photos}
    # Every thread predicts every photo, each thread starting at a different one.
    jobs = [photos[i % len(photos) :] + photos[: i % len(photos)] for i in range(THREADS)]

    def work(job):
        return [summary(predictor.predict(data, name=name)) for name, data in job]

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(work, jobs))

    assert sum(len(outcome) for outcome in outcomes) == THREADS * len(photos)
    for outcome in outcomes:
        for result in outcome:
            assert_same(result, expected[result[0]])
    assert expected["four.jpg"][3] and expected["bad.jpg"][1]  # the comparison covered faces and errors


def test_classifier_shared_by_16_threads_matches_one_thread(classifier, validation):
    batches = [validation.images[i * 37 : i * 37 + 1 + i] for i in range(THREADS)]  # sizes 1 to 16
    expected = [classifier.predict_proba(batch) for batch in batches]

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(classifier.predict_proba, batches * 2))

    for i, probs in enumerate(outcomes):
        assert np.array_equal(probs, expected[i % THREADS])


@pytest.mark.slow
def test_grad_cam_and_prediction_in_16_threads_match_one_thread(classifier, validation):
    explain = pytest.importorskip("fer.explain")
    explainer = explain.Explainer.for_classifier(classifier)
    batches = [validation.images[i * 11 : i * 11 + 1 + i % 3] for i in range(THREADS)]
    expected_cams = [explainer.cams(batch, "Grad-CAM") for batch in batches]
    expected_probs = [classifier.predict_proba(batch) for batch in batches]

    def work(i):
        # Half the threads explain while the other half predict with the same network weights:
        # Grad-CAM's hooks and gradients must not leak into predictions, nor predictions into maps.
        if i % 2:
            return i, explainer.cams(batches[i % THREADS], "Grad-CAM")
        return i, classifier.predict_proba(batches[i % THREADS])

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(work, range(THREADS)))

    for i, value in outcomes:
        expected = expected_cams if i % 2 else expected_probs
        assert np.array_equal(value, expected[i % THREADS])
    assert all(cams.shape[1:] == (48, 48) and cams.max() > 0 for cams in expected_cams)
