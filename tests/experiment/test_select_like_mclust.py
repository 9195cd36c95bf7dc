"""``select_models``' defaults (hc start, one tree for every K and structure, relative tolerance 1e-5,
all fourteen structures, K = 1..9) find what mclust 6 finds: its top three models and their BIC, in
mclust's sign, to the digits mclust prints (three decimals) on faithful, iris and diabetes."""

from __future__ import annotations

import math

import pytest

import mixtures
from mixtures.data import diabetes, iris, old_faithful
from mixtures.experiment.selection import iteration_options, select_models, top_models
from mixtures.families.gaussian.covariance import MCLUST_NAMES

#: mclust 6.0.0 ``Mclust(data)`` summaries ("Top 3 models based on the BIC criterion"), three decimals as
#: printed; the values are those of tests/init/test_hc.py's MCLUST_BIC table. Faithful's runners-up
#: (VVE,2 and VEE,3) are as issue #14 lists them; mclust prints VVE,2 as -2320.433, ours is -2320.283
#: (higher: mclust's VVE M step is not exact, tests/families/gaussian/test_vve_against_mclust.py).
MCLUST_TOP = {
    "faithful": [("EEE", 3, -2314.316), ("VVE", 2, None), ("VEE", 3, -2322.103)],
    "iris": [("VEV", 2, -561.728), ("VEV", 3, -562.552), ("VVV", 2, -574.018)],
    "diabetes": [("VVV", 3, -4751.316), ("VVV", 4, -4784.322), ("EVE", 6, -4785.246)],
}
DATA = {"faithful": old_faithful, "iris": iris, "diabetes": diabetes}
#: mclust's printed ``mclustBIC(faithful)`` table (a published transcript): rows K = 1..9 (two lines
#: each), columns MCLUST_NAMES
MCLUST_FAITHFUL_TABLE = """
-4024.721 -4024.721 -3055.835 -3055.835 -3055.835 -3055.835 -2607.623
    -2607.623 -2607.623 -2607.623 -2607.623 -2607.623 -2607.623 -2607.623
-3452.998 -3458.305 -2354.601 -2350.607 -2352.618 -2346.065 -2325.220
    -2322.972 -2324.273 -2320.433 -2329.115 -2325.416 -2327.598 -2322.192
-3377.701 -3336.598 -2323.014 -2332.687 -2332.205 -2342.366 -2314.316
    -2322.103 -2342.319 -2336.271 -2325.322 -2329.648 -2339.983 -2349.696
-3230.264 -3242.826 -2323.673 -2331.284 -2334.749 -2343.486 -2331.223
    -2340.173 -2361.821 -2362.487 -2351.523 -2361.084 -2344.686 -2351.493
-3149.394 -3129.080 -2327.059 -2350.230 -2347.564 -2351.017 -2360.659
    -2347.337 -2351.828 -2368.937 -2356.856 -2368.101 -2364.900 -2379.388
-3081.414 -3038.171 -2338.205 -2360.578 -2357.660 -2373.469 -2347.352
    -2372.287 -2366.482 -2386.537 -2366.087 -2386.323 -2384.117 -2387.016
-2990.367 -2973.374 -2356.454 -2368.513 -2372.851 -2394.696 -2369.330
    -2371.175 -2379.810 -2402.220 -2379.071 -2401.270 -2398.703 -2412.440
-2978.100 -2935.082 -2364.140 -2384.740 -2389.064 -2413.705 -2376.104
    -2390.391 -2403.934 -2425.956 -2392.988 -2425.426 -2414.962 -2442.018
-2953.359 -2919.415 -2372.790 -2398.223 -2407.224 -2432.708 -2389.609
    -2406.732 -2414.089 -2448.208 -2407.500 -2446.726 -2438.876 -2460.398
"""


