#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image. Its base images (Ubuntu
# 22.04) have Python 3.10 and the grader needs 3.11 or newer, so this installs one without touching the
# system's python3 (Gradescope's own harness runs on it), then bubblewrap, then a venv with the grader,
# and grades the exercise's reference as a check (which also fills the reference cache). It stops with a
# message at the first thing that fails: a broken image is better found at build than at every submission.
set -euo pipefail

root="${AUTOGRADER_ROOT:-/autograder}"
source_dir="$root/source"
venv="$root/venv"
export DEBIAN_FRONTEND=noninteractive
export GRADER_EXERCISES="$source_dir/exercises"

say() { echo "setup.sh: $*" >&2; }

# A venv made by `candidate`, when it is Python 3.11 or newer and can make one (Debian splits venv off).
try_python() {
    local candidate="$1"
    command -v "$candidate" >/dev/null 2>&1 || return 1
    "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || return 1
    rm -rf "$venv"
    if ! "$candidate" -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"  # a half-made venv must not pass for a working one
        return 1
    fi
    say "using $("$venv/bin/python" --version) from $candidate"
}

try_installed() {
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3; do
        try_python "$candidate" && return 0
    done
    return 1
}

# 1. one already there; 2. Ubuntu's own python3.11 (22.04's universe has it); 3. the deadsnakes PPA;
# 4. a standalone build from uv. The first that gives a working venv wins.
install_python() {
    try_installed && return 0
    say "no Python 3.11+ found; trying the distribution's python3.11"
    apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv && try_installed && return 0
    say "trying the deadsnakes PPA"
    apt-get install -y -qq --no-install-recommends software-properties-common gpg-agent &&
        add-apt-repository -y ppa:deadsnakes/ppa && apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv && try_installed && return 0
    say "trying uv's standalone Python"
    export UV_PYTHON_INSTALL_DIR=/opt/python
    apt-get install -y -qq --no-install-recommends python3-pip &&
        python3 -m pip install --quiet --target /opt/uv uv && /opt/uv/bin/uv python install 3.11 &&
        try_python "$(/opt/uv/bin/uv python find 3.11 --no-project)" && return 0
    return 1
}

apt-get update -qq
apt-get install -y -qq --no-install-recommends bubblewrap ca-certificates

if ! install_python; then
    say "FAILED: could not install Python 3.11 or newer (tried the installed ones, apt's python3.11, the" \
        "deadsnakes PPA and uv). Pick a base image with Python 3.11+ on Gradescope's Configure Autograder page."
    exit 1
fi

"$venv/bin/python" -m pip install --quiet --upgrade pip
shopt -s nullglob
wheels=("$source_dir"/dist/*.whl)
if [ "${#wheels[@]}" -gt 0 ]; then
    "$venv/bin/python" -m pip install --quiet "${wheels[@]}"
elif [ -f "$source_dir/project/pyproject.toml" ]; then
    "$venv/bin/python" -m pip install --quiet "$source_dir/project"
else
    say "FAILED: the zip holds neither dist/*.whl nor project/pyproject.toml: rebuild it with make_autograder.py"
    exit 1
fi

exercise="$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["exercise"])' \
    "$source_dir/autograder.json")"
reference="$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["reference"])' \
    "$source_dir/autograder.json")"
"$venv/bin/grader" show "$exercise" >/dev/null
if ! "$venv/bin/grader" grade "$source_dir/$reference" --exercise "$exercise" --format json --output /tmp/reference.json; then
    say "FAILED: the exercise's own reference does not pass (report: /tmp/reference.json)"
    exit 1
fi
say "ready: $("$venv/bin/grader" --version 2>/dev/null || echo grader) grades $exercise"
