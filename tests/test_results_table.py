"""scripts/results_table.py: the README's results are the model card's and the real-photo JSON's numbers."""

import json

from fer.config import PROJECT_ROOT
from scripts import results_table


def test_the_readme_shows_the_results_the_script_makes():
    readme = (PROJECT_ROOT / "README.md").read_text()
    made = results_table.current()
    assert made in readme, "README.md is stale: run python scripts/results_table.py --write"
    assert results_table.replaced(readme, made) == readme


def test_the_real_photo_numbers_are_for_the_shipped_weights():
    card = json.loads(results_table.CARD.read_text())
    wild = json.loads(results_table.WILD.read_text())
    assert wild["weights_sha256"] == card["weights_sha256"] and wild["detect"] is True
    assert f"**{wild['folder']['accuracy']:.3f}**" in results_table.current()
    assert f"**{card['metrics']['validation']['crowd']['accuracy']:.3f}**" in results_table.current()
