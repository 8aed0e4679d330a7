import shutil

import numpy as np
import pytest

from fer import data
from fer.config import CLASSES
from fer.errors import DataError


def test_split_layout_loads_every_split(tiny_dataset):
    splits = data.load_splits(tiny_dataset)
    assert set(splits) == {"train", "validation", "test"}
    train = splits["train"]
    assert train.images.shape == (320, 48, 48) and train.images.dtype == np.uint8
    assert train.class_counts == {name: 80 for name in CLASSES}
    assert train.paths[0].startswith("happy/") and train.keys[0].startswith("train/happy/")
    # Labels follow the class folders.
    for path, label in zip(train.paths, train.labels):
        assert path.split("/")[0] == CLASSES[label]


def test_plain_class_folder_layout(tiny_dataset):
    faces = data.load_folder(tiny_dataset / "validation")
    assert len(faces) == 100 and faces.split is None
    assert faces.keys[0] == faces.paths[0]


def test_missing_class_folders_are_fine(tiny_dataset, tmp_path):
    shutil.copytree(tiny_dataset / "test" / "sad", tmp_path / "sad")
    faces = data.load_folder(tmp_path)
    assert faces.class_counts == {"happy": 0, "sad": 10, "surprise": 0, "neutral": 0}


def test_missing_and_empty_folders_give_clear_errors(tmp_path, tiny_dataset):
    with pytest.raises(DataError, match="not found"):
        data.load_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match="No class folders"):
        data.load_folder(tmp_path)
    (tmp_path / "happy").mkdir()
    with pytest.raises(DataError, match="No images"):
        data.load_folder(tmp_path)
    with pytest.raises(DataError, match="use --split"):
        data.load_folder(tiny_dataset)
    with pytest.raises(DataError, match="No split folders"):
        data.load_splits(tmp_path)


def test_find_data_dir_precedence(tmp_path, monkeypatch, tiny_dataset):
    monkeypatch.setenv("FER_DATA_DIR", str(tiny_dataset))
    assert data.find_data_dir() == tiny_dataset
    assert data.find_data_dir(tmp_path) == tmp_path
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="FER_DATA_DIR"):
        data.find_data_dir()
    monkeypatch.delenv("FER_DATA_DIR")
    assert data.find_data_dir() == data.DEFAULT_DATA_DIR


@pytest.mark.slow
def test_twins_on_the_real_dataset(data_root):
    # The dataset notes: 306 validation images have a pixel-identical twin in train.
    train = data.load_folder(data_root, "train")
    validation = data.load_folder(data_root, "validation")
    assert int(data.twins_in(validation, train).sum()) == 306


def test_crowd_vote_shares_cover_all_ten_columns_of_the_votes_file(data_root, val_subset):
    votes = data.load_votes(data.find_votes_file(data_root))
    shares = data.crowd_vote_shares(val_subset, votes)
    assert shares.shape == (len(val_subset), len(data.ALL_VOTE_COLUMNS)) == (len(val_subset), 10)
    has_votes = shares.sum(1) > 0
    assert has_votes.all() and np.allclose(shares.sum(1), 1)
    # Two faces' votes, copied by hand from ferplus_votes.csv (whose columns run neutral, happiness, surprise,
    # sadness, ...), here in the order happy, sad, surprise, neutral, anger, disgust, fear, contempt, unknown, NF.
    known = {
        "validation/sad/11284.jpg": [1, 6, 0, 2, 0, 0, 1, 0, 0, 0],
        "validation/happy/10879.jpg": [2, 0, 4, 0, 0, 0, 3, 0, 1, 0],
    }
    for key, counts in known.items():
        np.testing.assert_allclose(shares[val_subset.keys.index(key)], np.array(counts) / 10, err_msg=key)
    # Our four classes come first, in CLASSES order: renormalised, they are the four-class distribution.
    dist, four_has_votes = data.crowd_distribution(val_subset, votes)
    four = shares[four_has_votes, : len(data.CLASSES)]
    assert np.allclose(four / four.sum(1, keepdims=True), dist[four_has_votes])
    # Some faces get votes outside our four (anger, fear, ...), which the four-class targets leave out.
    assert (shares[:, len(data.CLASSES) :].sum(1) > 0).any()
    assert not data.crowd_vote_shares(val_subset, None).any()


