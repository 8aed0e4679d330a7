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
