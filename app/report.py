"""The model report for stakeholders, from the model card: headline numbers, charts, and an HTML export.

    card = fer.checkpoint.read_card()
    headline(card)                       # the numbers to put first, each with its split and size
    report_html(card)                    # one self-contained HTML file (plotly embedded, opens offline)

Everything is read from the card, and every section is skipped when its keys are absent, so a card
from an older or newer training run still renders. No dataset image ever goes into the report.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date

from app import plots
from fer.config import CLASSES

PREFERRED_SPLITS = ("validation", "test")


@dataclass
class Headline:
    label: str
    value: str
    detail: str


TRUTH_NAMES = {"crowd": "the crowd's label (FERPlus, ten people per face)", "folder": "FER2013's original labels"}


def splits_with_metrics(card: dict) -> list[str]:
    """Splits the card has metrics for, validation first (the split to trust), then test, then others."""
    metrics = card.get("metrics") or {}
    ordered = [s for s in PREFERRED_SPLITS if s in metrics] + sorted(s for s in metrics if s not in PREFERRED_SPLITS)
    return [s for s in ordered if "confusion_matrix" in split_metrics(card, s)]


def split_report(card: dict, split: str) -> dict:
    """`fer evaluate`'s whole report for a split: its truths' blocks, the headline's name, tta, ..."""
    found = (card.get("metrics") or {}).get(split)
    return found if isinstance(found, dict) else {}


def truths(card: dict, split: str) -> list[str]:
    """The truths the split was scored against, the headline first ('crowd', then 'folder')."""
    report = split_report(card, split)
    names = [report.get("headline"), "crowd", "folder"]
    return [n for n in dict.fromkeys(names) if isinstance(report.get(n), dict)]


def split_metrics(card: dict, split: str, truth: str | None = None) -> dict:
    """One truth's metrics block for a split (default: the report's headline truth)."""
    report = split_report(card, split)
    found = report.get(truth or report.get("headline") or "folder")
    return found if isinstance(found, dict) else {}


def interval_text(block: dict) -> str:
    """The accuracy's 95% interval, in words ('' when the block has none)."""
    low, high = block.get("accuracy_interval") or (None, None)
    return "" if low is None else f"95% interval {low:.1%}–{high:.1%}"


def _pct(value) -> str:
    return f"{float(value):.1%}"


def _count(n) -> str:
    return f"{int(n):,}"


def fer2013_test_rows(card: dict, truth: str | None = None) -> dict | None:
    """Accuracy on the images that are FER2013's own test rows: {'split', 'n', 'accuracy', 'public', 'private',
    'interval'}, against `truth` (default: the headline truth).

    Public FER2013 models never trained on these rows; read from card['metrics'][split][truth]['subsets'].
    """
    for split in splits_with_metrics(card):
        subsets = split_metrics(card, split, truth).get("subsets") or {}
        rows = subsets.get("fer2013_test_rows") or {}
        if rows.get("n") and rows.get("accuracy") is not None:
            return {
                "split": split,
                "n": int(rows["n"]),
                "accuracy": float(rows["accuracy"]),
                "interval": interval_text(rows),
                "public": subsets.get("fer2013_public_test"),
                "private": subsets.get("fer2013_private_test"),
            }
    return None


# What public FER2013 models score on the same test rows against FER2013's labels (for context only).
PUBLISHED_FER2013_TEST_ROWS = "about 79-81%"


def fer2013_sentence(card: dict) -> str | None:
    """The comparison with public FER2013 models: on FER2013's labels, the only truth they were trained on."""
    rows = fer2013_test_rows(card, "folder")
    if rows is None:
        return None
    parts = [
        f"{_count(rows['n'])} of the {rows['split']} images are FER2013's own test rows: against FER2013's original "
        f"labels the model is {_pct(rows['accuracy'])} accurate on them ({rows['interval']})"
    ]
    detail = [
        f"{name} test {_pct(found['accuracy'])} of {_count(found['n'])}"
        for name, found in (("public", rows["public"]), ("private", rows["private"]))
        if isinstance(found, dict) and found.get("n") and found.get("accuracy") is not None
    ]
    if detail:
        parts.append(f"; {', '.join(detail)}")
    parts.append(
        f". This is the number to compare with public FER2013 models, which were trained on those labels and score "
        f"{PUBLISHED_FER2013_TEST_ROWS} on these images."
    )
    crowd = fer2013_test_rows(card, "crowd")
    if crowd is not None:
        parts.append(
            f" Against the crowd's label the model is {_pct(crowd['accuracy'])} accurate on the "
            f"{_count(crowd['n'])} of them the crowd labelled ({crowd['interval']})."
        )
    return "".join(parts)


