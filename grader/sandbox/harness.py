"""The program that runs inside a child process: it imports one Python file and calls its entry point.

It runs as ``python -I harness.py JOB_FD RESULT_FD PRELOADS`` and is deliberately self-contained (standard library
and numpy at the top, the exercise's preloads such as jax later): it must not import the ``grader``
package, whose folder is kept off the child's ``sys.path``.

The job arrives as one JSON document on JOB_FD. Every message back is a frame on RESULT_FD: a 4-byte
big-endian length, then that many bytes of UTF-8 JSON. Standard output and standard error are never
part of the protocol; what the imported file prints is captured per phase and sent inside the messages.
The grader treats everything it receives from here as untrusted and validates it
(``grader.sandbox.protocol``).

Its public functions (``decode_arg``, ``encode_value``, ``describe_error``) are also what the in-process
runner (``grader.sandbox.inprocess``, for ``check()``) calls, so that a function graded in a notebook has
its arguments and outputs taken exactly as a child's are; everything named with ``_`` is the child's own.
"""

from __future__ import annotations

import base64
import contextlib
import faulthandler
import itertools
import json
import linecache
import os
import re
import signal
import sys
import time
import traceback
import types

# Bound now: the imported file may replace module attributes later on.
_dumps = json.dumps
_b64encode = base64.b64encode
_write = os.write
_perf_counter = time.perf_counter

MAX_FRAMES = 40
_LINE_ENDS = re.compile(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)")
MAX_TEXT = 4000
MAX_NAMES = 200  # names of the submission's callables listed back
MAX_TREE_DEPTH = 8  # a returned tuple, list or dict nests at most this deep
MAX_TREE_LEAVES = 64  # ... and holds at most this many arrays (or other leaves) in all


def _clean(obj: object) -> object:
    """Replaces lone surrogates, which JSON parsers refuse, in every string of a message."""
    if isinstance(obj, str):
        return obj if obj.isascii() else obj.encode("utf-8", "replace").decode("utf-8")
    if isinstance(obj, dict):
        return {key: _clean(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_clean(value) for value in obj]
    return obj


def _send(fd: int, message: dict) -> None:
    payload = _dumps(_clean(message), allow_nan=False).encode("utf-8")
    data = len(payload).to_bytes(4, "big") + payload
    while data:
        written = _write(fd, data)
        data = data[written:]


def _read_job(fd: int) -> dict:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return json.loads(b"".join(chunks))


def _safe_text(func, default: str = "") -> str:
    """Calls ``str``/``repr`` on a foreign object without letting it break the harness."""
    try:
        text = func()
        if not isinstance(text, str):
            return default
    except BaseException:  # noqa: BLE001 - foreign code may raise anything
        return default
    return text[:MAX_TEXT]


def _type_name(obj: object) -> str:
    cls = type(obj)
    module = getattr(cls, "__module__", "") or ""
    name = getattr(cls, "__qualname__", cls.__name__)
    text = name if module == "builtins" else f"{module}.{name}"
    return str(text)[:MAX_TEXT]


def describe_error(exc: BaseException) -> dict:
    frames = []
    for summary in traceback.extract_tb(exc.__traceback__)[-MAX_FRAMES:]:
        frames.append(
            {
                "file": str(summary.filename)[:MAX_TEXT],
                "line": summary.lineno,
                "function": str(summary.name)[:MAX_TEXT],
                "code": (summary.line or "")[:MAX_TEXT],
            }
        )
    error: dict[str, object] = {
        "type": _type_name(exc),
        "message": _safe_text(lambda: str(exc)),
        "frames": frames,
    }
    if isinstance(exc, SyntaxError):
        error["lineno"] = exc.lineno if isinstance(exc.lineno, int) else None
        error["offset"] = exc.offset if isinstance(exc.offset, int) else None
        error["text"] = exc.text[:MAX_TEXT] if isinstance(exc.text, str) else None
        error["message"] = _safe_text(lambda: str(exc.msg))
    if isinstance(exc, SystemExit):
        code = exc.code
        error["exit_code"] = code if isinstance(code, int) else (0 if code is None else 1)
    return error


class _Capture:
    """Redirects file descriptors 1 and 2 into private files for the length of one phase."""

    def __init__(self, limit: int, file_limit: int) -> None:
        self.limit = limit
        self.file_limit = file_limit
        self.watchdog_s: float | None = None
        self._files = {}
        self._saved = {}
        for fd in (1, 2):
            path = f"capture-{fd}"
            self._files[fd] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
            os.unlink(path)
            self._saved[fd] = os.dup(fd)
        # Where faulthandler writes the stack of a phase about to overrun its deadline: the real stderr.
        self._watchdog_file = os.fdopen(self._saved[2], "w", closefd=False)

    def __enter__(self) -> _Capture:
        _flush_std()
        for fd, file_fd in self._files.items():
            os.ftruncate(file_fd, 0)
            os.dup2(file_fd, fd)
        if self.watchdog_s is not None:
            faulthandler.dump_traceback_later(self.watchdog_s, file=self._watchdog_file)
        return self

    def __exit__(self, *exc_info: object) -> None:
        faulthandler.cancel_dump_traceback_later()
        _flush_std()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)

    def collected(self) -> dict:
        streams = {name: self._read(self._files[fd]) for name, fd in (("stdout", 1), ("stderr", 2))}
        output_limit = any(s["size"] >= self.file_limit for s in streams.values())
        return {**streams, "output_limit": output_limit}

    def _read(self, file_fd: int) -> dict:
        size = os.fstat(file_fd).st_size
        data = os.pread(file_fd, self.limit, 0)
        return {
            "text": data.decode("utf-8", "replace"),
            "size": size,
            "truncated": size > len(data),
        }


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(BaseException):  # a replaced stream may be anything
            if stream is not None:  # sys.__stdout__ and sys.__stderr__ are None without a console
                stream.flush()


