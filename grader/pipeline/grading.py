"""Grading one submission file, end to end: the orchestration every front end calls.

read the source -> pick the exercise -> build the cases -> run the submission (isolated child) and the
reference (trusted child or cache) side by side -> judge each case -> diagnose -> ``Report``.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader.errors import GraderError, SandboxError
from grader.exercise.cases import Case, build_cases
from grader.exercise.pack import stamp_notes
from grader.exercise.spec import Exercise, discover_exercises
from grader.pipeline.diagnose import (
    case_diagnoses,
    ending_reason,
    fresh_diagnosis,
    run_diagnosis,
    skip_reason,
    syntax_diagnosis,
)
from grader.pipeline.environment import describe_environment
from grader.pipeline.judge import captured, decoded_outputs, judge_run, skipped_case
from grader.pipeline.mistakes import explain, needs_explaining, with_exception_hints
from grader.pipeline.recipe import (
    TRUSTED_XLA,
    compile_cache_env,
    default_cache_dir,
    hidden_paths,
    submission_job,
    usable_cache_dir,
)
from grader.pipeline.reference import (
    Expected,
    TrustedRunner,
    VariantOutputs,
    run_reference,
    run_variants,
    wire_cases,
)
from grader.pipeline.source import Source, known_exercise, pick_exercise, read_source
from grader.pipeline.stored import stamp_here
from grader.report.codes import Code
from grader.report.schema import (
    CapturedOutput,
    CaseResult,
    Diagnosis,
    Environment,
    ExerciseInfo,
    Report,
    ReportStatus,
    SubmissionInfo,
)
from grader.sandbox.forks import ForkServer
from grader.sandbox.isolation import Isolation, choose_isolation
from grader.sandbox.process import ChildLimits, ChildRun, run_child
from grader.sandbox.start import ChildJob, SpawnedChild, spawn_child


@dataclass(frozen=True)
class GradeOptions:
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    exercise_roots: list[Path] | None = None  # None: the configured or bundled exercises
    isolation: str | None = None  # "auto", "bwrap" or "process"; None: $GRADER_ISOLATION, else auto
    seed: int | None = None  # adds the fresh cases the exercise's generators make for this seed
    # Shared by the runs of the reference and its variants (a batch passes one); None: one per grading.
    trusted: TrustedRunner | None = field(default=None, compare=False)
    # Children started ahead (a batch, a watch) at the process level come from a fork server that has
    # imported jax and flax once (grader.sandbox.forks); False ($GRADER_FORK_SERVER=0): each starts a
    # fresh interpreter.
    fork_server: bool = field(default_factory=lambda: os.environ.get("GRADER_FORK_SERVER", "1") != "0")


def named_exercise(exercise_id: str, exercises: dict[str, Exercise]) -> Exercise:
    """The exercise with this id; a usage error that lists the known ones otherwise."""
    return exercises[known_exercise(exercise_id, exercises)]


def resolve_exercise(source: Source, exercise_id: str | None, exercises: dict[str, Exercise]) -> Exercise:
    """The exercise named, or else the one whose entry point the file defines (see ``pick_exercise``)."""
    return exercises[pick_exercise(source, exercise_id, _entry_points(exercises))]


def _entry_points(exercises: dict[str, Exercise]) -> dict[str, str]:
    return {exercise_id: exercise.spec.entry_point.name for exercise_id, exercise in exercises.items()}


def trusted_env(options: GradeOptions) -> dict[str, str]:
    """The environment of the grader's own runs (reference, variants): the trusted compilation cache."""
    return compile_cache_env(options.cache_dir, TRUSTED_XLA)


def _limits(exercise: Exercise) -> ChildLimits:
    spec = exercise.spec.limits
    return ChildLimits(
        import_timeout_s=spec.import_timeout_s,
        case_timeout_s=spec.case_timeout_s,
        memory_mb=spec.memory_mb,
        capture_bytes=spec.capture_bytes,
        max_output_elements=spec.max_output_elements,
    )


class _Either:
    """Set when either event is: this grading's own stop, or the batch's."""

    def __init__(self, own: threading.Event, outer: threading.Event) -> None:
        self._events = (own, outer)

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._events)


