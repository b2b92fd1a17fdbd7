"""Fuzz ``sectorbot check-config``: whatever the file and the environment hold, it either
loads (exit 0, JSON on stdout) or exits 2 with only ``config error:`` lines; never a
traceback, never another exit status, never a planted secret on screen (issue #17).

Inputs start from the shipped files (``config/default.toml``, ``config/optimize-space.toml``
as a wrong file, ``config/sectors.toml`` as the universe) and are mutated by Hypothesis
strategies: values replaced by other TOML types, keys deleted, renamed, added, sections
turned into scalars, raw bytes edited (invalid TOML, invalid UTF-8), plus random
``SECTORBOT__*`` environment sets. ``main()`` runs in-process, so an example costs a few ms.

CI runs ``SECTORBOT_FUZZ_EXAMPLES`` examples (default 500, about 6 s); a full run:
``SECTORBOT_FUZZ_EXAMPLES=10000 pytest tests/test_config_fuzz.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bot.cli import main
from bot.config import Settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("SECTORBOT_FUZZ_EXAMPLES", "500"))
SECRET = "Zq9-planted-secret"
"""Planted in secret places (keys, passwords in URLs): it must never reach the screen."""

SHIPPED_TEXT = {name: (REPO / "config" / name).read_text()
                for name in ("default.toml", "optimize-space.toml")}
"""Read once: a strategy must not depend on files that may change during a long run."""
SHIPPED = {name: tomllib.loads(text) for name, text in SHIPPED_TEXT.items()}
UNIVERSE = tomllib.loads((REPO / "config" / "sectors.toml").read_text())
SECTIONS = {name: sorted(field.annotation.model_fields)
            for name, field in Settings.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)}
ENV_NAMES = sorted(["SECTORBOT__MODE", "SECTORBOT__UNIVERSE_FILE"]
                   + [f"SECTORBOT__{s.upper()}" for s in SECTIONS]
                   + [f"SECTORBOT__{s.upper()}__{k.upper()}"
                      for s, keys in SECTIONS.items() for k in keys])

PLAIN_STRINGS = st.sampled_from([
    "", " ", "paper", "live", "demo", "binance", "okx", "console", "to_core", ".", "..",
    "/", "../x.toml", "/dev/null", "sectors.toml", "nan", "inf", "-1", "0", "1e999",
    "2024-02-30", "2021-03-01", "true", "[7, 14]", '{"max_leverage": 2}', "null",
    "foo://bar", "sqlite://", "postgresql+nodriver://u@h/db", "http://proxy:3128",
    "\u202e", "é", "\t", "SOL", "owner/name",
])
SECRET_URLS = st.sampled_from([
    f"postgresql+psycopg://bot:{SECRET}@db.invalid/s", f"http://svc:{SECRET}@proxy:3128",
    f"http://{SECRET}@proxy:3128", f"postgresql://bot@db/s?sslmode=require&password={SECRET}",
])
"""Credentials in a URL: refused anywhere in the config file, and never echoed."""
KEYS = st.one_of(st.text(min_size=1, max_size=10), st.sampled_from(
    ["mode", "name", "max_leverage", "tokens", "url", "https_proxy", "api_key", "path",
     "start", "_env_prefix", "_cli_parse_args", "secrets_file", "universe_file", "X"]))


def toml_values(strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.integers(min_value=-3, max_value=400), st.floats(), st.floats(-10, 10_000),
        st.text(max_size=12), strings, st.dates(), st.datetimes(), st.times())
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(KEYS, inner, max_size=4), max_leaves=10)


CONFIG_VALUES = toml_values(PLAIN_STRINGS | SECRET_URLS)
UNIVERSE_VALUES = toml_values(PLAIN_STRINGS)


def paths(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path in a nested table (sections and their keys)."""
    out = []
    for key, value in table.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += paths(value, (*prefix, key))
    return out


