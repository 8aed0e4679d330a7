"""What the Dataset page shows of a split: its truths, metrics and flags, the images the filters select, the
browse table, and the page's callbacks. The page only lays these out; the splits, their predictions and
the class balance come from app.state's caches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app import session, state
from app.session import Key
from fer import browse
from fer.config import CLASSES
from fer.data import FaceSet, vote_summary
from fer.metrics import compute_metrics

ANY = "any"  # the filters' "no filter" option
NO_CROWD_LABEL = "no crowd label"


@dataclass
class Split:
    """One split as the page shows it: its faces, the model's probabilities, the duplicate flags and the
    crowd's votes."""

    faces: FaceSet
    probs: np.ndarray  # (N, 4)
    flags: list[str]  # "" where the image is not flagged
    votes: np.ndarray | None  # (N, 10) FERPlus vote counts; None where there is no votes file
    crowd: np.ndarray | None  # (N,) the crowd's labels, below 0 where it gave none; None without votes

    @property
    def truths(self) -> tuple[str, ...]:
        return ("crowd", "folder") if self.crowd is not None else ("folder",)

    def labels(self, truth: str) -> np.ndarray:
        """The chosen truth's labels (below 0 where the crowd gave none)."""
        return self.crowd if truth == "crowd" and self.crowd is not None else self.faces.labels

    @property
    def flagged(self) -> int:
        return sum(1 for flag in self.flags if flag)

    @property
    def conflicting(self) -> int:
        return sum(1 for flag in self.flags if flag.startswith("conflicting"))


def scored(root: Path, split: str, tta: bool) -> Split:
    """The split's faces (cached), their probabilities (a progress bar the first time), flags and votes."""
    faces = state.load_split(str(root), split)
    probs = state.split_predictions(str(root), split, tta)
    crowd = state.split_votes(str(root), split)
    return Split(
        faces=faces,
        probs=probs,
        flags=state.split_flags(str(root), split),
        votes=crowd[0] if crowd is not None else None,
        crowd=crowd[1] if crowd is not None else None,
    )


def metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """fer.metrics on the labelled images (the crowd leaves some without a label)."""
    labelled = labels >= 0
    return compute_metrics(labels[labelled], probs[labelled])


def true_name(label: int) -> str:
    return CLASSES[label] if label >= 0 else NO_CROWD_LABEL


def vote_text(votes: np.ndarray) -> str:
    """One face's ten FERPlus votes in words ("7 happy, 3 neutral"), or "no votes"."""
    return vote_summary(votes) or "no votes"


def select(split: Split, labels: np.ndarray, chosen: dict) -> np.ndarray:
    """Indices of the images the filters choose, in the verdict's order (fer.browse.select)."""
    flagged = np.array([bool(f) for f in split.flags])
    return browse.select(
        labels,
        split.probs,
        true=chosen["true"],
        predicted=chosen["predicted"],
        verdict=chosen["verdict"],
        only=flagged if chosen["flagged"] else None,
    )


def describe(chosen: dict) -> str:
    """The filters in words: "true sad · predicted neutral · flagged only", or "all images"."""
    parts = (
        f"true {chosen['true']}" if chosen["true"] else "",
        f"predicted {chosen['predicted']}" if chosen["predicted"] else "",
        chosen["verdict"] if chosen["verdict"] != "all" else "",
        "flagged only" if chosen["flagged"] else "",
    )
    return " · ".join(part for part in parts if part) or "all images"


def table(split: Split, labels: np.ndarray, index: np.ndarray) -> dict:
    """One row per selected image: its truths, the prediction and every probability in percent (85.2 for
    85.2%), the crowd's votes where there are any, and its flag."""
    probs, faces, votes = split.probs, split.faces, split.votes
    preds = probs.argmax(axis=1)
    return {
        "image": [faces.keys[i] for i in index],
        "true": [true_name(labels[i]) for i in index],
        "folder label": [CLASSES[faces.labels[i]] for i in index],
        "predicted": [CLASSES[preds[i]] for i in index],
        "confidence": [float(probs[i].max()) * 100 for i in index],
        **{name: [float(probs[i, k]) * 100 for i in index] for k, name in enumerate(CLASSES)},
        **({"crowd votes": [vote_summary(votes[i]) for i in index]} if votes is not None else {}),
        "flag": [split.flags[i] for i in index],
    }


def first_page() -> None:
    """A filter changed: back to the first page of images."""
    session.set_widget(Key.DS_PAGE, 1)


def select_cell() -> None:
    """A click on a confusion-matrix cell selects that true/predicted pair in the filters."""
    from app.plots import CONFUSION_SELECTION

    event = session.widget_value(Key.DS_CONFUSION) or {}
    selection = (event.get("selection") or {}).get(CONFUSION_SELECTION) or []
    if selection:
        session.set_widget(Key.DS_TRUE, selection[0].get("true", ANY))
        session.set_widget(Key.DS_PRED, selection[0].get("predicted", ANY))
        session.set_widget(Key.DS_VERDICT, "all")
        session.set_widget(Key.DS_PAGE, 1)
