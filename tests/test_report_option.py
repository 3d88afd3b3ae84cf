"""`--report FORMAT=PATH`: one grading written in several formats, equal to what separate runs write; and
the example workflow, which grades once per push with it, checked against GitHub's workflow schema."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, ROOT, cli_env
from tests.test_batch import CORRECT, ZEROS, write_class

GRADER = [sys.executable, "-m", "grader"]
WORKFLOW = ROOT / "examples" / "github-classroom.yml"
TOY = ["--exercise", "toy-scale"]


def run(cache_dir: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env = {"GRADER_EXERCISES": str(FIXTURES / "exercises"), "GITHUB_WORKSPACE": str(cwd), **env}
    return subprocess.run(
        [*GRADER, "grade", *args], capture_output=True, text=True, env=cli_env(cache_dir, **env), timeout=300, cwd=cwd
    )


def _without_times(value: object) -> object:
    """A JSON document less what differs between two gradings of the same file: durations, and the
    environment (the reference cache is missed by the first run only; the uid the child ran as)."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in ("duration_s", "environment")}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _junit_without_times(text: str) -> str:
    text = re.sub(r' time="[0-9.]+"', "", text)
    return re.sub(r'<property name="isolation" value="[^"]*" />', "", text)


@pytest.mark.parametrize("batch", [False, True], ids=["one file", "a batch"])
def test_one_run_writes_each_format_as_separate_runs_do(cache_dir: Path, tmp_path: Path, batch: bool) -> None:
    paths = write_class(tmp_path / "class", {"a": ZEROS, "b": CORRECT} if batch else {"a": ZEROS})
    target = [str(tmp_path / "class")] if batch else [str(paths["a"])]
    summary = tmp_path / "summary.md"
    both = run(
        cache_dir, tmp_path, *target, *TOY, "-f", "github", "--report", "json=out/grader.json",
        "--report", "junit=out/junit.xml", "--report", "rich=out/report.txt", GITHUB_STEP_SUMMARY=str(summary),
    )  # fmt: skip
    assert both.returncode == 1, both.stderr
    alone = {fmt: run(cache_dir, tmp_path, *target, *TOY, "-f", fmt) for fmt in ("github", "json", "junit")}
    assert all(result.returncode == 1 for result in alone.values()), alone
    assert both.stdout == alone["github"].stdout and both.stdout.startswith("::error ")
    written = json.loads((tmp_path / "out" / "grader.json").read_text())
    assert _without_times(written) == _without_times(json.loads(alone["json"].stdout))
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert _junit_without_times(junit) == _junit_without_times(alone["junit"].stdout) and "<failure" in junit
    assert "a/solution.py" in (tmp_path / "out" / "report.txt").read_text()
    once = tmp_path / "once.md"
    run(cache_dir, tmp_path, *target, *TOY, "-f", "github", GITHUB_STEP_SUMMARY=str(once))
    assert summary.read_text().count("\n") == once.read_text().count("\n") > 0  # appended once, not per format


def test_a_report_that_cannot_be_written_exits_4_and_the_others_are_written(cache_dir: Path, tmp_path: Path) -> None:
    paths = write_class(tmp_path / "class", {"a": CORRECT})
    (tmp_path / "taken").mkdir()  # a folder where the JUnit file would go
    result = run(
        cache_dir, tmp_path, str(paths["a"]), *TOY, "-f", "json", "--report", "junit=taken", "--report", "json=r.json"
    )
    assert result.returncode == 4, result.stderr
    assert "grader: cannot write taken: Is a directory" in result.stderr
    assert json.loads(result.stdout)["status"] == "passed"
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "passed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--report", "yaml=out.yml"], "--report takes FORMAT=PATH"),
        (["--report", "junit"], "--report takes FORMAT=PATH"),
        (["--report", "json="], "--report takes FORMAT=PATH"),
        (["--report", "gradescope=results.json", "--gradebook", "g.csv"], "holds one submission"),
    ],
)
def test_a_malformed_report_option_is_a_usage_error(
    cache_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    paths = write_class(tmp_path / "class", {"a": CORRECT})
    result = run(cache_dir, tmp_path, str(paths["a"]), *TOY, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def _grader_commands(workflow: dict) -> list[list[str]]:
    env = {name: str(value) for name, value in workflow["env"].items()}
    lines = [
        step["run"]
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if step.get("run", "").strip().startswith("grader ")
    ]
    commands = []
    for line in lines:
        line = line.replace("${{ github.run_number }}", "7")
        commands.append([word.replace("$SUBMISSION", env["SUBMISSION"]).replace("$EXERCISE", env["EXERCISE"])
                         for word in shlex.split(line)])  # fmt: skip
    return commands


def test_the_workflow_grades_once_and_uploads_what_it_wrote() -> None:
    import typer.main

    from grader.cli.app import app

    workflow = yaml.safe_load(WORKFLOW.read_text())
    (words,) = _grader_commands(workflow)
    params = typer.main.get_command(app).commands["grade"].make_context("grade", words[2:]).params  # type: ignore[attr-defined]
    assert params["fmt"] == "github" and params["output"] is None
    written = [value.partition("=")[2] for value in params["report_options"]]
    assert sorted(value.partition("=")[0] for value in params["report_options"]) == ["json", "junit"]
    steps = workflow["jobs"]["grade"]["steps"]
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"].split() == written
    # setup-python's pip cache needs a requirements file, which a learner's repository does not have.
    assert all("cache" not in step.get("with", {}) for step in steps if "setup-python" in step.get("uses", ""))
    cache = next(step for step in steps if step.get("uses", "").startswith("actions/cache"))
    assert "hashFiles" not in cache["with"]["key"]


def test_the_workflow_validates_against_githubs_schema(tmp_path: Path) -> None:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema (GitHub's vendored workflow schema)")
    check = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    result = subprocess.run([*check, str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"  # the schema can fail: a job without runs-on
    broken.write_text(WORKFLOW.read_text().replace("    runs-on: ubuntu-latest\n", ""))
    result = subprocess.run([*check, str(broken)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
