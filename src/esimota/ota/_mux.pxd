# Augmenting declarations for _mux.py (STYLE 3): the same source runs as Python and compiles to C.

# events (h11-style: one class per kind, named fields)
cdef class Hello:
    cdef public object cid, fields, frame

cdef class Report:
    cdef public object cid, fields, frame

cdef class Acked:
    cdef public object cid, session
    cdef public Py_ssize_t acked

cdef class ScriptDone:
    cdef public object cid, session

cdef class WriteFailed:
    cdef public object cid, session
    cdef public int failure

cdef class TimedOut:
    cdef public object cid, session
    cdef public int state

cdef class ProtocolError:
    cdef public object cid, session, detail

cdef class Gone:
    cdef public object cid, session

# answers of the service
cdef class StartWrite:
    cdef public object cid, session
    cdef public Py_ssize_t buffer_size

cdef class Close:
    cdef public object cid
    cdef public int reason, retry_after

cdef class Session:
    cdef public object eid, task_id, kic, kid, apdus, context, expect, chunks, owner
    cdef public long long cntr, cntr_end, in_flight_cntr
    cdef public Py_ssize_t next_chunk, acked, traffic, buffer_size
    cdef public bint retried
    cdef public double started

cdef class Channel:
    cdef public object cid, eid, session
    cdef public bytearray buf
    cdef public int state
    cdef public Py_ssize_t limit, frames, nbytes
    cdef public double opened

cdef class Mux:
    cdef public dict channels, by_eid
    cdef public object wheel
    cdef public double first_timeout, frame_timeout, check_timeout
    cdef public list out, cuts, events, received
    cpdef void feed(self, object cid, object data, double now)
    cdef void _on_frame(self, Channel ch, bytes frame, double now)
    cdef void _on_response(self, Channel ch, bytes frame, double now)
    cdef void _send_chunk(self, Channel ch, double now)
    cdef void _write(self, Channel ch, bytes body)
    cdef void _cut(self, Channel ch)
    cdef void _protocol_error(self, Channel ch, str detail)