@pytest.mark.slow
@pytest.mark.parametrize("data", [
    "faithful",
    "iris",  # VEE,5/7/9 end on one point (mclust: NA): flagged singular, left out of the top models
    # mclust's VVE M step drops the 1/λ_k weights of its orientation update, so its VVE fits end below
    # the VVE optimum (tests/families/gaussian/test_vve_against_mclust.py reproduces its published
    # faithful VVE column that way). On diabetes our VVE,4 (log-lik -2309.845, BIC -4769.018) and VVE,3
    # (-2327.792, -4770.065) rank 2nd and 3rd; mclust's VVE update ends VVE,4 at -2321.633 (-4792.608)
    # and VVE,3 at -2362.764 (-4839.996), below its EVE,6 (-4785.246), hence its VVV,4 and EVE,6
    pytest.param("diabetes", marks=pytest.mark.xfail(strict=True, reason="mclust's VVE fits end below "
                                                     "the VVE optimum; our VVE,4 and VVE,3 outrank its "
                                                     "VVV,4 and EVE,6")),
])
def test_default_selection_finds_mclusts_top_three(data):
    """With no covariance floor, as mclust (``reg_covar=1e-6`` moves faithful's VEE,3 by 9e-5, past the
    third decimal); cells that end singular then fail with the reason, as mclust's NA."""
    X = DATA[data]()
    rows = select_models(X, reg_covar=0.0)
    assert len(rows) == 14 * 9 and {r["covariance_type"] for r in rows} == set(MCLUST_NAMES)
    top = top_models(rows)
    assert [(r["covariance_type"], r["n_components"]) for r in top] == [(s, k) for s, k, _ in MCLUST_TOP[data]]
    for row, (_, _, expected) in zip(top, MCLUST_TOP[data]):
        if expected is not None:
            assert round(row["mclust_bic"], 3) == expected
        # ours ends one M step past mclust's last E step: never lower, and within the tolerance's reach
        assert -row["bic"] >= row["mclust_bic"] - 1e-9
        assert row["converged"] and not row["singular"]
    assert top[1]["bic_difference"] < 0 and top[0]["bic_difference"] == 0
    if data == "faithful":
        _equals_mclusts_table(rows)


def _equals_mclusts_table(rows):
    """All 126 cells of faithful's BIC table to mclust's printed digits, but VVE's (mclust's VVE M step
    is not exact: ours ends higher in seven of nine cells, 0.018 lower at K=8, another EM path) and
    EVI,9 (0.018 higher here)."""
    values = [float(v) for v in MCLUST_FAITHFUL_TABLE.split()]
    published = [values[14 * k:14 * (k + 1)] for k in range(9)]
    differ = {}
    for row in rows:
        expected = published[row["n_components"] - 1][MCLUST_NAMES.index(row["covariance_type"])]
        if round(row["mclust_bic"], 3) != expected:
            differ[row["covariance_type"], row["n_components"]] = round(row["mclust_bic"] - expected, 3)
    assert set(differ) == {("VVE", k) for k in range(2, 10)} | {("EVI", 9)}, differ
    assert sum(gap > 0 for gap in differ.values()) == 8 and min(differ.values()) == -0.018


def test_one_cell_is_the_hc_fit_to_relative_tolerance_and_its_columns_agree():
    """The row of EEE,3 on faithful is ``fit(..., init="hc", rtol=1e-5, max_iter=1000)``; its one-pass
    columns equal ``result.bic``/``aic`` and ``information_criteria``; ``mclust_bic`` is the
    second-to-last history row in mclust's sign (its -2314.316)."""
    X = old_faithful()
    (row,) = select_models(X, 3, ["EEE"])[2:]
    result = mixtures.fit(mixtures.GaussianMixture(3, "EEE"), X, "em", init="hc", rtol=1e-5, max_iter=1000,
                          reg_covar=1e-6)
    criteria = mixtures.evaluation.information_criteria(result, X)
    for name in ("bic", "aic", "icl"):
        assert row[name] == pytest.approx(criteria[name], rel=1e-12)
    assert row["n_iter"] == result.n_iter and row["converged"]
    trace = result.history.to_dict()["log_likelihood"]
    assert row["mclust_bic"] == pytest.approx(2 * trace[-2] - result.n_parameters() * math.log(272), rel=1e-12)
    assert round(row["mclust_bic"], 3) == -2314.316
    assert round(-row["bic"], 2) == -2314.31  # one M step further


def test_kmeans_starts_and_absolute_tolerance_stay_available():
    X = old_faithful()
    assert iteration_options("em", None, 1000, 1e-5) == {"rtol": 1e-5, "max_iter": 1000}
    assert iteration_options("em", 1e-6, 1000, 1e-5) == {"tol": 1e-6, "max_iter": 1000}
    assert "rtol" not in iteration_options("kmeans", None, 100, 1e-5)
    (row,) = select_models(X, 2, ["VVV"], init="kmeans", n_init=2, tol=1e-8)[1:]
    result = max((mixtures.fit(mixtures.GaussianMixture(2, "VVV"), X, "em", init="kmeans", seed=s, tol=1e-8,
                               max_iter=1000) for s in (0, 1)), key=lambda r: r.objective)
    assert row["starts"] == 2 and row["bic"] == pytest.approx(result.bic(X), rel=1e-12)
    # an absolute tol in the routine's options replaces the default relative one
    (short,) = select_models(X, 3, ["EEE"], init="kmeans", options={"tol": 1e-3, "max_iter": 100})[2:]
    assert -short["bic"] < -2330  # em's own loose defaults stop short of the optimum, as the issue says
