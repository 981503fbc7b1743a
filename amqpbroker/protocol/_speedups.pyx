# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""One function of the message path, compiled (optional: the install builds this module
where a C compiler and Python's headers are there, setup.py); its twin in Python is the
reference and what runs without it, and the tests compare the two.

`encode_deliver`: `protocol/fastcodec.encode_deliver`'s common case (one body frame): the
parts cache looked up and the delivery's three frames written into one new `bytes`,
instead of three struct packs and a join of ten parts; every other case goes to
fastcodec's. docs/performance.md ("Acks in groups, the delivery compiled") says what it
buys, and why the frame cutter is not compiled.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

cdef enum:
    FRAME_END = 0xCE


cdef inline unsigned char* _put_u16(unsigned char* p, unsigned int v) noexcept nogil:
    p[0] = (v >> 8) & 0xFF
    p[1] = v & 0xFF
    return p + 2


cdef inline unsigned char* _put_u32(unsigned char* p, unsigned long long v) noexcept nogil:
    p[0] = (v >> 24) & 0xFF
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF
    return p + 4


# fastcodec's cache of Basic.Deliver's bytes around the delivery tag, the function that
# fills it, and its own encode_deliver for every other case (set by `bind`).
cdef dict _parts = None
cdef object _make_parts = None
cdef object _encode_deliver = None


def bind(dict parts, make_parts, encode_deliver):
    global _parts, _make_parts, _encode_deliver
    _parts, _make_parts, _encode_deliver = parts, make_parts, encode_deliver


def encode_deliver(unsigned int channel, str consumer_tag, unsigned long long delivery_tag,
                   bint redelivered, str exchange, str routing_key, properties, body,
                   Py_ssize_t frame_max):
    """fastcodec.encode_deliver, whose common case (bytes, one body frame) is written here
    into one new `bytes`; anything else is left to it."""
    cdef Py_ssize_t size
    if type(body) is not bytes or type(properties) is not bytes:
        return _encode_deliver(channel, consumer_tag, delivery_tag, redelivered, exchange,
                               routing_key, properties, body, frame_max)
    size = len(<bytes>body)
    if not size or size > frame_max - 8:  # no body frame, or more than one
        return _encode_deliver(channel, consumer_tag, delivery_tag, redelivered, exchange,
                               routing_key, properties, body, frame_max)
    parts = _parts.get((channel, consumer_tag, exchange, routing_key))
    if parts is None:
        parts = _make_parts(channel, consumer_tag, exchange, routing_key)
    return _join_deliver(<bytes>(<tuple>parts)[0], delivery_tag, redelivered,
                         <bytes>(<tuple>parts)[1], channel, <bytes>properties, <bytes>body)


cdef bytes _join_deliver(bytes head, unsigned long long tag, bint redelivered, bytes tail,
                         unsigned int channel, bytes properties, bytes body):
    """Basic.Deliver (`head`, the tag and bits octet, `tail`: fastcodec's cached parts),
    its content header (class basic, weight 0, spec 4.2.6.1) and one body frame."""
    cdef Py_ssize_t nh = len(head), nt = len(tail), np = len(properties), nb = len(body)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, nh + 9 + nt + 19 + np + 1 + 7 + nb + 1)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(head), nh)
    p += nh
    p = _put_u32(_put_u32(p, tag >> 32), tag & 0xFFFFFFFF)
    p[0] = 1 if redelivered else 0
    memcpy(p + 1, PyBytes_AS_STRING(tail), nt)
    p += 1 + nt
    p[0] = 2  # content header frame
    p = _put_u32(_put_u16(p + 1, channel), 12 + np)
    p = _put_u16(_put_u16(p, 60), 0)
    p = _put_u32(_put_u32(p, <unsigned long long>nb >> 32), nb & 0xFFFFFFFF)
    memcpy(p, PyBytes_AS_STRING(properties), np)
    p += np
    p[0] = FRAME_END
    p[1] = 3  # body frame
    p = _put_u32(_put_u16(p + 2, channel), nb)
    memcpy(p, PyBytes_AS_STRING(body), nb)
    p[nb] = FRAME_END
    return out
