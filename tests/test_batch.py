"""Batches: many submissions in one ``grader grade``, through real subprocesses on the jax-free toy exercise.

The contract: every submission gets an entry whatever the others do (hang, crash, attack); the gradebook,
the batch JSON and the per-submission reports agree; the exit code follows the documented order; Ctrl-C
keeps what finished.
"""

from __future__ import annotations

import csv
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from lxml import etree

from grader.errors import UsageError
from grader.pipeline.batch import collect_submissions, report_names
from grader.render.batch import render_gradebook
from grader.report.schema import BatchEntry, BatchReport, batch_json_schema
from grader.sandbox.isolation import SANDBOX_GID, SANDBOX_UID, Isolation, choose_isolation, for_slot
from tests.conftest import ROOT, TOY_EXERCISES, cli_env, copy_toy_exercise, isolation_levels
from tests.test_hostile import strong

GRADER = [sys.executable, "-m", "grader"]
CORRECT = (
    "import numpy as np\n\ndef scale(factor, x):\n    return (np.asarray(x) * np.float32(factor)).astype(np.float32)\n"
)
ZEROS = "import numpy as np\n\ndef scale(factor, x):\n    return np.zeros(np.shape(x), np.float32)\n"
HANGS = "def scale(factor, x):\n    while True:\n        pass\n"
CRASHES = "import os, signal\n\ndef scale(factor, x):\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
BROKEN = "def scale(factor, x)\n    return x\n"
# Kills every process it may signal, then grades as correct: the others must not notice.
KILLS_OTHERS = "import os, signal\n\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n" + CORRECT
# Overwrites every other submission it can find, then grades as correct.
OVERWRITES = (
    "import glob, os\n\nfor path in glob.glob(os.path.join({folder!r}, '**', '*.py'), recursive=True):\n"
    "    try:\n        open(path, 'w').write('def scale(factor, x):\\n    return x\\n')\n"
    "    except OSError:\n        pass\n" + CORRECT
)


def run(cache_dir: Path, *args: str, roots: Path = TOY_EXERCISES, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GRADER, "grade", *args],
        capture_output=True,
        text=True,
        env=cli_env(cache_dir, GRADER_EXERCISES=str(roots), **env),
        timeout=600,
        cwd=ROOT,
    )


def write_class(folder: Path, submissions: dict[str, str]) -> dict[str, Path]:
    paths = {}
    for name, source in submissions.items():
        path = folder / name / "solution.py"
        path.parent.mkdir(parents=True)
        path.write_text(source, encoding="utf-8")
        paths[name] = path
    return paths


def gradebook_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return {Path(row["submission"]).parent.name: row for row in csv.DictReader(handle)}


def digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- finding the submissions -------------------------------------------------------------------------


