"""Atomic file writes: readers (a browser, a resuming run, another process) see the old file or the
new one, never a partial one.

The content goes to a temporary file in the same folder (``os.replace`` is atomic only within one
filesystem), is flushed and fsynced, then renamed over the target, and the folder is fsynced so the
rename itself survives a crash. On any error — a full disk included — the temporary file is removed
and the old file is untouched.

``durable=False`` keeps the temporary file and the rename (readers still never see a partial file) but
skips both fsyncs: for files that are rewritten or regenerated anyway (page images, plots, test
outputs), where an fsync per small file would cost more than writing it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fsync_directory(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on this platform / filesystem
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Any], None] | bytes | str, durable: bool = True) -> Path:
    """Write a file so that readers see the old content or the new, never a partial file.

    ``write`` is the bytes / text to write or a function that writes to a binary file object.
    On any error (a full disk included) the temporary file is removed and the old file kept.
    ``durable``: fsync the file and its folder, so the new content survives a crash (see the module).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(write, bytes):
                handle.write(write)
            elif isinstance(write, str):
                handle.write(write.encode())
            else:
                write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)
    return path


def load_tensor_dict(path: str | Path, what: str) -> dict:
    """A ``{name: tensor}`` file read with ``torch.load(weights_only=True)``: a pickle carrying code is
    refused. Raises ``ValueError`` naming ``path`` and ``what`` it should have held."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types; all mean "not usable weights"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: cannot read {what} with torch.load(weights_only=True) ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: {what} must be a state dict of tensors")
    return dict(state)
