"""Restricted unpickling of the MIntRec / MIntRec2.0 feature pickles.

The official releases ship their audio and video features as Python pickles: one dict
`{sample_id: features}` per file, where the features are numpy arrays (or lists of them; the
MIntRec audio extraction script stores CPU torch tensors). `pickle.load` would execute whatever
callable a tampered file names, so this module only lets a pickle reference the globals those
files need and refuses everything else before it can run.

What is admitted, and why:
- numpy array reconstruction: `numpy._core.multiarray._reconstruct` + `numpy.ndarray` (protocols
  0-4), `numpy._core.numeric._frombuffer` (protocol 5), `numpy.dtype`, `numpy._core.multiarray.scalar`
  (numpy scalars). Pickles written by numpy 1.x name `numpy.core...`; both spellings are mapped to
  the numpy 2 objects, without importing the deprecated `numpy.core` shim.
- `_codecs.encode`: protocol 2 stores `bytes` (the raw array buffers) as `_codecs.encode(str, "latin1")`.
- builtins that only build plain containers/values (set, frozenset, bytearray, complex, ...).
- torch tensors (CPU) as pickled by plain `pickle.dump`: `torch._utils._rebuild_tensor_v2`,
  `collections.OrderedDict` (its empty backward-hooks argument) and `torch.storage._load_from_bytes`,
  which is *replaced* by a loader that calls `torch.load(..., weights_only=True)` (the original runs
  `torch.load(weights_only=False)`, i.e. an unrestricted unpickler). Rebuilt tensors are returned as
  numpy arrays so the rest of the pipeline sees one array type. torch is imported only when a
  pickle actually contains tensors.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import io
import os
import pickle
from typing import Any, BinaryIO, Callable, Union


__all__ = ["UnsafePickleError", "SafeUnpickler", "safe_load", "safe_load_file"]


class UnsafePickleError(pickle.UnpicklingError):
    """Raised when a pickle references a global that the MIntRec feature files never contain."""


_SAFE_BUILTINS = frozenset(
    {"set", "frozenset", "bytearray", "bytes", "complex", "slice", "range", "list", "dict", "tuple",
     "int", "float", "bool", "str"}
)


def _numpy_global(name: str) -> Callable[..., Any]:
    import numpy as np
    from numpy._core import multiarray, numeric

    return {
        "_reconstruct": multiarray._reconstruct,
        "scalar": multiarray.scalar,
        "_frombuffer": numeric._frombuffer,
        "ndarray": np.ndarray,
        "dtype": np.dtype,
    }[name]


# (module, name) -> how to resolve it. numpy 1.x pickles say `numpy.core`, numpy 2.x say `numpy._core`.
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}
_TORCH_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch.storage", "_load_from_bytes"),
}


def _tensor_to_numpy(tensor):
    tensor = tensor.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:  # dtypes numpy lacks (bfloat16): widen to float32
        return tensor.float().numpy()


def _torch_global(name: str) -> Callable[..., Any]:
    try:
        import torch
        import torch._utils
    except ImportError as error:  # pragma: no cover - torch is a project dependency
        raise UnsafePickleError(
            "This feature pickle contains torch tensors; install torch to read it."
        ) from error

    if name == "_load_from_bytes":
        # torch's own _load_from_bytes uses weights_only=False (unrestricted); the restricted loader
        # accepts exactly storages/tensors.
        return lambda data: torch.load(io.BytesIO(data), weights_only=True)

    def rebuild_tensor_as_numpy(*args, **kwargs):
        return _tensor_to_numpy(torch._utils._rebuild_tensor_v2(*args, **kwargs))

    return rebuild_tensor_as_numpy


class SafeUnpickler(pickle.Unpickler):
    """A `pickle.Unpickler` whose `find_class` admits only what MIntRec feature pickles contain.

    Args:
        file: a binary file object.
        source: a name for error messages (the file path).
    """

    def __init__(self, file: BinaryIO, source: str = "<bytes>", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        # Protocol < 3 pickles spell Python 2 names (`__builtin__.set`); translate them as the default
        # find_class does (fix_imports) before checking the allowlist. Python 3 names pass unchanged.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in _NUMPY_GLOBALS:
            return _numpy_global(name)
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(builtins, name)
        if (module, name) == ("_codecs", "encode"):
            import _codecs

            return _codecs.encode
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        if (module, name) in _TORCH_GLOBALS:
            return _torch_global(name)
        raise UnsafePickleError(
            f"Refusing to unpickle {self.source}: it references the global '{module}.{name}', which a "
            "MIntRec feature pickle never contains (only numpy arrays/scalars, torch CPU tensors and "
            "plain containers are allowed). The file is corrupted or was tampered with; nothing in it "
            "was executed."
        )


def safe_load(file: BinaryIO, source: str = "<bytes>") -> Any:
    """Unpickle from an open binary file with `SafeUnpickler`."""
    return SafeUnpickler(file, source=source).load()


def safe_load_file(path: Union[str, os.PathLike]) -> Any:
    """Unpickle `path` with `SafeUnpickler`, streaming from the file (no extra in-memory copy of its bytes)."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        try:
            return safe_load(file, source=path)
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
            raise pickle.UnpicklingError(f"Could not unpickle {path}: {error}") from error
