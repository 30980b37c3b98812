# C-level helpers of esimota._ext.tlv, cimported by the other codec extensions (STYLE 2).

cdef bytes tlv_bytes(object buf)
cdef Py_ssize_t tlv_ber_tag(const unsigned char* p, Py_ssize_t off, Py_ssize_t end,
                            unsigned long* tag) except -1
cdef Py_ssize_t tlv_ber_length(const unsigned char* p, Py_ssize_t off, Py_ssize_t end,
                               object tag, long long* length) except -1
cdef Py_ssize_t tlv_ctag(const unsigned char* p, Py_ssize_t off, Py_ssize_t end,
                         unsigned int* tag, bint* cr) except -1
cdef Py_ssize_t tlv_clength(const unsigned char* p, Py_ssize_t off, Py_ssize_t end,
                            unsigned int tag, Py_ssize_t* length) except -1
cdef void tlv_put_length(bytearray out, Py_ssize_t length)
