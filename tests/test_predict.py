import json

import numpy as np
import pytest
from conftest import encode, iou, make_photo
from PIL import Image

from fer import CLASSES, ImageError
from fer.calibrate import softmax
from fer.cli import main as cli


@pytest.mark.slow
def test_shipped_weights_score_their_model_cards_validation_accuracy(classifier, validation, validation_outputs, card):
    """The headline numbers re-derived: the served model (int8, as the weights ship) on all of validation,
    against the crowd's label (the headline) and FER2013's folder labels."""
    from fer import data

    stored = card["metrics"]["validation"]
    logits, _ = validation_outputs
    predicted = logits.argmax(1)
    votes = data.load_votes(data.find_votes_file(data.find_data_dir()))
    crowd, _ = data.crowd_labels(validation, votes)
    assert stored["headline"] == "crowd" and len(validation) == stored["n"] == stored["folder"]["n"]
    for truth, labels in (("crowd", crowd), ("folder", validation.labels)):
        block, labelled = stored[truth], labels >= 0
        assert labelled.sum() == block["n"]
        # int8 kernels differ a little between CPUs (AVX2, AVX-512 VNNI): a face or two may change class.
        right = predicted[labelled] == labels[labelled]
        assert right.mean() == pytest.approx(block["accuracy"], abs=0.002), truth
        for k, name in enumerate(CLASSES):  # every class as stored, not just the overall rate
            recall = (predicted[labels == k] == k).mean()
            assert recall == pytest.approx(block["per_class"][name]["recall"], abs=0.005), (truth, name)
    # The public API gives those faces' calibrated probabilities.
    probs = classifier.predict_proba(validation.images[:64])
    assert probs.shape == (64, 4)
    np.testing.assert_allclose(probs, softmax(logits[:64], classifier.temperature), atol=1e-5)


@pytest.mark.slow
def test_the_shipped_weights_load_as_int8_without_warnings_and_batching_changes_nothing(val_subset):
    import subprocess
    import sys

    from fer import load_classifier
    from fer.config import PROJECT_ROOT

    # In a fresh interpreter where any warning is an error, loading in a thread (as the app's warm-up
    # does) and classifying a face must succeed: the load path filters torch's notices at import, never
    # with warnings.catch_warnings (not thread-safe).
    code = (
        "import threading, numpy as np; from fer import load_classifier; out = []\n"
        "t = threading.Thread(target=lambda: out.append(load_classifier())); t.start(); t.join()\n"
        "print(out[0].precision, out[0].predict_proba(np.zeros((2, 48, 48), np.uint8)).shape)"
    )
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0 and run.stdout.split() == ["int8", "(2,", "4)"], run.stderr[-2000:]
    classifier = load_classifier()
    together = classifier.predict_proba(val_subset.images)
    for size in (1, 3):
        apart = np.concatenate([classifier.predict_proba(val_subset.images[i : i + size]) for i in range(0, 12, size)])
        np.testing.assert_allclose(apart, together[:12], atol=1e-5)


def test_predict_proba_checks_its_input(classifier):
    with pytest.raises(ImageError, match="48x48"):
        classifier.predict_proba(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ImageError, match="uint8"):
        classifier.predict_proba(np.zeros((2, 48, 48), np.float32))
    single = classifier.predict_proba(np.zeros((48, 48), np.uint8))
    assert single.shape == (1, 4)


def test_photo_pipeline_finds_pasted_faces_and_classifies_them_like_the_originals(predictor, detectable_faces):
    photo, boxes = make_photo(detectable_faces[:3])
    result = predictor.predict(encode(photo), name="group.jpg")
    assert result.error is None and len(result.faces) == 3
    found = sorted(result.faces, key=lambda f: f.box.x)
    direct = predictor.classifier.predict_proba(np.stack(detectable_faces[:3]))
    for face, box, probs in zip(found, boxes, direct):
        assert iou(face.box.as_list(), box) > 0.6
        assert face.face.shape == (48, 48)
        # The crop is the original face re-framed on its landmarks (the median framing of the training
        # faces, so not pixel for pixel the original): the model reads the same expression.
        assert face.label == CLASSES[int(probs.argmax())]


def test_enlarged_face_without_detection(predictor, detectable_faces):
    face = Image.fromarray(detectable_faces[0]).resize((300, 300), Image.Resampling.BICUBIC)
    result = predictor.predict(encode(face, "PNG"), name="face.png", detect=False)
    assert len(result.faces) == 1 and result.faces[0].box.as_list() == [0, 0, 300, 300]
    direct = predictor.classifier.predict_proba(detectable_faces[0])[0]
    assert np.abs(result.faces[0].probs - direct).max() < 0.1


@pytest.mark.slow
def test_cli_predict_json_reports_faces_and_bad_files(tmp_path, detectable_faces, capsys):
    photo, boxes = make_photo(detectable_faces[:2], size=(700, 500))
    good = tmp_path / "two.jpg"
    good.write_bytes(encode(photo))
    bad = tmp_path / "broken.jpg"
    bad.write_text("this is not a photo")
    code = cli(["predict", str(good), str(bad), "--json"])
    assert code != 0
    results = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in results] == ["two.jpg", "broken.jpg"]
    assert results[0]["error"] is None and len(results[0]["faces"]) == 2
    face = results[0]["faces"][0]
    assert set(face) >= {"box", "label", "probs"} and face["label"] in CLASSES
    assert set(face["probs"]) == set(CLASSES) and abs(sum(face["probs"].values()) - 1) < 1e-3
    assert results[1]["faces"] == [] and "not an image" in results[1]["error"]
