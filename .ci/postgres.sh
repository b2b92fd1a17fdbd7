#!/usr/bin/env bash
# CI: make a PostgreSQL server available to tests/pg_server.py (initdb + pg_ctl, Debian paths).
# Idempotent and never fatal: without a server the PostgreSQL tests skip and say what to install.
set -u

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "postgres.sh: no apt-get here; PostgreSQL tests will be skipped" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo -n"
    else
        echo "postgres.sh: not root and no passwordless sudo; PostgreSQL tests will be skipped" >&2
        exit 0
    fi
fi
if ! $sudo env DEBIAN_FRONTEND=noninteractive sh -c \
        'apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql' \
        >/tmp/postgres-install.log 2>&1; then
    echo "postgres.sh: installing PostgreSQL failed (see /tmp/postgres-install.log);" \
         "PostgreSQL tests will be skipped" >&2
    exit 0
fi
echo "postgres.sh: PostgreSQL server installed"
