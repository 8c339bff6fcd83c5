"""The vadx model file: safetensors tensors + one JSON header (never pickle).

The header (safetensors metadata key ``"vadx"``) holds the format and its version, the detector's
registry name, the plugin that registered it (recorded on the class by the host at
registration, so writing needs no plugin lookup), the vadx version, the constructor parameters,
the fitted attributes that are JSON values and, for a detector made from a preset, ``"preset":
{"name": "cpu", "overrides": [parameters given on top of it]}`` (absent otherwise, and in files
written before presets existed; ``params`` are complete either way). Tensors are the fitted tensors by attribute name
and the state dicts of fitted ``nn.Module``s as ``<attribute>.<key>``. This module writes and
reads files; :func:`vadx.load` (in :mod:`vadx.loading`) turns one back into a detector.

Model files come from elsewhere (downloads, colleagues, shared folders), so reading treats them
as untrusted:

- the file is read into memory once (header and tensors from the same bytes) and never
  memory-mapped: the loaded detector owns its tensors, and replacing or truncating the file
  afterwards cannot change or crash it;
- the header is checked against a schema (:func:`check_header`): field types, the format
  version, names of fitted attributes (identifiers ending in ``_``), a required finite
  ``threshold_`` and a ``decision_scores_`` tensor, the tensor table's dtypes, shapes and byte
  ranges against the bytes present, and the documented limits below;
- every failure is a :class:`vadx.errors.ModelFileError` naming the file and the field.

Limits (module constants): :data:`MAX_HEADER_BYTES` for the safetensors JSON header,
:data:`MAX_JSON_DEPTH` for the nesting of parameter and fitted values, :data:`MAX_FRAME_SIDE`
for the frame height and width ``fitted.input_shape_`` declares, and, checked by
:func:`vadx.load` before it allocates anything, :data:`MAX_UNSAVED_BYTES` of module memory a
file can make loading allocate beyond the tensors it holds (every persistent module tensor
must be in the file with the same shape).

Writing is atomic (:mod:`vadx.outputs`): a temporary file beside the destination, renamed
when complete; the file gets the mode ``open()`` would give it (umask honoured); a symlink at
the destination is written through (its target replaced) unless ``replace_symlink=True``.
"""

from __future__ import annotations

import importlib.metadata
import json
import keyword
import math
import os
import re
from typing import Any

import torch
from torch import Tensor, nn

from vadx import outputs
from vadx.errors import ModelFileError

FORMAT = "vadx.detector"
FORMAT_VERSION = 1
#: Largest safetensors JSON header (tensor table + vadx header) read, in bytes.
MAX_HEADER_BYTES = 16 * 2**20
#: Deepest nesting of lists and dicts in ``params`` and ``fitted`` values.
MAX_JSON_DEPTH = 32
#: Largest frame height or width ``fitted.input_shape_`` may declare: far above any camera's
#: (8K is 7680 x 4320), so a crafted shape never reaches the detectors as a huge integer.
MAX_FRAME_SIDE = 2**16
#: Module memory (non-persistent buffers) loading may allocate beyond the file's tensors.
MAX_UNSAVED_BYTES = 64 * 2**20
#: Registry names of detectors (the plugin host enforces the same rule).
DETECTOR_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

# safetensors dtype codes torch can hold
_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
for _code, _name in (("U16", "uint16"), ("U32", "uint32"), ("U64", "uint64"),
                     ("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2")):
    if hasattr(torch, _name):
        _DTYPES[_code] = getattr(torch, _name)


def is_fitted_name(name: Any) -> bool:
    """A fitted attribute's name: a public identifier ending in ``_`` (``threshold_``)."""
    return (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
            and name.endswith("_") and not name.startswith("_"))


# ---------------------------------------------------------------------------- writing
def write(path: str | os.PathLike, detector: str, plugin: dict[str, Any] | None,
          params: dict[str, Any], fitted: dict[str, Any], *, replace_symlink: bool = False,
          preset: dict[str, Any] | None = None) -> None:
    """Write a model file of detector ``detector`` from its parameters and fitted attributes
    (atomically; see the module docstring for modes and symlinks). ``preset``: the preset the
    parameters came from, ``{"name", "overrides"}`` (``Detector.preset``), or None."""
    from safetensors.torch import save

    tensors: dict[str, Tensor] = {}
    values: dict[str, Any] = {}
    for k, v in fitted.items():
        if isinstance(v, Tensor):
            tensors[k] = v
        elif isinstance(v, nn.Module):
            tensors.update({f"{k}.{n}": t for n, t in v.state_dict().items()})
        else:
            values[k] = v
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "detector": detector,
        "plugin": plugin,
        "vadx_version": importlib.metadata.version("vadx"),
        "params": params,
        "fitted": values,
    }
    if preset is not None:  # absent, not null, without one: older readers never see the key
        header["preset"] = {"name": preset["name"], "overrides": list(preset["overrides"])}
    try:
        meta = json.dumps(header, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{detector}: parameters and fitted attributes must be tensors, "
                        f"nn.Modules or JSON values to be saved: {e}") from e
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    data = save(tensors, metadata={"vadx": meta})
    with outputs.atomic_open(path, "wb", replace_symlink=replace_symlink) as f:
        f.write(data)


