#!/usr/bin/env bash
# Installs Olah (an open-source Hugging Face Hub mirror server, from PyPI) into its own virtual environment,
# .venv-olah at the repository root, apart from .venv so that its pinned dependencies never meet hfrec's.
# tests/test_hub.py::test_pull_through_olah serves the test hub's repositories through it (offline mirror);
# the test session runs this script itself when .venv-olah is missing.
#
#   bash tests/olah_setup.sh            # idempotent: does nothing when the right version is there
#
# Environment: PYTHON (default python3), OLAH_VERSION (default 0.5.4), HFREC_OLAH_VENV (default .venv-olah;
# tests find another location through HFREC_OLAH_CLI=<venv>/bin/olah-cli).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HFREC_OLAH_VENV:-.venv-olah}"
PY="${PYTHON:-python3}"
OLAH_VERSION="${OLAH_VERSION:-0.5.4}"

if [ -x "$VENV/bin/olah-cli" ] && "$VENV/bin/python" - "$OLAH_VERSION" <<'PYCHECK' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("olah") == sys.argv[1] else 1)
PYCHECK
then
    echo "olah $OLAH_VERSION already installed in $VENV"
    exit 0
fi
command -v git >/dev/null || { echo "olah_setup.sh: olah serves git repositories and needs git" >&2; exit 1; }
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "olah==$OLAH_VERSION"
"$VENV/bin/olah-cli" --help >/dev/null
echo "olah $OLAH_VERSION installed in $VENV"
