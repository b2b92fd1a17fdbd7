"""Data shipped inside the package: the replay sample in ``sample/`` (see its PROVENANCE.md).

It is a package (not a bare folder) so ``importlib.resources`` can find the files after
``pip install``, wherever site-packages lives, without the ``../shared`` tree developers use.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def bundled_sample_dir() -> Path:
    """The directory of the bundled replay sample (format: ``docs/data-format.md``).

    The replay reader needs a real directory, so a zipped install (where the resource is not
    on the file system) is refused with a clear message instead of failing later.
    """
    path = Path(str(files(__name__).joinpath("sample")))
    if not (path / "ohlcv").is_dir():
        raise FileNotFoundError(
            f"bundled replay sample not found at {path}; reinstall the package unzipped or "
            "set replay.data_dir to a copy of the data")
    return path