def crowd_agreement_sentence(card: dict) -> str | None:
    """How the model does against the folder label where the FERPlus crowd agrees with it and where not."""
    for split in splits_with_metrics(card):
        subsets = split_metrics(card, split, "folder").get("subsets") or {}
        agrees, disagrees = subsets.get("crowd_agrees_with_label"), subsets.get("crowd_disagrees_with_label")
        if isinstance(agrees, dict) and isinstance(disagrees, dict) and agrees.get("n") and disagrees.get("n"):
            return (
                f"The FERPlus crowd (ten people per face) reads {_count(agrees['n'])} of the {split} faces as their "
                f"folder label: there the model agrees with that label on {_pct(agrees['accuracy'])}. On the "
                f"{_count(disagrees['n'])} faces it reads as another of the four classes, the model agrees with the "
                f"folder label on only {_pct(disagrees['accuracy'])}: it sides with the crowd, mostly on serious faces "
                "the folder calls sad and people call neutral."
            )
    return None


def crowd_sentence(card: dict) -> str | None:
    """What the headline truth is, how many faces lack a crowd label and why, and the probabilities vs people."""
    for split in splits_with_metrics(card):
        crowd = split_metrics(card, split, "crowd")
        if not crowd:
            continue
        missing = crowd.get("no_label") or {}
        why = ", ".join(f"{k.replace('_', ' ')} {_count(v)}" for k, v in missing.items() if v)
        text = (
            f"Accuracy is scored against {TRUTH_NAMES['crowd']}: on the {split} split the crowd labels "
            f"{_count(crowd['n'])} faces; {_count(sum(missing.values()))} have no crowd label ({why}) and are left out."
        )
        if crowd.get("vote_shares_tv") is not None:
            text += (
                f" On average the model's four probabilities are {crowd['vote_shares_tv']:.2f} (total-variation "
                "distance, 0 = the same) from the share of people who chose each class."
            )
        return text
    return None


def result_sentences(card: dict) -> list[str]:
    """The sentences under the headline numbers (page and HTML export): the truth, the comparison, label noise."""
    return [s for s in (crowd_sentence(card), fer2013_sentence(card), crowd_agreement_sentence(card)) if s]


