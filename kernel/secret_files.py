"""Secret files created once, whole, by whichever process comes first.

Two instances starting at once on a fresh data folder each make a key; only one may be kept, and the other
must read it whole. Creating the file with O_EXCL and then writing it let the second process read it empty,
between the two steps, and fail to start. Here the content is written and synced under a temporary name first
and linked into place, which fails if the name is taken: the name only ever shows a complete file.
"""

import contextlib
import os
import tempfile
from pathlib import Path


def create_or_read(path: Path, content: bytes, mode: int = 0o600) -> bytes:
    """Create `path` holding `content` (with `mode`) unless it exists; what `path` holds afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_bytes()
        return content
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
