"""Features named in plain words everywhere a person reads them: the model card and the public
record never print a reason template with its value unfilled."""

from __future__ import annotations

import pytest

from lifecycle.release import model_card
from model.spec import load_spec
from model.words import feature_words
from tests.support.specs import ROOT


@pytest.mark.parametrize("name", ["individual_outreach", "neighbourhood_outreach"])
def test_every_shipped_feature_has_plain_words(name: str) -> None:
    spec = load_spec(str(ROOT / "experiments" / f"{name}.toml"))
    for feature in spec.features:
        words = feature_words(feature)
        assert "{" not in words and "}" not in words, (feature.name, words)
        assert "_" not in words and words[0].isupper(), (feature.name, words)


def test_the_model_card_names_features_in_words(small_spec, trained) -> None:
    card = model_card(small_spec, trained)
    assert not [line for line in card["features"] if "{" in line or "}" in line]
    er = next(f for f in small_spec.features if f.name == "er_visits_90d")
    assert f"{feature_words(er)} (er_visits_90d)" in card["features"]
    assert feature_words(er) == "Emergency-room visits in the last 90 days"
