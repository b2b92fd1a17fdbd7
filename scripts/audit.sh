#!/usr/bin/env bash
# Dependency audit (docs/reliability.md, "Security"): pip-audit over requirements.lock, the
# pinned set a `pip install -c requirements.lock ".[dev]"` installs.
#
# Needs a vulnerability service on the network: PyPI's JSON API (the default, which pip-audit
# reads at pypi.org/pypi/<name>/<version>/json) or OSV (`scripts/audit.sh -s osv`, api.osv.dev).
# A package index alone is not enough, so this is not part of .ci/run (CI must not fail on the
# network). --strict makes a package the service does not know fail the audit: without it, a
# service that answers 404 for everything reports "No known vulnerabilities found".
#
#   scripts/audit.sh [pip-audit options]   audit the lock (exit 0: no known vulnerability)
#   scripts/audit.sh --refresh-lock        re-resolve ".[dev]" in a fresh venv, rewrite the lock
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
if [[ "${1:-}" == "--refresh-lock" ]]; then
    "$tmp/venv/bin/pip" install -q ".[dev]"
    { grep '^#' requirements.lock
      "$tmp/venv/bin/pip" freeze --all | grep -viE '^(sectorbot|pip|setuptools)( @|==)'
    } > "$tmp/requirements.lock"
    mv "$tmp/requirements.lock" requirements.lock
    echo "requirements.lock rewritten: review the diff (and update its date line)"
    exit 0
fi
"$tmp/venv/bin/pip" install -q pip-audit
"$tmp/venv/bin/pip-audit" -r requirements.lock --no-deps --strict --progress-spinner off "$@"
