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

from fer import plots
from fer.data import CLASSES

PREFERRED_SPLITS = ("validation", "test")


@dataclass
class Headline:
    label: str
    value: str
    detail: str


def splits_with_metrics(card: dict) -> list[str]:
    """Splits the card has metrics for, validation first (the split to trust), then test, then others."""
    metrics = card.get("metrics") or {}
    ordered = [s for s in PREFERRED_SPLITS if s in metrics] + sorted(s for s in metrics if s not in PREFERRED_SPLITS)
    return [s for s in ordered if isinstance(metrics.get(s), dict) and "confusion_matrix" in metrics[s]]


def split_metrics(card: dict, split: str) -> dict:
    return (card.get("metrics") or {}).get(split) or {}


def _pct(value) -> str:
    return f"{float(value):.1%}"


def _count(n) -> str:
    return f"{int(n):,}"


def headline(card: dict, weights_bytes: int | None = None) -> list[Headline]:
    """The first numbers a reader needs, each saying which split and how many images it comes from."""
    items = []
    for split in splits_with_metrics(card):
        m = split_metrics(card, split)
        size = f"{split} split, {_count(m.get('n', 0))} images"
        if split == "test" and m.get("n", 0) < 1000:
            size += f" (small: one image is {1 / max(m['n'], 1):.1%})"
        items.append(Headline(f"{split.capitalize()} accuracy", _pct(m["accuracy"]), size))
        if split == PREFERRED_SPLITS[0] or len(items) == 1:
            if "macro_f1" in m:
                items.append(Headline("Macro F1", _pct(m["macro_f1"]), f"{split} split, mean over the 4 classes"))
            if "ece" in m:
                items.append(
                    Headline("Calibration error", _pct(m["ece"]), f"{split} split, ECE over 15 bins (lower is better)")
                )
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


def calibration_summary(card: dict) -> str | None:
    """One sentence on how the probabilities were calibrated, from card['calibration']."""
    found = card.get("calibration")
    if not isinstance(found, dict):
        return None
    parts = []
    temperature = found.get("temperature", card.get("temperature"))
    if temperature is not None:
        parts.append(f"Temperature scaling (T = {float(temperature):.3f})")
    if found.get("method"):
        parts.append(f"{found['method']}")
    sentence = ": ".join(parts) if parts else "Calibration"
    if found.get("ece_before") is not None and found.get("ece_after") is not None:
        sentence += f". Expected calibration error {_pct(found['ece_before'])} before, {_pct(found['ece_after'])} after"
    return sentence + "."


def uncertainty_summary(card: dict) -> list[str]:
    """How the 'may be another expression' flag works and how well it separates faces, from card['uncertainty']."""
    found = card.get("uncertainty")
    if not isinstance(found, dict) or found.get("threshold") is None:
        return []
    lines = [
        f'A face is flagged "may be another expression" when its uncertainty ({found.get("score", "score")}) is at least {float(found["threshold"]):.2f}.'
    ]
    if found.get("chosen_to_flag"):
        lines.append(f"The threshold was chosen to flag {found['chosen_to_flag']}.")
    if found.get("in_scope_flagged") is not None and found.get("out_of_scope_flagged") is not None:
        out_n = f" ({_count(found['n_out_of_scope'])} faces)" if found.get("n_out_of_scope") is not None else ""
        lines.append(
            f"On validation it flags {_pct(found['in_scope_flagged'])} of faces showing one of the four expressions and "
            f"{_pct(found['out_of_scope_flagged'])} of faces the crowd saw as another expression{out_n}."
        )
    if found.get("auroc_out_of_scope") is not None:
        lines.append(
            f"AUROC for telling those apart: {float(found['auroc_out_of_scope']):.2f} (0.5 is chance, 1.0 perfect)."
        )
    return lines


