"""Writing files that hold keys or secrets (the master keys, the token signing keys): one way, for all of them.

``write_secret_file`` writes the whole content to a fresh temporary file in the target's directory (made by
``tempfile.mkstemp``: a new random name, ``O_EXCL``, mode 0600 from the moment it exists, whatever the umask),
syncs it to disk, renames it over the target (or links it, when an existing file must be kept) and syncs the
directory, so that:

- a reader sees the old file or the new one, never half a file, even after a crash;
- nothing is ever written through a fixed name such as ``keys.json.new``, which anyone able to write in the
  directory could have created beforehand, world-readable, to read the keys from (``open`` with a mode does not
  change the mode of a file that exists);
- the result has mode 0600 whatever the old file's mode was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SECRET_FILE_MODE = 0o600


def write_secret_file(path: str | os.PathLike[str], data: bytes, *, replace: bool = True) -> bool:
    """Write ``data`` as the file ``path`` (mode 0600), atomically, creating its directory if needed.

    ``replace=False`` keeps a file that exists already (two processes creating the same key file at once: the
    first one wins, and both use its keys). Returns whether ``path`` now holds ``data``. ``OSError`` when the
    directory or the file cannot be written; no temporary file is left behind.
    """
    path = Path(path)
    directory = path.parent if path.parent != Path("") else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
            written = True
        else:
            try:
                os.link(temporary, path)  # fails if path exists: never overwrites
                written = True
            except FileExistsError:
                written = False
            os.unlink(temporary)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(directory)
    return written


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (the directory entry), where the system allows opening a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not sync directories; the file itself is synced
    finally:
        os.close(fd)
