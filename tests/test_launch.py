"""The ``grader`` entry point (``grader/cli/launch.py``): the first look at grade's command line that starts
one file's child before typer loads, the table of options it knows (pinned to the command's), and the
command's use of that child: used where typer parsed the options it was started for, ended otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from grader.cli.app import app
from grader.cli.launch import BATCH_ONLY, FLAGS, VALUE_OPTIONS, Ahead, first_look
from grader.pipeline.headstart import head_start
from tests.conftest import HOSTILE_TIMEOUT_S, ROOT, TOY_EXERCISES, cli_env, isolation_levels

CORRECT = "import numpy as np\n\ndef scale(factor, x):\n    return (np.asarray(x) * np.float32(factor)).astype('f4')\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["a.py"], ("a.py", {}, set())),
        (["a.py", "--format", "json", "-o", "r.json"], ("a.py", {}, set())),
        (["--exercise", "x", "a.py"], ("a.py", {"exercise": "x"}, set())),
        (["-e", "x", "a.py", "--exercise=y"], ("a.py", {"exercise": "y"}, set())),  # the last one counts, as in typer
        (["a.py", "--isolation=process", "--no-cache"], ("a.py", {"isolation": "process"}, {"no_cache"})),
        (
            ["--report", "json=r.json", "--report", "junit=r.xml", "--seed", "3", "--no-color", "a.py"],
            ("a.py", {}, set()),
        ),
        (["--", "-odd-name.py"], ("-odd-name.py", {}, set())),
        (["a.py", "b.py"], None),  # a batch
        ([], None),
        (["a.py", "--gradebook", "g.csv"], None),  # only a batch writes a gradebook
        (["a.py", "--shard=1/2"], None),
        (["a.py", "--help"], None),
        (["a.py", "--exercise"], None),  # a value missing: typer will say
        (["a.py", "-eX"], None),  # a short option run together with its value: not known to the look
        (["a.py", "--no-cache=1"], None),
        (["a.py", "--frobnicate"], None),
    ],
)
def test_the_first_look_reads_one_file_and_the_options_the_head_start_needs(
    args: list[str], expected: tuple[str, dict, set] | None
) -> None:
    look = first_look(args)
    assert (None if look is None else (str(look.path), look.values, set(look.flags))) == expected


def test_the_first_look_knows_each_option_of_grade_as_the_command_defines_it() -> None:
    """A new option of grade, or one renamed, must be taught to the first look (else a grade that names
    it has no head start, or the look misreads its value as the file)."""
    command = typer.main.get_command(app).commands["grade"]  # type: ignore[attr-defined]
    known: set[str] = set()
    for param in command.params:
        names = [*param.opts, *param.secondary_opts]
        if isinstance(param, typer.core.TyperArgument):
            continue
        known.update(names)
        if param.name in ("gradebook", "output_dir", "class_report", "shard"):
            assert set(names) <= BATCH_ONLY, param.name
        elif param.is_flag:
            assert set(names) <= set(FLAGS), param.name
            assert {FLAGS[name] for name in names} <= {"", param.name}, param.name
        else:
            assert set(names) <= set(VALUE_OPTIONS), param.name
            assert {VALUE_OPTIONS[name] for name in names} <= {"", param.name}, param.name
    assert known == set(VALUE_OPTIONS) | set(FLAGS) | BATCH_ONLY
    # what the head start reads: the options grade compares with the ones the child was started for
    assert {v for v in (*VALUE_OPTIONS.values(), *FLAGS.values()) if v} == {"exercise", "isolation", "no_cache"}


DRIVER = textwrap.dedent(
    """
    import atexit, json, sys
    import grader.cli.launch as launch

    started = []
    look_ahead = launch.look_ahead

    def recorded(args):
        ahead = look_ahead(args)
        started.append(ahead)
        return ahead

    def report():
        ahead = started[0] if started else None
        child = None if ahead is None else ahead.child
        print(json.dumps({"started": child is not None, "exit": None if child is None else child.proc.returncode}),
              file=sys.stderr)

    launch.look_ahead = recorded
    atexit.register(report)
    sys.argv = ["grader", *sys.argv[1:]]
    launch.main()
    """
)


def _grade_through_the_launcher(tmp_path: Path, cache_dir: Path, *args: str) -> tuple[int, dict, dict | None]:
    """The command's exit code, what became of the child the first look started, and the JSON report;
    it checks that no run folder is left in the command's temporary folder."""
    temp = tmp_path / "temp"
    temp.mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, "grade", *args],
        capture_output=True,
        text=True,
        env=cli_env(cache_dir, GRADER_EXERCISES=str(TOY_EXERCISES), TMPDIR=str(temp)),
        cwd=tmp_path,
        timeout=120,
    )
    child = json.loads(result.stderr.strip().splitlines()[-1])
    assert sorted(p.name for p in temp.iterdir() if p.name.startswith("grader-")) == []
    return result.returncode, child, json.loads(result.stdout) if result.stdout.strip() else None