class _BackgroundChild:
    """Runs a child in a thread, so the reference can run meanwhile; ``cancel`` stops it early."""

    def __init__(
        self,
        job: ChildJob,
        limits: ChildLimits,
        isolation: Isolation,
        spawned: SpawnedChild | None = None,
        outer: threading.Event | None = None,
    ) -> None:
        self.cancel = threading.Event()
        self._run: ChildRun | None = None
        self._error: BaseException | None = None
        stop = _Either(self.cancel, outer) if outer else self.cancel
        self._thread = threading.Thread(target=self._target, args=(job, limits, isolation, spawned, stop), daemon=True)
        self._thread.start()

    def _target(
        self,
        job: ChildJob,
        limits: ChildLimits,
        isolation: Isolation,
        spawned: SpawnedChild | None,
        stop: threading.Event | _Either,
    ) -> None:
        try:
            self._run = run_child(job, limits, isolation=isolation, cancel=stop, spawned=spawned)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self._error = exc

    def join(self) -> ChildRun:
        try:
            self._thread.join()
        except BaseException:  # Ctrl-C while waiting: stop the child before leaving
            self.cancel.set()
            self._thread.join()
            raise
        if self._error is not None:
            raise self._error
        assert self._run is not None
        return self._run


def _submission_job(
    exercise: Exercise, source: str, filename: str, wire: list[dict], iso: Isolation, options: GradeOptions
) -> ChildJob:
    return submission_job(
        entry_point=exercise.spec.entry_point.name,
        preload=list(exercise.spec.preload),
        hidden=hidden_paths(exercise.folder, exercise.reference_path),
        iso=iso,
        cache_dir=options.cache_dir,
        source=source,
        filename=filename,
        cases=wire,
    )


def spawn_for(exercise: Exercise, options: GradeOptions, isolation: Isolation | None = None) -> SpawnedChild:
    """A child started ahead for the next grading of ``exercise``: imports done, and the exercise's warm-up
    run on zeroed copies of the cases' arguments. No submission code runs before its job arrives.

    ``isolation``: as already chosen (a batch chooses once, with a uid per slot); else chosen now."""
    iso = isolation or choose_isolation(options.isolation)
    return spawn_child(_ahead_job(exercise, options, iso), iso)


def _ahead_job(exercise: Exercise, options: GradeOptions, iso: Isolation, *, warm_up: bool = True) -> ChildJob:
    """The job a child started ahead is made for: no submission yet, the exercise's warm-up (unless not
    ``warm_up``)."""
    options = dataclasses.replace(options, cache_dir=usable_cache_dir(options.cache_dir)[0])
    job = _submission_job(exercise, "", "", [], iso, options)
    if exercise.spec.warmup and warm_up:
        job = dataclasses.replace(
            job,
            warmup_source=(exercise.folder / exercise.spec.warmup).read_text(encoding="utf-8"),
            warmup_calls=[_zeroed(call) for call in wire_cases(exercise, build_cases(exercise, options.seed))],
        )
    return job


class ChildStarter:
    """Starts the children of one batch or one watch ahead of their jobs (as ``spawn_for``): forked from one
    fork server per exercise (under bubblewrap, each into a sandbox of its own), else each in a fresh
    interpreter. A server that fails to start or to fork is given up, and children start fresh: it only
    ever costs the time it would save.

    ``warm_up``: whether each child runs the exercise's warm-up before its job. A watch's child waits for
    the learner's next save with a core to itself, so compiling then takes that time off the save's
    report. A batch keeps every core busy: there a warm-up only adds the compilations the submission
    does not share (a file without the entry point, one that fails early or compiles its own way), about
    a third of a batch's time in ``benchmarks/batch_throughput.py``.
    Thread-safe; ``close()`` ends the servers (children already started live on)."""

    def __init__(self, options: GradeOptions, *, warm_up: bool = True) -> None:
        self._options = options
        self._warm_up = warm_up
        self._servers: dict[str, ForkServer | None] = {}
        self._lock = threading.Lock()

    def spawn(self, exercise: Exercise, isolation: Isolation | None = None) -> SpawnedChild:
        iso = isolation or choose_isolation(self._options.isolation)
        job = _ahead_job(exercise, self._options, iso, warm_up=self._warm_up)
        server = self._server(exercise, job, iso)
        if server is not None:
            try:
                return server.spawn(job, iso)
            except SandboxError:
                self._give_up(exercise.id, server)
        return spawn_child(job, iso)

    def _server(self, exercise: Exercise, job: ChildJob, iso: Isolation) -> ForkServer | None:
        if not self._options.fork_server:
            return None
        with self._lock:
            if exercise.id not in self._servers:
                try:
                    timeout = exercise.spec.limits.import_timeout_s
                    self._servers[exercise.id] = ForkServer(job, iso, start_timeout_s=timeout)
                except SandboxError:
                    self._servers[exercise.id] = None
            server = self._servers[exercise.id]
        return server if server is not None and server.fits(job) else None

    def _give_up(self, exercise_id: str, server: ForkServer) -> None:
        with self._lock:
            self._servers[exercise_id] = None
        server.close()

    def close(self) -> None:
        with self._lock:
            servers, self._servers = [s for s in self._servers.values() if s is not None], {}
        for server in servers:
            server.close()


