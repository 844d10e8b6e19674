"""Self-describing, atomically written checkpoints, with no pickle anywhere.

One checkpoint is one ``.safetensors`` file: every tensor of the training state (network weights
under ``net.<name>.<key>``, optimizer moments, RNG states, the image pools) is a safetensors
tensor; everything else (counters, optimizer hyper-parameters, scheduler state, the config) is
JSON in the file's metadata, with a format version and a SHA-256 over the tensor bytes, so a
truncated or corrupted file is detected on load. Files are written to a temporary name, fsynced,
renamed over the old one, and the folder is fsynced: a crash mid-write leaves the previous
checkpoint whole.

Reference interop: ``load_reference_weights`` reads the reference's ``*_net_G*.pth`` with
``torch.load(weights_only=True)`` (never a plain unpickle), and ``export_reference`` writes ours in
its layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from cyclegan.core.fileio import atomic_write

log = logging.getLogger(__name__)

FORMAT_NAME = "cyclegan-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_SUFFIX = ".safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


# --- flattening nested state into tensors + JSON ----------------------------------------------


def flatten_state(state: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Replace every tensor in a nested dict/list by ``{"__tensor__": key}``, collecting tensors.

    Keys of the JSON side must be strings, so int dict keys (optimizer state) are tagged.
    """
    if isinstance(state, torch.Tensor):
        key = prefix.rstrip(".") or "tensor"
        tensors[key] = state.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(state, dict):
        out = {}
        for k, v in state.items():
            json_key = k if isinstance(k, str) else f"__int__{k}" if isinstance(k, int) else None
            if json_key is None:
                raise TypeError(f"cannot store a dict key of type {type(k).__name__} in a checkpoint")
            out[json_key] = flatten_state(v, tensors, f"{prefix}{k}.")
        return out
    if isinstance(state, list | tuple):
        items = [flatten_state(v, tensors, f"{prefix}{i}.") for i, v in enumerate(state)]
        return {"__tuple__": items} if isinstance(state, tuple) else items
    if state is None or isinstance(state, bool | int | float | str):
        return state
    raise TypeError(f"cannot store a value of type {type(state).__name__} in a checkpoint")


def unflatten_state(state: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(state, dict):
        if set(state) == {"__tensor__"}:
            return tensors[state["__tensor__"]]
        if set(state) == {"__tuple__"}:
            return tuple(unflatten_state(v, tensors) for v in state["__tuple__"])
        return {
            (int(k[len("__int__"):]) if k.startswith("__int__") else k): unflatten_state(v, tensors)
            for k, v in state.items()
        }
    if isinstance(state, list):
        return [unflatten_state(v, tensors) for v in state]
    return state


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key]
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
        # Bytes through a uint8 view: numpy has no bfloat16.
        digest.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --- training checkpoints ---------------------------------------------------------------------


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write a nested training state (tensors anywhere inside) as one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten_state(state, tensors)
    metadata = {
        "format": FORMAT_NAME,
        "version": str(FORMAT_VERSION),
        "state": json.dumps(skeleton),
        "checksum": tensor_checksum(tensors),
    }
    payload = save(tensors, metadata=metadata)
    return atomic_write(path, payload)


def copy_checkpoint(source: str | Path, path: str | Path) -> Path:
    """Atomically write a copy of the checkpoint ``source`` at ``path``: a state saved twice is
    serialised (and checksummed) once."""
    def copy(handle) -> None:
        with open(source, "rb") as original:
            shutil.copyfileobj(original, handle, 1 << 20)

    return atomic_write(path, copy)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and verify one checkpoint; raises CheckpointError naming the file on any defect."""
    path = Path(path)
    if path.suffix in (".pth", ".pt", ".pkl", ".ckpt"):
        raise CheckpointError(
            f"{path}: a pickle-based file is not a cyclegan training checkpoint; reference weights load "
            f"with `cyclegan test` (weights only)"
        )
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({error})") from None
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a {FORMAT_NAME} file")
    version = int(metadata.get("version", "0"))
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version} is newer than this cyclegan ({FORMAT_VERSION}); upgrade")
    if tensor_checksum(tensors) != metadata.get("checksum"):
        raise CheckpointError(f"{path}: checksum mismatch, the file is corrupted")
    return unflatten_state(json.loads(metadata["state"]), tensors)


def read_checkpoint_state_skeleton(path: str | Path) -> dict[str, Any]:
    """A checkpoint's state without its tensors (config, iteration ...): the metadata alone, read
    without loading the weights; :func:`load_checkpoint` verifies the file when the weights are read."""
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({error})") from None
    if metadata.get("format") != FORMAT_NAME or "state" not in metadata:
        raise CheckpointError(f"{path}: not a {FORMAT_NAME} file")
    return json.loads(metadata["state"])


def inference_weights(state: Mapping[str, Any]) -> dict[str, Mapping[str, torch.Tensor]]:
    """A checkpoint's weights to translate with: the average where the run kept one, else the raw."""
    return {**state["nets"], **(state.get("ema") or {}).get("nets", {})}


def checkpoint_candidates(folder: Path) -> Iterator[Path]:
    """Checkpoints in a folder, newest (by recorded write order, then mtime) first."""
    files = [p for p in folder.glob(f"*{CHECKPOINT_SUFFIX}") if not p.name.startswith(".")]
    yield from sorted(files, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def load_latest_good(folder: Path, preferred: str = "latest") -> tuple[Path, dict[str, Any]] | None:
    """Load ``preferred`` if it is whole, else the next newest good one, warning with its name."""
    preferred_path = folder / f"{preferred}{CHECKPOINT_SUFFIX}"
    ordered = [preferred_path] if preferred_path.exists() else []
    ordered += [p for p in checkpoint_candidates(folder) if p != preferred_path]
    failures = []
    for path in ordered:
        try:
            state = load_checkpoint(path)
        except CheckpointError as error:
            failures.append(str(error))
            log.warning("skipping checkpoint: %s", error)
            continue
        if failures:
            log.warning("resuming from %s instead (the newer checkpoint could not be used)", path)
        return path, state
    if failures:
        raise CheckpointError("no usable checkpoint in " + str(folder) + ":\n  " + "\n  ".join(failures))
    return None


# --- the reference's weights-only .pth files --------------------------------------------------


def load_reference_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a reference ``*_net_G*.pth`` state dict without executing any pickled code."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused to load — the file holds more than tensors (possibly code); only "
            f"weights-only checkpoints are accepted ({str(error).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: unreadable or truncated ({error})") from None
    if hasattr(state, "_metadata"):
        state = dict(state)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return state


def export_reference(networks: dict[str, nn.Module], out_dir: str | Path, epoch: str = "latest") -> list[Path]:
    """Write ``<epoch>_net_<name>.pth`` files that the reference's test.py loads."""
    out_dir = Path(out_dir)
    written = []
    for name, net in networks.items():
        state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        path = out_dir / f"{epoch}_net_{name}.pth"
        atomic_write(path, lambda handle, state=state: torch.save(state, handle))
        written.append(path)
    return written
