"""XDR (RFC 4506) as composable type descriptions that both pack and unpack.

A type object describes one XDR type; ``pack(packer, value)`` writes it and
``unpack(unpacker)`` reads it.  Structures whose members are all fixed-width
integers are fused into a single ``struct.Struct`` so that hot types such as
``fattr3`` cost one C call in each direction.  Nothing here does I/O.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

__all__ = [
    "XdrError", "Packer", "Unpacker", "XdrType", "U32", "I32", "U64", "I64", "BOOL",
    "VOID", "Opaque", "FixedOpaque", "String", "Struct", "Optional", "Union", "Array",
    "LinkedList", "Enum", "encode", "decode",
]

_U32 = struct.Struct(">I")
_PADS = (b"", b"\0\0\0", b"\0\0", b"\0")
#: Opaque payloads at least this large are kept as separate buffers, not copied.
ZERO_COPY_MIN = 4096


class XdrError(ValueError):
    """Input is not valid XDR for the expected type (truncated, too long, bad value)."""


class Packer:
    """Accumulates encoded XDR; large opaques are kept as references, not copied."""

    __slots__ = ("buf", "parts")

    def __init__(self, reserve: int = 0) -> None:
        self.buf = bytearray(reserve)
        self.parts: list[Any] = []

    def u32(self, v: int) -> None:
        self.buf += _U32.pack(v)

    def raw(self, data: bytes) -> None:
        self.buf += data

    def large(self, data: Any) -> None:
        """Append ``data`` as its own part; ``bytes`` are kept by reference, not copied."""
        self.parts.append(bytes(self.buf))
        self.parts.append(data if type(data) is bytes else bytes(data))
        self.buf = bytearray()

    def chunks(self) -> list[bytes]:
        """All encoded pieces in order as ``bytes``, ready for ``writeSequence``."""
        if self.parts:
            return [*self.parts, bytes(self.buf)]
        return [bytes(self.buf)]

    def getvalue(self) -> bytes:
        return b"".join(self.chunks())


class Unpacker:
    """A read cursor over a bytes-like object."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: Any, pos: int = 0) -> None:
        self.data = data if isinstance(data, memoryview) else memoryview(data)
        self.pos = pos
        self.end = len(self.data)

    def take(self, n: int) -> memoryview:
        p = self.pos
        q = p + n
        if q > self.end or n < 0:
            raise XdrError(f"truncated: need {n} bytes at offset {p}, have {self.end - p}")
        self.pos = q
        return self.data[p:q]

    def u32(self) -> int:
        p = self.pos
        if p + 4 > self.end:
            raise XdrError(f"truncated: need 4 bytes at offset {p}")
        self.pos = p + 4
        return _U32.unpack_from(self.data, p)[0]

    def remaining(self) -> int:
        return self.end - self.pos

    def done(self) -> None:
        """Raise unless every byte was consumed (trailing garbage is an error)."""
        if self.pos != self.end:
            raise XdrError(f"{self.end - self.pos} trailing bytes")


