"""Config loading: YAML -> validated dataclasses, overrides, smoke blocks, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import mixtures
from mixtures.experiment.config import (
    COVARIANCE_TYPES,
    SELECTION_DEFAULTS,
    Config,
    ConfigError,
    apply_overrides,
    canonical_key,
    load_config,
    parse_config,
)
from mixtures.inference import ROUTINES

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHIPPED = ("em_vs_vi", "init", "sample_size", "model_selection", "separation", "bayes", "online")
SHIPPED += ("mclust", "robust", "robust_nuts", "missing")

BASE = """\
# What this config asks.
data:
  - {name: faithful, kind: old_faithful}
  - {name: s4, kind: synthetic, truth: seed004, n: 100}
model: {n_components: 2, covariance_type: full}
methods:
  - {name: EM, method: em, options: {max_iter: 50}}
  - {name: hard, method: hard_em}
  - {name: km, method: kmeans}
inits: [kmeans]
seeds: [0, 1]
smoke:
  data: {n: 30}
  seeds: [0]
  options: {em: {max_iter: 3}}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def needs_routines(config_name: str) -> None:
    text = (CONFIGS / f"{config_name}.yaml").read_text()
    for routine in ("map", "svi"):
        if f"method: {routine}" in text and routine not in ROUTINES:
            pytest.skip(f"routine {routine!r} is not registered yet (mixtures/inference/{routine}.py)")


# -- shipped configs -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_with_and_without_smoke(name):
    needs_routines(name)
    config = load_config(CONFIGS / f"{name}.yaml")
    smoke = load_config(CONFIGS / f"{name}.yaml", smoke=True)
    assert isinstance(config, Config) and smoke.smoke_applied and not config.smoke_applied
    assert config.header, "every shipped config starts with a comment saying the question it answers"
    assert "?" in config.header
    # smoke runs are smaller in every dimension that costs time
    assert len(smoke.seeds) <= len(config.seeds)
    for full, small in zip(config.data, smoke.data):
        if full.synthetic:
            assert small.n <= full.n and small.n_test <= full.n_test
    assert smoke.metrics.kl_samples <= config.metrics.kl_samples


def test_main_config_compares_all_five_routines_on_two_datasets():
    needs_routines("em_vs_vi")
    config = load_config(CONFIGS / "em_vs_vi.yaml")
    assert [m.method for m in config.methods] == ["em", "hard_em", "kmeans", "map", "svi"]
    assert [(d.kind, d.truth) for d in config.data] == [("old_faithful", None), ("synthetic", "seed004")]


def test_bayes_config_holds_point_estimates_and_posteriors():
    config = load_config(CONFIGS / "bayes.yaml")
    methods = {m.name: m for m in config.methods}
    assert [(m.method, m.prior) for m in config.methods] == [
        ("em", None), ("em", {}), ("vb", {}), ("svi", {}), ("nuts", {}),
        ("vb", {"weight_prior": "dirichlet_process", "weight_concentration": 0.1})]
    assert methods["SVI"].options["guide"] == "mvn"
    assert methods["DP-VB"].n_components == 6 and methods["DP-VB"].datasets is None
    assert methods["NUTS"].datasets == ("old_faithful", "seed004")
    assert [d.name for d in config.data] == ["old_faithful", "seed004", "seed003"]


def test_online_config_compares_stepwise_em_online_vb_minibatch_svi_and_em():
    config = load_config(CONFIGS / "online.yaml")
    assert [m.method for m in config.methods] == ["em", "stepwise_em", "online_vb", "svi"]
    svi = config.methods[3].options
    assert (svi["subsample_size"], svi["local_guide"], svi["guide"]) == (256, "enumerate", "delta")
    for online in config.methods[1:3]:  # the same minibatches and step sizes
        assert online.options["batch_size"] == 256 and online.options["kappa"] == 0.6
    assert config.methods[2].prior == {}
    assert config.data[0].n >= 50_000 and config.model.n_components == 5
    assert "passes" in config.output.figures


PRIOR_BASE = """\
data:
  - {name: s4, kind: synthetic, truth: seed004, n: 60}
  - {name: faithful, kind: old_faithful}
model: {n_components: 2}
methods:
  - {name: EM, method: em}
  - {name: VB, method: vb, prior: {}}
"""