def headline(card: dict, weights_bytes: int | None = None) -> list[Headline]:
    """The first numbers a reader needs, each saying which truth, which split and how many images."""
    items = []
    for split in splits_with_metrics(card):
        report = split_report(card, split)
        for truth in truths(card, split):
            m = split_metrics(card, split, truth)
            size = f"against {TRUTH_NAMES[truth]}; {split} split, {_count(m.get('n', 0))} images"
            size += f"; {interval_text(m)}" if interval_text(m) else ""
            if report.get("tta") and truth == truths(card, split)[0]:  # flip TTA: say so, and what one view scores
                one_view = ((card.get("metrics_one_view") or {}).get(split) or {}).get(truth, {}).get("accuracy")
                size += "; face and mirror averaged, as served" + (f" (one view {_pct(one_view)})" if one_view else "")
            label = f"{split.capitalize()} accuracy" + (" (crowd)" if truth == "crowd" else " (FER2013 labels)")
            items.append(Headline(label, _pct(m["accuracy"]), size))
            if split == PREFERRED_SPLITS[0] and truth == truths(card, split)[0] and "macro_recall" in m:
                recall = f"{split} split, mean of the 4 classes' recall against {TRUTH_NAMES[truth]}"
                items.append(Headline("Macro recall", _pct(m["macro_recall"]), recall))
    rows = fer2013_test_rows(card, "folder")
    if rows is not None:
        items.append(
            Headline(
                "FER2013 test rows",
                _pct(rows["accuracy"]),
                f"{_count(rows['n'])} {rows['split']} images, FER2013's labels ({rows['interval']}); comparable with "
                f"public FER2013 models ({PUBLISHED_FER2013_TEST_ROWS})",
            )
        )
    # The cross-fitted ECE where there is one: the shipped model's own ECE on validation is in-sample.
    calibration = card.get("calibration") if isinstance(card.get("calibration"), dict) else {}
    first = next(iter(splits_with_metrics(card)), None)
    if calibration.get("ece_after") is not None:
        ece, where = calibration["ece_after"], "cross-fitted on validation halves"
    elif first and split_metrics(card, first).get("ece") is not None:
        ece, where = split_metrics(card, first)["ece"], f"{first} split"
    else:
        ece = None
    if ece is not None:
        items.append(Headline("Calibration error", _pct(ece), f"ECE, {where} (lower is better)"))
    arch = card.get("architecture") or {}
    if "params" in arch:
        size = f"{arch['params'] / 1e6:.2f} M"
        detail = "parameters"
        if weights_bytes:
            detail += f", {weights_bytes / 2**20:.1f} MB file"
        if arch.get("macs_per_face"):
            detail += f", {arch['macs_per_face'] / 1e6:.0f} M multiply-adds per face"
        items.append(Headline("Model size", size, detail))
    return items


def stored_reliability(card: dict, split: str | None = None) -> dict | None:
    """Reliability bins stored in the card, if any: {'bins', 'bins_before', 'ece', 'split'}.

    Read from card['calibration'] (bins_after / bins / reliability, bins_before) or from
    card['metrics'][split]['reliability']; bins are fer.evaluate.reliability_bins rows.
    """
    found = card.get("calibration")
    if isinstance(found, dict):
        bins = found.get("bins_after") or found.get("bins") or found.get("reliability")
        if isinstance(bins, list) and bins:
            return {
                "bins": bins,
                "bins_before": found.get("bins_before"),
                "ece": found.get("ece_after", found.get("ece")),
                "split": found.get("split", "validation"),
            }
    for name in [split] if split else splits_with_metrics(card):
        bins = split_metrics(card, name).get("reliability")
        if isinstance(bins, list) and bins:
            return {"bins": bins, "bins_before": None, "ece": split_metrics(card, name).get("ece"), "split": name}
    return None


def _people(card: dict) -> dict:
    """The card's people's reading (fer.calibrate): its temperature, cross-fitted numbers and bins; {} if none."""
    calibration = card.get("calibration") if isinstance(card.get("calibration"), dict) else {}
    return calibration.get("people") if isinstance(calibration.get("people"), dict) else {}


def _people_bins(card: dict) -> list[dict]:
    return _people(card).get("share_reliability") or []


def calibration_summary(card: dict) -> str | None:
    """One sentence on how the probabilities are calibrated (the numbers are in `calibration_rows`)."""
    found = card.get("calibration") if isinstance(card.get("calibration"), dict) else {}
    temperature = found.get("temperature", card.get("temperature"))
    if not found and temperature is None:
        return None
    if temperature is None:
        return "The probabilities are calibrated so that they can be read as chances."
    people = _people(card)
    if found.get("target") == "crowd_label" and people.get("temperature") is not None:
        return (
            f"Temperature scaling: the model's scores are divided by T = {float(temperature):.3f} before the softmax, "
            "T fitted to the FERPlus crowd's label (the most-voted of ten people), so that a probability reads as "
            "how likely most people would call the face that. The Predict page also says how many of ten people "
            f'would ("about 7 in 10"): the same scores at T = {float(people["temperature"]):.3f}, fitted to the '
            "crowd's vote shares. A 70% majority is the majority far more often than 7 times in 10, so one T "
            "cannot say both."
        )
    return (
        f"Temperature scaling: the model's scores are divided by T = {float(temperature):.3f} before the softmax, "
        "so that its percentages can be read as chances."
    )