class XdrType:
    """Base of every XDR type description."""

    #: struct format characters when the type is a fixed-width integer run, else None
    fmt: str | None = None

    def pack(self, p: Packer, v: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def unpack(self, u: Unpacker) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class _Prim(XdrType):
    def __init__(self, fmt: str, name: str) -> None:
        self.fmt = fmt
        self.name = name
        self._st = struct.Struct(">" + fmt)

    def pack(self, p: Packer, v: int) -> None:
        try:
            p.buf += self._st.pack(v)
        except struct.error as e:
            raise XdrError(f"{self.name}: {v!r} out of range") from e

    def unpack(self, u: Unpacker) -> int:
        pos = u.pos
        if pos + self._st.size > u.end:
            raise XdrError(f"truncated {self.name} at offset {pos}")
        u.pos = pos + self._st.size
        return self._st.unpack_from(u.data, pos)[0]

    def __repr__(self) -> str:
        return self.name


U32 = _Prim("I", "uint32")
I32 = _Prim("i", "int32")
U64 = _Prim("Q", "uint64")
I64 = _Prim("q", "int64")


class _Bool(XdrType):
    def pack(self, p: Packer, v: bool) -> None:
        p.buf += b"\0\0\0\1" if v else b"\0\0\0\0"

    def unpack(self, u: Unpacker) -> bool:
        v = u.u32()
        if v > 1:
            raise XdrError(f"bool: {v} is neither 0 nor 1")
        return v == 1

    def __repr__(self) -> str:
        return "bool"


BOOL = _Bool()


class _Void(XdrType):
    def pack(self, p: Packer, v: Any) -> None:
        pass

    def unpack(self, u: Unpacker) -> None:
        return None


VOID = _Void()


class Enum(XdrType):
    """An int32 enumeration; unpack rejects values not in ``values`` unless ``open``."""

    def __init__(self, enum_cls: Any, open: bool = False) -> None:
        self.cls = enum_cls
        self.open = open
        self._values = {int(m) for m in enum_cls}
        self._packed = {int(m): struct.pack(">i", m) for m in enum_cls}  # members pre-encoded

    def pack(self, p: Packer, v: int) -> None:
        b = self._packed.get(v)
        p.buf += b if b is not None else struct.pack(">i", int(v))

    def unpack(self, u: Unpacker) -> Any:
        v = I32.unpack(u)
        if v in self._values:
            return self.cls(v)
        if self.open:
            return v
        raise XdrError(f"{self.cls.__name__}: unknown value {v}")


class Opaque(XdrType):
    """Variable-length opaque<max>; unpacks to bytes (or memoryview when ``view``)."""

    def __init__(self, max_len: int = 2**32 - 1, view: bool = False) -> None:
        self.max = max_len
        self.view = view

    def pack(self, p: Packer, v: Any) -> None:
        n = len(v)
        if n > self.max:
            raise XdrError(f"opaque of {n} bytes exceeds {self.max}")
        p.buf += _U32.pack(n)
        if n >= ZERO_COPY_MIN:
            p.large(v)
        else:
            p.buf += v
        p.buf += _PADS[n & 3]

    def unpack(self, u: Unpacker) -> Any:
        n = u.u32()
        if n > self.max:
            raise XdrError(f"opaque of {n} bytes exceeds {self.max}")
        mv = u.take(n)
        u.take(-n & 3)
        return mv if self.view else mv.tobytes()


class String(Opaque):
    """string<max>: kept as bytes, since file names on the wire are not always UTF-8."""


class FixedOpaque(XdrType):
    def __init__(self, n: int) -> None:
        self.n = n

    def pack(self, p: Packer, v: bytes) -> None:
        if len(v) != self.n:
            raise XdrError(f"fixed opaque needs {self.n} bytes, got {len(v)}")
        p.buf += v
        p.buf += _PADS[self.n & 3]

    def unpack(self, u: Unpacker) -> bytes:
        v = u.take(self.n).tobytes()
        u.take(-self.n & 3)
        return v


class Struct(XdrType):
    """A structure bound to a NamedTuple class; fixed-width members fuse to one struct."""

    def __init__(self, cls: type, fields: list[tuple[str, XdrType]]) -> None:
        if tuple(cls._fields) != tuple(name for name, _ in fields):
            raise TypeError(f"{cls.__name__}: field names do not match the XDR members")
        self.cls = cls
        self.fields = fields
        self._types = [t for _, t in fields]
        self._make = cls._make
        fmts = [t.fmt for t in self._types]
        if all(f is not None for f in fmts):
            self.fmt = "".join(fmts)  # type: ignore[arg-type]
            self._st: struct.Struct | None = struct.Struct(">" + self.fmt)
        else:
            self._st = None

    def pack(self, p: Packer, v: Any) -> None:
        if self._st is not None:
            try:
                p.buf += self._st.pack(*v)
            except struct.error as e:
                raise XdrError(f"{self.cls.__name__}: {e}") from e
            return
        for t, x in zip(self._types, v, strict=True):
            t.pack(p, x)

    def unpack(self, u: Unpacker) -> Any:
        st = self._st
        if st is not None:
            pos = u.pos
            if pos + st.size > u.end:
                raise XdrError(f"truncated {self.cls.__name__} at offset {pos}")
            u.pos = pos + st.size
            return self._make(st.unpack_from(u.data, pos))
        return self._make([t.unpack(u) for t in self._types])


class Optional(XdrType):
    """``T *`` / a bool-discriminated union of T and void; None means absent."""

    def __init__(self, inner: XdrType) -> None:
        self.inner = inner

    def pack(self, p: Packer, v: Any) -> None:
        if v is None:
            p.buf += b"\0\0\0\0"
        else:
            p.buf += b"\0\0\0\1"
            self.inner.pack(p, v)

    def unpack(self, u: Unpacker) -> Any:
        if BOOL.unpack(u):
            return self.inner.unpack(u)
        return None


class UnionValue(NamedTuple):
    tag: int
    value: Any


class Union(XdrType):
    """A discriminated union; values are ``(tag, arm value)`` pairs."""

    def __init__(self, disc: XdrType, arms: dict[int, XdrType], default: XdrType | None = None,
                 name: str = "union") -> None:
        self.disc = disc
        self.arms = arms
        self.default = default
        self.name = name

    def _arm(self, tag: int) -> XdrType:
        arm = self.arms.get(tag, self.default)
        if arm is None:
            raise XdrError(f"{self.name}: no arm for discriminant {tag}")
        return arm

    def pack(self, p: Packer, v: Any) -> None:
        tag, value = v
        self.disc.pack(p, tag)
        arm = self.arms.get(tag)  # IntEnum tags hash as their int values
        (arm if arm is not None else self._arm(int(tag))).pack(p, value)

    def unpack(self, u: Unpacker) -> UnionValue:
        tag = self.disc.unpack(u)
        return UnionValue(tag, self._arm(int(tag)).unpack(u))


class Array(XdrType):
    """Variable-length array T<max>."""

    def __init__(self, inner: XdrType, max_len: int = 2**32 - 1) -> None:
        self.inner = inner
        self.max = max_len

    def pack(self, p: Packer, v: Any) -> None:
        if len(v) > self.max:
            raise XdrError(f"array of {len(v)} exceeds {self.max}")
        p.buf += _U32.pack(len(v))
        for x in v:
            self.inner.pack(p, x)

    def unpack(self, u: Unpacker) -> list:
        n = u.u32()
        if n > self.max or n > u.remaining():
            raise XdrError(f"array of {n} elements exceeds its limit")
        return [self.inner.unpack(u) for _ in range(n)]


class LinkedList(XdrType):
    """The ``struct node { T item; node *next; }`` idiom, as a Python list of T."""

    def __init__(self, inner: XdrType, max_len: int = 1 << 20) -> None:
        self.inner = inner
        self.max = max_len

    def pack(self, p: Packer, v: Any) -> None:
        for x in v:
            p.buf += b"\0\0\0\1"
            self.inner.pack(p, x)
        p.buf += b"\0\0\0\0"

    def unpack(self, u: Unpacker) -> list:
        out = []
        while BOOL.unpack(u):
            if len(out) >= self.max:
                raise XdrError("linked list too long")
            out.append(self.inner.unpack(u))
        return out


def encode(t: XdrType, v: Any) -> bytes:
    """Encode one value to bytes (tests and small messages)."""
    p = Packer()
    t.pack(p, v)
    return p.getvalue()


def decode(t: XdrType, data: Any, exact: bool = True) -> Any:
    """Decode one value; with ``exact`` trailing bytes are an error."""
    u = Unpacker(data)
    v = t.unpack(u)
    if exact:
        u.done()
    return v


def struct_type(name: str, fields: list[tuple[str, XdrType]]) -> tuple[type, Struct]:
    """Declare a NamedTuple class and its XDR description in one step."""
    cls = NamedTuple(name, [(n, Any) for n, _ in fields])  # type: ignore[misc]
    return cls, Struct(cls, fields)

