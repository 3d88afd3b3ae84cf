"""The CLI contract, through real subprocesses: exit codes first, then what is written where."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from grader.report.schema import report_json_schema
from tests.conftest import FIXTURES, ROOT, SUBMISSIONS, cli_env, copy_toy_exercise

GRADER = [sys.executable, "-m", "grader"]


def run(cache_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GRADER, *args], capture_output=True, text=True, env=cli_env(cache_dir, **env), timeout=300, cwd=ROOT
    )


def test_passing_submission_exits_0_with_valid_json(cache_dir: Path) -> None:
    result = run(cache_dir, "grade", str(SUBMISSIONS / "correct.py"), "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    jsonschema.validate(report, report_json_schema())
    assert report["status"] == "passed"
    assert report["score"] == report["max_score"] == 22
    for key in ("schema_version", "exercise", "submission", "status", "cases", "diagnoses", "message", "environment"):
        assert key in report
    for key in ("python", "jax", "jaxlib", "flax", "backend"):
        assert report["environment"][key]
    assert all({"id", "status", "comparison"} <= set(case) for case in report["cases"])


def test_failing_submission_exits_1_and_names_cases(cache_dir: Path) -> None:
    result = run(cache_dir, "grade", str(SUBMISSIONS / "wrong_inverted_flag.py"), "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    jsonschema.validate(report, report_json_schema())
    assert report["status"] == "failed"
    failed = [c for c in report["cases"] if c["status"] == "failed"]
    assert failed and all(c["comparison"]["max_abs_error"] > 0 for c in failed if not c["hidden"])
    assert all(c["comparison"]["max_abs_error"] is None for c in failed if c["hidden"])  # hidden: no numbers
    assert report["diagnoses"][0]["code"] == "deterministic-inverted"
    assert report["diagnoses"][0]["lines"] and report["diagnoses"][0]["evidence"]


def test_ungradable_submission_exits_1_with_status_error(cache_dir: Path) -> None:
    result = run(cache_dir, "grade", str(SUBMISSIONS / "broken_syntax.py"), "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["status"] == "error" and report["diagnoses"][0]["code"] == "syntax-error"


def test_output_file_gets_the_report_and_stdout_stays_empty(cache_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    result = run(cache_dir, "grade", str(SUBMISSIONS / "broken_syntax.py"), "-f", "json", "-o", str(target))
    assert result.returncode == 1
    assert result.stdout == ""
    assert json.loads(target.read_text())["status"] == "error"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grade", "no/such/file.py"], "no such file"),
        (["grade", "/dev/null", "--exercise", "train-eval-dropout"], "not a regular file"),
        (["grade", "submissions/correct.py", "no/such/folder"], "no such file or folder"),
        (["grade", "submissions/*.nothing"], "no Python files"),
        (["grade", "submissions/correct.py", "--exercise", "nope"], "unknown exercise 'nope'"),
        (["grade", "submissions/correct.py", "--format", "xml"], "xml"),
        (["grade"], "Missing argument"),
        (["show", "nope"], "unknown exercise"),
    ],
)
def test_usage_errors_exit_2(cache_dir: Path, args: list[str], message: str) -> None:
    result = run(cache_dir, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_file_without_a_known_entry_point_among_several_exercises_is_a_usage_error(
    cache_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "other.py"
    source.write_text("def unrelated():\n    pass\n")
    roots = f"{ROOT / 'exercises'}:{FIXTURES / 'exercises'}"
    result = run(cache_dir, "grade", str(source), GRADER_EXERCISES=roots)
    assert result.returncode == 2
    assert "defines no known entry point" in result.stderr
    assert "train-eval-dropout (model_train_eval_forward)" in result.stderr and "toy-scale (scale)" in result.stderr


def test_exercise_is_found_from_the_entry_point(cache_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "toy.py"
    source.write_text("import numpy as np\n\ndef scale(factor, x):\n    return (x * np.float32(factor)).astype('f4')\n")
    roots = f"{ROOT / 'exercises'}:{FIXTURES / 'exercises'}"
    result = run(cache_dir, "grade", str(source), "-f", "json", GRADER_EXERCISES=roots)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["exercise"]["id"] == "toy-scale"


def test_malformed_exercise_is_a_grader_fault_exit_3(cache_dir: Path, tmp_path: Path) -> None:
    spec = copy_toy_exercise(tmp_path) / "exercise.toml"
    spec.write_text(spec.read_text().replace("rtol", "rtoll") + "\n[tolerance]\nrtoll = 1\n")
    result = run(cache_dir, "grade", str(SUBMISSIONS / "correct.py"), GRADER_EXERCISES=str(tmp_path / "exercises"))
    assert result.returncode == 3
    assert str(spec) in result.stderr and "tolerance.rtoll" in result.stderr


def test_broken_reference_is_a_grader_fault_exit_3(cache_dir: Path, tmp_path: Path) -> None:
    copy_toy_exercise(tmp_path)
    (tmp_path / "reference" / "toy_scale.py").write_text("def scale(factor, x):\n    raise RuntimeError('bug')\n")
    source = tmp_path / "s.py"
    source.write_text("def scale(factor, x):\n    return x\n")
    result = run(cache_dir, "grade", str(source), GRADER_EXERCISES=str(tmp_path / "exercises"))
    assert result.returncode == 3
    assert "reference" in result.stderr and "RuntimeError: bug" in result.stderr


def test_rich_report_is_plain_when_not_a_terminal(cache_dir: Path) -> None:
    result = run(cache_dir, "grade", str(SUBMISSIONS / "wrong_dropout_key.py"))
    assert result.returncode == 1
    assert "\x1b" not in result.stdout
    assert "dropout-rng-mismatch" in result.stdout and "FAILED" in result.stdout
    assert result.stdout.index("dropout-rng-mismatch") < result.stdout.index("worked-example/train")


def test_color_can_be_forced_and_no_color_is_respected(cache_dir: Path) -> None:
    colored = run(cache_dir, "grade", str(SUBMISSIONS / "broken_syntax.py"), "--color")
    assert "\x1b[" in colored.stdout
    plain = run(cache_dir, "grade", str(SUBMISSIONS / "broken_syntax.py"), NO_COLOR="1")
    assert "\x1b" not in plain.stdout


def test_schema_command_matches_the_committed_schema(cache_dir: Path) -> None:
    result = run(cache_dir, "schema")
    assert result.returncode == 0
    committed = json.loads((ROOT / "docs" / "report.schema.json").read_text())
    assert json.loads(result.stdout) == committed == report_json_schema()


def test_exercises_and_show(cache_dir: Path) -> None:
    listed = run(cache_dir, "exercises", "--format", "json")
    assert listed.returncode == 0
    entry_points = {e["id"]: e["entry_point"] for e in json.loads(listed.stdout)}
    assert set(entry_points) == {p.parent.name for p in (ROOT / "exercises").glob("*/exercise.toml")}
    assert entry_points["train-eval-dropout"] == "model_train_eval_forward(seed, x, train)"
    shown = run(cache_dir, "show", "train-eval-dropout")
    assert shown.returncode == 0
    assert "deterministic" in shown.stdout and "def model_train_eval_forward(seed, x, train)" in shown.stdout
    assert "2 of them hidden" in shown.stdout and "with --seed N, 4 more inputs" in shown.stdout


@pytest.mark.parametrize("exercise_id", sorted(p.parent.name for p in (ROOT / "exercises").glob("*/exercise.toml")))
def test_every_exercise_can_be_shown_started_and_hinted(cache_dir: Path, tmp_path: Path, exercise_id: str) -> None:
    """The learner's first commands work for each bundled exercise: show, start (a starter that parses and names
    the entry point), hint."""
    shown = run(cache_dir, "show", exercise_id)
    assert shown.returncode == 0, shown.stderr
    target = tmp_path / "solution.py"
    started = run(cache_dir, "start", exercise_id, str(target))
    assert started.returncode == 0, started.stderr
    entry = json.loads(run(cache_dir, "exercises", "--format", "json").stdout)
    name = next(e["entry_point"] for e in entry if e["id"] == exercise_id).split("(")[0]
    assert f"def {name}(" in target.read_text(encoding="utf-8")
    compile(target.read_text(encoding="utf-8"), str(target), "exec")
    first, second = run(cache_dir, "hint", exercise_id), run(cache_dir, "hint", exercise_id)
    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout.strip() and first.stdout != second.stdout  # one hint at a time, the next one next


def _commands() -> list[str]:
    from grader.cli.app import app

    return [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands if c.callback]


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help(cache_dir: Path, command: str) -> None:
    result = run(cache_dir, command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


@pytest.mark.parametrize("command", [["exercises"], ["show", "toy-scale"], ["grade", "submissions/correct.py"]])
def test_a_missing_exercise_folder_is_a_usage_error_everywhere(cache_dir: Path, command: list[str]) -> None:
    result = run(cache_dir, *command, GRADER_EXERCISES="/no/such/folder")
    assert result.returncode == 2
    assert "exercise folder not found: /no/such/folder" in result.stderr
    assert "Traceback" not in result.stderr


# --- formats come from the registry; exit codes from one table --------------------------------------------


@pytest.mark.parametrize("command", ["grade", "exercises"])
def test_the_format_choices_are_the_registrys(command: str) -> None:
    import typer.main

    from grader.cli.app import Format, app
    from grader.render.formats import FORMATS

    assert [choice.value for choice in Format] == list(FORMATS)
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    for name in FORMATS:
        args = ["x.py", "--format", name] if command == "grade" else ["--format", name]
        assert click_command.make_context(command, args).params["fmt"] == name


@pytest.mark.parametrize(
    "args", [["--format", "yaml"], ["-f", "XML"], ["--report", "yaml=out.yml"], ["--report", "rich"]], ids=str
)
def test_an_unknown_format_is_a_usage_error_naming_the_known_ones(args: list[str], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from grader.cli.app import app
    from grader.render.formats import FORMATS

    result = CliRunner().invoke(app, ["grade", str(tmp_path / "never-graded.py"), *args])
    assert result.exit_code == 2, result.output
    assert all(name in result.output for name in FORMATS), result.output
    assert not (tmp_path / "never-graded.py").exists() and not list(tmp_path.iterdir())  # nothing written


def test_each_kind_of_grader_error_has_its_exit_code() -> None:
    from grader.cli.exits import EXIT_FAULT, EXIT_OUTPUT, EXIT_USAGE, exit_code_of
    from grader.errors import GraderError, OutputError, ReferenceSolutionError, SandboxError, SpecError, UsageError

    kinds = {
        UsageError("x"): EXIT_USAGE,
        OutputError("f", "full"): EXIT_OUTPUT,
        SpecError("x"): EXIT_FAULT,
        ReferenceSolutionError("x"): EXIT_FAULT,
        SandboxError("x"): EXIT_FAULT,
        GraderError("x"): EXIT_FAULT,
    }
    assert {type(error): exit_code_of(error) for error in kinds} == {type(e): code for e, code in kinds.items()}
    assert (EXIT_USAGE, EXIT_FAULT, EXIT_OUTPUT) == (2, 3, 4)


def test_a_signal_ends_the_block_as_ctrl_c_does_and_its_handler_is_restored() -> None:
    import os
    import signal

    from grader.cli.exits import interrupted_by

    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(KeyboardInterrupt), interrupted_by(signal.SIGUSR1):
        os.kill(os.getpid(), signal.SIGUSR1)  # its handler runs in this thread before the next statement
    assert signal.getsignal(signal.SIGUSR1) == before
