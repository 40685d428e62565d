"""Atomic file output: write under a temporary name in the target folder, then rename.

A failed or interrupted write never leaves a half-written file where a user looks. Files get
the permissions a plain `open(path, "w")` would give (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class StagedFiles:
    """Several files made visible together: `stage(name)` gives a temporary path to write,
    `commit()` renames them all into place; on an exception nothing is left behind."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._staged: list[tuple[Path, Path]] = []
        self._mode = 0o666 & ~_umask()

    def stage(self, name: str) -> Path:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.folder)
        os.close(fd)
        os.chmod(tmp, self._mode)
        self._staged.append((Path(tmp), self.folder / name))
        return Path(tmp)

    def names(self) -> list[str]:
        return [final.name for _, final in self._staged]

    def commit(self) -> list[Path]:
        for tmp, final in self._staged:
            os.replace(tmp, final)
        return [final for _, final in self._staged]

    def discard(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.commit()


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)`, then rename the result onto `path`."""
    path = Path(path)
    with StagedFiles(path.parent) as files:
        write(files.stage(path.name))


def update_generated(path: str | Path, begin: str, end: str, body: str, check: bool) -> int:
    """Put `body` between the `begin` and `end` marker lines of a docs page.

    With `check`, write nothing and return 1 when the page differs from what it would become
    (a staleness test's answer); else write it and return 0.
    """
    path = Path(path)
    text = path.read_text()
    i, j = text.index(begin) + len(begin), text.index(end)
    new = text[:i] + "\n" + body + "\n" + text[j:]
    if check:
        return 0 if new == text else 1
    path.write_text(new)
    return 0