@pytest.mark.usefixtures("contained")
@pytest.mark.timeout(HOSTILE_TIMEOUT_S)
@pytest.mark.parametrize("level", isolation_levels())
@pytest.mark.parametrize(
    "spelling",
    [
        ("submission.py", "--format", "json", "--isolation", "{level}"),
        ("--isolation={level}", "-f", "json", "submission.py", "-e", "toy-scale", "--no-color"),
    ],
)
def test_grade_runs_in_the_child_its_command_line_started(
    level: str, spelling: tuple[str, ...], tmp_path: Path, cache_dir: Path
) -> None:
    (tmp_path / "submission.py").write_text(CORRECT, encoding="utf-8")
    args = [arg.replace("{level}", level) for arg in spelling]
    code, child, report = _grade_through_the_launcher(tmp_path, cache_dir, *args)
    assert code == 0 and report is not None and report["status"] == "passed"
    assert report["environment"]["isolation"] == level
    assert child == {"started": True, "exit": 0}  # it ran the cases to the end (one ended unused is killed)


@pytest.mark.usefixtures("contained")
@pytest.mark.timeout(HOSTILE_TIMEOUT_S)
def test_a_usage_error_ends_the_child_the_first_look_started(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "submission.py").write_text(CORRECT, encoding="utf-8")
    code, child, _ = _grade_through_the_launcher(
        tmp_path, cache_dir, "submission.py", "--isolation", "process", "--seed", "not-a-number"
    )
    assert code == 2
    assert child["started"] and child["exit"] is not None and child["exit"] < 0  # started, then killed unused


@pytest.mark.usefixtures("contained")
@pytest.mark.timeout(HOSTILE_TIMEOUT_S)
def test_a_child_started_for_other_options_is_ended_and_the_file_graded_without_it(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADER_EXERCISES", str(TOY_EXERCISES))
    monkeypatch.setenv("GRADER_CACHE_DIR", str(cache_dir))
    path = tmp_path / "submission.py"
    path.write_text(CORRECT, encoding="utf-8")
    child = head_start(path, exercise_id=None, cache_dir=cache_dir, isolation="process", roots=[TOY_EXERCISES])
    assert child is not None
    try:
        # started as if for the file with --no-cache; grade is asked with the cache
        ahead = Ahead(child, (path, None, None, "process"))
        args = ["grade", str(path), "--format", "json", "--isolation", "process"]
        result = CliRunner().invoke(app, args, obj=ahead)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["status"] == "passed"
        assert child.used and child.proc.poll() is not None and child.proc.returncode != 0  # ended unused
    finally:
        child.discard()


def test_python_m_grader_and_the_console_script_start_at_the_launcher() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'grader = "grader.cli.launch:main"' in text
    assert "from grader.cli.launch import main" in (ROOT / "grader" / "__main__.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["a" * 5000, "closed/submission.py"])
def test_a_path_that_cannot_be_looked_at_is_a_usage_error(name: str, tmp_path: Path, cache_dir: Path) -> None:
    """Too long a name, or a folder on the way that cannot be entered: grade says it cannot read the file
    (exit 2), and neither the first look nor grade fails on it."""
    (tmp_path / "closed").mkdir(mode=0o000)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "grader", "grade", name, "--format", "json"],
            capture_output=True,
            text=True,
            env=cli_env(cache_dir, GRADER_EXERCISES=str(TOY_EXERCISES)),
            cwd=tmp_path,
            timeout=120,
        )
    finally:
        (tmp_path / "closed").chmod(0o755)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("grader: ") and "internal error" not in result.stderr