# The card's cross-fitted calibration numbers ("<key>_before", "<key>_after"), in the report's order: the
# probabilities', then the people's reading's (its own T, fitted to the crowd's vote shares).
CROSS_FITTED_ROWS = (
    ("ece", "Cross-fitted ECE (fit on one half of validation, scored on the other)"),
    ("tv", "Cross-fitted distance to the crowd's four vote shares (mean total variation)"),
)
PEOPLE_ROWS = (("share_ece", "The people's reading (how many of ten): cross-fitted ECE against the share of people"),)


def calibration_rows(card: dict) -> list[tuple[str, float, float]]:
    """Each expected calibration error the card holds: (what was measured, before, after calibration).

    The cross-fitted numbers are the honest ones (the temperature is scored on faces it was not fitted
    on); the shipped model's own numbers on validation are in-sample. ECE is against the headline truth
    (the crowd's label where there are votes); the distance to the crowd's vote shares is its own row.
    """
    rows = []
    found = card.get("calibration") if isinstance(card.get("calibration"), dict) else {}
    people = _people(card)
    for block, keys in ((found, CROSS_FITTED_ROWS), (people, PEOPLE_ROWS)):
        for key, label in keys:
            if block.get(f"{key}_before") is not None and block.get(f"{key}_after") is not None:
                rows.append((label, float(block[f"{key}_before"]), float(block[f"{key}_after"])))
    for split in splits_with_metrics(card):
        m = split_metrics(card, split)
        if m.get("ece_uncalibrated") is None or m.get("ece") is None:
            continue
        if split == "validation":
            label = f"In-sample: the shipped model on all of validation ({_count(m.get('n', 0))} images, where T was fitted)"
        else:
            label = f"The shipped model on the {split} split ({_count(m.get('n', 0))} images)"
        rows.append((label, float(m["ece_uncalibrated"]), float(m["ece"])))
    return rows


def calibration_lines(card: dict) -> list[str]:
    """`calibration_rows` as sentences: 'what: 4.6% before → 2.2% after'."""
    return [f"{label}: {_pct(before)} before → {_pct(after)} after" for label, before, after in calibration_rows(card)]


def people_caption(card: dict) -> str | None:
    """What the share-of-people diagram shows (None where the card has no people's reading)."""
    used = [b for b in _people_bins(card) if b.get("count")]
    if not used:
        return None
    n = sum(b["count"] for b in used)
    return (
        f"The people's reading, on the {n:,} validation faces with crowd votes: each bar is the average share of "
        "the ten FERPlus voters who chose the class the model put first, for the faces the people's temperature "
        'gives that share. Bars on the diagonal mean "about 7 in 10 people" is true (in-sample: that temperature '
        "was fitted on these faces)."
    )


def people_figure(card: dict):
    """The share-of-people reliability diagram (None where the card has no people's reading)."""
    bins = _people_bins(card)
    return plots.reliability_diagram(bins, measure="share") if bins else None


def reliability_caption(reliability: dict, split: str | None = None) -> str:
    """What the reliability diagram shows, and which ECE goes with it."""
    split = reliability.get("split") or split or "validation"
    in_sample = " (in-sample: the temperature was fitted on these faces)" if split == "validation" else ""
    ece = (
        f" Its expected calibration error is {_pct(reliability['ece'])}." if reliability.get("ece") is not None else ""
    )
    return (
        f"Reliability of the shipped model on the {split} split{in_sample}: each bar is the accuracy of the faces "
        f"predicted with that confidence; bars on the diagonal mean the percentages can be read as chances.{ece}"
    )


