#!/usr/bin/env bash
# The test command (`make test`): every tier, real services included.
# Tests that need ../shared/data skip with a message where it is absent;
# the integration fixtures start Redis and SeaweedFS themselves and, in CI
# (CI=true), fail rather than skip when they cannot.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
"$PY" -m pytest "$@"
rc=$?
if [ "$rc" = "5" ]; then
  echo "run-tests: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$rc"