def test_unusable_folder_names_give_a_data_error():
    with pytest.raises(DataError, match="cannot be used"):
        data.find_data_dir("x" * 5000)


def vote_row(**counts) -> dict[str, str]:
    return {column: str(counts.get(column, 0)) for column in data.ALL_VOTE_COLUMNS}


def test_the_crowd_label_is_the_single_top_vote_when_it_is_one_of_the_four_classes(tmp_path):
    paths = ["sad/1.jpg", "sad/2.jpg", "sad/3.jpg", "happy/4.jpg", "neutral/5.jpg", "sad/6.jpg", "happy/7.jpg"]
    faces = data.FaceSet(
        tmp_path, np.zeros((len(paths), 48, 48), np.uint8), np.array([1, 1, 1, 0, 3, 1, 0]), paths, "validation"
    )
    votes = {
        "validation/sad/1.jpg": vote_row(neutral=6, sadness=3, anger=1),  # the crowd: neutral
        "validation/sad/2.jpg": vote_row(neutral=4, sadness=4, fear=2),  # a tie at the top
        "validation/sad/3.jpg": vote_row(sadness=3, anger=5, disgust=2),  # another expression on top
        "validation/happy/4.jpg": vote_row(happiness=2, NF=8),  # not a face
        "validation/neutral/5.jpg": vote_row(neutral=3, unknown=7),  # unknown
        # validation/sad/6.jpg has no row at all
        "validation/happy/7.jpg": vote_row(happiness=9, surprise=1),
    }
    labels, no_label = data.crowd_labels(faces, votes)
    assert labels.tolist() == [CLASSES.index("neutral"), -1, -1, -1, -1, -1, CLASSES.index("happy")]
    assert no_label == {"no_votes": 1, "tie": 1, "other_expression": 1, "unknown": 1, "not_a_face": 1}
    assert data.NO_CROWD_LABEL == -1
    # A tie below the top does not matter: only the top vote must be single.
    votes["validation/sad/2.jpg"] = vote_row(sadness=5, neutral=2, happiness=2, surprise=1)
    assert data.crowd_labels(faces, votes)[0][1] == CLASSES.index("sad")
    assert data.vote_summary(data.vote_counts(faces, votes)[0][0]) == "neutral 6 · sad 3 · anger 1"


def test_the_crowd_label_rule_reads_bare_vote_counts():
    """The rule without a dataset (scripts/crowd_ceiling.py applies it to drawn votes): each row's reason."""
    rows = [dict(neutral=6, sadness=4), dict(neutral=5, sadness=5), dict(anger=6, happiness=4), dict(unknown=9), {}]
    counts = np.stack([[float(row.get(column, 0)) for column in data.ALL_VOTE_COLUMNS] for row in rows])
    labels, reasons = data.crowd_labels_of_counts(counts)
    assert labels.tolist() == [CLASSES.index("neutral"), -1, -1, -1, -1]
    assert {reason: mask.nonzero()[0].tolist() for reason, mask in reasons.items()} == {
        "no_votes": [4],
        "tie": [1],
        "other_expression": [2],
        "unknown": [3],
        "not_a_face": [],
    }


@pytest.mark.slow
def test_the_crowd_labels_validation_as_the_votes_file_says(data_root, validation):
    votes = data.load_votes(data.find_votes_file(data_root))
    labels, no_label = data.crowd_labels(validation, votes)
    assert (labels >= 0).sum() == 4688 and sum(no_label.values()) == len(validation) - 4688
    assert no_label == {"no_votes": 0, "tie": 183, "other_expression": 71, "unknown": 14, "not_a_face": 21}
    # The serious faces: 559 folder-sad faces the crowd calls neutral.
    assert ((validation.labels == CLASSES.index("sad")) & (labels == CLASSES.index("neutral"))).sum() == 559