def _strip_sys_path(hidden: list[str]) -> None:
    """Keeps the grader's and the reference's folders off the import path.

    An entry goes when it is one of the hidden folders itself; the Python environment's own entries stay
    even when that environment lives inside a hidden folder (a virtual environment in the checkout).
    """
    hidden_real = {os.path.realpath(p) for p in hidden}
    prefix = os.path.realpath(sys.prefix) + os.sep
    kept = []
    for entry in sys.path:
        real = os.path.realpath(entry or os.curdir)
        if entry in ("", ".") or (real in hidden_real and not real.startswith(prefix)):
            continue
        kept.append(entry)
    sys.path[:] = kept


def _preload(modules: list[str]) -> dict:
    """Imports the preloads (frozen, see ``_import_frozen``) and says which versions and backend loaded."""
    versions = _import_frozen(modules)
    backend = sys.modules["jax"].default_backend() if "jax" in sys.modules else None
    return {"modules": versions, "backend": backend}


def _import_frozen(modules: list[str]) -> dict[str, str]:
    """Imports ``modules`` without the garbage collector: what modules make lives until the process
    exits, and the collector's passes over it cost a tenth of a second with jax (the few cycles the imports
    leave are kept). Then it is frozen, so that later collections (the submission's; a forked child's,
    which would copy every page they touch) do not walk it again. Returns the modules' versions."""
    import gc
    import importlib

    versions = {}
    gc.disable()
    try:
        for name in modules:
            version = getattr(importlib.import_module(name), "__version__", None)
            if isinstance(version, str):
                versions[name] = version
    finally:
        gc.enable()
        gc.freeze()
    return versions


def _apply_limits(limits: dict) -> None:
    """Lowers soft and hard resource limits together, so the submission cannot raise them again."""
    import resource

    for name, value in limits.items():
        which = getattr(resource, name, None)
        if which is None:
            continue
        _, hard = resource.getrlimit(which)
        value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
        with contextlib.suppress(ValueError, OSError):  # a platform without this limit keeps the others
            resource.setrlimit(which, (value, value))


_CLONE_NEWNS, _MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x20000, 1, 32, 4096, 16384, 1 << 18
_dropped = False  # whether this process has become the sandbox's own uid (see _lifeline)


