"""What a config file may be: duplicate keys, alias bombs, deep nesting, endless files, sizes, seeds, 1e-3."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mixtures.experiment.config import ConfigError, load_config, parse_config, parse_yaml
from mixtures.experiment.config.sizes import machine_memory, memory_problem, run_bytes
from mixtures.experiment.config.yamltext import MAX_CONFIG_DEPTH, MAX_CONFIG_VALUES, check_bounds, load_yaml

BASE = """\
data: {name: s4, kind: synthetic, truth: seed004, n: 100}
model: {n_components: 2}
methods: [em]
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def bomb(levels: int, width: int = 10) -> str:
    """YAML whose last anchor expands to ``width ** levels`` values (a few hundred bytes)."""
    lines = ["a0: &a0 [" + ", ".join(["1"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


# -- duplicate keys ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, key, where", [
    (BASE + "model: {n_components: 3}\n", "model", "lines 2 and 4"),
    ("data: {name: s4, kind: synthetic, truth: seed004, n: 100, n: 200}\nmodel: {n_components: 2}\nmethods: [em]\n",
     "n", "line 1, columns"),
    (BASE.replace("methods: [em]", "methods:\n  - name: EM\n    method: em\n    method: kmeans"), "method",
     "lines 5 and 6"),
])
def test_a_key_given_twice_is_refused_naming_it(tmp_path, text, key, where):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert f"the key {key!r} is given twice" in message and where in message, message


def test_a_key_given_twice_in_an_override_value_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="the key 'n_components' is given twice") as caught:
        load_config(write(tmp_path, BASE), overrides=["model={n_components: 2, n_components: 3}"])
    assert caught.value.key == "model"


def test_merge_keys_may_be_overridden():
    raw = parse_yaml("base: &b {n: 1, m: 2}\nother:\n  <<: *b\n  n: 5\n")
    assert raw["other"] == {"n": 5, "m": 2}


# -- alias bombs, depth, endless files -------------------------------------------------------------------
def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    text = BASE + bomb(7)  # 10**7 values from ~500 bytes
    with pytest.raises(ConfigError, match=f"expands to more than {MAX_CONFIG_VALUES:,} values"):
        load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match="expands to more than"):
        load_config(write(tmp_path, text), overrides=["seeds=[1]"])  # OmegaConf would copy every value
    with pytest.raises(ConfigError, match="expands to more than") as caught:
        load_config(write(tmp_path, BASE), overrides=["description=" + "[" + bomb(7).replace("\n", ", ")[:-2] + "]"])
    assert caught.value.key == "description"


def test_a_python_mapping_with_shared_blocks_is_measured_without_expanding_it():
    block: list = [1] * 10
    for _ in range(8):
        block = [block] * 10  # 10**9 values, 90 lists in memory
    with pytest.raises(ConfigError, match="expands to more than"):
        parse_config({"data": block, "model": {"n_components": 2}, "methods": ["em"]})
    assert check_bounds([[1, 2]] * 3, "<x>") == 1 + 3 * 3  # each use of a shared block counts


def test_a_block_that_contains_itself_is_refused():
    with pytest.raises(ConfigError, match="contains itself"):
        load_yaml("a: &a [1, *a]\n", "<x>")


@pytest.mark.parametrize("depth", [MAX_CONFIG_DEPTH + 1, 5000])
def test_deep_nesting_is_a_config_error(tmp_path, depth):
    text = BASE + "description: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(ConfigError, match="nest"):
        load_config(write(tmp_path, text))


def test_only_regular_files_of_bounded_size_are_read(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    if Path("/dev/zero").exists():
        with pytest.raises(ConfigError, match="not a regular file"):
            load_config("/dev/zero")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.yaml")  # opening it would block until a writer came
        with pytest.raises(ConfigError, match="not a regular file"):
            load_config(tmp_path / "fifo.yaml")
    big = tmp_path / "big.yaml"
    with open(big, "wb") as stream:
        stream.truncate(9 * 2**20)  # a sparse 9 MiB file
    with pytest.raises(ConfigError, match="larger than 8 MiB"):
        load_config(big)
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "binary.yaml")


