"""The ``grader`` command: parses the options, calls the library, and ends with the exit code
``grader.cli.exits`` maps the outcome to (the only place that turns exceptions into messages and codes)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from grader.cli.exits import EXIT_INTERRUPTED, EXIT_PASSED, exit_codes, interrupted_by
from grader.errors import GraderError, UsageError
from grader.render.formats import FORMATS, format_help

if TYPE_CHECKING:
    from grader.cli.launch import Ahead

app = typer.Typer(
    name="grader",
    help="Grade JAX/Flax exercise submissions: isolated runs, seeded cases, feedback that names the mistake.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


ExerciseId = Annotated[str, typer.Argument(metavar="ID", help="Exercise id, see `grader exercises`.")]
ExerciseOption = Annotated[
    str | None, typer.Option("--exercise", "-e", help="Exercise id; by default found from the entry point.")
]
SeedOption = Annotated[
    int | None,
    typer.Option(
        "--seed",
        min=0,
        max=2**63 - 1,
        help="Also grade fresh cases that the exercise's generators make from this seed, so that outputs "
        "hard-coded for the fixed cases fail. The same seed always gives the same cases: grade again with it "
        "to reproduce a result (from CI, say).",
    ),
]

# --format's choices: the registry's formats, so that a new renderer is one entry there.
Format = StrEnum("Format", [(name, name) for name in FORMATS])  # type: ignore[misc]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help=format_help())]


class Isolation(StrEnum):
    auto = "auto"
    bwrap = "bwrap"
    process = "process"


def version_line() -> str:
    """``grader 0.1.0 (jax 0.4.35, flax 0.10.2, Python 3.11.7)``: what a bug report needs, without importing jax."""
    import platform

    from grader.pipeline.environment import grader_version, package_version

    found = ", ".join(f"{name} {package_version(name) or 'not installed'}" for name in ("jax", "flax"))
    return f"grader {grader_version()} ({found}, Python {platform.python_version()})"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit(EXIT_PASSED)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the versions of grader, jax, flax, Python."
        ),
    ] = False,
) -> None:
    """Grade JAX/Flax exercise submissions: isolated runs, seeded cases, feedback that names the mistake."""


@app.command()
def grade(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH...",
            help="Submission files, folders (searched for *.py) or glob patterns. One file gets its full "
            "report; several (or a folder, a pattern, --gradebook, --output-dir) are graded as a batch.",
            show_default=False,
        ),
    ],
    exercise: ExerciseOption = None,
    fmt: FormatOption = Format.rich,  # type: ignore[attr-defined]
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to this file.")] = None,
    report_options: Annotated[
        list[str] | None,
        typer.Option(
            "--report",
            metavar="FORMAT=PATH",
            help=f"Also write the report in FORMAT ({', '.join(FORMATS)}) to PATH, from the same grading; "
            "repeat for several.",
        ),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write any cache.")] = False,
    isolation: Annotated[
        Isolation,
        typer.Option("--isolation", help="auto: bwrap where it works, else process (or $GRADER_ISOLATION)."),
    ] = None,  # type: ignore[assignment]
    seed: SeedOption = None,
    color: Annotated[
        bool | None, typer.Option("--color/--no-color", help="Force color on or off (default: on a terminal).")
    ] = None,
    gradebook: Annotated[
        Path | None, typer.Option("--gradebook", help="Batch: write a CSV gradebook, one row per submission.")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            help="Batch: write each submission's report here, in --format (rich: plain text), named after "
            "its path below the folder the submissions share.",
        ),
    ] = None,
    class_report: Annotated[
        Path | None,
        typer.Option(
            "--class-report",
            metavar="FILE.html",
            help="Batch: also write the class report, one HTML page: scores, the diagnoses ranked, each case's "
            "pass rate, each student's report (needs matplotlib: the class-report extra).",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, max=32, help="Batch: submissions graded at once (default: one per core)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Batch, with --gradebook: keep the submissions an earlier run graded (its journal, "
            "GRADEBOOK.journal) whose file, exercise, seed and grader version are unchanged, and grade only "
            "the others: after a batch was killed, or when submissions were added or changed.",
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Batch: grade only shard I of N (counted from 1) of the submissions found, chosen by a hash of "
            "each one's path, so that N machines grade a class between them; then `grader merge`. auto/N takes I "
            "from JOB_COMPLETION_INDEX (Kubernetes Indexed Job, from 0) or SLURM_ARRAY_TASK_ID (Slurm array).",
        ),
    ] = None,
) -> None:
    """Grade submission files and report the verdicts (exit 0 only when every one passed)."""
    from grader.cli.outputs import Targets, parse_reports
    from grader.cli.runs import grade_many, grade_one
    from grader.pipeline.recipe import default_cache_dir
    from grader.pipeline.shard import parse_shard

    # A cancelled CI job (SIGTERM) or a closed terminal ends a grading as Ctrl-C does: its children ended,
    # their folders removed, exit 130 (a batch also keeps what finished).
    with exit_codes(), interrupted_by(signal.SIGTERM, signal.SIGHUP):
        if resume and gradebook is None:
            raise UsageError("--resume keeps what the journal beside the gradebook holds: give --gradebook too")
        share = parse_shard(shard) if shard is not None else None
        reports = parse_reports(report_options or [])
        targets = Targets(FORMATS[fmt.value], output, reports, gradebook, output_dir, resume, class_report)
        single = share is None and not _is_batch(paths, gradebook, output_dir, class_report)
        level = isolation.value if isolation else None
        cache_dir = None if no_cache else default_cache_dir()
        # One file's child may have started already, from a first look at the command line (launch.py).
        ahead: Ahead | None = ctx.obj
        if ahead is not None and not (single and ahead.started_for == (Path(paths[0]), exercise, cache_dir, level)):
            ahead.child.discard()  # started for other options than the parsed ones
            ahead = None
        from grader.pipeline.grading import GradeOptions

        options = GradeOptions(cache_dir=cache_dir, isolation=level, seed=seed)
        if class_report is not None:  # before anything is graded
            from grader.cli.classreport import require_plotting

            require_plotting()
        if single:
            spawned = ahead.child if ahead is not None else None
            code = grade_one(Path(paths[0]), exercise, options, targets, color, spawned=spawned)
        else:
            code = grade_many(paths, exercise, options, targets, color, jobs, share)
    raise typer.Exit(code)


def _is_batch(paths: list[str], *batch_outputs: Path | None) -> bool:
    """Several paths, a folder or a pattern, or an output only a batch writes (--gradebook, --output-dir,
    --class-report)."""
    if len(paths) != 1 or any(output is not None for output in batch_outputs):
        return True
    path = Path(paths[0])
    try:
        if path.exists():
            return path.is_dir()
    except OSError:  # a name too long, a folder on the way closed: one file, which grading says it cannot read
        return False
    from grader.pipeline.batch import GLOB_CHARACTERS

    return bool(GLOB_CHARACTERS & set(paths[0]))


@app.command()
def merge(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="BATCH_REPORT...",
            help="The batch reports of every shard of a class (grader grade CLASS --shard I/N --format json).",
            show_default=False,
        ),
    ],
    fmt: FormatOption = Format.rich,  # type: ignore[attr-defined]
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the document to this file.")] = None,
    report_options: Annotated[
        list[str] | None,
        typer.Option(
            "--report",
            metavar="FORMAT=PATH",
            help="Also write the class's document in FORMAT to PATH; repeat for several.",
        ),
    ] = None,
    gradebook: Annotated[
        Path | None, typer.Option("--gradebook", help="Write the class's CSV gradebook, one row per submission.")
    ] = None,
    color: Annotated[
        bool | None, typer.Option("--color/--no-color", help="Force color on or off (default: on a terminal).")
    ] = None,
) -> None:
    """Combine the batch reports of a class's shards into the class's: one batch report, gradebook, JUnit or
    GitHub summary, as one batch would have written (exit code as a batch's)."""
    from grader.cli.outputs import Targets, parse_reports
    from grader.cli.runs import merge_many

    with exit_codes():
        targets = Targets(FORMATS[fmt.value], output, parse_reports(report_options or []), gradebook)
        code = merge_many(files, targets, color)
    raise typer.Exit(code)


@app.command("class-report")
def class_report_command(
    batch_file: Annotated[
        Path,
        typer.Argument(
            metavar="BATCH.json",
            help="A batch report: grader grade PATHS --format json --output BATCH.json, or grader merge's.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE.html", help="Where to write the page.")],
) -> None:
    """Write the class report of a graded batch: one HTML page with the scores, the diagnoses ranked by how
    many submissions have each, each case's pass rate, and each student's report (needs matplotlib)."""
    from grader.cli.classreport import class_report

    with exit_codes():
        written = class_report(batch_file, output)
    typer.echo(f"Wrote {written}")


@app.command()
def schema(
    batch: Annotated[
        bool, typer.Option("--batch", help="The schema of a batch's report (several PATHs with --format json).")
    ] = False,
) -> None:
    """Print the JSON Schema of the report that --format json writes."""
    from grader.report.schema import batch_json_schema, report_json_schema

    typer.echo(json.dumps(batch_json_schema() if batch else report_json_schema(), indent=2))


@app.command()
def exercises(
    fmt: Annotated[Format, typer.Option("--format", "-f", help="rich: a table; json: a list.")] = Format.rich,  # type: ignore[attr-defined]
) -> None:
    """List the exercises that can be graded."""
    from grader.exercise.spec import discover_exercises
    from grader.learner.state import load_state

    with exit_codes():
        found = discover_exercises()
    last = load_state().last_results
    if fmt.value == "json":  # a list for scripts; any other format: the table for people
        from grader.render.exercise import exercises_json

        typer.echo(exercises_json(found.values(), last))
        return
    from grader.render.exercise import exercises_table
    from grader.render.terminal import make_console

    make_console().print(exercises_table(found.values(), last))


@app.command()
def show(
    exercise_id: ExerciseId,
) -> None:
    """Show an exercise: the prompt, the function to write, and how it is graded."""
    from grader.exercise.spec import get_exercise
    from grader.render.exercise import exercise_view
    from grader.render.terminal import make_console

    with exit_codes():
        make_console().print(exercise_view(get_exercise(exercise_id)))


@app.command()
def watch(
    path: Annotated[Path, typer.Argument(help="The submission to grade on every save.", show_default=False)],
    exercise: ExerciseOption = None,
    seed: SeedOption = None,
) -> None:
    """Grade a file, then grade it again each time it is saved, showing what changed."""
    from grader.learner.state import record_result
    from grader.learner.watch import watch as watch_file
    from grader.pipeline.grading import GradeOptions
    from grader.render.terminal import make_console

    interrupted = False
    # A closed terminal or a kill ends the watch as Ctrl-C does: cleaned up, then 130 as for any interruption.
    with exit_codes(), interrupted_by(signal.SIGTERM, signal.SIGHUP):
        try:
            watch_file(
                path,
                exercise_id=exercise,
                options=GradeOptions(seed=seed),
                console=make_console(),
                on_report=lambda report, _changes: record_result(report),
            )
        except KeyboardInterrupt:  # Ctrl-C is how a watch ends
            interrupted = True
    typer.echo("Stopped watching.")
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
def start(
    exercise_id: ExerciseId,
    path: Annotated[
        Path | None, typer.Argument(help="Where to write the starter (default: submissions/<id>.py).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
) -> None:
    """Write a starter file for an exercise: the signature to fill in, ready to grade."""
    from grader.exercise.spec import get_exercise
    from grader.output import write_file

    with exit_codes():
        found = get_exercise(exercise_id)
        target = path or Path("submissions") / f"{found.id.replace('-', '_')}.py"
        if target.exists() and not force:
            raise UsageError(f"{target} exists already; pass --force to overwrite it")
        try:
            write_file(target, found.starter_text())
        except GraderError as exc:  # a starter is not a grade's output: a usage error, as it always was
            raise UsageError(str(exc)) from exc
    typer.echo(f"Wrote {target}. Next: grader show {found.id}, then grader watch {target}")


@app.command()
def hint(
    exercise_id: ExerciseId,
    reset: Annotated[bool, typer.Option("--reset", help="Start the hints again from the first.")] = False,
) -> None:
    """Show the next hint for an exercise, one at a time (the grader remembers how many you have seen)."""
    from grader.exercise.spec import get_exercise
    from grader.learner.state import next_hint, reset_hints

    with exit_codes():
        hints = get_exercise(exercise_id).spec.hints
    if reset:
        reset_hints(exercise_id)
        typer.echo(f"Hints for {exercise_id} start again from the first.")
        return
    if not hints:
        typer.echo(f"{exercise_id} has no hints.")
        return
    shown = next_hint(exercise_id, hints)
    if shown is None:
        typer.echo(f"You have seen all {len(hints)} hints for {exercise_id}. (--reset to start again)")
        return
    from grader.render.exercise import hint_view
    from grader.render.terminal import make_console

    number, text = shown
    make_console().print(hint_view(number, len(hints), text))


@app.command()
def release(
    exercise_ids: Annotated[
        list[str], typer.Argument(metavar="ID...", help="Exercise ids, see `grader exercises`.", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", help="The folder to write the packs in, one folder per exercise.")],
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty.")] = False,
) -> None:
    """Write learner packs: each exercise without its reference, with the expected outputs of its visible cases."""
    from grader.pipeline.grading import GradeOptions, trusted_env
    from grader.pipeline.recipe import usable_cache_dir
    from grader.pipeline.release import release as release_packs

    with exit_codes():
        options = GradeOptions(cache_dir=usable_cache_dir(GradeOptions().cache_dir)[0])
        packs = release_packs(exercise_ids, out, force=force, cache_dir=options.cache_dir, env=trusted_env(options))
    for pack in packs:
        held = f"{pack.cases} visible cases, {pack.variant_outputs} variant outputs"
        typer.echo(f"Wrote {out / pack.exercise_id}: {held}{''.join(f'; left out: {x}' for x in pack.left_out)}")
    typer.echo(f"Learners grade with: GRADER_EXERCISES={out} grader grade FILE")


def main(ahead: Ahead | None = None) -> None:
    """Runs the command (``launch.main`` calls it, with grade's child when it started one): click's own
    usage errors exit with 2 as well. What stdout cannot encode (PYTHONIOENCODING=ascii, LANG=C) is
    written escaped rather than ending the command with exit 3."""
    with contextlib.suppress(AttributeError, ValueError):  # a stream that is not a TextIOWrapper
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    app(obj=ahead)
