#!/usr/bin/env bash
# Quick start, first command: set up, load the demo municipality into the embedded store (./tsunagu.db), and
# start the hub on it: the staff UI at http://127.0.0.1:8080/ and the HTTP API. Loading the demo again changes nothing. Stop the API with Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

# The demo records its settings (the joint ledger on) in its store: see them with `tsunagu settings show`.
.venv/bin/tsunagu demo "$@"

echo
if .venv/bin/tsunagu serve --help >/dev/null 2>&1; then
  echo "■ 職員向け画面をブラウザで開いてください / Open the staff UI in a browser: http://127.0.0.1:8080/"
  echo "  （開発用ログイン: デモの職員を名前で選びます / development sign-in: pick a demo person by name）"
  echo "■ API: http://127.0.0.1:8080/docs  （Ctrl-C で停止 / Ctrl-C to stop）"
  # The development sign-in provider (services/auth/dev_provider.py) for the demo's staff; never in production.
  TSUNAGU_DEV_OIDC=1 exec .venv/bin/tsunagu serve "$@"
else
  echo "'tsunagu serve' is not available in this version yet: try the timeline commands above instead."
  echo "このバージョンには 'tsunagu serve' がまだありません。上の timeline コマンドで試してください。"
fi