# ---------------------------------------------------------------------------- reading
def _error(path: str, field: str, expected: str, got: Any) -> ModelFileError:
    shown = repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ModelFileError(f"{path}: field {field!r} must be {expected}, got {shown}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, stopping once it passes ``limit`` (no recursion)."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        v, d = todo.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            break
        if isinstance(v, dict):
            todo.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            todo.extend((x, d + 1) for x in v)
    return deepest


def _loads(path: str, text: bytes | str, field: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly nested JSON
        raise ModelFileError(f"{path}: field {field!r} is not valid JSON: "
                             f"{type(e).__name__}: {e}") from e


def _check_json_map(path: str, header: dict, field: str, names_ok, names_rule: str) -> dict:
    value = header.get(field)
    if not isinstance(value, dict):
        raise _error(path, field, "a JSON object", value)
    for k, v in value.items():
        if not names_ok(k):
            raise _error(path, f"{field}.{k}", names_rule, k)
        if _json_depth(v, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise _error(path, f"{field}.{k}", f"nested at most {MAX_JSON_DEPTH} deep "
                         f"(vadx.model_file.MAX_JSON_DEPTH)", "a deeper value")
    return value


def check_header(path: str | os.PathLike, header: Any) -> dict[str, Any]:
    """Validate a parsed vadx header against the schema; returns it (ModelFileError if not)."""
    path = os.fspath(path)
    if not isinstance(header, dict):
        raise _error(path, "vadx", "a JSON object", type(header).__name__)
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a vadx detector file (field 'format' must be "
                             f"{FORMAT!r}, got {header.get('format')!r})")
    version = header.get("format_version")
    if not _is_int(version) or version < 1:
        raise _error(path, "format_version", f"an integer from 1 to {FORMAT_VERSION}", version)
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {version}; this vadx reads up to "
                             f"{FORMAT_VERSION}: upgrade vadx")
    name = header.get("detector")
    if not isinstance(name, str) or not DETECTOR_NAME.match(name):
        raise _error(path, "detector", "a detector name like 'fcn-cascade'", name)
    plugin = header.get("plugin")
    if plugin is not None:
        if not isinstance(plugin, dict):
            raise _error(path, "plugin", "null or an object {name, distribution, version}", plugin)
        for key in ("name", "distribution", "version"):
            if not isinstance(plugin.get(key), (str, type(None))):
                raise _error(path, f"plugin.{key}", "a string or null", plugin.get(key))
    preset = header.get("preset")  # optional (files before presets have none)
    if preset is not None:
        if not isinstance(preset, dict) or not isinstance(preset.get("name"), str):
            raise _error(path, "preset", "null or an object {name, overrides}", preset)
        overrides = preset.get("overrides")
        if not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
            raise _error(path, "preset.overrides", "a list of parameter names", overrides)
    if not isinstance(header.get("vadx_version"), (str, type(None))):
        raise _error(path, "vadx_version", "a string", header.get("vadx_version"))
    _check_json_map(path, header, "params", lambda k: k.isidentifier() and not k.startswith("_"),
                    "a parameter name (a public identifier)")
    fitted = _check_json_map(path, header, "fitted", is_fitted_name,
                             "a fitted attribute name (an identifier ending in '_')")
    threshold = fitted.get("threshold_")
    if not (_is_int(threshold) or isinstance(threshold, float)) or not math.isfinite(threshold):
        raise _error(path, "fitted.threshold_", "a finite number (the fitted alarm threshold)",
                     threshold)
    shape = fitted.get("input_shape_")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 3 and shape[0] in (1, 3)
                                  and all(_is_int(s) and 1 <= s <= MAX_FRAME_SIDE for s in shape)):
        raise _error(path, "fitted.input_shape_", f"null or [C, H, W] with C = 1 or 3 and H, W "
                     f"integers from 1 to {MAX_FRAME_SIDE} (vadx.model_file.MAX_FRAME_SIDE)", shape)
    return header


def _header_length(path: str, prefix: bytes, size: int) -> int:
    """Length of the safetensors JSON header, from the file's first 8 bytes."""
    if size < 8:
        raise ModelFileError(f"{path} is not a readable vadx model file (safetensors): "
                             f"{size} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(prefix[:8], "little")
    if n > MAX_HEADER_BYTES:
        raise ModelFileError(f"{path} is not a readable vadx model file (safetensors): header "
                             f"length {n} bytes, over vadx.model_file.MAX_HEADER_BYTES "
                             f"({MAX_HEADER_BYTES})")
    if n > size - 8:
        raise ModelFileError(f"{path} is not a readable vadx model file (safetensors): header "
                             f"length {n} bytes, but the file has {size - 8} after it")
    return n


def _parse(path: str, raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(vadx header, tensor table) from the safetensors JSON header bytes."""
    try:
        table = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{path} is not a readable vadx model file (safetensors): its header "
                             f"is not JSON: {type(e).__name__}: {e}") from e
    if not isinstance(table, dict):
        raise ModelFileError(f"{path} is not a readable vadx model file (safetensors): its header "
                             f"is a JSON {type(table).__name__}, not an object")
    meta = table.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or "vadx" not in meta:
        raise ModelFileError(f"{path} is a safetensors file but not a vadx model (no 'vadx' metadata)")
    if not isinstance(meta["vadx"], str):
        raise _error(path, "__metadata__.vadx", "a JSON string", meta["vadx"])
    return check_header(path, _loads(path, meta["vadx"], "vadx")), table


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The validated JSON header of a vadx model file (only the header's bytes are read)."""
    path = _existing(path)
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(8)
        n = _header_length(path, prefix, size)
        raw = f.read(n)
    if len(raw) != n:
        raise ModelFileError(f"{path} changed while it was read (header cut short)")
    return _parse(path, raw)[0]


def read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(validated header, tensors by key) of a model file, read into memory in one pass: the
    tensors own their memory (nothing is memory-mapped)."""
    path = _existing(path)
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        buf = bytearray(size)
        got = f.readinto(buf)
    if got != size:
        raise ModelFileError(f"{path} changed while it was read ({got} of {size} bytes)")
    n = _header_length(path, buf, size)
    header, table = _parse(path, bytes(buf[8:8 + n]))
    return header, _tensors(path, table, memoryview(buf)[8 + n:])


def check_tensors(path: str | os.PathLike, header: dict[str, Any], tensors: dict[str, Tensor]) -> None:
    """What every fitted detector's file holds: a 1-D float ``decision_scores_`` tensor, and no
    attribute both as a tensor and as a JSON value."""
    path = os.fspath(path)
    if "decision_scores_" not in tensors:
        raise ModelFileError(f"{path}: the tensor 'decision_scores_' (the training scores the "
                             f"threshold was fitted on) is missing; tensors present: "
                             f"{', '.join(sorted(tensors)) or '(none)'}")
    scores = tensors["decision_scores_"]
    if scores.dim() != 1 or not scores.is_floating_point():
        raise _error(path, "decision_scores_", "a 1-D floating-point tensor",
                     f"{scores.dtype} tensor of shape {tuple(scores.shape)}")
    clash = sorted({k.partition(".")[0] for k in tensors} & set(header["fitted"]))
    if clash:
        raise ModelFileError(f"{path}: {clash[0]!r} is both a tensor and a JSON value in "
                             f"'fitted'; an attribute is one or the other")


def _tensors(path: str, table: dict[str, Any], data: memoryview) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for key, entry in table.items():
        field = f"tensors.{key}"
        attr, _, sub = key.partition(".")
        if not is_fitted_name(attr) or (sub == "" and "." in key):
            raise _error(path, field, "named '<fitted attribute>' or '<fitted attribute>.<key>' "
                         "(attribute: an identifier ending in '_')", key)
        if not isinstance(entry, dict):
            raise _error(path, field, "an object {dtype, shape, data_offsets}", entry)
        code = entry.get("dtype")
        dtype = _DTYPES.get(code) if isinstance(code, str) else None  # a list or dict is unhashable
        if dtype is None:
            raise _error(path, f"{field}.dtype", f"one of {', '.join(_DTYPES)}", code)
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(shape, list) and len(shape) <= 16 and all(_is_int(s) and s >= 0 for s in shape)):
            raise _error(path, f"{field}.shape", "a list of at most 16 sizes >= 0", shape)
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= len(data)):
            raise _error(path, f"{field}.data_offsets", f"[begin, end] within the {len(data)} "
                         f"bytes of tensor data", offsets)
        numel = math.prod(shape)
        nbytes = numel * dtype.itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise _error(path, f"{field}.data_offsets", f"{nbytes} bytes apart ({dtype}, shape "
                         f"{shape})", offsets)
        if numel == 0:
            out[key] = torch.empty(shape, dtype=dtype)
            continue
        raw = torch.frombuffer(data, dtype=torch.uint8, count=nbytes, offset=offsets[0])
        if dtype is torch.bool and bool((raw > 1).any()):
            raise _error(path, field, "a bool tensor of bytes 0 and 1", "other byte values")
        out[key] = raw.clone().view(dtype).reshape(shape)  # clone: owned, aligned memory
    return out


def _existing(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    return path


def _open(path: str):
    try:
        return open(path, "rb")
    except OSError as e:
        raise ModelFileError(f"{path}: cannot be opened: {e}") from e


def read_tensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """Every tensor of a model file, by key (validated as :func:`read`; read into memory)."""
    return read(path)[1]