def test_method_prior_k_and_datasets_are_read_and_round_trip(tmp_path):
    text = PRIOR_BASE + """\
  - name: DP
    method: vb
    n_components: 5
    datasets: [s4]
    prior: {weight_prior: dirichlet_process, weight_concentration: 1e-1, mean_precision: 2,
            covariance_prior: [[1, 0], [0, 1]], mean_prior: [0, 0]}
"""
    config = load_config(write(tmp_path, text))
    em, vb, dp = config.methods
    assert em.prior is None and vb.prior == {} and vb.gaussian_prior() == mixtures.GaussianPrior()
    assert dp.prior == {"weight_prior": "dirichlet_process", "weight_concentration": 0.1,
                        "mean_precision": 2.0, "covariance_prior": [[1.0, 0.0], [0.0, 1.0]],
                        "mean_prior": [0.0, 0.0]}
    assert isinstance(dp.prior["weight_concentration"], float)  # "1e-1" is text to YAML 1.1
    assert dp.n_components == 5 and dp.datasets == ("s4",)
    assert dp.applies_to("s4") and not dp.applies_to("faithful") and em.applies_to("faithful")
    assert dp.gaussian_prior().weight_prior == "dirichlet_process"
    again = parse_config(yaml.safe_load(config.to_yaml()), source="resolved")
    assert again.to_dict() == config.to_dict() and again.methods == config.methods
    overridden = load_config(write(tmp_path, text), overrides=["methods[1].prior.mean_precision=0.5"])
    assert overridden.methods[1].prior == {"mean_precision": 0.5}


PRIOR_ERRORS = {
    "unknown prior key": (
        "prior: {}}", "prior: {weight_concentraton: 0.1}}", "methods[1].prior.weight_concentraton",
        ["did you mean 'weight_concentration'", "weight_prior, weight_concentration"]),
    "bad weight prior": (
        "prior: {}}", "prior: {weight_prior: dirichlet_proces}}", "methods[1].prior.weight_prior",
        ["did you mean 'dirichlet_process'", "dirichlet, dirichlet_process"]),
    "negative mean precision": (
        "prior: {}}", "prior: {mean_precision: -1}}", "methods[1].prior.mean_precision",
        ["-1", "numbers > 0"]),
    "prior is not a mapping": (
        "prior: {}}", "prior: dirichlet}", "methods[1].prior", ["must be a mapping", "weight_prior"]),
    "bad matrix entry": (
        "prior: {}}", "prior: {covariance_prior: [[1, 0], [0, x]]}}",
        "methods[1].prior.covariance_prior[1][1]", ["'x'", "finite numbers"]),
    "vb without a prior": (
        "{name: VB, method: vb, prior: {}}", "{name: VB, method: vb}", "methods[1].prior",
        ["'vb' is Bayesian and needs a prior", "prior: {}"]),
    "distributional guide without a prior": (
        "{name: VB, method: vb, prior: {}}", "{name: S, method: svi, options: {guide: mvn}}",
        "methods[1].prior", ["guide 'mvn' approximates a posterior", "guide: delta"]),
    "prior on a routine without one": (
        "{name: VB, method: vb, prior: {}}", "{name: K, method: kmeans, prior: {}}", "methods[1].prior",
        ["'kmeans' fits no prior", "stepwise_em"]),
    "nonconjugate prior for em": (
        "{name: VB, method: vb, prior: {}}", "{name: M, method: em, prior: {kind: nonconjugate}}",
        "methods[1].prior.kind", ["needs a conjugate prior", "kind: conjugate"]),
    "unknown dataset": (
        "prior: {}}", "prior: {}, datasets: [faithfull]}", "methods[1].datasets[0]",
        ["no dataset is named 'faithfull'", "did you mean 'faithful'", "s4, faithful"]),
    "method K below 1": (
        "prior: {}}", "prior: {}, n_components: 0}", "methods[1].n_components", ["integers >= 1"]),
}


