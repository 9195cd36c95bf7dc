"""The Findings name the extreme a finding is about: a largest KL gap is not "the best" value."""

from mixtures.experiment.report.comparison import compare
from mixtures.experiment.report.findings import FINDINGS, comparison_sentence


def _phrase(column):
    return next(phrase for name, _, phrase, _ in FINDINGS if name == column)


def test_one_seed_names_the_largest_gap_not_the_best():
    found = compare({"SVI": {0: 0.30}, "VB": {0: 0.10}}, "max", 0.0)
    sentence = comparison_sentence(found, "kl_per_point", _phrase("kl_per_point"))
    assert "SVI's value is the largest, 0.3" in sentence and "best" not in sentence


def test_indistinguishable_gaps_name_the_largest_mean():
    found = compare({"SVI": {0: 0.30, 1: 0.10, 2: 0.25}, "VB": {0: 0.10, 1: 0.30, 2: 0.20}}, "max", 0.0)
    sentence = comparison_sentence(found, "kl_per_point", _phrase("kl_per_point"))
    assert "indistinguishable" in sentence and "SVI's mean is the largest" in sentence and "best" not in sentence


def test_a_likelihood_keeps_its_own_word():
    found = compare({"EM": {0: -1.0}, "MAP": {0: -1.2}}, "max", 1e-5)
    sentence = comparison_sentence(found, "log_likelihood_per_point", _phrase("log_likelihood_per_point"))
    assert "EM's value is the highest" in sentence
