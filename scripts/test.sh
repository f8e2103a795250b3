#!/usr/bin/env bash
# Quick start, second command: set up, then run the whole test suite on 2 workers, listing every skipped test with
# its reason (-rs). Extra arguments go to pytest (e.g. ./scripts/test.sh -k demo, -m unit, -m "not kafka"). Exits with pytest's status; "no tests collected" (5) is a failure too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

# Tests choose their own stores and settings: nothing from the shell (e.g. after trying the demo) leaks in.
unset TSUNAGU_DATABASE_URL TSUNAGU_INTEGRATED_CENTER TSUNAGU_JOINT_LEDGER TSUNAGU_EMERGENCY_HOURS \
      TSUNAGU_MONTHLY_REPORT_DUE_DAY

status=0
.venv/bin/pytest -n 2 -q -rs "$@" || status=$?  # -rs: every skipped test listed with its reason
if [ "$status" = 5 ]; then
  echo "test.sh: no tests were collected: that is a failure" >&2
fi
exit "$status"