def _mount(source: str | None, target: str, kind: str | None, flags: int, data: str | None = None) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    encode = lambda text: None if text is None else text.encode()  # noqa: E731
    if libc.mount(encode(source), encode(target), encode(kind), ctypes.c_ulong(flags), encode(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {target}: {os.strerror(error)}")


def _open_up(reach: list[str]) -> None:
    """Makes ``reach`` (folders of the Python environment under a folder only root may enter, such as
    /root) readable by the uid about to be taken, in a mount namespace of this process's own: the closed
    folder is covered by an empty tmpfs holding just the way down to each of them, bound read-only. The
    rest of what the closed folder held is out of sight. Runs as root, before any submission code."""
    if not reach:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unshare: {os.strerror(error)}")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    handles = {path: os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for path in reach}
    closed_of = {path: _outermost_closed(path) for path in reach}  # all before anything is covered
    covered: list[str] = []
    for path in reach:
        closed = closed_of[path]
        if closed not in covered:
            _mount("tmpfs", closed, "tmpfs", 0, "mode=0755,size=1m")
            covered.append(closed)
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{handles[path]}", path, None, _MS_BIND | _MS_REC)
        _mount(None, path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
    for handle in handles.values():
        os.close(handle)


def _outermost_closed(path: str) -> str:
    """The first folder on the way to ``path`` that others may not enter (or ``path`` itself)."""
    parts = os.path.abspath(path).split(os.sep)
    for end in range(2, len(parts) + 1):
        folder = os.sep.join(parts[:end])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return path


def _drop_privileges(drop_to: list[int] | None) -> None:
    """Becomes an unprivileged user for good (the grader runs as root): no way back for the submission."""
    global _dropped
    if not drop_to:
        return
    uid, gid = int(drop_to[0]), int(drop_to[1])
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    os.environ["USER"] = os.environ["LOGNAME"] = "nobody"
    _dropped = True


def _lifeline(fd: int) -> None:
    """Watches the lifeline from the grader in a thread: at end-of-file (the grader is gone, however it
    died) everything this child started dies with it. Once the uid is the sandbox's own, that is every
    process of the uid (daemons in other sessions too); before, the process group."""
    import threading

    def watch() -> None:
        with contextlib.suppress(OSError):
            os.read(fd, 1)
        with contextlib.suppress(OSError):
            if _dropped and os.getuid() != 0:
                os.kill(-1, signal.SIGKILL)  # every process of this uid but this one
            os.killpg(0, signal.SIGKILL)
        os._exit(137)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def _probe_reach(argv: list[str]) -> None:
    """``--probe-reach UID GID PATH...``: opens PATHs up as a child would, drops to UID, and exits 0 when
    each of them can then be read (the grader's check, before it relies on this)."""
    _open_up(argv[2:])
    _drop_privileges([int(argv[0]), int(argv[1])])
    readable = all(os.access(path, os.R_OK | os.X_OK) for path in argv[2:])
    os._exit(0 if readable and os.access(sys.executable, os.X_OK) else 1)


def decode_arg(spec: dict):
    import numpy as np

    kind = spec["type"]
    if kind == "array":
        raw = base64.b64decode(spec["data"])
        array = np.frombuffer(raw, dtype=np.dtype(spec["dtype"])).reshape(spec["shape"]).copy()
        if spec.get("array_type") == "jax":
            import jax.numpy as jnp

            return jnp.asarray(array)
        return array
    if kind == "float":
        return float(spec["value"])
    if kind == "int":
        return int(spec["value"])
    if kind == "bool":
        return bool(spec["value"])
    return spec["value"]


# Dtypes the wire carries as they are; others are widened by kind and keep their name in "dtype".
_WIRE = frozenset(
    order + code
    for order in "<|"
    for code in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")
)
_WIDER_BY_KIND = {"b": "bool", "i": "int64", "u": "uint64", "f": "float64", "c": "complex128"}
_WIDENED = {"bfloat16": "float32", "float8_e4m3fn": "float32", "float8_e5m2": "float32"}
MAX_DIMS = 8


class _TreeTooBig(Exception):
    pass


def encode_value(value: object, max_elements: int) -> dict:
    """The wire form of a returned value: an array, or a tree of them (tuples, lists and dicts with string
    keys, nested), or an object described in words. A tree too deep or with too many leaves is sent as an
    object, with what it is."""
    if _is_tree(value):
        try:
            return _encode_tree(value, max_elements, depth=0, budget=[MAX_TREE_LEAVES])
        except _TreeTooBig as exc:
            return {
                "kind": "object",
                "type": _type_name(value),
                "repr": _safe_text(lambda: repr(value))[:400],
                "summary": f"{_safe_text(lambda: _summary(value))} ({exc})",
            }
    return _encode_leaf(value, max_elements)


def _is_tree(value: object) -> bool:
    from collections.abc import Mapping

    return isinstance(value, (tuple, list)) or (
        isinstance(value, Mapping)
        and all(isinstance(key, str) for key in itertools.islice(iter(value.keys()), MAX_TREE_LEAVES + 1))
    )


def _encode_tree(value: object, max_elements: int, *, depth: int, budget: list[int]) -> dict:
    from collections.abc import Mapping

    if depth >= MAX_TREE_DEPTH:
        raise _TreeTooBig(f"nested deeper than {MAX_TREE_DEPTH}")
    if isinstance(value, Mapping):
        keys = [str(key)[:MAX_TEXT] for key in itertools.islice(iter(value.keys()), MAX_TREE_LEAVES + 1)]
        children = [value[key] for key in keys]
        node = "dict"
    elif isinstance(value, (tuple, list)):
        children = list(itertools.islice(iter(value), MAX_TREE_LEAVES + 1))
        keys = None
        node = "list" if isinstance(value, list) else "tuple"
    else:  # not reached: callers check _is_tree first
        raise TypeError(f"not a tree: {_type_name(value)}")
    items = []
    for child in children:
        if _is_tree(child):
            items.append(_encode_tree(child, max_elements, depth=depth + 1, budget=budget))
            continue
        budget[0] -= 1
        if budget[0] < 0:
            raise _TreeTooBig(f"more than {MAX_TREE_LEAVES} leaves")
        items.append(_encode_leaf(child, max_elements))
    encoded = {
        "kind": "tree",
        "node": node,
        "type": _type_name(value),
        "items": items,
        "repr": _safe_text(lambda: repr(value))[:400],
        "summary": _safe_text(lambda: _summary(value)),
    }
    if keys is not None:
        encoded["keys"] = keys
    return encoded


def _encode_leaf(value: object, max_elements: int) -> dict:
    import numpy as np

    if isinstance(value, (bool, int, float, complex)) and not isinstance(value, np.generic):
        try:  # a plain number is a 0-d array (its type stays named: a bare float is not an array)
            array = np.asarray(value)
        except (OverflowError, ValueError):
            array = None
        if array is not None and array.dtype.kind in "biufc":
            return _encode_array(array, type(value).__name__, max_elements)
    container = _type_name(value)
    is_array_like = isinstance(value, (np.ndarray, np.generic)) or container.startswith(("jax", "jaxlib"))
    if not is_array_like or not hasattr(value, "shape"):
        return {
            "kind": "object",
            "type": container,
            "repr": _safe_text(lambda: repr(value))[:400],
            "summary": _safe_text(lambda: _summary(value)),
        }
    return _encode_array(value, container, max_elements)


def _encode_array(value: object, container: str, max_elements: int) -> dict:
    import numpy as np

    array = np.asarray(value)
    if type(array) is not np.ndarray:
        array = array.view(np.ndarray)
    dtype_name = array.dtype.name
    if array.dtype.kind not in "biufc":
        if dtype_name not in _WIDENED:
            return {"kind": "object", "type": container, "repr": f"array of dtype {dtype_name}"}
        array = array.astype(_WIDENED[dtype_name])
    shape = [int(n) for n in array.shape]
    if array.size > max_elements or array.ndim > MAX_DIMS:
        return {"kind": "too-large", "type": container, "dtype": dtype_name, "shape": shape[:64]}
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    if array.dtype.str not in _WIRE:
        array = array.astype(np.dtype(_WIDER_BY_KIND[array.dtype.kind]).newbyteorder("<"))
    return {
        "kind": "array",
        "type": container,
        "dtype": dtype_name,
        "wire_dtype": array.dtype.str,
        "shape": shape,
        "data": _b64encode(array.tobytes()).decode("ascii"),
    }


def _summary(value: object) -> str:
    """What came back, in words: a tuple of what, a dict with which keys."""
    if value is None:
        return "None"
    if isinstance(value, (tuple, list)):
        kinds = ", ".join(_type_name(item).rsplit(".", 1)[-1] for item in list(value)[:4])
        more = ", …" if len(value) > 4 else ""
        return f"a {type(value).__name__} of {len(value)}: ({kinds}{more})"
    if isinstance(value, dict) or hasattr(value, "keys"):
        keys = [str(k) for k in list(value.keys())[:6]]
        return f"a {_type_name(value).rsplit('.', 1)[-1]} with keys {keys}"
    if isinstance(value, str):
        return f"a string {value[:40]!r}"
    if isinstance(value, (int, float, complex, bool)):
        return f"a plain {type(value).__name__} {value!r}"
    return f"a {_type_name(value)}"


def _import_submission(job: dict) -> types.ModuleType:
    source, filename = job["source"], job["filename"]
    module = types.ModuleType(job["module_name"])
    module.__file__ = filename
    sys.modules[module.__name__] = module
    # Python ends lines at \n, \r\n and \r only (str.splitlines would also split at form feeds).
    lines = [line for line in _LINE_ENDS.split(source) if line]
    linecache.cache[filename] = (len(source), None, lines, filename)
    code = compile(source, filename, "exec", dont_inherit=True)
    exec(code, module.__dict__)  # running the submission is the point of this process
    return module


def _callable_names(module: types.ModuleType) -> list[str]:
    names = []
    for name, value in list(vars(module).items()):
        if not name.startswith("__") and callable(value):
            names.append(str(name)[:MAX_TEXT])
    return sorted(names)[:MAX_NAMES]


def _run_case(case: dict, module: types.ModuleType, entry, capture: _Capture, max_elements: int) -> dict:
    """Calls the entry point (or the function the case names, for trusted jobs) on the case's arguments."""
    message = {"type": "result", "case": case["id"], "value": None, "error": None}
    started = _perf_counter()
    with capture:
        try:
            if "entry" in case:
                entry = getattr(module, case["entry"])
            args = [decode_arg(arg) for arg in case["args"]]
            message["value"] = encode_value(entry(*args), max_elements)
        except BaseException as exc:  # noqa: BLE001 - the submission may raise anything
            message["error"] = describe_error(exc)
    message["duration_s"] = _perf_counter() - started
    message.update(capture.collected())
    return message


_warmup_dir = ""  # where the warm-up lies, when not next to this file (a child forked into a sandbox)


def _warm_up() -> bool | None:
    """Runs the exercise's warm-up when the grader left one next to the harness (a child started ahead).

    Returns None without a warm-up, else whether it ran through. Nothing it computed is kept: the job,
    and the submission, come after.
    """
    folder = _warmup_dir or os.path.dirname(os.path.abspath(__file__))
    code_path, calls_path = os.path.join(folder, "warmup.py"), os.path.join(folder, "warmup.json")
    if not os.path.exists(code_path):
        return None
    namespace: dict = {"__name__": "grader_warmup"}
    try:
        with open(code_path, encoding="utf-8") as code, open(calls_path, encoding="utf-8") as calls:
            source, wire_calls = code.read(), json.load(calls)
        exec(compile(source, code_path, "exec"), namespace)  # the exercise's own, trusted code
        namespace["warm_up"]([[decode_arg(arg) for arg in call["args"]] for call in wire_calls])
        ran = True
    except Exception:  # noqa: BLE001 - a failed warm-up only costs time; the hello says so
        ran = False
    namespace.clear()
    import gc

    gc.collect()
    gc.freeze()  # what it compiled stays for the submission's calls: frozen as the preloads are
    return ran


def _watchdog(timeout: float | None) -> float | None:
    """Just before the grader's deadline, so the stack of a phase that hangs is on stderr when it is killed."""
    return None if timeout is None else max(float(timeout) - 0.3, 0.1)


def main(argv: list[str]) -> None:
    """Preloads, says hello, then waits for the job: a child can be started before its job exists."""
    if argv[1:2] == ["--probe-reach"]:
        _probe_reach(argv[2:])
    out = int(argv[2])
    preload = [name for name in (argv[3] if len(argv) > 3 else "").split(",") if name]
    if len(argv) > 4:
        _lifeline(int(argv[4]))
    try:
        hello = {"type": "hello", "python": sys.version.split()[0], **_preload(preload)}
        hello["warmed"] = _warm_up()
    except BaseException as exc:  # noqa: BLE001 - reported as a fault of the environment
        hello = {
            "type": "hello",
            "python": sys.version.split()[0],
            "modules": {},
            "backend": None,
            "preload_error": describe_error(exc),
        }
    _send(out, hello)
    job = _read_job(int(argv[1]))  # no submission code has run before this point
    if hello.get("preload_error"):
        _send(out, {"type": "done"})
        return
    limits = job.get("rlimits", {})
    _apply_limits(limits)
    _open_up(job.get("reach", []))
    _drop_privileges(job.get("drop_to"))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _strip_sys_path(job.pop("hidden_paths", []))  # not left lying in memory for the submission to read
    capture = _Capture(int(job["capture_limit"]), int(limits.get("RLIMIT_FSIZE", 1 << 62)))
    capture.watchdog_s = _watchdog(job.get("import_timeout_s"))

    entry = module = None
    imported: dict[str, object] = {"type": "imported", "error": None, "names": [], "entry_point_found": False}
    with capture:
        try:
            module = _import_submission(job)
            imported["names"] = _callable_names(module)
            entry = getattr(module, job["entry_point"], None)
            imported["entry_point_found"] = callable(entry)
        except BaseException as exc:  # noqa: BLE001 - the submission may raise anything
            imported["error"] = describe_error(exc)
    imported.update(capture.collected())
    _send(out, imported)

    capture.watchdog_s = _watchdog(job.get("case_timeout_s"))
    if module is not None and imported["entry_point_found"]:
        for case in job["cases"]:
            _send(out, _run_case(case, module, entry, capture, int(job["max_output_elements"])))
    _send(out, {"type": "done"})


# --- the fork server: children that start with jax and flax imported already ------------------------------

CHILD_FDS = 5  # what each request hands over: job, channel, lifeline, stdout, stderr
MAX_NAMESPACES = 8  # ... then, for a child that joins a sandbox, one descriptor per namespace
_CLONE_NEWUSER, _CLONE_NEWPID = 0x10000000, 0x20000000
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _CAP_VERSION_3 = 24, 38, 0x20080522


def serve_forks(argv: list[str]) -> None:
    """``--fork-server CONTROL_FD PRELOADS``: imports the preloads once, then forks one child per request.

    It only imports: nothing is computed here, since a fork after XLA has started its threads deadlocks.
    Each request on the control socket (a UNIX socket from the grader) carries the child's five pipes, its
    working directory and environment, and, for a child that runs in a sandbox, descriptors of the
    sandbox's namespaces. The child is forked twice over, so that it becomes the grader's own (the grader
    is a subreaper: the orphan is handed to it), joins its sandbox, and then runs as ``main`` would in a
    fresh process: hello, warm-up, job, limits, lower privileges, submission. The server ends when the
    grader closes the socket (it exited, however it died).
    """
    import socket

    _import_frozen([name for name in argv[3].split(",") if name])  # nothing computed: see above
    control = socket.socket(fileno=int(argv[2]))
    control.sendall(b"ready\n")
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, CHILD_FDS + MAX_NAMESPACES)
        if not message:
            os._exit(0)
        try:
            pid = _fork_child(json.loads(message), fds, control.fileno(), argv[3])
        finally:
            for fd in fds:
                os.close(fd)
        control.sendall(f"{pid}\n".encode())


def _fork_child(request: dict, fds: list[int], control: int, preload: str) -> int:
    """Forks the child through an intermediate process that exits at once; returns the child's pid (or -1).

    For a sandboxed child the intermediate joins the sandbox's namespaces first (``_enter_sandbox``; where it
    cannot, no child is born and the grader starts a fresh one): the child is then born inside the
    sandbox's PID namespace, with its root, and dies with the sandbox's init."""
    names = request.get("namespaces", [])
    if len(fds) != CHILD_FDS + len(names):
        return -1
    namespaces = dict(zip(names, fds[CHILD_FDS:], strict=True))
    read_pid, write_pid = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        try:
            os.close(read_pid)
            if namespaces:
                _enter_sandbox(namespaces)
            child = os.fork()
            if child == 0:
                os.close(write_pid)
                _become_child(request, fds[:CHILD_FDS], control, preload)  # never returns
            os.write(write_pid, str(child).encode())
        finally:
            os._exit(0)
    os.close(write_pid)
    with os.fdopen(read_pid, "rb") as answer:
        text = answer.read()
    os.waitpid(intermediate, 0)
    return int(text) if text.isdigit() else -1


def _setns(fd: int, kind: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, kind) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def _enter_sandbox(namespaces: dict[str, int]) -> None:
    """Joins a sandbox's namespaces (in the intermediate, which runs nothing else): the user namespace that
    owns them where the grader is not root, then the PID namespace (for the child to come), network, IPC,
    UTS and cgroup; then the mount namespace, which makes the sandbox's
    root this process's root, and the user namespace the sandbox's processes live in. As bubblewrap does
    for a child of its own: no new privileges from here on, and where the user namespace gave
    capabilities (the grader is not root), none left, bounding set included (as root, the job's uid drops
    them)."""
    import ctypes

    kinds = {"owner": _CLONE_NEWUSER, "pid": _CLONE_NEWPID}
    for name in ("owner", "pid", "net", "ipc", "uts", "cgroup"):
        if name in namespaces:
            _setns(namespaces[name], kinds.get(name, 0))
    _setns(namespaces["mnt"], 0)
    if "user" in namespaces:
        _setns(namespaces["user"], _CLONE_NEWUSER)
    for fd in namespaces.values():
        os.close(fd)
    libc = ctypes.CDLL(None, use_errno=True)
    failed = libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
    if "user" in namespaces and not failed:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as last:
            failed = any(libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 for cap in range(int(last.read()) + 1))
        header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
        data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: twice 32 bits, all zero
        failed = failed or libc.capset(header, data) != 0
    if failed:
        error = ctypes.get_errno()
        raise OSError(error, f"dropping privileges: {os.strerror(error)}")


def _check_sandbox(expect: dict[str, int]) -> None:
    """In the child, born in the sandbox's PID namespace and so seeing its ``/proc``: every namespace is
    the sandbox's (the mount and user namespaces too)."""
    for name, number in expect.items():
        if os.stat(f"/proc/self/ns/{name}").st_ino != number:
            raise OSError(f"this process is not in the sandbox's {name} namespace")


def _close_other_fds(keep: set[int]) -> None:
    """Closes every descriptor the server held that the child does not need (a folder of the grader's,
    held open, would be a way out of a sandbox)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _become_child(request: dict, fds: list[int], control: int, preload: str) -> None:
    """In the forked child: its own session, standard streams, folder and environment, then ``main``."""
    global _warmup_dir
    status = 0
    try:
        os.setsid()
        os.close(control)
        job, channel, lifeline, stdout, stderr = fds
        null = os.open(os.devnull, os.O_RDONLY)
        for source, target in ((null, 0), (stdout, 1), (stderr, 2)):
            os.dup2(source, target)
        for fd in (null, stdout, stderr):
            os.close(fd)
        _close_other_fds({job, channel, lifeline})
        _check_sandbox(request.get("expect", {}))
        os.chdir(request["cwd"])
        _warmup_dir = request.get("harness", "")
        os.umask(0o022)
        os.environ.clear()
        os.environ.update(request["env"])
        for name in ("SIGINT", "SIGTERM", "SIGPIPE"):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        harness = os.path.join(_warmup_dir, "harness.py") if _warmup_dir else sys.argv[0]
        sys.argv = [harness, str(job), str(channel), preload, str(lifeline)]  # as a fresh child's
        main(sys.argv)
    except BaseException:  # noqa: BLE001 - as in a fresh process: a fault of the harness
        traceback.print_exc()
        status = 70
    _flush_std()
    os._exit(status)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fork-server"]:
        serve_forks(sys.argv)
    status = 0
    try:
        main(sys.argv)
    except BaseException:  # noqa: BLE001 - a fault of the harness itself, told apart by the exit status
        traceback.print_exc()
        status = 70
    _flush_std()
    # Skips the submission's atexit hooks and interpreter teardown: the work is reported already.
    os._exit(status)
