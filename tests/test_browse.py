"""fer.browse: split predictions (cached, and shipped for validation), verdict filters, confusion cells and
duplicate flags on real data."""

import shutil

import numpy as np
import pytest

from fer import browse, data
from fer.config import CLASSES
from fer.metrics import compute_metrics
from fer.predict import Classifier


@pytest.fixture()
def cache_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("FER_CACHE_DIR", str(folder))
    browse.clear_memory_cache()
    yield folder
    browse.clear_memory_cache()


@pytest.fixture(scope="module")
def subset_probs(classifier, val_subset):
    return classifier.predict_proba(val_subset.images)


@pytest.mark.slow
def test_split_predictions_match_the_classifier_and_report_progress(classifier, val_subset, cache_folder):
    calls = []
    probs = browse.split_predictions(classifier, val_subset, progress=lambda done, total: calls.append((done, total)))
    np.testing.assert_allclose(probs, classifier.predict_proba(val_subset.images), atol=1e-6)
    assert calls[-1] == (len(val_subset), len(val_subset))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) == -(-len(val_subset) // 256)


@pytest.mark.slow
def test_split_predictions_are_cached_in_memory_and_on_disk(classifier, val_subset, cache_folder):
    assert browse.cached_predictions(classifier, val_subset) is None
    first = browse.split_predictions(classifier, val_subset)
    assert len(list(cache_folder.glob("probs-*.npy"))) == 1
    calls = []
    assert browse.split_predictions(classifier, val_subset, progress=lambda *a: calls.append(a)) is first  # memory
    browse.clear_memory_cache()
    from_disk = browse.split_predictions(classifier, val_subset, progress=lambda *a: calls.append(a))
    assert calls == []  # nothing recomputed
    np.testing.assert_array_equal(from_disk, first)
    assert browse.cached_predictions(classifier, val_subset) is not None


@pytest.mark.slow
def test_the_cache_key_changes_with_the_weights_and_the_images(classifier, val_subset, cache_folder):
    recalibrated = Classifier(classifier.model, {"temperature": classifier.temperature * 2})
    assert browse.model_fingerprint(recalibrated) != browse.model_fingerprint(classifier)
    # The same float weights served without their int8 copy give other probabilities: another key.
    float_meta = {k: v for k, v in classifier.meta.items() if k != "int8_state_dict"}
    in_float = Classifier(classifier.model, float_meta, tta=classifier.tta)
    assert (in_float.precision, classifier.precision) == ("fp32", "int8")
    assert browse.model_fingerprint(in_float) != browse.model_fingerprint(classifier)
    browse.split_predictions(classifier, val_subset)
    assert browse.cached_predictions(recalibrated, val_subset) is None
    other = val_subset.subset(np.arange(10))
    assert browse.faces_fingerprint(other) != browse.faces_fingerprint(val_subset)
    assert browse.cached_predictions(classifier, other) is None


def test_an_unwritable_cache_folder_is_not_an_error(classifier, val_subset, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FER_CACHE_DIR", str(blocker / "cache"))
    browse.clear_memory_cache()
    probs = browse.split_predictions(classifier, val_subset.subset(np.arange(8)))
    assert probs.shape == (8, 4)
    browse.clear_memory_cache()


def test_verdicts_select_right_wrong_and_order_by_confidence(val_subset, subset_probs):
    labels, preds, confidence = val_subset.labels, subset_probs.argmax(1), subset_probs.max(1)
    everything = browse.select(labels, subset_probs)
    right = browse.select(labels, subset_probs, verdict="right")
    wrong = browse.select(labels, subset_probs, verdict="wrong")
    np.testing.assert_array_equal(everything, np.arange(len(labels)))
    assert (preds[right] == labels[right]).all() and (preds[wrong] != labels[wrong]).all()
    assert len(right) + len(wrong) == len(labels) and len(wrong) > 0
    mistakes = browse.select(labels, subset_probs, verdict="most confident mistakes")
    assert sorted(mistakes) == sorted(wrong)
    assert (np.diff(confidence[mistakes]) <= 0).all()
    unsure = browse.select(labels, subset_probs, verdict="least confident")
    assert sorted(unsure) == list(range(len(labels)))
    assert (np.diff(confidence[unsure]) >= 0).all()
    with pytest.raises(ValueError):
        browse.select(labels, subset_probs, verdict="interesting")


def test_a_confusion_cell_selects_exactly_its_images(val_subset, subset_probs):
    matrix = np.array(compute_metrics(val_subset.labels, subset_probs)["confusion_matrix"])
    preds = subset_probs.argmax(1)
    for t, true in enumerate(CLASSES):
        for p, predicted in enumerate(CLASSES):
            index = browse.select(val_subset.labels, subset_probs, true=true, predicted=predicted)
            assert len(index) == matrix[t, p]
            assert set(index) == set(np.flatnonzero((val_subset.labels == t) & (preds == p)))


def test_only_mask_and_class_filters_combine(val_subset, subset_probs):
    only = np.zeros(len(val_subset), dtype=bool)
    only[::7] = True
    index = browse.select(val_subset.labels, subset_probs, true="happy", verdict="wrong", only=only)
    assert all(only[i] and val_subset.labels[i] == 0 and subset_probs[i].argmax() != 0 for i in index)


def test_flags_from_the_dataset_csv(data_root, validation):
    csv_file = browse.find_duplicates_file(data_root)
    assert csv_file is not None
    groups = browse.read_duplicate_groups(csv_file)
    flags = browse.duplicate_flags(validation, groups)
    assert len(flags) == len(validation)
    flagged = [key for key, flag in zip(validation.keys, flags, strict=True) if flag]
    listed = {m for g in groups for m in g.members if m.startswith("validation/")}
    assert set(flagged) == listed  # every CSV member of this split, and nothing else
    in_train = [flag for flag in flags if "train" in flag]
    assert len(in_train) >= 300  # the data README: 306 validation images have a twin in train
    assert any(flag.startswith("conflicting labels") for flag in flags)


def test_a_csv_made_for_other_pixels_flags_nothing(val_subset):
    fake = [browse.DuplicateGroup("0" * 40, (val_subset.keys[0], "train/happy/x.jpg"))]
    assert browse.duplicate_flags(val_subset, fake)[0] == ""


def test_flags_computed_from_pixels_for_another_dataset(tiny_dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset, root)
    source = sorted((root / "train" / "happy").glob("*.jpg"))[0]
    shutil.copy(source, root / "validation" / "happy" / "twin.jpg")  # same label: a plain duplicate
    shutil.copy(source, root / "test" / "sad" / "conflict.jpg")  # another label: conflicting
    assert browse.find_duplicates_file(root) is None
    splits = data.load_splits(root)
    groups = browse.groups_from_pixels(splits)
    flags = dict(zip(splits["validation"].keys, browse.duplicate_flags(splits["validation"], groups), strict=True))
    twin = flags["validation/happy/twin.jpg"]
    assert twin.startswith("conflicting labels (happy / sad)") and "duplicate of 2 (test, train)" in twin
    test_flags = dict(zip(splits["test"].keys, browse.duplicate_flags(splits["test"], groups), strict=True))
    assert test_flags["test/sad/conflict.jpg"].startswith("conflicting labels")
    train_flags = browse.duplicate_flags(splits["train"], groups)
    assert sum(bool(f) for f in train_flags) >= 1


@pytest.mark.slow
def test_the_dataset_page_and_fer_evaluate_score_a_split_identically(classifier, val_subset, cache_folder):
    from fer.evaluate import evaluate_faces

    report, probs, _ = evaluate_faces(classifier, val_subset)
    shown = browse.split_predictions(classifier, val_subset)
    assert np.array_equal(shown, probs)
    assert compute_metrics(val_subset.labels, shown)["accuracy"] == report["folder"]["accuracy"]


def test_the_memory_cache_keeps_only_the_latest_splits(classifier, val_subset, cache_folder):
    splits = [val_subset.subset(np.arange(i, i + 8)) for i in range(browse.MEMORY_ENTRIES + 2)]
    for faces in splits:
        browse.split_predictions(classifier, faces)
    assert len(browse._memory) == browse.MEMORY_ENTRIES
    # The oldest is gone from memory but still on disk.
    assert browse.cached_predictions(classifier, splits[0]) is not None


@pytest.mark.slow
def test_shipped_predictions_are_found_after_the_cache_and_nothing_is_scored(
    classifier, val_subset, cache_folder, tmp_path, monkeypatch
):
    shipped = tmp_path / "shipped"
    file = browse.ship_predictions(classifier, val_subset, shipped)
    expected = np.load(file)
    browse.clear_memory_cache()
    monkeypatch.setattr(browse, "SHIPPED_DIR", shipped)
    with monkeypatch.context() as patch:
        patch.setattr(browse, "score_faces", lambda *a, **k: pytest.fail("scored although predictions were shipped"))
        np.testing.assert_array_equal(browse.split_predictions(classifier, val_subset), expected)
    assert not list(cache_folder.glob("*.npy"))  # read from where it ships; nothing written
    # Shipping again (new weights) replaces the old file rather than piling files up.
    browse.ship_predictions(classifier.with_tta(not classifier.tta), val_subset, shipped)
    assert len(list(shipped.glob("probs-*.npy"))) == 1


@pytest.mark.slow
def test_the_shipped_weights_ship_their_validation_predictions(classifier, validation, cache_folder, monkeypatch):
    # The Dataset page's first visit on validation computes nothing: `fer card` shipped these (weights/predictions/).
    monkeypatch.setattr(browse, "score_faces", lambda *a, **k: pytest.fail("the shipped predictions were not found"))
    probs = browse.split_predictions(classifier, validation)
    assert probs.shape == (len(validation), len(CLASSES))
    np.testing.assert_allclose(probs[:64], classifier.predict_proba(validation.images[:64]), atol=1e-5)