@pytest.mark.parametrize("case", sorted(PRIOR_ERRORS))
def test_prior_errors_name_file_key_and_allowed_values(tmp_path, case):
    old, new, key, fragments = PRIOR_ERRORS[case]
    assert old in PRIOR_BASE
    path = write(tmp_path, PRIOR_BASE.replace(old, new, 1), "priors.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert caught.value.key == key, message
    assert f"{path}: {key}:" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_method_k_conflicts_with_a_k_sweep_and_counts_for_n(tmp_path):
    text = PRIOR_BASE.replace("prior: {}}", "prior: {}, n_components: 3}")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text + "sweep: {n_components: [1, 2]}\n"))
    assert caught.value.key == "methods[1].n_components" and "sweep.n_components" in str(caught.value)
    with pytest.raises(ConfigError) as caught:  # 60 points, but a method fits K = 70
        load_config(write(tmp_path, PRIOR_BASE.replace("prior: {}}", "prior: {}, n_components: 70}")))
    assert caught.value.key == "data[0].n" and "70 components" in str(caught.value)
    with pytest.raises(ConfigError) as caught:  # a dataset no method runs on
        load_config(write(tmp_path, PRIOR_BASE.replace("{name: EM, method: em}",
                                                       "{name: EM, method: em, datasets: [s4]}")
                          .replace("prior: {}}", "prior: {}, datasets: [s4]}")))
    assert caught.value.key == "methods" and "'faithful'" in str(caught.value)


def test_resolved_yaml_round_trips(tmp_path):
    config = load_config(write(tmp_path, BASE), overrides=["sweep.n=[50, 100]"])
    again = parse_config(yaml.safe_load(config.to_yaml()), source="resolved")
    assert again.to_dict() == config.to_dict()
    assert config.to_yaml().startswith("# resolved from")


# -- values, defaults, overrides, smoke --------------------------------------------------------------
def test_defaults_and_types(tmp_path):
    config = load_config(write(tmp_path, BASE))
    faithful, s4 = config.data
    assert faithful.kind == "old_faithful" and faithful.n is None
    assert (s4.truth, s4.n, s4.n_test, s4.seed, s4.resample) == ("seed004", 100, 2000, 0, False)
    assert config.model.reg_covar == 1e-6
    assert [m.name for m in config.methods] == ["EM", "hard", "km"]
    assert config.methods[0].options == {"max_iter": 50}
    assert config.seeds == (0, 1) and config.inits == ("kmeans",)
    assert config.header == "What this config asks."


def test_overrides_use_dotted_paths_and_yaml_values(tmp_path):
    config = load_config(write(tmp_path, BASE), overrides=[
        "model.n_components=3", "seeds=[0,1,5]", "methods[0].options.tol=1e-3", "data[1].n=250",
        "model.covariance_type=diag", "output.formats=[png, pdf]"])
    assert config.model.n_components == 3 and config.model.covariance_type == "diag"
    assert config.seeds == (0, 1, 5)
    assert config.methods[0].options == {"max_iter": 50, "tol": 1e-3}  # "1e-3" is text to YAML 1.1
    assert isinstance(config.methods[0].options["tol"], float)
    assert config.data[1].n == 250
    assert config.output.formats == ("png", "pdf")
    assert config.overrides[0] == "model.n_components=3"


def test_smoke_block_merges_over_the_config(tmp_path):
    config = load_config(write(tmp_path, BASE), smoke=True)
    assert config.data[0].kind == "old_faithful"          # real data keeps its size
    assert config.data[1].n == 30                         # synthetic data shrinks
    assert config.seeds == (0,)
    assert config.methods[0].options == {"max_iter": 3}   # merged into the em method only
    assert config.methods[1].options == {}


def test_sweep_expands_methods_by_routine_name(tmp_path):
    text = BASE + "sweep: {method: [EM, kmedians], n: [40, 80]}\n"
    config = load_config(write(tmp_path, text))
    assert config.sweep == {"method": ("EM", "kmedians"), "n": (40, 80)}
    assert config.methods[-1].name == "kmedians" and config.methods[-1].method == "kmedians"


def test_overrides_are_applied_by_omegaconf():
    raw = {"methods": [{"method": "em"}], "sweep": None}
    # brackets and dotted indices, missing mappings created on the way (also under a null)
    applied = apply_overrides(raw, ["methods[0].options.max_iter=7", "methods.0.options.tol=1e-8",
                                    "sweep.n=[10, 20]", "description=${not.resolved}"])
    assert raw == {"methods": [{"method": "em", "options": {"max_iter": 7, "tol": "1e-8"}}],
                   "sweep": {"n": [10, 20]}, "description": "${not.resolved}"}
    assert list(applied) == ["methods[0].options.max_iter", "methods[0].options.tol", "sweep.n", "description"]
    assert canonical_key("data.1.n") == "data[1].n" and canonical_key("methods[2].lr") == "methods[2].lr"
    # a mapping value replaces the mapping (no merge), as in the file
    raw = {"model": {"n_components": 2, "covariance_type": "diag"}}
    apply_overrides(raw, ["model={n_components: 3}"])
    assert raw == {"model": {"n_components": 3}}
    assert apply_overrides(raw, []) == {} and raw == {"model": {"n_components": 3}}


