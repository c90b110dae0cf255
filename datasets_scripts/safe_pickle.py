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
- builtins that only build plain containers/values (set, frozenset, bytearray, complex, ...);
  `range(n)`, `bytes(n)` and `bytearray(n)` at most `MAX_ARRAY_ELEMENTS` long.
- torch tensors (CPU) as pickled by plain `pickle.dump`: `torch._utils._rebuild_tensor_v2`,
  `collections.OrderedDict` (its empty backward-hooks argument) and `torch.storage._load_from_bytes`,
  which is *replaced* by a loader that calls `torch.load(..., weights_only=True)` (the original runs
  `torch.load(weights_only=False)`, i.e. an unrestricted unpickler). Rebuilt tensors are returned as
  numpy arrays so the rest of the pipeline sees one array type. torch is imported only when a
  pickle actually contains tensors.

Admitting a global is not enough to make its use safe: numpy and torch trust the sizes a pickle
states. torch's `set_` grows a storage that is smaller than the tensor's size and strides need
(uninitialised memory comes back as features, or terabytes are requested), numpy's
`ndarray.__setstate__` reads past the end of an object array's list when the list is shorter than
the shape, and a dtype's pickled state can set the flags that tell numpy an element holds Python
object pointers. So arrays, dtypes, storages and tensors are not built while unpickling: each call
is recorded (`_Deferred`) and built afterwards by `SafeUnpickler.load`, after its arguments were
checked (the element index reached by size, stride and offset fits in the storage; the data holds
exactly what the shape needs; at most `MAX_ARRAY_ELEMENTS` elements; a dtype is rebuilt from its
type, and refused when its pickled flags say "Python objects" for a type that holds none, or the
reverse). Building after unpickling also tells which top-level key (the sample id) a bad array
belongs to, so errors name the file and the sample. One consequence: a recorded array or dtype
cannot be hashed, so a pickle that uses a numpy dtype as a dict key or set member (which no feature
pickle does) is refused.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import gc
import io
import os
import pickle
from typing import Any, BinaryIO, Callable, Union

import numpy as np
from numpy._core import multiarray, numeric


__all__ = [
    "MAX_ARRAY_ELEMENTS",
    "InvalidArrayError",
    "UnsafePickleError",
    "SafeUnpickler",
    "safe_load",
    "safe_load_file",
]

MAX_ARRAY_ELEMENTS = 1 << 26
"""Most elements one array, tensor or tensor storage of a feature pickle may have: 67,108,864, i.e.
256 MiB of float32. The largest official feature array is a few hundred frames x 768 floats
(MIntRec audio: at most 480 x 768 = 368,640 elements), so this leaves a margin of ~180x while a
corrupted or tampered size cannot make the loader allocate more than 1 GiB (16-byte elements) for
one array. `range(n)`, `bytes(n)` and `bytearray(n)` are held to the same bound. Pass
`max_array_elements` to `SafeUnpickler` / `safe_load` / `safe_load_file` to change it."""

# numpy's NPY_MAXDIMS (numpy 2); torch's limit is not lower.
_MAX_DIMS = 64
# numpy dtype flag NPY_LIST_PICKLE: the elements are Python objects, pickled as a list.
_NPY_LIST_PICKLE = 0x02
# The dtype flags that say "the elements are Python object pointers": NPY_ITEM_REFCOUNT, NPY_LIST_PICKLE,
# NPY_ITEM_IS_POINTER. Set exactly for object dtypes, in every numpy version and on every platform.
_NPY_OBJECT_FLAGS = 0x01 | 0x02 | 0x04


class UnsafePickleError(pickle.UnpicklingError):
    """Raised when a pickle references a global that the MIntRec feature files never contain."""


class InvalidArrayError(pickle.UnpicklingError):
    """A pickled array, dtype, tensor or storage is inconsistent (its size, strides and offset reach past
    its storage, its data does not match its shape, its dtype state is forged) or has more than
    `max_array_elements` elements. It is refused before anything is allocated for it; the message names
    the file and, in a `{sample_id: features}` pickle, the sample id."""


_SAFE_BUILTINS = frozenset(
    {"set", "frozenset", "bytearray", "bytes", "complex", "slice", "range", "list", "dict", "tuple",
     "int", "float", "bool", "str"}
)

