"""The one "did you mean": nearest choice, ignoring case when needed, phrased one way, bounded work."""

from __future__ import annotations

from processing.kernel.hints import MANY, closest, suggest


def test_a_typo_gets_the_nearest_choice_quoted_and_nothing_close_gets_nothing():
    assert suggest("timestmp", ["item_id", "timestamp", "target_value"]) == " (did you mean 'timestamp'?)"
    assert suggest("zzz", ["item_id", "timestamp"]) == ""
    assert suggest("x", []) == ""


def test_case_is_ignored_when_the_spelling_alone_finds_nothing():
    assert closest("FORECASTHORIZON", ["ForecastHorizon", "QualityThreshold"]) == "ForecastHorizon"


def test_render_writes_the_choice_as_the_user_types_it():
    hint = suggest("Horizon", ["ForecastHorizon"], render=lambda name: f"--param {name}=3")
    assert hint == " (did you mean --param ForecastHorizon=3?)"


def test_many_choices_are_narrowed_before_scoring_and_the_typo_still_found(monkeypatch):
    import difflib

    scored: list = []
    real = difflib.get_close_matches

    def counting(word, possibilities, *args, **kwargs):
        scored.append(len(possibilities))
        return real(word, possibilities, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counting)
    items = [
        f"{c}_product{p:04d}_{r}" for c in ("books", "home", "sports") for p in range(3000) for r in ("North", "West")
    ]
    assert len(items) > MANY
    assert closest("home_product1234_Nrth", items) == "home_product1234_North"
    assert scored == [MANY]  # difflib on 18,000 item ids: ~1 s a lookup
