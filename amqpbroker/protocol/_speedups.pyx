# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Two loops of the message path, compiled (optional: the install builds this module where
a C compiler and Python's headers are there, setup.py). Each has its twin in Python, which
is the reference and what runs without it; the tests run both and compare.

- `cut_frames`: `protocol/frames._cut_frames`. Cutting is where the broker walks bytes one
  frame at a time, so the interpreter's work per frame (a dozen locals, three struct
  unpacks, the comparisons) is most of its cost; with C integers it is a few nanoseconds.
  It reads any contiguous buffer, so a chunk of a large read is cut without being copied
  into `bytes` first; each payload is its own `bytes`, as in Python.
- `encode_deliver`: `protocol/fastcodec.encode_deliver`'s common case (one body frame):
  the parts cache looked up and the delivery's three frames written into one new `bytes`,
  instead of three struct packs and a join of ten parts; other cases go to fastcodec's.

docs/performance.md ("Compiled: the frame cutter and the delivery") says what they buy.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

from amqpbroker.errors import FrameError

cdef enum:
    FRAME_END = 0xCE
    BASIC_PUBLISH = 0x003C0028
    BASIC_ACK = 0x003C0050
    FRAME_PUBLISH = 0x101
    FRAME_ACK = 0x102


cdef inline unsigned int _u16(const unsigned char[::1] b, Py_ssize_t i) noexcept nogil:
    return (b[i] << 8) | b[i + 1]


cdef inline unsigned long long _u32(const unsigned char[::1] b, Py_ssize_t i) noexcept nogil:
    return ((<unsigned long long>b[i] << 24) | (<unsigned long long>b[i + 1] << 16)
            | (<unsigned long long>b[i + 2] << 8) | b[i + 3])


cdef inline bytes _slice(const unsigned char[::1] b, Py_ssize_t start, Py_ssize_t stop):
    if stop <= start:
        return b""
    return PyBytes_FromStringAndSize(<const char*>&b[start], stop - start)


def cut_frames(const unsigned char[::1] src, Py_ssize_t limit, bint fuse, list frames,
               Py_ssize_t ack_group):
    """Append every complete frame of `src` to `frames` as `_cut_frames` does; return the
    offset of the first incomplete one (len(src) if none)."""
    cdef Py_ssize_t end = src.shape[0]
    cdef list acks = None
    cdef Py_ssize_t acks_at = -1
    cdef long acks_channel = -1
    cdef bytes payload
    cdef Py_ssize_t pos = 0, stop, hstop, nxt
    cdef unsigned long long size, hsize, bsize, body_size
    cdef unsigned int ftype, channel, ids, htype, hchannel, class_id, btype, bchannel
    cdef bint fused
    while end - pos >= 7:
        ftype = src[pos]
        channel = _u16(src, pos + 1)
        size = _u32(src, pos + 3)
        ids = <unsigned int>_u32(src, pos + 7) if end - pos >= 11 else 0
        if size + 8 > <unsigned long long>limit:
            raise FrameError(f"frame size {size + 8} exceeds frame_max {limit}")
        if ftype != 1 and ftype != 2 and ftype != 3 and ftype != 8:
            raise FrameError(f"unknown frame type {ftype}")
        stop = pos + 7 + <Py_ssize_t>size
        if stop >= end:
            break
        if src[stop] != FRAME_END:
            raise FrameError(f"frame end octet {src[stop]:#04x} is not 0xCE")
        if ids == BASIC_PUBLISH and ftype == 1 and fuse and end - stop >= 20:
            # The content header: frame header, class-id, weight, body size (spec 4.2.6.1).
            htype = src[stop + 1]
            hchannel = _u16(src, stop + 2)
            hsize = _u32(src, stop + 4)
            class_id = _u16(src, stop + 8)
            body_size = (_u32(src, stop + 12) << 32) | _u32(src, stop + 16)
            hstop = stop + 8 + <Py_ssize_t>hsize
            if (htype == 2 and hchannel == channel and class_id == 60 and hsize >= 14
                    and hsize + 8 <= <unsigned long long>limit and hstop < end
                    and src[hstop] == FRAME_END):
                if body_size:
                    if end - hstop > 7:
                        btype = src[hstop + 1]
                        bchannel = _u16(src, hstop + 2)
                        bsize = _u32(src, hstop + 4)
                    else:
                        btype = bchannel = 0
                        bsize = 0
                    nxt = hstop + 8 + <Py_ssize_t>bsize
                    fused = (btype == 3 and bchannel == channel and bsize == body_size
                             and bsize + 8 <= <unsigned long long>limit and nxt < end
                             and src[nxt] == FRAME_END)
                else:
                    fused = True
                    nxt = hstop
                if fused:
                    frames.append((FRAME_PUBLISH, channel, (
                        _slice(src, pos + 7, stop), _slice(src, stop + 20, hstop),
                        _slice(src, hstop + 8, nxt) if body_size else b"")))
                    pos = nxt + 1
                    continue
        elif ids == BASIC_ACK and ftype == 1 and fuse:
            payload = _slice(src, pos + 7, stop)
            pos = stop + 1
            if (acks_at == len(frames) - 1 and acks_channel == channel
                    and len(acks) < ack_group):
                acks.append(payload)
            else:
                acks = [payload]
                acks_at = len(frames)
                acks_channel = channel
                frames.append((FRAME_ACK, channel, acks))
            continue
        frames.append((ftype, channel, _slice(src, pos + 7, stop)))
        pos = stop + 1
    return pos


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