def test_collect_takes_files_folders_and_globs_once_each(tmp_path: Path) -> None:
    for name in ("b/solution.py", "a/solution.py", "a/helper.py", "a/.hidden/x.py", "a/__pycache__/y.py", "c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("", encoding="utf-8")
    found = collect_submissions([str(tmp_path / "a"), str(tmp_path / "*" / "solution.py"), str(tmp_path / "c.txt")])
    names = [str(p.relative_to(tmp_path)) for p in found.files]
    assert not found.linked
    assert names == ["a/helper.py", "a/solution.py", "b/solution.py", "c.txt"]


def test_files_reached_through_links_are_marked(tmp_path: Path) -> None:
    for name in ("class/bob/solution.py", "elsewhere/solution.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "class" / "alice").mkdir()
    (tmp_path / "class" / "alice" / "solution.py").symlink_to(tmp_path / "class" / "bob" / "solution.py")
    (tmp_path / "class" / "eve").symlink_to(tmp_path / "elsewhere")
    by_glob = collect_submissions([str(tmp_path / "class" / "*" / "solution.py")])
    names = {str(p.relative_to(tmp_path / "class")) for p in by_glob.files}
    assert names == {"alice/solution.py", "bob/solution.py", "eve/solution.py"}  # bob keeps his own entry
    assert {str(p.relative_to(tmp_path / "class")) for p in by_glob.linked} == {"alice/solution.py", "eve/solution.py"}
    by_folder = collect_submissions([str(tmp_path / "class")])  # os.walk does not enter the linked folder
    assert {str(p.relative_to(tmp_path / "class")) for p in by_folder.linked} == {"alice/solution.py"}


@pytest.mark.parametrize("pattern", ["missing.py", "empty", "*.nothing"])
def test_collect_refuses_paths_that_name_no_submission(tmp_path: Path, pattern: str) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no such file|no Python files"):
        collect_submissions([str(tmp_path / pattern)])


def test_reports_of_files_with_the_same_name_stay_apart(tmp_path: Path) -> None:
    paths = [tmp_path / "alice" / "solution.py", tmp_path / "bob" / "solution.py"]
    names = report_names(paths)
    assert names[paths[0]] == Path("alice/solution.py") and names[paths[1]] == Path("bob/solution.py")


def test_gradebook_cells_never_become_spreadsheet_formulas() -> None:
    entry = BatchEntry(path="=HYPERLINK(1).py", status="fault", message="-1+1", duration_s=0.1)
    batch = BatchReport(total=1, counts={"fault": 1}, isolation="process", jobs=1, submissions=[entry])
    row = next(csv.DictReader(render_gradebook(batch).splitlines()))
    assert row["submission"] == "'=HYPERLINK(1).py" and row["message"] == "'-1+1"


def test_each_slot_gets_a_uid_of_its_own_where_children_drop_privileges() -> None:
    dropping = Isolation("process", (SANDBOX_UID, SANDBOX_GID))
    first = [for_slot(dropping, n).drop_to for n in range(3)]
    assert first == [(SANDBOX_UID, SANDBOX_GID), (SANDBOX_UID - 1, SANDBOX_GID), (SANDBOX_UID - 2, SANDBOX_GID)]
    same_user = Isolation("process", None)
    assert for_slot(same_user, 5) is same_user


# --- whole batches through the CLI -------------------------------------------------------------------


@pytest.mark.parametrize("level", isolation_levels())
@pytest.mark.usefixtures("contained")
def test_a_mixed_and_hostile_class_gets_a_correct_gradebook(cache_dir: Path, tmp_path: Path, level: str) -> None:
    folder = tmp_path / "class"
    submissions = {
        "ada": CORRECT,
        "bo": ZEROS,
        "cy": HANGS,
        "di": CRASHES,
        "ed": BROKEN,
        "fay": CORRECT,
    }
    if strong(choose_isolation(level)):  # attacks that only another uid or namespaces keep from the others
        submissions |= {"gus": KILLS_OTHERS, "hal": OVERWRITES.format(folder=str(folder))}
    write_class(folder, submissions)
    (folder / "ivy").mkdir()
    (folder / "ivy" / "solution.py").symlink_to(ROOT / "tests" / "fixtures" / "reference" / "toy_scale.py")
    odd = folder / "j\x1b[31m\nk" / "solution.py"  # a name with an escape sequence and a line break
    odd.parent.mkdir()
    odd.write_text(ZEROS, encoding="utf-8")
    before = digest(folder)
    gradebook, reports = tmp_path / "grades.csv", tmp_path / "reports"
    options = [
        "--gradebook",
        str(gradebook),
        "--output-dir",
        str(reports),
        "-f",
        "json",
        "--isolation",
        level,
        "-j",
        "2",
    ]
    result = run(cache_dir, str(folder), *options)

    assert result.returncode == 2, result.stderr  # one was skipped (the link); none was a fault
    assert digest(folder) == before  # no submission changed another
    assert "\x1b" not in result.stdout + result.stderr + gradebook.read_text()
    rows = gradebook_rows(gradebook)
    assert set(rows) == {*submissions, "ivy", "j\\x1b[31m\\nk"}
    status = {name: row["status"] for name, row in rows.items()}
    assert status["ivy"] == "skipped" and "symbolic link" in rows["ivy"]["message"]  # not the reference's grade
    assert status["j\\x1b[31m\\nk"] == "failed"
    assert status["ada"] == status["fay"] == "passed"
    assert status["bo"] == "failed" and rows["bo"]["diagnosis"] == "values-mismatch"
    assert status["cy"] != "passed" and rows["cy"]["diagnosis"] == "timeout"
    # A timeout beside others is checked alone. The progress lines wrap with the paths' length: words only.
    assert "(graded again on its own)" in " ".join(result.stderr.split())
    assert status["di"] != "passed" and rows["di"]["diagnosis"] == "crashed"
    assert status["ed"] == "error" and rows["ed"]["diagnosis"] == "syntax-error"
    if "gus" in submissions:
        assert status["gus"] == status["hal"] == "passed"  # their attacks failed; their answers are right
    assert rows["ada"]["score"] == rows["ada"]["max_score"] == "4"

    batch = json.loads(result.stdout)
    jsonschema.validate(batch, batch_json_schema())
    assert batch["total"] == len(rows) and not batch["interrupted"]
    assert sum(batch["counts"].values()) == len(rows)
    for entry in batch["submissions"]:
        if entry["report"] is None:
            continue
        saved = json.loads(Path(entry["report_file"]).read_text())
        assert saved == entry["report"]  # the per-submission file is that submission's report
        assert Path(entry["report_file"]).is_relative_to(reports)
    assert (reports / "ada" / "solution.py.json").is_file()


def test_exit_code_0_only_when_every_submission_passed(cache_dir: Path, tmp_path: Path) -> None:
    paths = write_class(tmp_path / "class", {"a": CORRECT, "b": CORRECT})
    result = run(cache_dir, *map(str, paths.values()), "--no-color")
    assert result.returncode == 0, result.stderr
    caption = " ".join(result.stdout.split())  # the summary table's caption, wrapped as the table's width says
    assert "2 of 2 graded" in caption and "2 passed" in caption
    assert "[2/2]" in result.stderr  # a progress line per finished submission


def test_a_submission_that_cannot_be_graded_as_given_exits_2(cache_dir: Path, tmp_path: Path) -> None:
    # Two installed exercises share the entry point: without --exercise the grader cannot choose.
    roots = tmp_path / "roots"
    copy_toy_exercise(roots)
    twin = roots / "exercises" / "toy-twin"
    twin.mkdir()
    spec = (roots / "exercises" / "toy-scale" / "exercise.toml").read_text()
    (twin / "exercise.toml").write_text(spec.replace('id = "toy-scale"', 'id = "toy-twin"'))
    (twin / "prompt.md").write_text("Twin.")
    paths = write_class(tmp_path / "class", {"a": CORRECT})
    gradebook = tmp_path / "grades.csv"
    result = run(cache_dir, str(paths["a"]), "--gradebook", str(gradebook), roots=roots / "exercises")
    assert result.returncode == 2, result.stderr
    row = gradebook_rows(gradebook)["a"]
    assert row["status"] == "skipped" and "--exercise" in row["message"]
    chosen = run(cache_dir, str(paths["a"]), "--gradebook", str(gradebook), "-e", "toy-twin", roots=roots / "exercises")
    assert chosen.returncode == 0, chosen.stderr


def test_a_fault_of_the_grader_exits_3_and_the_batch_still_finishes(cache_dir: Path, tmp_path: Path) -> None:
    roots = tmp_path / "roots"
    copy_toy_exercise(roots)
    (roots / "reference" / "toy_scale.py").write_text("def scale(factor, x):\n    raise RuntimeError('broken')\n")
    paths = write_class(tmp_path / "class", {"a": CORRECT, "b": ZEROS})
    gradebook = tmp_path / "grades.csv"
    result = run(cache_dir, str(tmp_path / "class"), "--gradebook", str(gradebook), roots=roots / "exercises")
    assert result.returncode == 3, result.stderr
    rows = gradebook_rows(gradebook)
    assert set(rows) == set(paths) and all(row["status"] == "fault" for row in rows.values())
    assert all("reference" in row["message"] for row in rows.values())


def test_batch_junit_validates_and_holds_a_suite_per_submission(cache_dir: Path, tmp_path: Path) -> None:
    write_class(tmp_path / "class", {"a": CORRECT, "b": ZEROS, "c": BROKEN})
    result = run(cache_dir, str(tmp_path / "class"), "-f", "junit")
    assert result.returncode == 1, result.stderr
    document = etree.fromstring(result.stdout.encode())
    etree.XMLSchema(etree.parse(str(ROOT / "docs" / "formats" / "junit.xsd"))).assertValid(document)
    suites = document.findall("testsuite")
    assert len(suites) == 3
    assert int(document.get("failures")) == sum(int(s.get("failures")) for s in suites) > 0


def test_batch_github_annotates_every_submission_and_sums_up_the_batch(cache_dir: Path, tmp_path: Path) -> None:
    from tests.test_formats import WORKFLOW_COMMAND

    paths = write_class(tmp_path / "class", {"a": CORRECT, "b": ZEROS})
    (tmp_path / "class" / "c").mkdir()
    (tmp_path / "class" / "c" / "solution.py").symlink_to(paths["a"])
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    result = run(cache_dir, str(tmp_path / "class"), "-f", "github", GITHUB_STEP_SUMMARY=str(summary))
    assert result.returncode == 2, result.stderr  # c is a link: skipped
    lines = result.stdout.splitlines()
    assert lines and all(WORKFLOW_COMMAND.match(line) for line in lines)
    assert any("title=grader%3A skipped" in line and "c/solution.py" in line for line in lines)
    assert any(line.startswith("::error") and "b/solution.py" in line for line in lines)
    written = summary.read_text()
    assert written.startswith("before\n") and written.count("| `") == 3  # a row per submission


def test_batch_gradescope_needs_an_output_dir_and_writes_one_results_file_each(cache_dir: Path, tmp_path: Path) -> None:
    write_class(tmp_path / "class", {"a": CORRECT, "b": ZEROS})
    refused = run(cache_dir, str(tmp_path / "class"), "-f", "gradescope")
    assert refused.returncode == 2 and "--output-dir" in refused.stderr
    out = tmp_path / "results"
    result = run(cache_dir, str(tmp_path / "class"), "-f", "gradescope", "--output-dir", str(out))
    assert result.returncode == 1, result.stderr
    schema = json.loads((ROOT / "docs" / "formats" / "gradescope-results.schema.json").read_text())
    scores = {}
    for name in ("a", "b"):
        results = json.loads((out / name / "solution.py.json").read_text())
        jsonschema.validate(results, schema)
        scores[name] = results["score"]
    assert scores == {"a": 4, "b": 0}


def _uids(result: subprocess.CompletedProcess[str]) -> list[str]:
    entries = json.loads(result.stdout)["submissions"]
    return [entry["report"]["output"]["stdout"]["text"].split()[1] for entry in entries]


def test_children_alive_together_run_as_different_users(cache_dir: Path, tmp_path: Path) -> None:
    if choose_isolation().drop_to is None:
        pytest.skip("children keep the grader's own user here (not root)")
    tells_uid = "import os\nprint('uid', os.getuid())\n" + CORRECT
    write_class(tmp_path / "one", {name: tells_uid for name in "abc"})
    # One worker: the child started ahead for the next submission never has the running one's uid.
    result = run(cache_dir, str(tmp_path / "one"), "-f", "json", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    one = _uids(result)
    assert "0" not in one and one[0] != one[1] and one[1] != one[2]
    # Two workers: each has uids of its own.
    write_class(tmp_path / "two", {name: tells_uid for name in "abcd"})
    result = run(cache_dir, str(tmp_path / "two"), "-f", "json", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    uids = _uids(result)
    assert "0" not in uids and len(set(uids)) >= 3  # two running, two started ahead: never one user for all


def test_ctrl_c_stops_the_batch_and_keeps_what_finished(cache_dir: Path, tmp_path: Path) -> None:
    slow = "import time\ntime.sleep(4)\n" + CORRECT
    write_class(tmp_path / "class", {"a": CORRECT, **{f"slow{n}": slow for n in range(4)}})
    gradebook, reports, scratch = tmp_path / "grades.csv", tmp_path / "reports", tmp_path / "tmp"
    scratch.mkdir()
    command = [*GRADER, "grade", str(tmp_path / "class"), "--jobs", "1", "--gradebook", str(gradebook)]
    proc = subprocess.Popen(
        [*command, "--output-dir", str(reports)],
        env=cli_env(cache_dir, GRADER_EXERCISES=str(TOY_EXERCISES), TMPDIR=str(scratch)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    assert proc.stderr is not None
    while time.monotonic() < deadline:  # wait for the first finished submission, then interrupt
        if "[1/5]" in proc.stderr.readline():
            break
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    rows = gradebook_rows(gradebook)
    assert 1 <= len(rows) < 5 and all(row["status"] == "passed" for row in rows.values())
    assert len(list(reports.rglob("*.txt"))) == len(rows)
    assert not [p for p in scratch.iterdir() if p.name.startswith("grader-")]  # children's folders removed


def test_committed_batch_schema_matches_the_command(cache_dir: Path) -> None:
    result = subprocess.run(
        [*GRADER, "schema", "--batch"], capture_output=True, text=True, env=cli_env(cache_dir), check=True
    )
    committed = json.loads((ROOT / "docs" / "batch-report.schema.json").read_text())
    assert json.loads(result.stdout) == committed == batch_json_schema()


def test_the_example_workflow_runs_commands_the_cli_accepts() -> None:
    import shlex

    import typer.main
    import yaml

    from grader.cli.app import app

    workflow = yaml.safe_load((ROOT / "examples" / "github-classroom.yml").read_text())
    env = {name: str(value) for name, value in workflow["env"].items()}
    commands = [
        line
        for job in workflow["jobs"].values()
        for step in job["steps"]
        for line in step.get("run", "").splitlines()
        if line.strip().startswith("grader ")
    ]
    assert len(commands) == 1  # one grading per push writes every format (--report)
    command = typer.main.get_command(app)
    for line in commands:
        line = line.replace("${{ github.run_number }}", "7").removesuffix("|| true")
        words = [
            word.replace("$SUBMISSION", env["SUBMISSION"]).replace("$EXERCISE", env["EXERCISE"])
            for word in shlex.split(line)
        ]
        assert words[1] == "grade"
        parsed = command.commands["grade"].make_context("grade", words[2:])  # type: ignore[attr-defined]
        assert parsed.params["paths"] == [env["SUBMISSION"]] and parsed.params["exercise"] == env["EXERCISE"]


def test_a_report_that_cannot_be_written_keeps_its_grade(cache_dir: Path, tmp_path: Path) -> None:
    write_class(tmp_path / "class", {"a": CORRECT, "b": CORRECT})
    reports, gradebook = tmp_path / "reports", tmp_path / "grades.csv"
    (reports / "a" / "solution.py.json").mkdir(parents=True)  # a folder where a's report would go
    result = run(
        cache_dir, str(tmp_path / "class"), "-f", "json", "--output-dir", str(reports), "--gradebook", str(gradebook)
    )
    assert result.returncode == 4, result.stderr  # graded, but an output could not be written
    assert f"grader: cannot write {reports / 'a' / 'solution.py.json'}: Is a directory" in result.stderr
    rows = gradebook_rows(gradebook)
    assert rows["a"]["status"] == rows["b"]["status"] == "passed"
    assert "report not written" in rows["a"]["message"] and rows["a"]["report_file"] == ""
    assert Path(rows["b"]["report_file"]).is_file()


def test_ctrl_c_also_stops_a_reference_run_under_way(cache_dir: Path, tmp_path: Path) -> None:
    roots = tmp_path / "roots"
    copy_toy_exercise(roots)
    reference = roots / "reference" / "toy_scale.py"
    reference.write_text("import time\ntime.sleep(90)\n" + reference.read_text())  # a slow, cold reference
    write_class(tmp_path / "class", {"a": CORRECT, "b": CORRECT})
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen(
        [*GRADER, "grade", str(tmp_path / "class"), "--jobs", "1", "--no-cache"],
        env=cli_env(tmp_path / "cache", GRADER_EXERCISES=str(roots / "exercises"), TMPDIR=str(scratch)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(scratch.glob("grader-run-*"))) < 2:
        time.sleep(0.1)  # the submission's child and the reference's run both exist
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)  # well before the reference's 90 s sleep would end
    assert proc.returncode == 130, err
    assert not list(scratch.glob("grader-*"))  # every child's folder removed, the batch's cache too