# -- sizes against the machine --------------------------------------------------------------------------
@pytest.mark.parametrize("override, key, cause", [
    ("data.n=10000000000", "data.n", "responsibilities"),
    ("data={name: r, kind: synthetic, truth: random, n: 100, n_features: 100000}", "data.n_features", "covariances"),
    ("sweep={n: [100, 10000000000]}", "sweep.n", "responsibilities"),
])
def test_data_larger_than_the_machine_is_refused_when_the_config_loads(tmp_path, override, key, cause):
    if machine_memory() is None:
        pytest.skip("the platform does not report its memory")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE), overrides=[override])
    assert caught.value.key == key and f"most of it for {cause}" in caught.value.problem, str(caught.value)
    assert "more than this machine's" in caught.value.problem


def test_the_memory_estimate_adds_its_parts_and_names_the_largest():
    sizes = run_bytes(n=1000, n_test=0, n_features=2, n_components=3, kl_samples=100)
    assert sizes == {"points": 2 * 1000 * 3 * 8, "covariances": 4 * 3 * 4 * 8, "responsibilities": 4 * 1000 * 3 * 8,
                     "kl": 3 * 100 * 5 * 8}
    keys = dict.fromkeys(sizes, "k")
    details = dict.fromkeys(sizes, "d")
    assert memory_problem(sizes, keys, details, memory=sum(sizes.values())) is None
    found = memory_problem(sizes, {**keys, "responsibilities": "data.n"}, details, memory=sum(sizes.values()) - 1)
    assert found[0] == "data.n" and "responsibilities" in found[1]


@pytest.mark.parametrize("override, key, fragment", [
    ("metrics.kl_samples=10000000000", "metrics.kl_samples", "from 10 to 100000000"),
    ("metrics.kl_samples=1e10", "metrics.kl_samples", "from 10 to 100000000"),
    ("seeds=[18446744073709551616]", "seeds[0]", "from 0 to 18446744073709551615"),
    ("data.seed=18446744073709551616", "data.seed", "from 0 to 18446744073709551615"),
])
def test_numbers_beyond_what_the_run_can_use_are_refused(tmp_path, override, key, fragment):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE), overrides=[override])
    assert caught.value.key == key and fragment in caught.value.problem, str(caught.value)


def test_the_largest_seed_is_accepted_and_whole_numbers_written_1e4_are_integers(tmp_path):
    config = load_config(write(tmp_path, BASE), overrides=["seeds=[18446744073709551615]", "metrics.kl_samples=1e4",
                                                           "data.n=1.0e2"])
    assert config.seeds == (2**64 - 1,) and config.metrics.kl_samples == 10000 and config.data[0].n == 100
    with pytest.raises(ConfigError, match="got 2.5"):
        load_config(write(tmp_path, BASE), overrides=["data.n=2.5"])


# -- truths written 1e-3 ------------------------------------------------------------------------------
GIVEN = """\
data:
  name: g
  kind: synthetic
  truth: given
  n: 100
  weights: [1e-3, 0.999]
  means: [[0, 0], [3e0, 3]]
  covariances: [[[1, 0], [0, 1]], [[1, 0], [0, 1e-1]]]
model: {n_components: 2}
methods: [em]
"""


def test_a_truth_written_1e_3_is_the_number_it_means(tmp_path):
    config = load_config(write(tmp_path, GIVEN))
    data = config.data[0]
    assert data.weights == [0.001, 0.999] and data.means == [[0.0, 0.0], [3.0, 3.0]]
    assert data.covariances[1][1][1] == pytest.approx(0.1, rel=1e-15)


def test_a_truth_entry_that_is_not_a_number_is_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GIVEN.replace("[1e-3, 0.999]", "[abc, 0.999]")))
    assert caught.value.key == "data.weights[0]" and "must be a finite number; got 'abc'" in caught.value.problem
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GIVEN.replace("[1e-3, 0.999]", "0.5")))
    assert caught.value.key == "data.weights" and "must be a list of numbers" in caught.value.problem


def test_a_data_file_path_that_is_a_directory_is_refused(tmp_path):
    (tmp_path / "points").mkdir()
    text = BASE.replace("{name: s4, kind: synthetic, truth: seed004, n: 100}", "{kind: file, path: points}")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert caught.value.key == "data.path" and "is a directory" in caught.value.problem
