"""``grader release``: learner packs, each an exercise without its answer.

For each exercise, a folder ``OUT/<id>/`` with its prompt, starter, hints, visible cases, catalog and
analysis, its warm-up where that holds no line of the reference or variants, and the expected outputs of
the visible cases and of the variants on them: computed by the trusted runs exactly as a grading makes
them (``run_reference``, ``run_variants``), stamped with the versions they depend on. Nothing else: no
reference or variant source, no hidden case, no generator. Every pack is made in memory and checked
(its spec and catalog read back, its cases' fingerprint) before any file is written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from grader.errors import ReferenceSolutionError, SpecError, UsageError
from grader.exercise.cases import build_cases, cases_fingerprint
from grader.exercise.pack import (
    ANALYSIS_FILE,
    CATALOG_FILE,
    EXPECTED_FILE,
    PROMPT_FILE,
    STARTER_FILE,
    WARMUP_FILE,
    catalog_toml,
    leaked_lines,
    pack_catalog,
    pack_spec,
    secret_lines,
    spec_toml,
)
from grader.exercise.spec import SPEC_FILE, Exercise, discover_exercises
from grader.output import OutputFolder, encoded
from grader.pipeline.reference import TrustedRunner, run_reference, run_variants, wire_cases
from grader.pipeline.stored import stamp_here, stored_outputs

SPEC_COMMENT = """A learner pack of the exercise {id!r}, written by `grader release`: its visible cases, whose
expected outputs expected.json holds in place of the reference. Graded with GRADER_EXERCISES=<this folder's
parent> grader grade FILE. See README.md, "Releasing exercises to learners"."""
CATALOG_COMMENT = """The known mistakes of the exercise. The outputs of the variants named here (the reference with
one mistake made) are stored in expected.json: the variants' file is not part of a learner pack."""


@dataclass(frozen=True)
class Pack:
    """One exercise's learner pack, ready to write: its files by name, and what it holds."""

    exercise_id: str
    files: dict[str, bytes]
    cases: int  # visible cases (as expanded), with their expected outputs
    variant_outputs: int  # outputs of the catalog's variants on them
    left_out: list[str] = field(default_factory=list)  # what the pack could have held but does not, and why


def release(
    exercise_ids: list[str],
    out: Path,
    *,
    force: bool = False,
    roots: list[Path] | None = None,
    cache_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> list[Pack]:
    """Writes a learner pack for each exercise in ``OUT/<id>/`` and returns them. ``UsageError``: an unknown
    id, an exercise that is a pack already, or ``out`` not an empty folder (unless ``force``: each pack's
    folder is then replaced). Faults of an exercise (its reference or variants fail, its analysis holds
    lines of the reference) are raised before anything is written."""
    exercises = discover_exercises(roots)
    unknown = [name for name in exercise_ids if name not in exercises]
    if unknown:
        raise UsageError(f"unknown exercise {unknown[0]!r} (known: {', '.join(sorted(exercises)) or 'none'})")
    _check_out(out, force=force)
    runner = TrustedRunner()
    packs = [
        make_pack(exercises[name], cache_dir=cache_dir, env=env or {}, runner=runner)
        for name in dict.fromkeys(exercise_ids)
    ]
    with OutputFolder.make(out, private=False) as folder:
        for pack in packs:
            _clear(out / pack.exercise_id, force=force)
            for name, data in pack.files.items():
                folder.write(PurePath(pack.exercise_id, name), data)
    return packs


def _check_out(out: Path, *, force: bool) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"--out {out}: not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out} is not empty; pass --force to replace the packs in it")


def _clear(folder: Path, *, force: bool) -> None:
    """With ``force``, an earlier pack's folder goes, so that none of its files outlives it."""
    if not force or not (folder.exists() or folder.is_symlink()):
        return
    if folder.is_symlink() or not folder.is_dir():
        raise UsageError(f"--out: {folder} is not a folder a pack can replace")
    shutil.rmtree(folder)


def make_pack(exercise: Exercise, *, cache_dir: Path | None, env: dict[str, str], runner: TrustedRunner) -> Pack:
    """One exercise's pack, in memory: its expected outputs computed, its files chosen and checked."""
    if exercise.expected_path is not None:
        raise UsageError(f"{exercise.id!r} is a learner pack already: release it from the full exercise")
    cases = [case for case in build_cases(exercise) if not case.hidden]
    if not cases:
        raise UsageError(f"{exercise.id!r} has no visible case: a learner pack of it would grade nothing")
    wire = wire_cases(exercise, cases)
    expected = run_reference(exercise, cases, wire, env=env, cache_dir=cache_dir, runner=runner)
    variants = run_variants(exercise, cases, wire, env=env, cache_dir=cache_dir, runner=runner)
    if variants.failure is not None:
        raise ReferenceSolutionError(f"{exercise.id!r}: {variants.failure}")
    secrets = _secrets(exercise)
    files, left_out = _texts(exercise, secrets)
    spec = pack_spec(exercise.spec, catalog=exercise.spec.mistakes is not None, warmup=WARMUP_FILE in files)
    if cases_fingerprint(build_cases(exercise.model_copy(update={"spec": spec}))) != cases_fingerprint(cases):
        raise SpecError(f"{exercise.id!r}: the pack's spec makes other cases than the exercise's visible ones")
    files[SPEC_FILE] = spec_toml(spec, comment=SPEC_COMMENT.format(id=exercise.id))
    if exercise.spec.mistakes is not None:
        files[CATALOG_FILE] = catalog_toml(pack_catalog(exercise.catalog), comment=CATALOG_COMMENT)
    stored = stored_outputs(exercise.id, cases, expected.outputs, variants.outputs, stamp_here(expected.backend))
    data = {name: encoded(text) for name, text in files.items()}
    data[EXPECTED_FILE] = encoded(stored.model_dump_json(indent=1) + "\n")
    return Pack(exercise.id, data, len(cases), len(variants.outputs), left_out)


def _secrets(exercise: Exercise) -> frozenset[str]:
    """The lines of the reference and variants that no file of the pack may hold."""
    code = [exercise.reference_path.read_text(encoding="utf-8")]
    variants = exercise.catalog_file(exercise.catalog.variants)
    if variants is not None:
        code.append(variants.read_text(encoding="utf-8"))
    return secret_lines(code, [exercise.prompt_text(), exercise.starter_text()])


def _texts(exercise: Exercise, secrets: frozenset[str]) -> tuple[dict[str, str], list[str]]:
    """The pack's files copied from the exercise, by their name in the pack; and what was left out, and why.
    An analysis that holds a line of the reference is a fault of the exercise (the pack needs it)."""
    files = {PROMPT_FILE: exercise.prompt_text(), STARTER_FILE: exercise.starter_text()}
    left_out = []
    analysis = exercise.catalog_file(exercise.catalog.analysis)
    if analysis is not None:
        files[ANALYSIS_FILE] = analysis.read_text(encoding="utf-8")
        leaked = leaked_lines(files[ANALYSIS_FILE], secrets)
        if leaked:
            raise SpecError(f"{analysis}: holds lines of the reference or its variants, such as {leaked[0]!r}")
    if exercise.spec.warmup:
        warmup = (exercise.folder / exercise.spec.warmup).read_text(encoding="utf-8")
        leaked = leaked_lines(warmup, secrets)
        if leaked:
            left_out.append(f"its warm-up, which holds lines of the reference or its variants ({leaked[0]!r})")
        else:
            files[WARMUP_FILE] = warmup
    return files, left_out
