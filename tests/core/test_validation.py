"""Bad input to fit gets one clear error naming what is wrong and how to fix it (core/validation.py)."""

import numpy as np
import pytest
import torch

import mixtures
from mixtures import DataError, GaussianMixture
from mixtures.core.validation import MAX_SEED, as_data, check_chunk_size, check_seed

pd = pytest.importorskip("pandas")


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=40), "y": rng.normal(size=40)})


def test_a_datetime_column_is_refused_by_name(frame):
    frame["when"] = pd.date_range("2024-01-01", periods=40, freq="D")
    with pytest.raises(DataError, match=r"column 'when' holds dates.*nanoseconds.*total_seconds"):
        mixtures.fit(GaussianMixture(2), frame)
    with pytest.raises(DataError, match=r"column 'when' holds dates"):
        as_data(frame["when"])
    frame["when"] = frame["when"].dt.tz_localize("UTC")  # a time-zone aware column too
    with pytest.raises(DataError, match=r"column 'when' holds dates"):
        as_data(frame)


def test_a_duration_column_is_refused_by_name(frame):
    frame["lag"] = pd.to_timedelta(np.arange(40), unit="h")
    with pytest.raises(DataError, match=r"column 'lag' holds durations.*total_seconds\(\) / 3600"):
        mixtures.fit(GaussianMixture(2), frame)


def test_a_text_column_is_refused_naming_the_entry(frame):
    frame["name"] = ["a"] * 40
    with pytest.raises(DataError, match=r"must be numeric.*X\[0, 2\] = 'a'"):
        mixtures.fit(GaussianMixture(2), frame)


def test_a_numeric_frame_still_fits_like_its_array(frame):
    from_frame = mixtures.fit(GaussianMixture(2), frame)
    from_array = mixtures.fit(GaussianMixture(2), frame.to_numpy())
    assert from_frame.log_likelihood == from_array.log_likelihood


def test_seeds_of_64_bits_and_beyond():
    assert check_seed(MAX_SEED - 1) == 2 ** 64 - 1
    with pytest.raises(ValueError, match=r"seed must be below 2\*\*64.*seed % 2\*\*64"):
        mixtures.fit(GaussianMixture(2), np.random.default_rng(0).normal(size=(20, 2)), seed=2 ** 64)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "100", True, float("nan"), 1e300])
def test_chunk_size_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match=r"chunk_size must be a positive integer"):
        check_chunk_size(bad)


def test_chunk_size_accepts_integral_floats_and_none():
    assert check_chunk_size(None) is None
    assert check_chunk_size(1e6) == 1_000_000 and isinstance(check_chunk_size(1e6), int)
    assert check_chunk_size(np.int64(7)) == 7


@pytest.mark.parametrize("scale", [1e-200, 1e-160])
def test_a_spread_too_small_for_the_dtype_is_refused_with_the_factor(scale):
    X = np.random.default_rng(0).normal(size=(50, 2)) * scale
    with pytest.raises(DataError, match=r"feature 0 of X varies by only .*Rescale the data, e.g. multiply X by 1e\+"):
        mixtures.fit(GaussianMixture(2), X)


def test_a_spread_that_float64_represents_fits_and_a_constant_feature_is_left_to_reg_covar():
    X = np.random.default_rng(0).normal(size=(50, 2))
    result = mixtures.fit(GaussianMixture(2), X * 1e-100, reg_covar=1e-206)
    reference = mixtures.fit(GaussianMixture(2), X, reg_covar=1e-6)
    torch.testing.assert_close(result.params.locs * 1e100, reference.params.locs, rtol=1e-9, atol=1e-12)
    constant = np.column_stack([X[:, 0], np.full(50, 3.0)])
    as_data(constant)  # no spread at all is a constant feature, not a tiny one
    with pytest.raises(DataError, match="float32 cannot represent its variance"):
        as_data(torch.tensor(X * 1e-20, dtype=torch.float32))