def uncertainty_summary(card: dict) -> list[str]:
    """How the 'may be another expression' flag works and how to read its study (numbers: `uncertainty_numbers`)."""
    found = card.get("uncertainty")
    if not isinstance(found, dict) or found.get("threshold") is None:
        return []
    first = (
        f'A face is flagged "may be another expression" when its uncertainty ({found.get("score", "score")}) '
        f"is at least {float(found['threshold']):.2f}"
    )
    if found.get("chosen_to_flag"):
        first += f"; the threshold was chosen to flag {found['chosen_to_flag']}"
    lines = [first + "."]
    if found.get("head"):
        lines.append(
            "The score comes from a small extra head that reads the network's features and was trained to spot "
            f"faces the crowd saw as another expression: {found['head']}."
        )
    if found.get("in_scope_flagged") is not None or found.get("auroc_out_of_scope") is not None:
        lines.append(
            "In scope: validation faces showing one of the four expressions; out of scope: faces the crowd "
            "saw as another expression (angry, afraid, disgusted...), which the model can only get wrong. A useful "
            "flag catches far more of the second than of the first; the AUROC says how well the uncertainty "
            "tells them apart (0.5 is chance, 1.0 perfect)."
        )
    return lines


def uncertainty_numbers(card: dict) -> list[Headline]:
    """The uncertainty study as headline numbers: threshold, faces flagged in and out of scope, AUROC."""
    found = card.get("uncertainty")
    if not isinstance(found, dict) or found.get("threshold") is None:
        return []
    items = [Headline("Threshold", f"{float(found['threshold']):.2f}", f"on {found.get('score', 'the uncertainty')}")]
    if found.get("in_scope_flagged") is not None:
        n = f", {_count(found['n_in_scope'])} faces" if found.get("n_in_scope") is not None else ""
        items.append(
            Headline("Flagged, in scope", _pct(found["in_scope_flagged"]), f"faces showing one of the 4 expressions{n}")
        )
    if found.get("out_of_scope_flagged") is not None:
        n = f", {_count(found['n_out_of_scope'])} faces" if found.get("n_out_of_scope") is not None else ""
        items.append(
            Headline(
                "Flagged, out of scope",
                _pct(found["out_of_scope_flagged"]),
                f"faces the crowd saw as another expression{n}",
            )
        )
    if found.get("auroc_out_of_scope") is not None:
        items.append(
            Headline(
                "AUROC", f"{float(found['auroc_out_of_scope']):.2f}", "telling the two apart (0.5 chance, 1.0 perfect)"
            )
        )
    if found.get("auroc_out_of_scope_max_probability") is not None:
        items.append(
            Headline(
                "AUROC of 1 - top probability",
                f"{float(found['auroc_out_of_scope_max_probability']):.2f}",
                "the plain alternative the head replaces, on the same faces",
            )
        )
    return items


def confusion_pair(metrics: dict, first: str = "sad", second: str = "neutral") -> str | None:
    """How often two classes are taken for each other, in words (from the split's confusion matrix)."""
    classes = list(metrics.get("classes") or CLASSES)
    matrix = metrics.get("confusion_matrix")
    if not matrix or first not in classes or second not in classes:
        return None
    counts = [[int(v) for v in row] for row in matrix]
    a, b = classes.index(first), classes.index(second)
    pairs = {(i, j): counts[i][j] + counts[j][i] for i in range(len(classes)) for j in range(i + 1, len(classes))}
    most = max(pairs, key=pairs.get) == (min(a, b), max(a, b))
    parts = []
    for true, called in ((a, b), (b, a)):
        total = sum(counts[true])
        share = f" ({counts[true][called] / total:.1%})" if total else ""
        parts.append(
            f"{_count(counts[true][called])} of the {_count(total)} {classes[true]} faces{share} are called {classes[called]}"
        )
    lead = f"{first.capitalize()} and {second}" + (", the two classes most often taken for each other" if most else "")
    return f"{lead}: {parts[0]}, and {parts[1]}."


def curves_caption(card: dict) -> str | None:
    """What the training curves cover: a fine-tuning stage's epochs only, and why early epochs lack a score."""
    curves, training = card.get("curves") or [], card.get("training") or {}
    if not curves:
        return None
    parts = [f"{len(curves)} epochs"]
    if (training.get("init") or {}).get("file"):
        parts.append(
            f" of a fine-tuning stage: it started from trained weights ({training['init']['file']}), whose own "
            "epochs are not drawn"
        )
    scored = [c.get("epoch", i) for i, c in enumerate(curves) if c.get("val_accuracy") is not None]
    if scored and scored[0] > 0:
        parts.append(
            f". Validation was scored from epoch {scored[0]} on: earlier epochs of the schedule cannot be the best, "
            "and skipping them saves the time of scoring the whole split"
        )
    return "".join(parts) + "."