def parent_of(table: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path[:-1]:
        table = table[key]
    return table


@st.composite
def mutated_table(draw: st.DrawFn, base: dict[str, Any],
                  values: st.SearchStrategy[Any]) -> dict[str, Any]:
    """``base`` after 0-6 structural mutations, each drawn by Hypothesis (0: the shipped file
    itself, so the environment alone decides)."""
    table = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 6))):
        where = paths(table)
        op = draw(st.sampled_from(["replace", "delete", "add", "rename", "scalar_section",
                                   "wrap", "stringify"]))
        if not where:
            op = "add"
        path = draw(st.sampled_from(where)) if where else ("x",)
        holder = parent_of(table, path) if where else table
        key = path[-1]
        if op == "replace":
            holder[key] = draw(values)
        elif op == "delete":
            holder.pop(key, None)
        elif op == "add":
            target = holder if draw(st.booleans()) or not where else table
            target[draw(KEYS)] = draw(values)
        elif op == "rename":
            holder[draw(KEYS)] = holder.pop(key)
        elif op == "scalar_section":
            section = draw(st.sampled_from([p[0] for p in where]))
            table[section] = draw(st.one_of(st.integers(), st.text(max_size=6), st.booleans(),
                                            st.floats(), st.lists(st.integers(), max_size=3)))
        elif op == "wrap":
            holder[key] = [holder[key]] if draw(st.booleans()) else {"value": holder[key]}
        elif op == "stringify":
            holder[key] = str(holder[key])
    return table


@st.composite
def raw_edits(draw: st.DrawFn, text: str) -> bytes:
    """The file's bytes with 1-4 byte-level edits (invalid TOML, invalid UTF-8)."""
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 8))
        data[at:at + cut] = draw(st.binary(max_size=6) | st.sampled_from(
            [b"=", b"[", b"]", b'"', b"\n", b"[risk]\n", b"\xff", b"\xc3", b"= 5\n"]))
    return bytes(data)


ENV_VALUES = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=20), PLAIN_STRINGS, st.integers(-5, 100).map(str))
ENVS = st.dictionaries(st.sampled_from(ENV_NAMES) | st.just("SECTORBOT__RISK__NOPE"),
                       ENV_VALUES, max_size=3)
SECRET_ENV = st.dictionaries(st.sampled_from([
    "SECTORBOT__EXCHANGE__API_KEY", "SECTORBOT__EXCHANGE__API_SECRET",
    "SECTORBOT__EXCHANGE__PASSWORD", "SECTORBOT__SIGNALS__GITHUB_TOKEN",
    "SECTORBOT__EXCHANGE", "SECTORBOT__STATE__URL", "SECTORBOT__EXCHANGE__HTTPS_PROXY",
]), st.sampled_from([SECRET, '{"api_key": "' + SECRET + '"', '{"api_key": "' + SECRET
                     + '", "name": 5}', f"http://svc:{SECRET}@proxy:3128",
                     f"postgresql://bot:{SECRET}@db.invalid/s", f"foo://u:{SECRET}@h"]),
    max_size=2)
"""A secret in its proper place (the environment) must stay masked whatever else is wrong."""


@st.composite
def inputs(draw: st.DrawFn) -> tuple[str, bytes, bytes | None, dict[str, str]]:
    """(kind, config bytes, universe bytes or None, environment)."""
    kind = draw(st.sampled_from(["structured", "raw", "universe", "clean_env"]))
    base_name = draw(st.sampled_from(sorted(SHIPPED)))
    universe: bytes | None = None
    if kind == "structured":
        config = tomli_w.dumps(draw(mutated_table(SHIPPED[base_name], CONFIG_VALUES))
                               ).encode()
    elif kind == "raw":
        config = draw(raw_edits(SHIPPED_TEXT[base_name]))
    elif kind == "universe":
        config = b'universe_file = "sectors.toml"\n'
        universe = tomli_w.dumps(draw(mutated_table(UNIVERSE, UNIVERSE_VALUES))).encode()
    else:  # the built-in defaults and the environment alone
        config = b""
    env = {**draw(ENVS), **draw(SECRET_ENV)}
    return kind, config, universe, env


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(inputs())
def test_check_config_loads_or_exits_2_in_one_line_per_problem(
        case: tuple[str, bytes, bytes | None, dict[str, str]]) -> None:
    kind, config, universe, env = case
    saved = {k: v for k, v in os.environ.items() if k.startswith("SECTORBOT__")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_bytes(config)
        if universe is not None:
            (Path(tmp) / "sectors.toml").write_bytes(universe)
        out, err = io.StringIO(), io.StringIO()
        try:
            for key in saved:
                del os.environ[key]
            os.environ.update(env)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["check-config", "--config", str(path)])
        finally:
            for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
                del os.environ[key]
            os.environ.update(saved)
    event(f"{kind}: exit {code}")
    stdout, stderr = out.getvalue(), err.getvalue()
    assert code in (0, 2), (code, stderr)
    assert "Traceback" not in stderr
    assert SECRET not in stdout + stderr
    if code == 0:
        assert isinstance(json.loads(stdout), dict)
        assert stderr == ""
    else:
        lines = stderr.splitlines()
        assert lines and stdout == ""
        for line in lines:
            assert line.startswith("config error: ") and len(line) > len("config error: "), \
                stderr