# (module, name) -> the kind of `_Deferred` it records. numpy 1.x pickles say `numpy.core`, numpy 2.x `numpy._core`.
_DEFERRED_GLOBALS = {
    ("numpy", "dtype"): "dtype",
    ("numpy.core.multiarray", "_reconstruct"): "array",
    ("numpy._core.multiarray", "_reconstruct"): "array",
    ("numpy.core.numeric", "_frombuffer"): "array_from_buffer",
    ("numpy._core.numeric", "_frombuffer"): "array_from_buffer",
    ("torch.storage", "_load_from_bytes"): "storage",
    ("torch._utils", "_rebuild_tensor_v2"): "tensor",
}
_NUMPY_SCALAR = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}


class _NdarrayMarker:
    """Stands for `numpy.ndarray` in `_reconstruct(ndarray, (0,), b"b")`, its only use in a numpy pickle.
    Not the class itself: a pickle could then call `ndarray(shape)` to allocate any size."""

    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _NdarrayMarker()


class _Deferred:
    """A numpy/torch object that the pickle asks for, recorded instead of built.

    `kind`: "dtype", "array" (`_reconstruct`, completed by a BUILD state), "array_from_buffer", "storage" or
    "tensor"; `args`: the call's arguments; `state`: the BUILD state (numpy arrays and dtypes have one).
    `_Builder.build` checks and builds it once unpickling is over. Unhashable, like the arrays it stands
    for: it can never be a dict key or set member, where the builder would not look for it."""

    __slots__ = ("kind", "args", "state", "built")
    __hash__ = None

    def __init__(self, kind: str, args: tuple):
        self.kind, self.args, self.state, self.built = kind, args, None, None

    def __setstate__(self, state):  # the BUILD opcode
        if self.state is not None or self.args is None:
            raise InvalidArrayError(f"a {self.kind} was given a second state, or a state after it was used")
        self.state = state


def _recorder(kind: str) -> Callable[..., _Deferred]:
    def record(*args):
        return _Deferred(kind, args)

    return record


def _too_many(what: str, count: int, max_elements: int) -> InvalidArrayError:
    return InvalidArrayError(
        f"{what} has {count:,} elements, more than the {max_elements:,} allowed for one array (max_array_elements); "
        "the file is corrupted or was tampered with"
    )


def _element_count(shape, what: str, max_elements: int) -> int:
    """Elements of `shape` (a tuple of at most `_MAX_DIMS` non-negative ints), refused above `max_elements`.
    Python ints: no overflow, whatever the sizes."""
    if type(shape) is not tuple or len(shape) > _MAX_DIMS:
        raise InvalidArrayError(f"{what} has shape {shape!r}; expected a tuple of non-negative integer sizes")
    count = 1
    for size in shape:  # a plain loop: this runs once per array (~130,000 times for the MIntRec video pickle)
        if type(size) is not int or size < 0:
            raise InvalidArrayError(f"{what} has shape {shape!r}; expected a tuple of non-negative integer sizes")
        count *= size
    if count > max_elements:
        raise _too_many(f"{what} of shape {shape}", count, max_elements)
    return count


def _dtype_from_state(args: tuple, state) -> Any:
    """The dtype of `numpy.dtype(*args)` + BUILD `state`, rebuilt by numpy from its type string (and metadata).

    The state sets the dtype's flags as it likes: a forged one can make numpy treat the elements of a float32
    array as Python object pointers, or copy raw bytes into an object array. A state whose object flags
    contradict the type is refused; the other flags (which numpy versions may set differently), the item size
    and the alignment are numpy's own for that type. Structured and subarray dtypes, which feature pickles
    never use, are refused."""
    if not (1 <= len(args) <= 3 and isinstance(args[0], str)):
        raise InvalidArrayError(f"numpy.dtype{args!r}: expected (type code, align, copy)")
    # copy=True: a new descriptor. With copy=False numpy returns its shared built-in float32/int64/...
    # instance, and the state below would change that one for the whole process.
    dtype = np.dtype(args[0], bool(args[1]) if len(args) > 1 else False, True)
    if state is not None:
        if not (isinstance(state, tuple) and len(state) >= 8 and state[2:5] == (None, None, None)):
            raise InvalidArrayError(
                f"numpy dtype {args[0]!r} has the state {state!r:.200}; structured and subarray dtypes are not "
                "admitted (feature pickles hold plain numeric arrays)"
            )
        dtype.__setstate__(state)
    if dtype.metadata is None:
        canonical = np.dtype(dtype.str)
    else:
        canonical = np.dtype(dtype.str, metadata=dict(dtype.metadata))
    if dtype.flags & _NPY_OBJECT_FLAGS != canonical.flags & _NPY_OBJECT_FLAGS:
        raise InvalidArrayError(
            f"numpy dtype {dtype.str} has flags {dtype.flags}, which say its elements are "
            f"{'' if dtype.flags & _NPY_OBJECT_FLAGS else 'not '}Python objects, but numpy gives that type flags "
            f"{canonical.flags}: a forged dtype state"
        )
    return canonical  # not the pickle's own object, whose flags are forged or which a later BUILD could change