def _zeroed(call: dict) -> dict:
    """A call with every array argument replaced by zeros of the same dtype and shape."""
    args = []
    for arg in call["args"]:
        if arg["type"] == "array":
            size = int(np.dtype(arg["dtype"]).itemsize * np.prod(arg["shape"], dtype=np.int64))
            arg = {**arg, "data": base64.b64encode(bytes(size)).decode("ascii")}
        args.append(arg)
    return {**call, "args": args}


def grade_file(
    path: Path,
    *,
    exercise_id: str | None = None,
    options: GradeOptions | None = None,
    spawned: SpawnedChild | None = None,
    cancel: threading.Event | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> Report:
    """Grades one submission file and returns the finished report. Raises only ``GraderError``.

    ``spawned``: a child started ahead for this exercise (``spawn_for``, ``ChildStarter``: watch, batches;
    ``headstart``: grade), used instead of starting one; left unused (``spawned.used`` false, the caller
    discards it) when the file does not parse, and discarded when it does not fit this job
    (``SpawnedChild.fits``: another isolation level, preloads, environment or mounts; ``discard()`` does
    nothing to a child used or discarded already). ``cancel``: setting it
    stops the submission's child early (its cases end as cancelled). ``meanwhile``: the caller's own work
    that would otherwise wait for the report (the CLI loads its renderers), done while the child runs.
    """
    options = options or GradeOptions()
    started = time.monotonic()
    cache_dir, cache_detail = usable_cache_dir(options.cache_dir)
    options = dataclasses.replace(options, cache_dir=cache_dir, trusted=options.trusted or TrustedRunner())
    source = read_source(path)
    exercise = resolve_exercise(source, exercise_id, discover_exercises(options.exercise_roots))
    cases = build_cases(exercise, options.seed)
    if source.problem is not None:
        problem = _with_exercise_hints(exercise, [syntax_diagnosis(source)])[0]
        results = [skipped_case(c, skip_reason(problem)) for c in cases]
        return build_report(
            exercise,
            source,
            results,
            [problem],
            environment=describe_environment(backend=None, isolation=None, reference_cache="off").model_copy(
                update={"cache_detail": cache_detail}
            ),
            started=started,
            import_output=None,
            seed=options.seed,
        )
    wire = wire_cases(exercise, cases)
    wanted = choose_isolation(options.isolation)
    iso = spawned.isolation if spawned is not None else wanted  # the same level, with a uid of the child's
    job = _submission_job(exercise, source.text, str(source.path), wire, iso, options)
    if spawned is not None and not spawned.fits(job, wanted):
        spawned.discard()  # started from a guess that was wrong: ended now
        spawned, iso = None, wanted
        job = _submission_job(exercise, source.text, str(source.path), wire, iso, options)
    submission = _BackgroundChild(job, _limits(exercise), iso, spawned, cancel)
    try:
        expected = run_reference(
            exercise,
            cases,
            wire,
            env=trusted_env(options),
            cache_dir=options.cache_dir,
            cancel=cancel,
            runner=options.trusted,
        )
        environment = describe_environment(backend=expected.backend, isolation=iso, reference_cache=expected.cache)
        environment = environment.model_copy(update={"cache_detail": cache_detail})
        if meanwhile is not None:
            meanwhile()
    except BaseException:
        submission.cancel.set()
        submission.join()
        raise
    run = submission.join()
    results, diagnoses, notes = judge_outputs(exercise, source, cases, wire, run, expected, options, cancel=cancel)
    imported = run.imported
    import_output = (
        captured(imported.stdout, imported.stderr, limit_reached=imported.output_limit) if imported else None
    )
    return build_report(
        exercise,
        source,
        results,
        diagnoses,
        environment=environment,
        started=started,
        import_output=import_output,
        seed=options.seed,
        notes=notes,
    )


def _with_exercise_hints(exercise: Exercise, diagnoses: list[Diagnosis]) -> list[Diagnosis]:
    """The exercise's own hint for a code, where its spec has one, replaces the engine's generic hint."""
    feedback = exercise.spec.feedback
    return [d.model_copy(update={"hint": feedback[d.code]}) if d.code in feedback else d for d in diagnoses]


def judge_outputs(
    exercise: Exercise,
    source: Source,
    cases: list[Case],
    wire: list[dict],
    run: ChildRun,
    expected: Expected,
    options: GradeOptions,
    *,
    cancel: threading.Event | None = None,
) -> tuple[list[CaseResult], list[Diagnosis], list[str]]:
    """Case results, then the diagnoses: how the run ended, the catalog's mistakes, the generic findings; then
    notes on the optional stages (the catalog's variants and analysis) that failed and were left out."""
    if run.hello is not None and run.hello.preload_error is not None:
        error = run.hello.preload_error
        raise SandboxError(f"the child could not import {exercise.spec.preload}: {error.type}: {error.message}")
    if run.hello is None and run.ending != "cancelled":
        # The harness says hello before it reads its job: without one, no submission code has run, and the
        # child could not even start (bwrap or Python failed). A fault of the grader, never the learner's.
        raise SandboxError(_start_failure(run))
    problem = run_diagnosis(run, source, exercise.spec.entry_point.name)
    reason = skip_reason(problem) if problem else ending_reason(run)
    tol = exercise.spec.tolerance
    results = judge_run(
        cases,
        run,
        expected.outputs,
        rtol=tol.rtol,
        atol=tol.atol,
        learner_file=str(source.path),
        reason=reason,
        tolerances=exercise.spec.leaf_tolerances(),
    )
    actual = decoded_outputs(run)
    variants = VariantOutputs({})
    if exercise.catalog.mistake and needs_explaining(results):
        # Only a grading whose values are wrong needs the variants: they run here, and their outputs are
        # handed to the catalog's matching, a pure function.
        variants = run_variants(
            exercise,
            cases,
            wire,
            env=trusted_env(options),
            cache_dir=options.cache_dir,
            cancel=cancel,
            runner=options.trusted,
        )
    specific, notes = explain(exercise, source, cases, results, actual, expected, variants)
    explained = {case for d in specific for case in d.cases}
    generic = case_diagnoses(results, source, explained=explained)
    fresh = fresh_diagnosis(results) if problem is None else None
    diagnoses = [d for d in (problem, fresh) if d is not None] + specific + generic
    notes = _pack_notes(expected, run, options.seed, len(cases)) + notes
    return results, _with_exercise_hints(exercise, with_exception_hints(diagnoses, exercise.catalog, source)), notes


def _pack_notes(expected: Expected, run: ChildRun, seed: int | None, cases: int) -> list[str]:
    """For a learner pack (its stored outputs carry a stamp): where this grading's versions differ from the
    stamp, and that a seed adds no fresh cases to it."""
    if expected.stamp is None:
        return []
    notes = stamp_notes(expected.stamp, stamp_here(run.hello.backend if run.hello else None))
    if seed is not None:
        notes.append(
            f"Seed {seed} adds no fresh cases here: this exercise is a learner pack, which holds its visible cases "
            f"only, and its {cases} cases were graded (fresh and hidden cases are graded with the full exercise)."
        )
    return notes


START_CAUSE_CHARS = 1500  # of what the child wrote to stderr before it failed to start


def _start_failure(run: ChildRun) -> str:
    """Why a child did not start, for a fault's message: how it ended, and the end of its stderr (where bwrap
    and Python say why), escaped."""
    stderr = run.stray_stderr.decode("utf-8", "replace").strip()
    if len(stderr) > START_CAUSE_CHARS:
        stderr = "…" + stderr[-START_CAUSE_CHARS:]
    cause = f": {sanitize(stderr)}" if stderr else " (nothing on stderr)"
    return f"the child process did not start ({run.ending}: {run.detail}){cause}"


def _summary(
    results: list[CaseResult], diagnoses: list[Diagnosis], score: float, max_score: float
) -> tuple[ReportStatus, str]:
    graded = [r for r in results if r.status in ("passed", "failed") or r.error is not None]
    passed = sum(r.status == "passed" for r in results)
    if not graded:
        first = diagnoses[0].message.splitlines()[0] if diagnoses else "nothing could be graded"
        return "error", f"Could not grade the submission: {first}"
    if diagnoses and diagnoses[0].code == Code.NOT_ATTEMPTED:
        return "failed", diagnoses[0].message
    if passed == len(results):
        return "passed", f"All {len(results)} cases passed."
    return "failed", f"{passed} of {len(results)} cases passed (score {score:g} of {max_score:g})."


def build_report(
    exercise: Exercise,
    source: Source,
    results: list[CaseResult],
    diagnoses: list[Diagnosis],
    *,
    environment: Environment,
    started: float,
    import_output: CapturedOutput | None,
    seed: int | None = None,
    notes: list[str] | None = None,
) -> Report:
    score = float(np.sum([r.score for r in results]))
    max_score = float(np.sum([r.weight for r in results]))
    status, message = _summary(results, diagnoses, score, max_score)
    return _escaped(
        Report(
            exercise=ExerciseInfo(
                id=exercise.id, title=exercise.spec.title, entry_point=exercise.spec.entry_point.name
            ),
            submission=SubmissionInfo(path=str(source.path), sha256=source.sha256),
            status=status,
            score=score,
            max_score=max_score,
            message=message,
            seed=seed,
            cases=results,
            diagnoses=diagnoses,
            environment=environment,
            duration_s=round(time.monotonic() - started, 3),
            notes=notes or [],
            output=import_output if import_output is not None else CapturedOutput(),
        ),
        capture_bytes=exercise.spec.limits.capture_bytes,
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Invisible characters that reorder or hide text (Unicode's format controls: the bidi embeddings,
# overrides, isolates and marks, zero-width spaces, tags), line and paragraph separators, and the
# noncharacters (U+FFFE, U+FFFF, U+FDD0-FDEF and the last two of every plane), which XML refuses. The
# joiners U+200C and U+200D stay: scripts such as Persian and emoji sequences need them.
_INVISIBLE = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f\ufdd0-\ufdef"
    + "".join(f"{chr(plane + 0xFFFE)}{chr(plane + 0xFFFF)}" for plane in range(0, 0x110000, 0x10000))
    + "]"
)


def _escape_invisible(match: re.Match[str]) -> str:
    point = ord(match.group())
    return f"\\u{point:04x}" if point <= 0xFFFF else f"\\U{point:08x}"


def sanitize(text: str) -> str:
    """Escapes control characters (terminal escape sequences included) so text is shown, not obeyed, lone
    surrogates (undecodable bytes of a file name) so that it can be written as UTF-8, and invisible
    characters that reorder or hide text (bidi controls, noncharacters) as ``\\uXXXX``."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return _INVISIBLE.sub(_escape_invisible, text)


# A report's bounds, in bytes of its JSON (UTF-8, where a backslash, quote, tab or line break takes two):
# whatever a submission sends or prints, a report stays small (README: "The JSON report"). What a case
# printed is cut to the exercise's capture limit; the fields named here (a frame's function and source
# line, an exception's type, a source line a diagnosis shows, file paths) to their own bound; every other
# string to MAX_REPORT_TEXT.
MAX_REPORT_TEXT = 2048
_FIELD_BYTES = {
    "function": 200,
    "code": 300,
    "type": 200,
    "actual_type": 200,
    "text": 300,
    "file": 4096,
    "path": 4096,
}
_CUT = " …[cut]"
_JSON_DOUBLED = frozenset(b'\\"\t\n\r')


def _json_size(data: bytes) -> int:
    return len(data) + sum(data.count(byte) for byte in _JSON_DOUBLED)


def _cut(text: str, limit: int, mark: str = _CUT) -> str:
    """``text`` in at most ``limit`` bytes of JSON, ending in ``mark`` where it was cut."""
    data = text.encode("utf-8")
    if _json_size(data) <= limit:
        return text
    room, end = limit - _json_size(mark.encode("utf-8")), 0
    for byte in data:
        room -= 2 if byte in _JSON_DOUBLED else 1
        if room < 0:
            break
        end += 1
    return data[:end].decode("utf-8", "ignore") + mark


def _escaped(report: Report, *, capture_bytes: int) -> Report:
    """The report with control and invisible characters escaped in every string, and every string cut to
    its bound: much of it comes from the submission (names, types, messages, file names, what it
    printed), and no renderer or CI log should obey what it wrote, nor be flooded by it."""

    def walk(value: object, key: str = "") -> object:
        if isinstance(value, str):
            return _cut(sanitize(value), _FIELD_BYTES.get(key, MAX_REPORT_TEXT))
        if key in ("stdout", "stderr") and isinstance(value, dict):  # a CapturedText: what a stream received
            text = sanitize(value["text"])
            kept = _cut(text, capture_bytes, mark="")
            return {**value, "text": kept, "truncated": value["truncated"] or kept != text}
        if isinstance(value, dict):
            return {name: walk(item, name) for name, item in value.items()}
        if isinstance(value, list):
            return [walk(item, key) for item in value]
        return value

    return Report.model_validate(walk(report.model_dump()))


__all__ = ["GradeOptions", "GraderError", "grade_file", "resolve_exercise"]
