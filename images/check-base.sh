#!/bin/sh
# Checks, first thing in the image build, that BASE_IMAGE provides what Dockerfile.base needs,
# so that a wrong base fails here with the fix instead of later with `pip: not found`:
#
#   - `python3`, the same minor version as the wheels in WHEELS (their cp3XX tag: the project
#     wheel carries compiled extensions built for one interpreter);
#   - its `venv` and `ensurepip` modules (Debian and Ubuntu ship them apart: python3-venv).
#
#   check-base.sh WHEELS_DIR
# Exit status 0 when the base fits; 1 with the reason and a fix on stderr.
set -eu

wheels=${1:?usage: check-base.sh WHEELS_DIR}
fix="use a Python image (python:3.X-slim-bookworm) or a Debian/Ubuntu base with the packages \
python3 and python3-venv (see images/README.md, \"What BASE_IMAGE must provide\")"

fail() {
    echo "BASE_IMAGE does not fit: $1; $fix" >&2
    exit 1
}

command -v python3 >/dev/null 2>&1 || fail "it has no python3 on PATH"

wanted=""
for wheel in "$wheels"/pyrallel_consumer-*.whl; do
    [ -e "$wheel" ] || fail "no pyrallel_consumer wheel in $wheels (run images/build_wheels.py)"
    # name-version-pythontag-abitag-platform.whl: the python tag is the third field
    wanted=$(basename "$wheel" | cut -d- -f3)
done
have=$(python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
[ "$have" = "$wanted" ] ||
    fail "its python3 is $have but the wheels were built for $wanted (build them with that \
Python, or pick a base with it)"
python3 -c 'import venv, ensurepip' 2>/dev/null ||
    fail "its python3 lacks the venv/ensurepip modules"
echo "BASE_IMAGE fits: $(python3 --version) with venv and ensurepip, wheels for $wanted"