def _declared_storage(blob: bytes) -> tuple[Any, int]:
    """(torch dtype, element count) of the storage in the bytes of a legacy `torch.save` (what
    `torch.storage._load_from_bytes` receives), read without building anything.

    torch.load allocates the declared count before reading any data, so it is checked first. The blob must
    hold exactly one storage and nothing else (e.g. no tensor that torch would rebuild unchecked)."""
    import torch

    class StorageRecordReader(pickle.Unpickler):
        def __init__(self, file):
            super().__init__(file)
            self.records = []

        def find_class(self, module, name):
            storage_type = getattr(torch, name, None) if module == "torch" and name.endswith("Storage") else None
            if isinstance(storage_type, type) and issubclass(storage_type, torch.storage.TypedStorage):
                return storage_type
            raise UnsafePickleError(f"a tensor storage references the global '{module}.{name}'")

        def persistent_load(self, saved_id):
            self.records.append(saved_id)
            return saved_id

    stream = io.BytesIO(blob)
    for _ in range(3):  # magic number, protocol version, system information: plain values
        StorageRecordReader(stream).load()
    reader = StorageRecordReader(stream)
    loaded = reader.load()
    # The record: ("storage", storage type, key, location, element count, view metadata).
    if not (len(reader.records) == 1 and loaded is reader.records[0] and isinstance(loaded, tuple)
            and len(loaded) == 6 and loaded[0] == "storage" and type(loaded[4]) is int and loaded[4] >= 0):  # fmt: skip
        raise InvalidArrayError(f"a tensor storage holds {loaded!r:.200}; expected one storage record")
    return loaded[1]._dtype, loaded[4]  # `_dtype`: `dtype` warns that TypedStorage is deprecated


def _tensor_to_numpy(tensor):
    tensor = tensor.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:  # dtypes numpy lacks (bfloat16): widen to float32
        return tensor.float().numpy()


_IN_PROGRESS = object()  # `_Builder._resolved` value of a tuple whose items are being resolved


