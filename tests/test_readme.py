"""The README's code is run or checked, so that what it tells a user to type works.

* Every ```python block compiles, and runs: in README order, in one namespace (the README reads as
  one session: later blocks use the ``X`` of "In five lines"), in a scratch working directory with
  matplotlib's Agg backend. A block the test cannot run says so on the line just above its fence,
  ``<!-- README test: skipped: <reason> -->``; it is reported as a skipped test with that reason.
* Every ``mixtures ...`` command of a ```bash block parses with the command's own argument parser
  (``mixtures.cli.build_parser``), every config and script it names exists, and synopsis lines
  (``[--out DIR]``) name only options of their subcommand. ``mixtures fit old_faithful`` is run.
* The ```yaml ``kind: file`` entry validates and reads a CSV written as pandas writes it (index
  column, header, text labels).
* What the quick start and "In five lines" state checkably: the fit count of ``configs/em_vs_vi.yaml``,
  the shape and dtypes in the comments.

Running the commands themselves is left to the tests that own them (``tests/test_cli.py``,
``tests/test_cli_data.py``, ``tests/experiment/``) and to CI, which runs the install-and-test
command; the notebooks in ``experiments/notebooks`` are run by ``tests/test_notebooks.py``.
"""

from __future__ import annotations

import linecache
import re
import shlex
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from labelled import iris_like, write_iris_csv

from mixtures.cli import build_parser, main
from mixtures.experiment import DataCache, expand_tasks, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_FENCE = re.compile(r"^```(\w*)\s*$")
_SKIP = re.compile(r"^<!-- README test: skipped: (.+?) -->$")


@dataclass(frozen=True)
class Block:
    language: str
    line: int          # 1-based line of the opening fence
    source: str
    skipped: str | None

    def __str__(self) -> str:
        first = self.source.strip().splitlines()[0] if self.source.strip() else ""
        return f"README.md line {self.line} ({first[:60]!r})"


def _blocks(text: str) -> list[Block]:
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = next(j for j in range(index + 1, len(lines)) if lines[j].startswith("```"))
        marker = _SKIP.match(lines[index - 1]) if index else None
        blocks.append(Block(opening.group(1), index + 1, "\n".join(lines[index + 1:end]) + "\n",
                            marker.group(1) if marker else None))
        index = end + 1
    return blocks


BLOCKS = _blocks(README.read_text(encoding="utf-8"))
PYTHON = [block for block in BLOCKS if block.language == "python"]
SKIPPED = [block for block in PYTHON if block.skipped]


def test_the_readme_has_code_to_check():
    assert len(PYTHON) >= 5 and len(PYTHON) - len(SKIPPED) >= 4
    assert any(block.language == "bash" for block in BLOCKS)
    # a marker only ever precedes a fence (a typo would silently run or skip nothing)
    lines = README.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "README test" in line:
            assert _SKIP.match(line) and lines[number + 1].startswith("```python"), f"README.md line {number + 1}"


@pytest.mark.parametrize("block", PYTHON, ids=lambda block: f"line{block.line}")
def test_python_block_compiles(block):
    compile(block.source, str(block), "exec")


def test_python_blocks_run_in_order(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg", force=True)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    dtype = torch.get_default_dtype()
    try:
        for block in PYTHON:
            if block.skipped:
                continue
            name = f"<{block}>"
            linecache.cache[name] = (len(block.source), None, block.source.splitlines(True), name)
            failure = None
            try:
                exec(compile(block.source, name, "exec"), namespace)
            except Exception:
                failure = traceback.format_exc()
            if failure is not None:
                pytest.fail(f"{block} failed:\n{failure}", pytrace=False)
            if "# (272, 2) float64" in block.source:  # "In five lines": later sections reuse the names
                five_lines = dict(namespace)
    finally:
        torch.set_default_dtype(dtype)
    # what the comments of "In five lines" say
    assert tuple(five_lines["X"].shape) == (272, 2) and five_lines["X"].dtype == torch.float64
    assert five_lines["em"].history["log_likelihood"].dtype == torch.float64
    assert five_lines["svi"].history["elbo"].dtype == torch.float64


def test_readme_yaml_data_entry_reads_a_pandas_csv(tmp_path):
    """The ``kind: file`` entry of "Your own data files" validates and reads iris as pandas writes it."""
    (block,) = [block for block in BLOCKS if block.language == "yaml"]
    X, species = iris_like()
    write_iris_csv(tmp_path / "iris.csv", X, species)
    raw = {"name": "readme", **yaml.safe_load(block.source), "model": {"n_components": 3},
           "methods": [{"name": "EM", "method": "em"}]}
    config = parse_config(raw, base_dir=tmp_path)
    (task,) = expand_tasks(config)
    data = DataCache(config.source).get(task)
    assert tuple(data.X.shape) == X.shape and torch.equal(data.X, torch.from_numpy(X))
    assert data.feature_names == ("sepal_length", "sepal_width", "petal_length", "petal_width")
    assert [data.label_names[code] for code in data.labels.tolist()] == species


def test_quick_start_fit_count():
    claimed = re.search(r"\((\d+) fits, about", README.read_text(encoding="utf-8"))
    assert claimed, "the quick start no longer says how many fits configs/em_vs_vi.yaml makes: update this test"
    assert len(expand_tasks(load_config(ROOT / "configs" / "em_vs_vi.yaml"))) == int(claimed.group(1))


@pytest.mark.parametrize("block", SKIPPED, ids=lambda block: f"line{block.line}")
def test_skipped_python_block(block):
    pytest.skip(f"{block}: {block.skipped}")


def _commands() -> list[tuple[Block, list[str]]]:
    """``(block, argv)`` of every ``mixtures`` command in the bash blocks (after ``&&``, comments cut)."""
    found = []
    for block in BLOCKS:
        if block.language != "bash":
            continue
        for line in block.source.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "mixtures":
                    found.append((block, words[1:]))
    return found


COMMANDS = _commands()


def _subcommand_options(name: str) -> set[str]:
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    return {option for action in subparsers.choices[name]._actions for option in action.option_strings}


@pytest.mark.parametrize("argv", [argv for _, argv in COMMANDS], ids=lambda argv: " ".join(argv)[:50])
def test_readme_command_parses(argv):
    synopsis = [word for word in argv if word.startswith("[")]
    if synopsis:  # e.g. run configs/em_vs_vi.yaml [--out DIR] [--jobs N] [key=value ...]
        named = {word.strip("[]") for word in argv if word.lstrip("[").startswith("--")}
        assert named <= _subcommand_options(argv[0]), named - _subcommand_options(argv[0])
    elif argv == ["--help"]:
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(argv)
        assert exit_.value.code == 0
    else:
        build_parser().parse_args(argv)  # argparse exits (code 2) on an unknown option or bad value
    for word in argv:
        if word.startswith("configs/"):
            assert (ROOT / word).is_file(), f"the README names {word}, which does not exist"


def test_readme_commands_cover_each_subcommand():
    assert {argv[0] for _, argv in COMMANDS} >= {"run", "fit", "select", "--help"}


def test_readme_scripts_exist():
    for block in BLOCKS:
        if block.language == "bash":
            for script in re.findall(r"python3? (experiments/\S+\.py)", block.source):
                assert (ROOT / script).is_file(), f"{block} names {script}"


def test_readme_fit_command_runs(capsys):
    argv = next(argv for _, argv in COMMANDS if argv[:2] == ["fit", "old_faithful"])
    assert main(argv) == 0
    assert "log" in capsys.readouterr().out.lower()