def _training_time(training: dict) -> str | None:
    """Wall-clock minutes (validation included) where the run recorded them, and the training loop's."""
    wall, loop = training.get("wall_time_s"), training.get("train_time_s")
    if not loop:
        return None
    if not wall:
        return f"{float(loop) / 60:.0f} min"
    return f"{float(wall) / 60:.0f} min wall-clock ({float(loop) / 60:.0f} min training loop)"


def _recipe_text(recipe: dict) -> str:
    # Settings only: no server paths (the run folder, the data folder) in a report that is handed around.
    return ", ".join(
        f"{k}={v}" for k, v in recipe.items() if v is not None and not (isinstance(v, str) and v.startswith("/"))
    )


def _people_temperature(card: dict) -> str | None:
    people = _people(card)
    return f"{float(people['temperature']):.3f}" if people.get("temperature") is not None else None


def model_details(card: dict) -> list[tuple[str, str]]:
    """(label, value) rows on the network, how it runs and how it was trained, for the page and the HTML."""
    arch, training = card.get("architecture") or {}, card.get("training") or {}
    inference = card.get("inference") or {}
    rows = [
        ("Architecture", arch.get("description")),
        ("Parameters", _count(arch["params"]) if arch.get("params") else None),
        ("Multiply-adds per face", _count(arch["macs_per_face"]) if arch.get("macs_per_face") else None),
        ("Input", (card.get("input") or {}).get("preprocessing")),
        ("Inference precision", inference.get("precision")),
        ("Int8 calibration", inference.get("int8_calibration")),
        ("Test-time augmentation", inference.get("test_time_augmentation")),
        ("Softmax temperature", f"{float(card['temperature']):.3f}" if card.get("temperature") is not None else None),
        ("People's temperature (how many of ten)", _people_temperature(card)),
        ("Best epoch", training.get("best_epoch")),
        ("Training time", _training_time(training)),
        ("Machine", training.get("machine")),
        ("Recipe", _recipe_text(training["recipe"]) if isinstance(training.get("recipe"), dict) else None),
        ("Train it again", training.get("reproduce")),
    ]
    return [(label, str(value)) for label, value in rows if value not in (None, "")]


def per_class_rows(metrics: dict, in_percent: bool = False) -> list[dict]:
    """Precision, recall, F1 and support per class, in class order (for a table).

    `in_percent`: the three scores in percent (85.2 for 85.2%), for tables shown with PERCENT_FORMAT.
    """
    per_class = metrics.get("per_class") or {}
    scale = 100.0 if in_percent else 1.0
    return [
        {
            "class": name,
            "precision": float(per_class[name]["precision"]) * scale,
            "recall": float(per_class[name]["recall"]) * scale,
            "F1": float(per_class[name]["f1"]) * scale,
            "images": int(per_class[name]["support"]),
        }
        for name in CLASSES
        if name in per_class
    ]


# Percentages in the app's per-class tables: one decimal, as everywhere in the report (printf style).
PERCENT_FORMAT = "%.1f%%"


def figures(card: dict, split: str | None = None, reliability: dict | None = None) -> dict:
    """The report's plotly figures by name (only those the card has data for)."""
    split = split or next(iter(splits_with_metrics(card)), None)
    out = {}
    curves = card.get("curves") or []
    if curves:
        out["curves"] = plots.training_curves(curves)
    if split:
        m = split_metrics(card, split)
        out["confusion"] = plots.confusion_heatmap(m["confusion_matrix"], title=f"Counts ({split})")
        out["confusion_normalised"] = plots.confusion_heatmap(
            m["confusion_matrix"], normalise=True, title=f"Share of each true class ({split})"
        )
        if m.get("per_class"):
            out["per_class"] = plots.per_class_bars(m["per_class"])
    bins = reliability or stored_reliability(card, split)
    if bins:
        out["reliability"] = plots.reliability_diagram(bins["bins"], compare=bins.get("bins_before"))
    people = people_figure(card)
    if people is not None:
        out["people"] = people
    balance = (card.get("data_card") or {}).get("class_balance")
    if balance:
        out["class_balance"] = plots.class_balance_bars(balance)
    return out