class _Builder:
    """Builds the `_Deferred` objects of an unpickled structure after checking them, and puts the results in
    their places in the lists, dicts, tuples and slices that hold them."""

    def __init__(self, max_elements: int):
        self.max_elements = max_elements
        # id -> (container, its resolved version): shared references stay shared and cycles end. The container
        # is kept so that its id cannot be reused during the walk.
        self._resolved: dict[int, tuple[Any, Any]] = {}
        self._cyclic_tuples: set[int] = set()

    def resolve(self, value):
        """`value` with every `_Deferred` inside it built (lists and dicts are changed in place)."""
        kind = type(value)
        if kind is _Deferred:
            return self.build(value)
        if kind is list or kind is tuple or kind is slice or isinstance(value, dict):
            return self._resolve_container(value)
        return value

    def resolve_mapping(self, mapping: dict, source: str) -> dict:
        """`resolve` for the top-level dict of a feature pickle, one key at a time, so that an error names the
        sample id the bad array belongs to."""
        self._resolved[id(mapping)] = (mapping, mapping)
        for sample_id, value in mapping.items():
            try:
                resolved = self.resolve(value)
            except Exception as error:
                raise _located(error, f"{source}, sample {sample_id}") from error
            if resolved is not value:
                mapping[sample_id] = resolved  # same keys: the iteration stays valid
        return mapping

    def _resolve_container(self, container):
        key = id(container)
        done = self._resolved.get(key)
        if done is not None:
            if done[1] is _IN_PROGRESS:  # a tuple reached again through a list or dict inside it
                self._cyclic_tuples.add(key)
                return container
            return done[1]
        if type(container) is list:
            self._resolved[key] = (container, container)
            for index, item in enumerate(container):
                resolved = self.resolve(item)
                if resolved is not item:
                    container[index] = resolved
            return container
        if isinstance(container, dict):  # dict, OrderedDict
            self._resolved[key] = (container, container)
            for item_key, item in container.items():
                resolved = self.resolve(item)
                if resolved is not item:
                    container[item_key] = resolved
            return container
        # tuple or slice: immutable, rebuilt when an item changes
        self._resolved[key] = (container, _IN_PROGRESS)
        items = (container.start, container.stop, container.step) if type(container) is slice else container
        resolved_items = [self.resolve(item) for item in items]
        if all(new is old for new, old in zip(resolved_items, items)):
            result = container
        elif key in self._cyclic_tuples:
            raise InvalidArrayError("a tuple that contains itself (through a list or dict) holds arrays or tensors")
        else:
            result = slice(*resolved_items) if type(container) is slice else tuple(resolved_items)
        self._resolved[key] = (container, result)
        return result

    def build(self, deferred: _Deferred):
        if deferred.args is None:  # already built: a shared reference
            return deferred.built
        if deferred.state is not None and deferred.kind not in ("array", "dtype"):
            raise InvalidArrayError(f"a {deferred.kind} was given a state ({type(deferred.state).__name__})")
        deferred.built = _BUILD_METHODS[deferred.kind](self, deferred.args, deferred.state)
        deferred.args = deferred.state = None  # let the raw bytes go
        return deferred.built

    def dtype(self, value):
        """The checked numpy dtype of a recorded `numpy.dtype(...)`."""
        if type(value) is not _Deferred or value.kind != "dtype":
            raise InvalidArrayError(f"expected a numpy dtype, got {type(value).__name__}")
        return value.built if value.args is None else self.build(value)

    # ---- one method per `_Deferred` kind -----------------------------------------------------------
    def _build_dtype(self, args, state):
        return _dtype_from_state(args, state)

    def _build_array(self, args, state):
        """`_reconstruct(ndarray, (0,), b"b")` + BUILD (version, shape, dtype, is_fortran, data): a numpy array
        pickled with protocols 0-4 (version-0 states have no version)."""
        if len(args) != 3 or args[0] is not _NDARRAY or args[1] != (0,):
            raise InvalidArrayError(f"numpy _reconstruct{args!r:.200}: expected (numpy.ndarray, (0,), type code)")
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise InvalidArrayError(
                f"a numpy array has the state {state!r:.200}; expected (version, shape, dtype, is_fortran, data)"
            )
        version, (shape, dtype, is_fortran, data) = (state[0], state[1:]) if len(state) == 5 else (0, state)
        dtype = self.dtype(dtype)
        count = _element_count(shape, "numpy array", self.max_elements)
        if dtype.flags & _NPY_LIST_PICKLE:
            # numpy reads `count` items from the list without checking its length (past its end if shorter).
            if type(data) is not list or len(data) != count:
                got = f"a list of {len(data)}" if type(data) is list else f"a {type(data).__name__}"
                raise InvalidArrayError(
                    f"numpy array of shape {shape} and dtype {dtype} needs a list of {count} elements but its "
                    f"data is {got}"
                )
            data = [self.resolve(item) for item in data]
        elif not isinstance(data, (bytes, str)) or len(data) != count * dtype.itemsize:  # str: Python 2, latin-1
            got = f"{len(data)} bytes" if isinstance(data, (bytes, str)) else f"a {type(data).__name__}"
            raise InvalidArrayError(
                f"numpy array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes but its "
                f"data holds {got}"
            )
        array = multiarray._reconstruct(np.ndarray, (0,), b"b")
        array.__setstate__((version, shape, dtype, is_fortran, data))
        return array

    def _build_array_from_buffer(self, args, state):
        """`_frombuffer(buffer, dtype, shape, order)`: a numpy array pickled with protocol 5."""
        if len(args) != 4 or not isinstance(args[0], (bytes, bytearray)) or args[3] not in ("C", "F"):
            raise InvalidArrayError("numpy _frombuffer: expected (bytes, dtype, shape, 'C' or 'F')")
        buffer, dtype, shape, order = args
        dtype = self.dtype(dtype)
        count = _element_count(shape, "numpy array", self.max_elements)
        if dtype.flags & _NPY_LIST_PICKLE or len(buffer) != count * dtype.itemsize:
            raise InvalidArrayError(
                f"numpy array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes of plain "
                f"data but its buffer holds {len(buffer)} bytes"
            )
        return numeric._frombuffer(buffer, dtype, shape, order)

    def _build_storage(self, args, state):
        """`_load_from_bytes(blob)`: a torch storage, read with `torch.load(weights_only=True)` (torch's own
        `_load_from_bytes` uses weights_only=False: an unrestricted unpickler) once the element count it
        declares is known to fit in the blob and under the cap."""
        import torch

        if len(args) != 1 or not isinstance(args[0], bytes):
            raise InvalidArrayError("torch storage: expected the bytes of a torch.save")
        blob = args[0]
        dtype, count = _declared_storage(blob)
        if count > self.max_elements:
            raise _too_many(f"tensor storage of {dtype}", count, self.max_elements)
        if count * dtype.itemsize > len(blob):
            raise InvalidArrayError(
                f"tensor storage declares {count:,} {dtype} elements ({count * dtype.itemsize:,} bytes) but holds "
                f"{len(blob):,} bytes in all"
            )
        storage = torch.load(io.BytesIO(blob), weights_only=True)
        if not isinstance(storage, torch.storage.TypedStorage):
            raise InvalidArrayError(f"torch storage: the bytes hold a {type(storage).__name__}, not a storage")
        return storage

    def _build_tensor(self, args, state):
        """`_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
        torch would grow a storage smaller than size/stride/offset need, with uninitialised memory: checked."""
        import torch
        import torch._utils

        if not 6 <= len(args) <= 7:
            raise InvalidArrayError(f"torch tensor: expected 6 or 7 rebuild arguments, got {len(args)}")
        storage, offset, size, stride = self.resolve(args[0]), args[1], args[2], args[3]
        if not isinstance(storage, torch.storage.TypedStorage):
            raise InvalidArrayError(f"torch tensor: expected a storage, got {type(storage).__name__}")
        size = tuple(size) if isinstance(size, (tuple, list)) else size  # torch.Size pickles as a tuple
        count = _element_count(size, "tensor", self.max_elements)
        if not (isinstance(stride, tuple) and len(stride) == len(size)
                and all(type(step) is int and step >= 0 for step in stride)):  # fmt: skip
            raise InvalidArrayError(
                f"tensor of size {size} has stride {stride!r}; expected {len(size)} non-negative integers"
            )
        if type(offset) is not int or offset < 0:
            raise InvalidArrayError(f"tensor has storage offset {offset!r}; expected a non-negative integer")
        # The last element reached is offset + sum((size_i - 1) * stride_i); an empty tensor reaches none.
        needed = offset + 1 + sum((length - 1) * step for length, step in zip(size, stride)) if count else offset
        if needed > storage._size():
            raise InvalidArrayError(
                f"tensor of size {size} (stride {stride}, storage offset {offset}) needs {needed} elements but its "
                f"storage holds {storage._size()}"
            )
        return _tensor_to_numpy(torch._utils._rebuild_tensor_v2(storage, offset, size, stride, *args[4:]))


