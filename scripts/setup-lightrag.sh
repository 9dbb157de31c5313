#!/usr/bin/env bash
# A Python venv with the real LightRAG 1.5.7, used by tests that read hrag's output with
# LightRAG's own storage classes (tests/tools/lightrag_json_check.py). Idempotent.
#
#   scripts/setup-lightrag.sh            -> prints the venv's python path
# Location: $HRAG_LIGHTRAG_VENV, default <repo>/target/lightrag-venv.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
V=${HRAG_LIGHTRAG_VENV:-$ROOT/target/lightrag-venv}
if [ -x "$V/bin/python" ] && "$V/bin/python" -c 'import lightrag, asyncpg, bpe_openai' 2>/dev/null; then
  echo "$V/bin/python"
  exit 0
fi
command -v python3 >/dev/null || { echo "setup-lightrag: python3 is missing" >&2; exit 1; }
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
  else
    echo "setup-lightrag: python3's venv module is missing (install python3-venv as root)" >&2
    exit 1
  fi
fi
mkdir -p "$(dirname "$V")"
python3 -m venv "$V" >&2
"$V/bin/pip" install -q --disable-pip-version-check lightrag-hku==1.5.7 asyncpg bpe-openai >&2
"$V/bin/python" -c 'import lightrag, asyncpg, bpe_openai' >&2
echo "$V/bin/python"
