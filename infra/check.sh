#!/usr/bin/env bash
# Static checks of the infrastructure code, runnable without Azure or the Bicep compiler:
#   1. checkov's Bicep checks (infra/*.bicep; findings are fixed or skipped in place with a reason),
#   2. tests/infra: the Bicep parsed with pycep-parser, checked against what the code reads.
# Both live in their own venv, .venv-checks: checkov pins its own dependency tree, kept apart from
# the project's constraints.txt. Rebuilt only when the pins below change.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
PYCEP_VERSION=0.5.1   # the version checkov 3.3.30 requires; tests/infra parse with the same one
PYTEST_VERSION=9.1.1
VENV=.venv-checks
STAMP="$VENV/.installed-checkov-$CHECKOV_VERSION-pycep-$PYCEP_VERSION-pytest-$PYTEST_VERSION"

if [ ! -f "$STAMP" ]; then
  test -x "$VENV/bin/python" || python3 -m venv "$VENV"
  echo '*' > "$VENV/.gitignore"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "checkov==$CHECKOV_VERSION" "pycep-parser==$PYCEP_VERSION" "pytest==$PYTEST_VERSION"
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi

"$VENV/bin/checkov" --directory infra --framework bicep --skip-download --compact --quiet
# -c /dev/null --noconftest: not the project's pytest config nor tests/conftest.py (they need the
# project's venv); tests/infra reads the code as text and needs only pycep-parser and PyYAML.
"$VENV/bin/python" -m pytest -c /dev/null --rootdir . -p no:cacheprovider --noconftest -q tests/infra