_BUILD_METHODS = {
    "dtype": _Builder._build_dtype,
    "array": _Builder._build_array,
    "array_from_buffer": _Builder._build_array_from_buffer,
    "storage": _Builder._build_storage,
    "tensor": _Builder._build_tensor,
}


def _located(error: Exception, where: str) -> InvalidArrayError:
    if isinstance(error, InvalidArrayError):
        return InvalidArrayError(f"{where}: {error}")
    # numpy/torch refused the checked arguments (e.g. a truncated storage), or memory ran out.
    return InvalidArrayError(f"{where}: could not rebuild an array ({type(error).__name__}: {error})")


def _numpy_scalar(builder: _Builder, dtype, data=None):
    """`numpy._core.multiarray.scalar(dtype, data)`: a numpy scalar, from exactly one element's bytes."""
    dtype = builder.dtype(dtype)
    if not dtype.flags & _NPY_LIST_PICKLE and not (isinstance(data, (bytes, str)) and len(data) == dtype.itemsize):
        raise InvalidArrayError(f"numpy scalar of dtype {dtype} needs {dtype.itemsize} bytes, got {data!r:.80}")
    return multiarray.scalar(dtype, builder.resolve(data))


def _sized_builtin(name: str, max_elements: int) -> Callable[..., Any]:
    """range / bytes / bytearray, refusing more than `max_elements` elements: bytes(n) and bytearray(n)
    allocate n bytes, list(range(n)) n items, whatever the size of the pickle."""
    constructor = getattr(builtins, name)

    def build(*args):
        if name == "range":
            count = len(range(*args))
        else:
            count = args[0] if args and type(args[0]) is int else 0
        if count > max_elements:
            raise _too_many(f"{name}{args!r}", count, max_elements)
        return constructor(*args)

    return build


def _torch_available() -> None:
    try:
        import torch  # noqa: F401
    except ImportError as error:  # pragma: no cover - torch is a project dependency
        raise UnsafePickleError("This feature pickle contains torch tensors; install torch to read it.") from error


