"""The providers' response cache: conditional requests, a 304 answered from disk.

Every answer that carries a validator (``ETag`` or ``Last-Modified``) is kept on disk with
it; the next request for the same URL sends ``If-None-Match`` / ``If-Modified-Since``, and a
``304 Not Modified`` reuses the kept body. A provider round re-asks for a year of history it
mostly has: a 304 saves the provider the body, saves us the download (DefiLlama's protocol
histories run to megabytes), and on GitHub a 304 does not count against the hourly quota.

Why a small cache of our own and not ``hishel`` (httpx's caching library): hishel is a
*transport*, and :class:`bot.sources.http_client.PoliteClient` hands its proxy, CA bundle and
``trust_env`` to ``httpx.Client``, which mounts proxy transports of its own beside a given
transport: with a proxy configured the cache would be bypassed, or we would rebuild httpx's
proxy and ``NO_PROXY`` handling around it. hishel also serves stored answers *without asking*
while RFC 9111 says they are fresh (``max-age``, heuristic freshness), which is not what a
round wants (it asks for what is new), and its API was rewritten twice (0.x, 1.0, 2.0). What
is needed is narrow, revalidation only, and fits in this file; retries, timeouts, pacing and
the proxy stay where they are.

Why on disk and not in memory: a restarted daemon revalidates instead of downloading every
history again, and the bodies (tens of megabytes for the default universe) stay out of the
daemon's memory. The directory is ``signals.cache_dir``, by default ``provider-cache`` beside
the state file (none with a database URL and no ``cache_dir``: no cache).

An entry is one file: a JSON header line (URL, validators, body length and SHA-256) and the
body. Writes are atomic (a temporary file renamed over). An entry that cannot be read, does
not match its checksum or belongs to another URL is ignored and removed: the request goes
out unconditional, as if there were no cache. Entries not used for ``max_age_days`` are
removed when the cache is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

FORMAT = 1


@dataclass(frozen=True)
class CachedAnswer:
    etag: str | None
    last_modified: str | None
    body: bytes

    def conditions(self) -> dict[str, str]:
        """The request headers that ask whether this answer is still current."""
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


STALE_TMP_SECONDS = 60.0
"""A half-written entry older than this was left by an exit mid-write: pruned on opening."""


class ResponseCache:
    """Validators and bodies by URL, on disk (see the module docstring). Thread-safe: an
    entry is replaced atomically and read in one go; two writers of one URL leave one of
    their (equally valid) answers."""

    def __init__(self, directory: Path, max_age_days: float = 30.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ignored = 0
        """Entries found unreadable (and removed) since opened."""
        now = time.time()
        cutoff = now - max_age_days * 86_400
        # A ``*.tmp`` is a write under way (another thread or process) or one an exit cut
        # short: none outlives a write by a minute, so an older one is debris.
        for pattern, before in (("*.entry", cutoff), ("*.tmp", now - STALE_TMP_SECONDS)):
            for path in self.directory.glob(pattern):
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime < before:
                        path.unlink()

    def _path(self, url: str) -> Path:
        return self.directory / f"{hashlib.sha256(url.encode()).hexdigest()}.entry"

    def get(self, url: str) -> CachedAnswer | None:
        path = self._path(url)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            self._ignore(path)
            return None
        try:
            head, _, body = raw.partition(b"\n")
            meta = json.loads(head)
            if (not isinstance(meta, dict) or meta.get("format") != FORMAT
                    or meta.get("url") != url or meta.get("length") != len(body)
                    or meta.get("sha256") != hashlib.sha256(body).hexdigest()):
                self._ignore(path)
                return None
            etag, modified = meta.get("etag"), meta.get("last_modified")
            if not (isinstance(etag, str) or isinstance(modified, str)):
                self._ignore(path)
                return None
        except (ValueError, UnicodeDecodeError):
            self._ignore(path)
            return None
        return CachedAnswer(etag if isinstance(etag, str) else None,
                            modified if isinstance(modified, str) else None, body)

    def touch(self, url: str) -> None:
        """The entry was just confirmed current (a 304): keep it from ageing out."""
        with contextlib.suppress(OSError):
            os.utime(self._path(url))

    def put(self, url: str, etag: str | None, last_modified: str | None, body: bytes) -> None:
        if not (etag or last_modified):
            return
        meta = {"format": FORMAT, "url": url, "etag": etag, "last_modified": last_modified,
                "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        path = self._path(url)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(meta).encode() + b"\n" + body)
            os.replace(tmp, path)
        except OSError:  # a full disk costs the cache, never the round
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)

    def drop(self, url: str) -> None:
        with contextlib.suppress(OSError):
            self._path(url).unlink()

    def _ignore(self, path: Path) -> None:
        self.ignored += 1
        with contextlib.suppress(OSError):
            path.unlink()
