"""mixtures.io: bit-exact round trips, extras and config, atomic writes, and clear errors on
corrupted, foreign, malicious or too-new files."""

import dataclasses
import math
import os
import pickle
import warnings

import numpy as np
import pytest
import torch

import mixtures
from mixtures.core.posterior import Posterior
from mixtures.families.gaussian.params import MixtureParams
from mixtures.families.gaussian.priors import GaussianPrior
from mixtures.io import FORMAT_VERSION, FormatError, load, load_metadata, save_result

from conftest import COVARIANCE_TYPES, true_params


def fitted(covariance_type="full", method="em", dtype=torch.float64, **options):
    X = true_params(covariance_type).sample(300, seed=1)[0].to(dtype)
    return mixtures.fit(mixtures.GaussianMixture(3, covariance_type), X, method=method, seed=0,
                        **options), X


def assert_same_result(loaded: mixtures.FitResult, original: mixtures.FitResult, X):
    assert loaded.model.n_components == original.model.n_components
    assert loaded.model.covariance_type == original.model.covariance_type
    for name in ("weights", "locs", "native"):
        assert getattr(loaded.params, name).dtype == getattr(original.params, name).dtype
        assert torch.equal(getattr(loaded.params, name), getattr(original.params, name)), name
        if original.init is not None:
            assert torch.equal(getattr(loaded.init, name), getattr(original.init, name)), name
    assert (loaded.init is None) == (original.init is None)
    assert loaded.history.columns == original.history.columns
    for column in original.history.columns:
        torch.testing.assert_close(loaded.history[column], original.history[column], rtol=0, atol=0,
                                   equal_nan=True)
    assert (loaded.converged, loaded.n_iter, loaded.method) == \
        (original.converged, original.n_iter, original.method)
    assert loaded.objective == original.objective
    # predictions: bit-equal
    assert torch.equal(loaded.score_samples(X), original.score_samples(X))
    assert torch.equal(loaded.predict_proba(X), original.predict_proba(X))
    assert torch.equal(loaded.predict(X), original.predict(X))
    assert loaded.bic(X) == original.bic(X)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_round_trip_is_bit_exact(tmp_path, covariance_type, dtype):
    result, X = fitted(covariance_type, dtype=dtype)
    path = save_result(result, tmp_path / "fit.pt")
    assert path == tmp_path / "fit.pt"
    loaded = load(path)
    assert loaded.params.dtype == dtype
    assert_same_result(loaded, result, X)
    assert loaded.extras == result.extras  # restart_objectives (floats) and seed (int)


def test_round_trip_kmeans_with_tensor_extras(tmp_path):
    result, X = fitted("diag", method="kmeans")
    assert any(isinstance(value, torch.Tensor) for value in result.extras.values())
    loaded = load(save_result(result, tmp_path / "kmeans.pt"))
    assert_same_result(loaded, result, X)
    assert loaded.extras.keys() == result.extras.keys()
    for key, value in result.extras.items():
        if isinstance(value, torch.Tensor):
            assert isinstance(loaded.extras[key], torch.Tensor) and torch.equal(loaded.extras[key], value)
        else:
            assert loaded.extras[key] == value


def assert_same_tree(loaded, original, where="extras"):
    """Equal nested extras / posterior fields: tensors bit for bit (NaN = NaN), the rest by ==."""
    if isinstance(original, torch.Tensor):
        assert isinstance(loaded, torch.Tensor) and loaded.dtype == original.dtype, where
        torch.testing.assert_close(loaded, original, rtol=0, atol=0, equal_nan=True, msg=where)
    elif isinstance(original, dict):
        assert isinstance(loaded, dict) and loaded.keys() == original.keys(), where
        for key in original:
            assert_same_tree(loaded[key], original[key], f"{where}[{key!r}]")
    elif isinstance(original, (list, tuple)):
        assert type(loaded) is type(original) and len(loaded) == len(original), where
        for i, (a, b) in enumerate(zip(loaded, original)):
            assert_same_tree(a, b, f"{where}[{i}]")
    elif isinstance(original, float) and math.isnan(original):
        assert isinstance(loaded, float) and math.isnan(loaded), where
    else:
        assert loaded == original and type(loaded) is type(original), where