@pytest.mark.parametrize("override, key, fragments", [
    ("methods.7.lr=1", "methods[7]", ["list of 3", "0..2"]),
    ("seeds.x=1", "seeds.x", ["cannot be applied", "an index only where there is a list"]),
    ("methods[x].lr=1", "methods[x].lr", ["cannot be applied", "methods[1].options.lr"]),
    ("model..k=1", "model..k", ["cannot read the key path", "methods[1].options.lr"]),
    ("seeds=[0, 1", "seeds", ["not valid YAML"]),
])
def test_override_errors_name_the_key_and_the_allowed_form(tmp_path, override, key, fragments):
    path = write(tmp_path, BASE, "base.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides=[override])
    message = str(caught.value)
    assert caught.value.key == key and f"{path}: {key}:" in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_an_override_that_sets_a_bad_value_is_named_in_dotted_index_form(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE), overrides=["methods.0.options.lr=-1"])
    assert caught.value.key == "methods[0].options.lr"
    assert "set by the command-line override 'methods.0.options.lr=-1'" in str(caught.value)


def test_model_selection_config_uses_the_selection_defaults():
    """``mixtures select`` and configs/model_selection.yaml fit the same models (one set of defaults)."""
    config = load_config(CONFIGS / "model_selection.yaml")
    (method,) = config.methods
    assert method.method == SELECTION_DEFAULTS["method"]
    assert method.options == {"max_iter": SELECTION_DEFAULTS["max_iter"], "rtol": SELECTION_DEFAULTS["rtol"]}
    assert SELECTION_DEFAULTS["tol"] is None
    assert config.inits == (SELECTION_DEFAULTS["init"],)
    assert config.seeds == tuple(range(SELECTION_DEFAULTS["n_init"]))
    assert config.sweep["n_components"] == tuple(range(1, SELECTION_DEFAULTS["k_max"] + 1))
    assert config.sweep["covariance_type"] == tuple(SELECTION_DEFAULTS["covariance_types"])
    assert config.model.reg_covar == 1e-6


def test_random_truth_and_given_truth(tmp_path):
    text = """\
data:
  - {name: r, kind: synthetic, truth: random, n: 50, separation: 1.5, imbalance: 2}
  - name: g
    kind: synthetic
    truth: given
    n: 40
    weights: [0.5, 0.5]
    means: [[0, 0], [3, 3]]
    covariances: [[[1, 0], [0, 1]], [[1, 0.2], [0.2, 1]]]
model: {n_components: 2}
methods: [em]
"""
    config = load_config(write(tmp_path, text))
    r, g = config.data
    assert (r.n_components, r.n_features, r.separation, r.imbalance, r.covariance_type) == \
        (None, 2, 1.5, 2.0, "full")
    assert g.weights == [0.5, 0.5] and g.covariances[1] == [[1.0, 0.2], [0.2, 1.0]]


