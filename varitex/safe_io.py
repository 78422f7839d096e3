"""Reading and writing the project's files safely.

- No data file is ever unpickled. Numeric ``.npy``/``.npz`` arrays are read with ``allow_pickle=False``;
  string arrays stored the way the authors stored ``filename.npy`` (an object array of ``str``, which numpy
  writes as a pickle) are decoded by `load_string_array` without running the pickle: its opcodes are parsed
  and only those of a plain array of strings are accepted.
- A broken file (empty, truncated, random bytes, the wrong kind) raises `DataFileError` naming the file and
  what is wrong with it.
- Writes are atomic (`atomic_write`): a temporary file beside the target, flushed to disk, then renamed over
  it, so an interrupted or disk-full write never leaves a truncated file under the normal name.
- Names taken from data (image stems) are checked before they become paths (`check_stems`).

Low level: imports nothing of the command line or the networks.
"""
import contextlib
import json
import math
import os
import pickletools
import shutil
import zipfile
from pathlib import Path

import numpy as np

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive (npz, torch checkpoints), an empty one
MAX_STEM_BYTES = 200  # leaves room for suffixes under the usual 255-byte file-name limit


class DataFileError(ValueError):
    """A file cannot be used: missing, broken, of the wrong kind or with the wrong content (message names it)."""


def _require_file(path, what):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path


def _first_bytes(path, n=8):
    with open(path, "rb") as file:
        return file.read(n)


def _describe_start(path, expected):
    """A clause saying why a file does not start like ``expected`` (empty, or its first bytes)."""
    start = _first_bytes(path)
    if not start:
        return "the file is empty (0 bytes)"
    return f"it does not start like {expected} (first bytes {start!r}): a corrupted file or another format"


# ---- .npy -----------------------------------------------------------------------------------------------

def read_npy_header(path, what="array file"):
    """(shape, fortran_order, dtype, data_offset) of a ``.npy`` file, checked against the file size.

    Raises:
        FileNotFoundError; DataFileError: not a .npy file, unreadable header, or fewer data bytes than the
        header announces (truncated).
    """
    path = _require_file(path, what)
    with open(path, "rb") as file:
        if file.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise DataFileError(f"{what} {path} is not a .npy file: {_describe_start(path, 'a .npy file')}")
        file.seek(0)
        try:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
            else:
                raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        except (ValueError, EOFError, SyntaxError, TypeError) as error:
            raise DataFileError(f"{what} {path} has a broken .npy header ({error}); the file is truncated "
                                f"or corrupted") from None
        offset = file.tell()
    if not dtype.hasobject:
        expected = offset + math.prod(shape) * dtype.itemsize
        size = path.stat().st_size
        if size < expected:
            raise DataFileError(f"{what} {path} is truncated: its header announces shape {shape} of {dtype} "
                                f"({expected} bytes with the header), the file has {size} bytes")
    return shape, fortran, dtype, offset


def load_npy(path, mmap=False, what="array file"):
    """A numeric (or fixed-width string) ``.npy`` array, never unpickled.

    Args:
        path: the file. mmap: memory-map it read-only instead of reading it whole. what: words naming the
            file in messages (e.g. "dataset file").
    Raises:
        FileNotFoundError; DataFileError: broken file (see read_npy_header) or an array of Python objects.
    """
    path = Path(path)
    shape, _, dtype, _ = read_npy_header(path, what)
    if dtype.hasobject:
        raise DataFileError(f"{what} {path} stores Python objects (dtype {dtype}, a pickle) where numbers are "
                            f"expected; it was not loaded, since unpickling a data file can run code")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataFileError(f"{what} {path} cannot be read as a .npy array ({error})") from None


