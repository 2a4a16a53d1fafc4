#!/usr/bin/env bash
# `kedro workspaces up` (and the tests against real workspace stores) needs Debian's PostgreSQL
# server and the Node.js packages of services/package-lock.json (Azurite). Installs what is
# missing when it can; otherwise says so, and those tests are skipped with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's postgresql for the workspace tests..."
    apt-get install -y -qq postgresql >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq postgresql >/dev/null 2>&1; } \
      || echo "warning: apt-get could not install postgresql" >&2
  else
    echo "warning: no PostgreSQL server (Debian package 'postgresql'): workspace tests will be skipped." >&2
  fi
fi
if [ ! -f services/node_modules/azurite/package.json ] \
  || [ services/package-lock.json -nt services/node_modules/.package-lock.json ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "Installing the Node.js services from services/package-lock.json..."
    npm ci --prefix services --no-audit --no-fund --loglevel=error \
      || echo "warning: npm ci failed: workspace tests will be skipped." >&2
  else
    echo "warning: no npm (Debian package 'npm'): workspace tests will be skipped." >&2
  fi
fi
exit 0