#: every routine not covered above, with cheap settings; the Bayesian ones with a prior
ROUTINE_RUNS = {
    "hard_em": (None, {}),
    "map": (None, {"num_steps": 25}),
    "stepwise_em": (None, {"num_epochs": 2, "batch_size": 64}),
    "svi": (GaussianPrior(), {"guide": "normal", "num_steps": 25, "posterior_samples": 16}),
    "nuts": (GaussianPrior(), {"warmup": 10, "num_samples": 10, "max_tree_depth": 3}),
}


@pytest.mark.parametrize("method", list(ROUTINE_RUNS))
def test_round_trip_of_every_routine(tmp_path, method):
    prior, options = ROUTINE_RUNS[method]
    X = true_params("full").sample(200, seed=1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # convergence notices of the short runs
        result = mixtures.fit(mixtures.GaussianMixture(3, "full", prior=prior), X, method=method, seed=0,
                              **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is stringified: no warning at save time
        result.save(tmp_path / f"{method}.pt")
    metadata = load_metadata(tmp_path / f"{method}.pt")
    assert metadata["stringified_extras"] == [] and metadata["stringified_posterior"] == []
    loaded = mixtures.load(tmp_path / f"{method}.pt")
    assert_same_result(loaded, result, X)  # parameters, init, history, predictions
    assert_same_tree(loaded.extras, result.extras)
    # the fit's settings survive, as primitives
    settings = loaded.extras["fit_settings"]
    assert settings["method"] == method and settings["seed"] == 0 and settings["n_init"] == 1
    assert settings["options"] == {key: value for key, value in options.items()}
    assert loaded.model.prior == prior
    if method in ("svi", "nuts"):
        posterior = loaded.posterior
        assert isinstance(posterior, Posterior) and posterior.kind == result.posterior.kind
        assert posterior.cov_type.name == "full"
        for name in ("weights", "locs", "native"):
            assert torch.equal(getattr(posterior, name), getattr(result.posterior, name)), name
        assert_same_tree(posterior.distribution, result.posterior.distribution, "distribution")
        assert_same_tree(posterior.diagnostics, result.posterior.diagnostics, "diagnostics")
        assert torch.equal(posterior.predictive_log_prob(X), result.posterior.predictive_log_prob(X))
    else:
        assert loaded.posterior is None and result.posterior is None
    if method == "svi":  # the variational distribution: the guide's class and its parameters
        distribution = loaded.posterior.distribution
        assert isinstance(distribution, dict) and distribution["params"]
        assert all(isinstance(v, torch.Tensor) for v in distribution["params"].values())


def test_load_onto_a_device(tmp_path):
    X = true_params("diag").sample(200, seed=1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = mixtures.fit(mixtures.GaussianMixture(3, "diag", prior=GaussianPrior()), X, "vb",
                              posterior_samples=8)
    path = save_result(result, tmp_path / "vb.pt")
    for device in ("cpu", torch.device("cpu")):
        loaded = load(path, device=device)
        assert_same_result(loaded, result, X)
        for tensor in (loaded.params.weights, loaded.params.locs, loaded.params.native, loaded.init.locs,
                       loaded.posterior.weights, loaded.posterior.native):
            assert tensor.device.type == "cpu"
        assert_same_tree(loaded.posterior.distribution, result.posterior.distribution, "distribution")
    with pytest.raises(ValueError, match=r"cannot load onto device 'gpu0'.*Check the device name"):
        load(path, device="gpu0")
    if torch.cuda.is_available():
        on_gpu = load(path, device="cuda")
        assert on_gpu.params.device.type == "cuda" and on_gpu.posterior.locs.device.type == "cuda"
        assert torch.equal(on_gpu.params.locs.cpu(), result.params.locs)
        assert torch.equal(on_gpu.predict(X.cuda()).cpu(), result.predict(X))
    else:
        with pytest.raises(ValueError, match=r"cannot load onto device 'cuda'"):
            load(path, device="cuda")


def test_fit_result_save_and_package_level_load(tmp_path):
    result, X = fitted("tied")
    result.save(tmp_path / "tied.pt")
    assert_same_result(mixtures.load(tmp_path / "tied.pt"), result, X)
    assert mixtures.load is load


def bayesian(covariance_type="full"):
    """An EM result dressed as a Bayesian one: a model with a prior and a Posterior of 4 draws."""
    result, X = fitted(covariance_type)
    prior = GaussianPrior(weight_prior="dirichlet_process", weight_concentration=0.5,
                          mean_prior=np.array([0.0, 1.0]), degrees_of_freedom=3.0, kind="conjugate")
    params = result.params
    generator = torch.Generator().manual_seed(0)
    jitter = 1 + 0.01 * torch.rand(4, 1, generator=generator, dtype=torch.float64)
    weights = params.weights * jitter
    draws = MixtureParams.from_native(weights / weights.sum(-1, keepdim=True),
                                      params.locs + 0.01 * torch.randn(4, 3, 2, generator=generator,
                                                                       dtype=torch.float64),
                                      params.native.expand(4, *params.native.shape).clone(),
                                      params.cov_type, validate=False)
    posterior = Posterior(draws, kind="variational", distribution={"concentration": torch.ones(3)},
                          diagnostics={"r_hat": torch.ones(3), "note": object()})
    model = mixtures.GaussianMixture(3, covariance_type, prior=prior)
    return dataclasses.replace(result, model=model, posterior=posterior), X


def test_round_trip_with_prior_and_posterior(tmp_path):
    result, X = bayesian("diag")
    with pytest.warns(UserWarning, match=r"posterior fields \['diagnostics'\]"):
        save_result(result, tmp_path / "bayes.pt")
    loaded = load(tmp_path / "bayes.pt")
    assert_same_result(loaded, result, X)
    prior = loaded.model.prior
    assert isinstance(prior, GaussianPrior)
    assert (prior.weight_prior, prior.weight_concentration, prior.degrees_of_freedom, prior.kind) == \
        ("dirichlet_process", 0.5, 3.0, "conjugate")
    assert torch.equal(prior.mean_prior, torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert prior.mean_precision is None and prior.covariance_prior is None
    posterior = loaded.posterior
    assert isinstance(posterior, Posterior) and posterior.cov_type.name == "diag"
    assert posterior.kind == "variational"
    for name in ("weights", "locs", "native"):
        assert torch.equal(getattr(posterior, name), getattr(result.posterior, name)), name
    assert torch.equal(posterior.distribution["concentration"], torch.ones(3))
    assert posterior.diagnostics.startswith("{'r_hat'")  # held an object: stored as its repr
    assert torch.equal(posterior.predictive_log_prob(X), result.posterior.predictive_log_prob(X))
    assert load_metadata(tmp_path / "bayes.pt")["stringified_posterior"] == ["diagnostics"]


def test_extras_kept_converted_or_stringified(tmp_path):
    result, X = fitted("spherical")
    result.extras.update(
        tensor=torch.arange(4),
        array=np.array([1.5, 2.5]),
        numpy_scalar=np.float64(0.25),
        nested={"a": [1, 2.0, None, "x", (True, torch.ones(2))], 3: {"b": math.nan}},
        function=lambda: 1,
        thing=object(),
        nested_bad={"ok": 1, "bad": {1, 2}},
    )
    with pytest.warns(UserWarning, match=r"\['function', 'thing', 'nested_bad'\]"):
        save_result(result, tmp_path / "extras.pt")
    extras = load(tmp_path / "extras.pt").extras
    assert torch.equal(extras["tensor"], torch.arange(4))
    assert isinstance(extras["array"], torch.Tensor) and extras["array"].tolist() == [1.5, 2.5]
    assert extras["numpy_scalar"] == 0.25 and type(extras["numpy_scalar"]) is float
    assert extras["nested"]["a"][:4] == [1, 2.0, None, "x"]
    flag, ones = extras["nested"]["a"][4]
    assert flag is True and torch.equal(ones, torch.ones(2))
    assert math.isnan(extras["nested"][3]["b"])
    assert extras["function"].startswith("<function") and extras["thing"].startswith("<object")
    assert extras["nested_bad"] == repr({"ok": 1, "bad": {1, 2}})
    metadata = load_metadata(tmp_path / "extras.pt")
    assert metadata["stringified_extras"] == ["function", "thing", "nested_bad"]


def test_metadata_and_config(tmp_path):
    result, _ = fitted()
    config = {"experiment": "bench", "seeds": [0, 1], "lr": 0.05, "weights": torch.tensor([1.0, 2.0])}
    save_result(result, tmp_path / "with_config.pt", config=config)
    metadata = load_metadata(tmp_path / "with_config.pt")
    assert metadata["format"] == "mixtures.FitResult"
    assert metadata["format_version"] == list(FORMAT_VERSION)
    assert metadata["mixtures_version"] == mixtures.__version__
    assert metadata["model"] == {"family": "gaussian", "n_components": 3, "covariance_type": "full", "prior": None}
    assert metadata["method"] == "em" and metadata["stringified_extras"] == []
    assert metadata["stringified_posterior"] == []
    assert metadata["config"]["seeds"] == [0, 1]
    assert torch.equal(metadata["config"]["weights"], config["weights"])
    save_result(result, tmp_path / "without_config.pt")
    assert load_metadata(tmp_path / "without_config.pt")["config"] is None


def test_bad_config_or_result_is_refused_before_writing(tmp_path):
    result, _ = fitted()
    with pytest.raises(TypeError, match=r"config\['paths'\]\[0\] is a PosixPath|config\['paths'\]\[0\]"):
        save_result(result, tmp_path / "bad.pt", config={"paths": [tmp_path]})
    with pytest.raises(TypeError, match="config must be a dict"):
        save_result(result, tmp_path / "bad.pt", config=[1, 2])
    with pytest.raises(TypeError, match="FitResult"):
        save_result(result.params, tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_result(result, tmp_path / "missing_directory" / "fit.pt")
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic(tmp_path, monkeypatch):
    old, X = fitted("diag")
    new, _ = fitted("full")
    path = tmp_path / "fit.pt"
    save_result(old, path)

    def failing_save(obj, stream):  # writes some bytes, then dies mid-way
        stream.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(mixtures.io.torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        save_result(new, path)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["fit.pt"]  # no temporary file left behind
    assert_same_result(load(path), old, X)  # the previous file is intact
    save_result(new, path)  # a successful save replaces it
    assert load(path).model.covariance_type == "full"


@pytest.mark.parametrize("keep", [0.5, 0.1, 10])
def test_truncated_file(tmp_path, keep):
    result, _ = fitted()
    path = save_result(result, tmp_path / "fit.pt")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    with pytest.raises(FormatError, match=r"fit\.pt.*truncated or corrupted"):
        load(path)


def test_corrupted_bytes(tmp_path):
    result, _ = fitted()
    path = save_result(result, tmp_path / "fit.pt")
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"fit\.pt"):
        load(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("weights: [0.5, 0.5]\n")
    with pytest.raises(FormatError, match=r"notes\.txt.*not a readable mixtures result.*not a torch\.save"):
        load(path)


@pytest.mark.parametrize("payload", [torch.randn(3), {"weights": torch.ones(2)}, [1, 2, 3],
                                     {"format": "something.else", "format_version": [1, 0]}])
def test_foreign_torch_file(tmp_path, payload):
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    with pytest.raises(FormatError, match=r"foreign\.pt.*is not a mixtures result file"):
        load(path)
    with pytest.raises(FormatError):
        load_metadata(path)


EXECUTED = []


class _Exploit:
    """Unpickling this would call EXECUTED.append: a stand-in for arbitrary code."""

    def __reduce__(self):
        return (EXECUTED.append, ("code ran",))


def test_pickled_code_is_never_executed(tmp_path):
    path = tmp_path / "exploit.pt"
    torch.save({"format": "mixtures.FitResult", "format_version": [1, 0], "payload": _Exploit()}, path)
    with pytest.raises(FormatError, match=r"exploit\.pt.*objects other than tensors") as caught:
        load(path)
    assert "add_safe_globals" not in str(caught.value)  # no advice to bypass the safety
    assert EXECUTED == []
    with open(tmp_path / "plain.pkl", "wb") as stream:  # a plain pickle, not a torch zip file
        pickle.dump(_Exploit(), stream)
    with pytest.raises(FormatError, match=r"plain\.pkl"):
        load(tmp_path / "plain.pkl")
    assert EXECUTED == []


def rewrite(path, change):
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


def test_newer_major_version_is_refused(tmp_path):
    result, _ = fitted()
    path = save_result(result, tmp_path / "future.pt")
    rewrite(path, lambda state: state.update(format_version=[FORMAT_VERSION[0] + 1, 0],
                                             mixtures_version="9.0"))
    with pytest.raises(FormatError, match=rf"future\.pt.*format version {FORMAT_VERSION[0] + 1}\.0 "
                                          r"\(by mixtures 9\.0\).*Upgrade mixtures"):
        load(path)


def test_newer_minor_version_loads_and_ignores_new_fields(tmp_path):
    result, X = fitted()
    path = save_result(result, tmp_path / "minor.pt")
    rewrite(path, lambda state: state.update(format_version=[FORMAT_VERSION[0], FORMAT_VERSION[1] + 3],
                                             new_field={"anything": torch.zeros(1)}))
    assert_same_result(load(path), result, X)


@pytest.mark.parametrize("change, match", [
    (lambda s: s.pop("params"), "lacks the field 'params'"),
    (lambda s: s["model"].pop("covariance_type"), "lacks the field 'model.covariance_type'"),
    (lambda s: s.update(n_iter="7"), "field 'n_iter' must be int"),
    (lambda s: s.update(converged=1), "field 'converged' must be bool"),
    (lambda s: s.update(format_version="1.0"), "format_version must be"),
    (lambda s: s["model"].update(covariance_type="banana"), "unknown covariance_type 'banana'"),
    (lambda s: s["model"].update(n_components=2), "invalid params"),
    (lambda s: s["params"].update(weights=s["params"]["weights"] * 2), "invalid params.*sum to 1"),
    (lambda s: s["params"].update(locs=s["params"]["locs"].float()), "mixed dtypes"),
    (lambda s: s["init"].update(native=-s["init"]["native"]), "invalid init"),
    (lambda s: s["history"].update(time=torch.zeros(1)), "invalid history"),
    (lambda s: s["history"].update(time=[0.0]), "history column 'time'"),
    (lambda s: s["model"].update(prior={"kind": "magic"}), "invalid model.prior"),
    (lambda s: s["model"].update(prior={"no_such_field": 1}), "invalid model.prior"),
    (lambda s: s.update(posterior={"weights": torch.ones(2, 3) / 3, "locs": torch.zeros(2, 3, 2),
                                   "native": torch.ones(5, 3, 2), "cov_type": "diag", "kind": "mcmc"}),
     "posterior draws must share"),
    (lambda s: s.update(posterior={"weights": torch.ones(2, 3) / 3, "locs": torch.zeros(2, 3, 2),
                                   "native": torch.ones(2, 3, 2), "cov_type": "diag"}),
     "lacks the field 'posterior.kind'"),
])
def test_inconsistent_fields(tmp_path, change, match):
    result, _ = fitted()
    path = save_result(result, tmp_path / "bad.pt")
    rewrite(path, change)
    with pytest.raises(FormatError, match=r"bad\.pt.*" + match):
        load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load(tmp_path / "nothing.pt")


@pytest.mark.parametrize("covariance_type", sorted(set(mixtures.families.gaussian.COVARIANCE_TYPES)
                                                   - set(COVARIANCE_TYPES)))
def test_round_trip_of_the_other_structures(tmp_path, covariance_type):
    # the parametrized round trip above covers the four classic names; this covers the rest
    X = true_params("full").sample(300, seed=1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mixtures.fit(mixtures.GaussianMixture(3, covariance_type), X, method="em", seed=0)
    assert_same_result(load(save_result(result, tmp_path / "fit.pt")), result, X)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_params_state_round_trips_bit_exact_through_json(covariance_type, dtype):
    import json

    from mixtures.io import json_state, params_from_state, params_to_state, state_from_json

    params = true_params(covariance_type, dtype)
    text = json.dumps(json_state(params_to_state(params)))
    again = params_from_state(state_from_json(json.loads(text)))
    assert again.covariance_type == covariance_type and again.dtype == dtype
    for name in ("weights", "locs", "native"):
        assert torch.equal(getattr(again, name), getattr(params, name))


def test_posterior_state_keeps_the_chosen_draws():
    from mixtures.io import posterior_from_state, posterior_to_state

    params = true_params("diag")
    locs = params.locs.expand(5, -1, -1) + torch.arange(5.0)[:, None, None]
    draws = Posterior(MixtureParams.from_native(params.weights.expand(5, -1).clone(), locs,
                                                params.native.expand(5, -1, -1).clone(), params.cov_type,
                                                validate=False), kind="mcmc")
    state = posterior_to_state(draws, torch.tensor([0, 4]))
    again = posterior_from_state(state)
    assert again.n_draws == 2 and torch.equal(again.locs, draws.locs[[0, 4]]) and again.kind == "mcmc"


def test_malformed_json_tensor_is_a_format_error():
    from mixtures.io import FormatError, state_from_json

    with pytest.raises(FormatError, match="malformed tensor"):
        state_from_json({"__tensor__": "float64", "shape": [3], "data": [1.0]}, where="r.json")