def per_class_rows(metrics: dict) -> list[dict]:
    """Precision, recall, F1 and support per class, in class order (for a table)."""
    per_class = metrics.get("per_class") or {}
    return [
        {
            "class": name,
            "precision": float(per_class[name]["precision"]),
            "recall": float(per_class[name]["recall"]),
            "F1": float(per_class[name]["f1"]),
            "images": int(per_class[name]["support"]),
        }
        for name in CLASSES
        if name in per_class
    ]


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
    cards = headline(card, weights_bytes)
    if cards:
        parts.append("<div class='cards'>")
        for item in cards:
            parts.append(
                f"<div class='card'><div class='label'>{_e(item.label)}</div><div class='value'>{_e(item.value)}</div>"
                f"<div class='detail'>{_e(item.detail)}</div></div>"
            )
        parts.append("</div>")
    if card.get("intended_use"):
        parts += ["<h2>Intended use</h2>", f"<p>{_e(card['intended_use'])}</p>"]
    if card.get("limitations"):
        parts += ["<h2>Known limitations</h2><ul>", *(f"<li>{_e(item)}</li>" for item in card["limitations"]), "</ul>"]
    if "curves" in figs:
        parts += ["<h2>Training curves</h2>", figure_html(figs["curves"])]
    split = next(iter(splits_with_metrics(card)), None)
    if split:
        parts += [
            f"<h2>Confusion matrix ({_e(split)} split)</h2>",
            "<p>Rows: the true class; columns: what the model predicted.</p>",
        ]
        parts.append(
            f"<div class='row'><div>{figure_html(figs['confusion'])}</div><div>{figure_html(figs['confusion_normalised'])}</div></div>"
        )
        parts.append(f"<h2>Per-class metrics ({_e(split)} split)</h2>")
        parts.append(_table(per_class_rows(split_metrics(card, split)), percent={"precision", "recall", "F1"}))
        if "per_class" in figs:
            parts.append(figure_html(figs["per_class"]))
        others = [s for s in splits_with_metrics(card) if s != split]
        for other in others:
            m = split_metrics(card, other)
            parts.append(
                f"<p>On the {_e(other)} split ({_count(m.get('n', 0))} images): accuracy {_pct(m['accuracy'])}, macro F1 {_pct(m.get('macro_f1', 0))}.</p>"
            )
    summary = calibration_summary(card)
    if summary or "reliability" in figs:
        parts.append("<h2>Calibration</h2>")
        if summary:
            parts.append(f"<p>{_e(summary)}</p>")
    if "reliability" in figs:
        rel = reliability or stored_reliability(card, split)
        ece = f" Expected calibration error: {_pct(rel['ece'])}." if rel.get("ece") is not None else ""
        parts.append(
            f"<p>Reliability on the {_e(rel.get('split') or split)} split: each bar is the accuracy of the faces predicted "
            f"with that confidence; a calibrated model's bars follow the diagonal, so its percentages can be read as "
            f"chances.{_e(ece)}</p>"
        )
        parts.append(figure_html(figs["reliability"]))
    uncertain = uncertainty_summary(card)
    if uncertain:
        parts += ["<h2>When the model is unsure</h2>", *(f"<p>{_e(line)}</p>" for line in uncertain)]
    parts += _model_section(card)
    parts += _data_section(card, figs, figure_html)
    parts.append(
        "<footer>Made by the fer app from weights/model_card.json. Class colours: "
        + " ".join(f"<span class='swatch' style='background:{plots.CLASS_COLORS[c]}'></span>{_e(c)}" for c in CLASSES)
        + "</footer></main></body></html>"
    )
    return "\n".join(parts)


def _model_section(card: dict) -> list[str]:
    arch, training = card.get("architecture") or {}, card.get("training") or {}
    rows = []
    if arch.get("description"):
        rows.append(("Architecture", arch["description"]))
    if arch.get("params"):
        rows.append(("Parameters", _count(arch["params"])))
    if arch.get("macs_per_face"):
        rows.append(("Multiply-adds per face", _count(arch["macs_per_face"])))
    inputs = card.get("input") or {}
    if inputs.get("preprocessing"):
        rows.append(("Input", inputs["preprocessing"]))
    for key, label in (
        ("best_epoch", "Best epoch"),
        ("train_time_s", "Training time (s)"),
        ("machine", "Machine"),
        ("command", "Command"),
        ("recipe", "Recipe"),
    ):
        if training.get(key) not in (None, ""):
            value = training[key]
            rows.append((label, ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else value))
    if card.get("temperature") is not None:
        rows.append(("Softmax temperature", f"{float(card['temperature']):.3f}"))
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
