"""The seed oracle: the generator's formula reproduces the data, and the last Christmas is not the history's."""

from benchmarks import seed_oracle


def test_given_the_seed_windows_then_the_oracle_quotes_issue_14_and_the_history_rule_misses_only_the_second():
    rows = {label: scores for label, *scores in seed_oracle.table()}  # raises if the formula misses the data
    oracle, history_rule, naive = rows.values()
    assert 0.0014 < oracle[2] < 0.0016  # issue 14: "the generator's own process ... scores 0.0015"
    assert history_rule[0] == oracle[0]  # the first window holds no Christmas
    assert history_rule[1] > 4 * oracle[1]  # the 2023 boosts differ from 2021's and 2022's
    assert naive[2] > history_rule[2]