# -- HTML export ------------------------------------------------------------------------------------

_STYLE = """
body { font-family: "Source Sans Pro", Helvetica, Arial, sans-serif; color: #1B1F24; margin: 0; background: #F3F5F9; }
main { max-width: 1100px; margin: 0 auto; padding: 32px 40px 64px; background: white; }
h1 { font-size: 2.1em; margin-bottom: 0.1em; } h2 { border-bottom: 2px solid #2E5EAA; padding-bottom: 4px; margin-top: 1.8em; }
.sub { color: #5A6270; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 16px; margin: 16px 0; }
.card { flex: 1 1 180px; border: 1px solid #D9DEE7; border-radius: 8px; padding: 12px 16px; }
.card .label { color: #5A6270; font-size: 0.9em; } .card .value { font-size: 1.9em; font-weight: 600; }
.card .detail { color: #5A6270; font-size: 0.85em; }
table { border-collapse: collapse; margin: 12px 0; } th, td { padding: 6px 14px; border-bottom: 1px solid #D9DEE7; text-align: right; }
th:first-child, td:first-child { text-align: left; }
/* A grid, not flex: each chart knows its column's width when plotly first draws it. */
.row { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; } .row > div { min-width: 0; }
@media (max-width: 800px) { .row { grid-template-columns: 1fr; } }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: middle; }
footer { color: #5A6270; font-size: 0.85em; margin-top: 48px; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _table(rows: list[dict], percent: set[str] = frozenset()) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{_e(_pct(v) if k in percent else (_count(v) if isinstance(v, int) else v))}</td>"
            for k, v in row.items()
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Figures:
    """Turns figures into HTML; the first one carries plotly.js inline so the file opens offline."""

    def __init__(self):
        self.first = True

    def __call__(self, fig) -> str:
        out = fig.to_html(
            full_html=False, include_plotlyjs=self.first, config={"displaylogo": False, "responsive": True}
        )
        self.first = False
        return out


def report_html(
    card: dict, weights_bytes: int | None = None, reliability: dict | None = None, title: str | None = None
) -> str:
    """The whole report as one HTML document: no external files, scripts or fonts, no dataset images."""
    figs = figures(card, reliability=reliability)
    figure_html = _Figures()
    name = card.get("name", "model")
    title = title or f"{name}: facial emotion recognition model report"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>Classes: {_e(', '.join(card.get('classes', CLASSES)))} &middot; weights created {_e(card.get('created', 'unknown'))}"
        f" &middot; sha256 {_e(str(card.get('weights_sha256', ''))[:12])}&hellip; &middot; report made {_e(date.today().isoformat())}</p>",
    ]
    parts += _cards(headline(card, weights_bytes))
    parts += [f"<p>{_e(sentence)}</p>" for sentence in result_sentences(card)]
    if card.get("intended_use"):
        parts += ["<h2>Intended use</h2>", f"<p>{_e(card['intended_use'])}</p>"]
    if card.get("limitations"):
        parts += ["<h2>Known limitations</h2><ul>", *(f"<li>{_e(item)}</li>" for item in card["limitations"]), "</ul>"]
    if "curves" in figs:
        parts += ["<h2>Training curves</h2>", f"<p>{_e(curves_caption(card))}</p>", figure_html(figs["curves"])]
    split = next(iter(splits_with_metrics(card)), None)
    if split:
        metrics = split_metrics(card, split)
        parts += [
            f"<h2>Confusion matrix ({_e(split)} split)</h2>",
            "<p>Rows: the true class; columns: what the model predicted.</p>",
        ]
        parts.append(
            f"<div class='row'><div>{figure_html(figs['confusion'])}</div><div>{figure_html(figs['confusion_normalised'])}</div></div>"
        )
        pair = confusion_pair(metrics)
        if pair:
            parts.append(f"<p>{_e(pair)}</p>")
        parts.append(f"<h2>Per-class metrics ({_e(split)} split)</h2>")
        parts.append(_table(per_class_rows(metrics), percent={"precision", "recall", "F1"}))
        if "per_class" in figs:
            parts.append(figure_html(figs["per_class"]))
        others = [s for s in splits_with_metrics(card) if s != split]
        for other in others:
            m = split_metrics(card, other)
            parts.append(
                f"<p>On the {_e(other)} split ({_count(m.get('n', 0))} images): accuracy {_pct(m['accuracy'])}, macro F1 {_pct(m.get('macro_f1', 0))}.</p>"
            )
    summary, lines = calibration_summary(card), calibration_lines(card)
    if summary or lines or "reliability" in figs:
        parts.append("<h2>Calibration</h2>")
        if summary:
            parts.append(f"<p>{_e(summary)}</p>")
        if lines:
            parts += [
                "<p>Expected calibration error (ECE, 15 bins; lower is better):</p><ul>",
                *(f"<li>{_e(line)}</li>" for line in lines),
                "</ul>",
            ]
    if "reliability" in figs:
        rel = reliability or stored_reliability(card, split)
        parts.append(f"<p>{_e(reliability_caption(rel, split))}</p>")
        parts.append(figure_html(figs["reliability"]))
    if "people" in figs:
        parts += [f"<p>{_e(people_caption(card))}</p>", figure_html(figs["people"])]
    uncertain = uncertainty_summary(card)
    if uncertain:
        parts += ["<h2>When the model is unsure</h2>", *_cards(uncertainty_numbers(card))]
        parts += [f"<p>{_e(line)}</p>" for line in uncertain]
    parts += _model_section(card)
    parts += _data_section(card, figs, figure_html)
    parts.append(
        "<footer>Made by the fer app from weights/model_card.json. Class colours: "
        + " ".join(f"<span class='swatch' style='background:{plots.CLASS_COLORS[c]}'></span>{_e(c)}" for c in CLASSES)
        + "</footer></main></body></html>"
    )
    return "\n".join(parts)


def _cards(items: list[Headline]) -> list[str]:
    if not items:
        return []
    return [
        "<div class='cards'>",
        *(
            f"<div class='card'><div class='label'>{_e(item.label)}</div><div class='value'>{_e(item.value)}</div>"
            f"<div class='detail'>{_e(item.detail)}</div></div>"
            for item in items
        ),
        "</div>",
    ]


def _model_section(card: dict) -> list[str]:
    rows = model_details(card)
    if not rows:
        return []
    body = "".join(f"<tr><td>{_e(k)}</td><td style='text-align:left'>{_e(v)}</td></tr>" for k, v in rows)
    return ["<h2>Model</h2>", f"<table><tbody>{body}</tbody></table>"]


def _data_section(card: dict, figs: dict, figure_html) -> list[str]:
    data_card = card.get("data_card") or {}
    if not data_card:
        return []
    parts = ["<h2>Data card</h2>"]
    for key, label in (("source", "Source"), ("soft_labels", "Soft labels"), ("licence", "Licence")):
        if data_card.get(key):
            parts.append(f"<p><b>{_e(label)}:</b> {_e(data_card[key])}</p>")
    balance = data_card.get("class_balance") or {}
    if balance:
        rows = [
            {"split": s, **{c: int(balance[s].get(c, 0)) for c in CLASSES}, "total": int(sum(balance[s].values()))}
            for s in balance
        ]
        parts.append(_table(rows))
    if "class_balance" in figs:
        parts.append(figure_html(figs["class_balance"]))
    if data_card.get("defects"):
        parts += ["<p><b>Known defects:</b></p><ul>", *(f"<li>{_e(d)}</li>" for d in data_card["defects"]), "</ul>"]
    return parts
