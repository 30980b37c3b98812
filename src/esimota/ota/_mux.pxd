# Augmenting declarations for _mux.py (STYLE 3): the same source runs as Python and compiles to C.

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