class _Global:
    """A class or function a pickle names (never imported)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __repr__(self):
        return f"{self.module}.{self.name}"


class _Call:
    """A call a pickle asks for (REDUCE), with the state it would set (BUILD); never performed."""

    def __init__(self, function, args):
        self.function, self.args, self.state = function, args, None


_MARK = object()
_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_PUSH_ARGUMENT = {"BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1", "LONG4", "SHORT_BINUNICODE", "BINUNICODE",
                  "BINUNICODE8", "UNICODE", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "SHORT_BINSTRING",
                  "BINSTRING", "STRING"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": (), "EMPTY_LIST": None}


def _parse_object_array_pickle(data, source):
    """The (shape, items) of a pickled numpy object array, from its opcodes alone; nothing is executed.

    Accepts exactly what ``pickle.dumps(numpy_object_array)`` writes: the globals numpy's ``_reconstruct``,
    ``ndarray`` and ``dtype``, tuples, lists, ints, booleans, None, strings and bytes. Anything else raises.
    """
    stack, memo = [], {}

    def pop_to_mark():
        items = []
        while stack and stack[-1] is not _MARK:
            items.append(stack.pop())
        if not stack:
            raise ValueError("unbalanced MARK")
        stack.pop()
        return items[::-1]

    try:
        for opcode, arg, position in pickletools.genops(data):
            name = opcode.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                break
            if name == "MARK":
                stack.append(_MARK)
            elif name == "GLOBAL":
                stack.append(_Global(*arg.split(" ", 1)))
            elif name == "STACK_GLOBAL":
                global_name, module = stack.pop(), stack.pop()
                stack.append(_Global(module, global_name))
            elif name in _PUSH_ARGUMENT:
                stack.append(arg)
            elif name in _CONSTANTS:
                stack.append([] if name == "EMPTY_LIST" else _CONSTANTS[name])
            elif name in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                stack.append(memo[arg])
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                count = int(name[-1])
                items = stack[-count:]
                del stack[-count:]
                stack.append(tuple(items))
            elif name == "TUPLE":
                stack.append(tuple(pop_to_mark()))
            elif name == "LIST":
                stack.append(pop_to_mark())
            elif name == "APPEND":
                item = stack.pop()
                stack[-1].append(item)
            elif name == "APPENDS":
                items = pop_to_mark()
                stack[-1].extend(items)
            elif name == "REDUCE":
                args, function = stack.pop(), stack.pop()
                stack.append(_Call(function, args))
            elif name == "BUILD":
                state = stack.pop()
                if not isinstance(stack[-1], _Call):
                    raise ValueError("BUILD on something other than a reconstructed array")
                stack[-1].state = state
            else:
                raise DataFileError(f"{source} holds a pickle that is not a plain array of strings (pickle "
                                    f"opcode {name} at byte {position}); it was not loaded (nothing in it was run)")
    except DataFileError:
        raise
    except (ValueError, IndexError, KeyError, AttributeError, TypeError) as error:
        raise DataFileError(f"{source} holds a broken or truncated pickle ({error}); it was not loaded") from None
    if len(stack) != 1:
        raise DataFileError(f"{source} holds a broken or truncated pickle (no complete object); it was not loaded")
    return _object_array_content(stack[0], source)


def _object_array_content(obj, source):
    """(shape, items) of the parsed ``_reconstruct(ndarray, ...)`` call with its state, else DataFileError."""
    def refuse(detail):
        return DataFileError(f"{source} holds a pickle that is not a plain array of strings ({detail}); it was "
                             f"not loaded (nothing in it was run)")

    globals_named = []

    def named(value):
        if isinstance(value, _Global):
            globals_named.append(repr(value))
        elif isinstance(value, _Call):
            named(value.function)
            named(value.args)
            named(value.state)
        elif isinstance(value, (list, tuple)):
            for item in value:
                named(item)

    named(obj)
    allowed = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
               "numpy.dtype"}
    foreign = sorted(set(globals_named) - allowed)
    if foreign:
        raise refuse(f"it references {', '.join(foreign)}")
    if not (isinstance(obj, _Call) and isinstance(obj.function, _Global)
            and (obj.function.module, obj.function.name) in _RECONSTRUCT and isinstance(obj.state, tuple)
            and len(obj.state) == 5):
        raise refuse("its top-level object is not a numpy array")
    _, shape, dtype, _, items = obj.state
    if not (isinstance(dtype, _Call) and isinstance(dtype.args, tuple) and dtype.args
            and str(dtype.args[0]) in ("O8", "O4", "O")):
        raise refuse("its array is not of dtype object")
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise refuse(f"shape {shape!r}")
    if not isinstance(items, list) or len(items) != math.prod(shape):
        raise refuse(f"{len(items) if isinstance(items, list) else type(items).__name__} items for shape {shape}")
    return shape, items


def load_string_array(path, what="array file"):
    """A ``.npy`` array of strings as a numpy array of ``str``, never unpickled.

    Fixed-width ``U``/``S`` arrays are read directly; object arrays of ``str`` (or ``bytes``), as in the authors'
    ``filename.npy``, are decoded from their pickle opcodes without executing them (see
    _parse_object_array_pickle). Any other pickle content is refused.

    Raises:
        FileNotFoundError; DataFileError: a broken file, or an array that is not of strings.
    """
    path = Path(path)
    shape, fortran, dtype, offset = read_npy_header(path, what)
    if not dtype.hasobject:
        if dtype.kind not in "US":
            raise DataFileError(f"{what} {path} has dtype {dtype}; expected strings")
        array = load_npy(path, what=what)
        return array.astype(str) if dtype.kind == "S" else array
    with open(path, "rb") as file:
        file.seek(offset)
        data = file.read()
    shape, items = _parse_object_array_pickle(data, f"{what} {path}")
    strings = []
    for index, item in enumerate(items):
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise DataFileError(f"{what} {path}: item {index} is bytes that are not UTF-8 text") from None
        if not isinstance(item, str):
            raise DataFileError(f"{what} {path}: item {index} is {type(item).__name__} {item!r}, not a string")
        strings.append(item)
    array = np.array(strings, dtype=str) if strings else np.array([], dtype="U1")
    return array.reshape(shape, order="F" if fortran else "C")


# ---- .npz, .json -----------------------------------------------------------------------------------------

def load_npz(path, what="archive"):
    """Every member of a ``.npz`` archive as {name: array}, never unpickled.

    Raises:
        FileNotFoundError; DataFileError naming the archive (and member) when it is not a readable npz.
    """
    path = _require_file(path, what)
    if _first_bytes(path, 4) not in ZIP_MAGICS:
        raise DataFileError(f"{what} {path} is not a .npz archive: {_describe_start(path, 'a zip archive')}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise DataFileError(f"{what} {path} is a broken .npz archive ({error}); truncated or corrupted") from None
    arrays = {}
    with archive:
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except ValueError as error:
                detail = ("stores Python objects (a pickle); it was not loaded, since unpickling a data file can "
                          "run code" if "allow_pickle" in str(error) else f"cannot be read ({error})")
                raise DataFileError(f"{what} {path}: member '{name}' {detail}") from None
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                raise DataFileError(f"{what} {path}: member '{name}' cannot be read ({error}); the archive is "
                                    f"truncated or corrupted") from None
    return arrays


def load_json(path, what="json file"):
    """The content of a UTF-8 JSON file; DataFileError naming the file and the position of a syntax error."""
    path = _require_file(path, what)
    data = path.read_bytes()
    if not data.strip():
        raise DataFileError(f"{what} {path} is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataFileError(f"{what} {path} is not UTF-8 text: {_describe_start(path, 'JSON text')}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        ending = " (the file ends early: truncated?)" if error.pos >= len(text.rstrip()) else ""
        raise DataFileError(f"{what} {path} is not valid JSON: {error.msg} at line {error.lineno} column "
                            f"{error.colno}{ending}") from None
    except RecursionError:
        raise DataFileError(f"{what} {path} is nested too deeply to be read as JSON") from None


# ---- atomic writes ---------------------------------------------------------------------------------------

def partial_path(path):
    """The temporary name `atomic_write` writes ``path`` under (hidden, beside it, unique per process)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Open a temporary file beside ``path``; on success flush it to disk and rename it to ``path``.

    On any error (disk full, Ctrl-C) the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    temporary = partial_path(path)
    try:
        with open(temporary, mode, **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


@contextlib.contextmanager
def replaced_folder(folder):
    """Fill a fresh temporary folder beside ``folder``; when the block succeeds it replaces ``folder`` as a whole.

    Earlier results in ``folder`` therefore never stay beside new ones, and they are kept, untouched, when the
    block fails or is interrupted (the temporary folder is then removed). Yields the temporary folder's path.
    """
    folder = Path(folder)
    partial = partial_path(folder)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        yield str(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    previous = folder.with_name(f".{folder.name}.{os.getpid()}.previous")
    if folder.exists():
        os.replace(folder, previous)
    os.replace(partial, folder)
    shutil.rmtree(previous, ignore_errors=True)


def save_npy(path, array):
    """``np.save`` atomically, refusing object arrays (which numpy would pickle)."""
    array = np.asarray(array)
    with atomic_write(path) as file:
        np.save(file, array, allow_pickle=False)
    return Path(path)


def save_json(path, content, **dump_kwargs):
    """``json.dump`` atomically (UTF-8)."""
    with atomic_write(path, "w", encoding="utf-8") as file:
        json.dump(content, file, **dump_kwargs)
    return Path(path)


# ---- names from data -------------------------------------------------------------------------------------

def stem_problem(stem):
    """Why ``stem`` cannot be a file name inside a folder (None when it can): an empty name, ``.``/``..``, a
    path separator, an absolute path, NUL or another control character, or too long."""
    if not isinstance(stem, str):
        return f"is a {type(stem).__name__}, not a string"
    if not stem.strip():
        return "is empty"
    if stem in (".", ".."):
        return "names a folder, not a file"
    if any(separator in stem for separator in ("/", "\\", os.sep, os.altsep or "/")):
        return "contains a path separator (it would lead outside the folder)"
    if os.path.isabs(stem) or (len(stem) > 1 and stem[1] == ":"):
        return "is an absolute path"
    if any(ord(character) < 32 or ord(character) == 127 for character in stem):
        return "contains a NUL or another control character"
    if len(stem.encode("utf-8", "surrogatepass")) > MAX_STEM_BYTES:
        return f"is longer than {MAX_STEM_BYTES} bytes"
    return None


def check_stems(stems, source):
    """Raise DataFileError naming the row unless every stem is a plain file name and no two stems name the same
    file (also on case-insensitive file systems: their outputs would overwrite each other).

    Args:
        stems: sequence of str. source: the file the stems come from, for the messages.
    """
    stems = [str(stem) if isinstance(stem, str) else stem for stem in stems]  # np.str_ -> str (plain repr)
    seen = {}
    for row, stem in enumerate(stems):
        problem = stem_problem(stem)
        if problem:
            raise DataFileError(f"{source} row {row}: image name {stem!r} {problem}; names must be plain file "
                                f"names without folders")
        key = stem.casefold()
        if key in seen:
            first = seen[key]
            same = "the same name" if stems[first] == stem else f"{stems[first]!r}, the same file on " \
                                                                 f"case-insensitive file systems"
            raise DataFileError(f"{source} rows {first} and {row} both name image {stem!r} ({same}): their "
                                f"images and outputs would overwrite each other; names must be unique")
        seen[key] = row