class SafeUnpickler(pickle.Unpickler):
    """A `pickle.Unpickler` whose `find_class` admits only what MIntRec feature pickles contain, and whose
    `load` checks every array, dtype, tensor and storage before building it.

    Args:
        file: a binary file object.
        source: a name for error messages (the file path).
        max_array_elements: most elements one array / tensor / storage may have (`MAX_ARRAY_ELEMENTS`).
    """

    def __init__(self, file: BinaryIO, source: str = "<bytes>", max_array_elements: int = MAX_ARRAY_ELEMENTS,
                 **kwargs):  # fmt: skip
        super().__init__(file, **kwargs)
        self.source = source
        self.max_array_elements = max_array_elements
        self._builder = _Builder(max_array_elements)

    def find_class(self, module: str, name: str) -> Any:
        # Protocol < 3 pickles spell Python 2 names (`__builtin__.set`); translate them as the default
        # find_class does (fix_imports) before checking the allowlist. Python 3 names pass unchanged.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in _DEFERRED_GLOBALS:
            if module.startswith("torch"):
                _torch_available()
            return _recorder(_DEFERRED_GLOBALS[(module, name)])
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if (module, name) in _NUMPY_SCALAR:
            return lambda *args: _numpy_scalar(self._builder, *args)
        if module == "builtins" and name in _SAFE_BUILTINS:
            if name in ("range", "bytes", "bytearray"):
                return _sized_builtin(name, self.max_array_elements)
            return getattr(builtins, name)
        if (module, name) == ("_codecs", "encode"):
            import _codecs

            return _codecs.encode
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        raise UnsafePickleError(
            f"Refusing to unpickle {self.source}: it references the global '{module}.{name}', which a "
            "MIntRec feature pickle never contains (only numpy arrays/scalars, torch CPU tensors and "
            "plain containers are allowed). The file is corrupted or was tampered with; nothing in it "
            "was executed."
        )

    def load(self) -> Any:
        """Unpickle, then build the recorded arrays and tensors. A refused one raises `InvalidArrayError`
        naming `source` and, when the pickle is a dict, the key (sample id) it belongs to."""
        # A feature pickle makes ~10^5 objects that all stay alive (the MIntRec video pickle: a record, a state
        # tuple and an array per (1, 256) key frame). The cyclic garbage collector would traverse them over and
        # over without finding garbage, which doubles the load time, so it waits until the end.
        collecting = gc.isenabled()
        gc.disable()
        try:
            try:
                loaded = super().load()
            except InvalidArrayError as error:  # refused while unpickling (a scalar, bytes(n), ...): no key known
                raise _located(error, self.source) from error
            self.memo.clear()  # the memo holds every raw buffer: let each go once its array is built
            if isinstance(loaded, dict):
                return self._builder.resolve_mapping(loaded, self.source)
            try:
                return self._builder.resolve(loaded)
            except Exception as error:
                raise _located(error, self.source) from error
        finally:
            if collecting:
                gc.enable()


def safe_load(file: BinaryIO, source: str = "<bytes>", max_array_elements: int = MAX_ARRAY_ELEMENTS) -> Any:
    """Unpickle from an open binary file with `SafeUnpickler`."""
    return SafeUnpickler(file, source=source, max_array_elements=max_array_elements).load()


def safe_load_file(path: Union[str, os.PathLike], max_array_elements: int = MAX_ARRAY_ELEMENTS) -> Any:
    """Unpickle `path` with `SafeUnpickler`, streaming from the file (no extra in-memory copy of its bytes).

    Raises `UnsafePickleError` (a refused global), `InvalidArrayError` (a refused array; names the sample
    id) or `pickle.UnpicklingError` naming `path` for anything else that goes wrong while reading it:
    truncated or corrupted data, including the MemoryError or RuntimeError a corrupted size can cause."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        try:
            return safe_load(file, source=path, max_array_elements=max_array_elements)
        except (UnsafePickleError, InvalidArrayError):
            raise
        except MemoryError as error:
            raise pickle.UnpicklingError(
                f"Could not unpickle {path}: it asks for more memory than is available (MemoryError), i.e. it "
                "states a corrupted size; expected a feature pickle (re-download or re-extract the file)"
            ) from error
        except Exception as error:  # UnpicklingError, EOFError, ValueError, RuntimeError, ... from corrupted data
            raise pickle.UnpicklingError(
                f"Could not unpickle {path}: {type(error).__name__}: {error} (the file is corrupted or truncated; "
                "expected a feature pickle)"
            ) from error