# -- errors: file, key path, allowed values -------------------------------------------------------------
ERROR_CASES = {
    "unknown top-level key": (
        BASE.replace("seeds: [0, 1]", "sedes: [0, 1]"), [], "sedes",
        ["did you mean 'seeds'", "Allowed:", "seeds"]),
    "unknown nested key": (
        BASE.replace("{n_components: 2, covariance_type: full}", "{n_components: 2, covariance: full}"),
        [], "model.covariance",
        ["did you mean 'covariance_type'", "n_components, covariance_type, reg_covar"]),
    "bad covariance type": (
        BASE, ["model.covariance_type=ful"], "model.covariance_type",
        ["'ful'", "did you mean 'full'", ", ".join(COVARIANCE_TYPES)]),
    "negative n": (
        BASE.replace("n: 100", "n: -5"), [], "data[1].n", ["-5", "integers >= 2"]),
    "unknown method": (
        BASE.replace("method: hard_em", "method: hardem"), [], "methods[1].method",
        ["'hardem'", "did you mean 'hard_em'", "kmeans"]),
    "negative learning rate": (
        BASE.replace("method: kmeans}", "method: map}"), ["methods[2].options.lr=-0.1"], "methods[2].options.lr",
        ["-0.1", "numbers > 0"]),
    "option the routine does not have": (  # em has no learning rate: saying lr must be > 0 would mislead
        BASE, ["methods[0].options.lr=0.1"], "methods[0].options.lr",
        ["routine 'em' has no option 'lr'", "max_iter, tol"]),
    "option of the wrong type": (
        BASE, ["methods[0].options.max_iter=many"], "methods[0].options.max_iter", ["'many'", "integers >= 0"]),
    "unknown init": (
        BASE.replace("inits: [kmeans]", "inits: [kmeans, kmeans+]"), [], "inits[1]",
        ["'kmeans+'", "random_from_data"]),
    "key not for this data kind": (
        BASE.replace("{name: faithful, kind: old_faithful}", "{name: faithful, kind: old_faithful, n: 10}"),
        [], "data[0].n", ["does not apply to kind 'old_faithful'", "Allowed: name, kind"]),
    "sweep key with no dataset using it": (
        BASE + "sweep: {separation: [1, 2]}\n", [], "sweep.separation", ["truth: random"]),
    "unknown sweep key": (
        BASE + "sweep: {sample_size: [1, 2]}\n", [], "sweep.sample_size", ["n, n_components"]),
    "fewer points than components": (
        BASE, ["model.n_components=500"], "data[1].n", ["fewer than the model's 500 components"]),
    "pdf without png": (
        BASE + "output: {formats: [pdf]}\n", [], "output.formats", ["[png] or [png, pdf]"]),
    "bad smoke block": (
        BASE.replace("seeds: [0]\n  options", "seed: [0]\n  options"), [], "smoke.seed",
        ["did you mean 'seeds'"]),
    "smoke options for an unknown routine": (
        BASE.replace("options: {em: {max_iter: 3}}", "options: {emm: {max_iter: 3}}"), [],
        "smoke.options.emm", ["did you mean 'em'"]),
    "override index past the end": (
        BASE, ["methods[7].options.lr=1"], "methods[7]", ["list of 3", "0..2"]),
    "missing data file": (
        BASE.replace("{name: faithful, kind: old_faithful}", "{kind: file, path: nowhere.csv}"),
        [], "data[0].path", ["'nowhere.csv' not found"]),
    "duplicate seeds": (
        BASE.replace("seeds: [0, 1]", "seeds: [0, 0]"), [], "seeds", ["twice", "distinct"]),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_name_file_key_and_allowed_values(tmp_path, case):
    text, overrides, key, fragments = ERROR_CASES[case]
    path = write(tmp_path, text, "broken.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides=overrides)
    error = caught.value
    message = str(error)
    assert isinstance(error, ValueError)
    assert str(path) in message and error.file == str(path)
    assert error.key == key, message
    assert f"{path}: {key}:" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    if overrides and overrides[0].startswith(key + "="):
        assert f"set by the command-line override {overrides[0]!r}" in message


def test_bad_yaml_syntax_names_the_line(tmp_path):
    path = write(tmp_path, "model: {n_components: 2\nmethods: [em]\n", "syntax.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and "invalid YAML at line" in message and "Allowed:" in message


def test_document_must_be_a_mapping_and_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_missing_required_blocks(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "model: {n_components: 2}\nmethods: [em]\n"))
    assert caught.value.key == "data" and "required" in str(caught.value)


def test_unknown_option_of_a_routine_with_an_explicit_signature(tmp_path):
    if "map" not in ROUTINES:
        pytest.skip("routine 'map' is not registered yet")
    path = write(tmp_path, BASE.replace("method: kmeans}", "method: map, options: {num_step: 5}}"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "methods[2].options.num_step"
    assert "did you mean 'num_steps'" in str(caught.value)


@pytest.mark.parametrize("name", ["VEV", "EVE", "VVV", "EII", "tied"])
def test_every_registered_structure_and_mclust_alias_is_a_config_choice(tmp_path, name):
    # the list of structures exists once (the registry): a config takes every one of mclust's fourteen
    config = load_config(write(tmp_path, BASE), overrides=[f"model.covariance_type={name}",
                                                           f"sweep.covariance_type=[full, {name}]"])
    assert config.model.covariance_type == name and config.sweep["covariance_type"] == ("full", name)
    with pytest.raises(ConfigError, match="VEX"):
        load_config(write(tmp_path, BASE), overrides=["model.covariance_type=VEX"])
