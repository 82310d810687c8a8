/* The guest's one codec, both ways: arguments and batches out, values in (codec.h). */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

/* Deeper replies are refused rather than risking the C stack: a value inside 64 arrays
 * decodes, one more level does not (crates/abi's MAX_DEPTH; pinned by the vectors). */
#define MAX_DEPTH 64

static int reserve(codec_buf *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) { PyErr_NoMemory(); return -1; }
    b->data = p;
    b->cap = cap;
    return 0;
}

int codec_put_raw(codec_buf *b, const void *src, size_t n) {
    if (reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static int put(codec_buf *b, const void *src, size_t n) { return codec_put_raw(b, src, n); }

static int put_u32(codec_buf *b, uint32_t v) { return put(b, &v, 4); } /* wasm32 is little-endian */

/* One argument: str as UTF-8; bytes, bytearray (what binary replies decode to) or any other
 * buffer as its bytes. */
static int put_arg(codec_buf *b, PyObject *part) {
    if (PyUnicode_Check(part)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(part, &len);
        if (!s) return -1;
        return put_u32(b, (uint32_t)len) < 0 ? -1 : put(b, s, (size_t)len);
    }
    if (!PyObject_CheckBuffer(part)) {
        PyErr_SetString(PyExc_TypeError, "command arguments must be str, bytes or bytearray");
        return -1;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(part, &view, PyBUF_SIMPLE) < 0) return -1;
    int rc = put_u32(b, (uint32_t)view.len) < 0 ? -1 : put(b, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return rc;
}

int codec_put_args(codec_buf *b, PyObject *parts) {
    if (!PyList_Check(parts)) {
        PyErr_SetString(PyExc_TypeError, "arguments must be a list");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(parts);
    if (put_u32(b, (uint32_t)n) < 0) return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (put_arg(b, PyList_GET_ITEM(parts, i)) < 0) return -1;
    return 0;
}

int codec_put_batch(codec_buf *b, PyObject *commands) {
    if (!PyList_Check(commands)) {
        PyErr_SetString(PyExc_TypeError, "a batch must be a list of lists");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(commands);
    if (put_u32(b, (uint32_t)n) < 0) return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (codec_put_args(b, PyList_GET_ITEM(commands, i)) < 0) return -1;
    return 0;
}

typedef struct {
    const uint8_t *p, *end;
    PyObject *error_type;
    int error_depth; /* error replies nested this deep or deeper are text */
} reader;

static PyObject *truncated(void) {
    PyErr_SetString(PyExc_ValueError, "malformed reply from host");
    return NULL;
}

static int take(reader *r, void *dst, size_t n) {
    if ((size_t)(r->end - r->p) < n) return -1;
    memcpy(dst, r->p, n);
    r->p += n;
    return 0;
}

static PyObject *text(const uint8_t *s, uint32_t n) {
    PyObject *str = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
    if (str || !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return str;
    PyErr_Clear(); /* binary data: RedisGears 1.2 hands it over as a bytearray */
    return PyByteArray_FromStringAndSize((const char *)s, n);
}

static PyObject *decode(reader *r, int depth) {
    uint8_t tag;
    uint32_t n;
    if (depth > MAX_DEPTH) return PyErr_Format(PyExc_ValueError, "reply nested deeper than %d", MAX_DEPTH);
    if (take(r, &tag, 1) < 0) return truncated();
    switch (tag) {
    case '$': case '+': case '-': {
        if (take(r, &n, 4) < 0 || (size_t)(r->end - r->p) < n) return truncated();
        const uint8_t *s = r->p;
        r->p += n;
        if (tag != '-' || depth >= r->error_depth) return text(s, n);
        PyObject *msg = PyUnicode_DecodeUTF8((const char *)s, n, "replace");
        if (!msg) return NULL;
        PyObject *err = PyObject_CallOneArg(r->error_type, msg);
        Py_DECREF(msg);
        return err;
    }
    case ':': {
        int64_t v;
        if (take(r, &v, 8) < 0) return truncated();
        return PyLong_FromLongLong(v);
    }
    case ',': {
        double v;
        if (take(r, &v, 8) < 0) return truncated();
        return PyFloat_FromDouble(v);
    }
    case '_':
        Py_RETURN_NONE;
    case '*': {
        if (take(r, &n, 4) < 0) return truncated();
        if (n > (size_t)(r->end - r->p)) return truncated(); /* each element takes >= 1 byte */
        PyObject *list = PyList_New(n);
        if (!list) return NULL;
        for (uint32_t i = 0; i < n; i++) {
            PyObject *item = decode(r, depth + 1);
            if (!item) { Py_DECREF(list); return NULL; }
            PyList_SET_ITEM(list, i, item);
        }
        return list;
    }
    default:
        return truncated();
    }
}

PyObject *codec_reply_to_python(const uint8_t *data, uint32_t len, PyObject *error_type, int error_depth) {
    reader r = {data, data + len, error_type, error_depth};
    PyObject *value = decode(&r, 0);
    if (value && r.p != r.end) {
        Py_DECREF(value);
        PyErr_SetString(PyExc_ValueError, "malformed reply from host: trailing bytes");
        return NULL;
    }
    if (value && PyObject_TypeCheck(value, (PyTypeObject *)error_type)) {
        PyErr_SetObject(error_type, value); /* a top-level error reply raises */
        Py_DECREF(value);
        return NULL;
    }
    return value;
}

/* One field as its kind letter asks (codec.h). */
static PyObject *field(const uint8_t *s, uint32_t n, char kind) {
    switch (kind) {
    case 'v':
        return text(s, n);
    case 's':
        return PyUnicode_DecodeUTF8((const char *)s, n, "replace");
    case 'n': {
        PyObject *str = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
        if (str || !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return str;
        PyErr_Clear(); /* a binary name: bytes, which are hashable */
        return PyBytes_FromStringAndSize((const char *)s, n);
    }
    default:
        return PyBytes_FromStringAndSize((const char *)s, n);
    }
}

PyObject *codec_args_to_python(const uint8_t *data, size_t len, const char *kinds) {
    reader r = {data, data + len, NULL, 0};
    uint32_t n;
    if (take(&r, &n, 4) < 0) return truncated();
    if (n > (size_t)(r.end - r.p) / 4) return truncated(); /* each argument takes >= 4 bytes */
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    const char *kind = kinds;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t arg_len;
        if (take(&r, &arg_len, 4) < 0 || (size_t)(r.end - r.p) < arg_len) { Py_DECREF(list); return truncated(); }
        PyObject *arg = field(r.p, arg_len, *kind);
        if (!arg) { Py_DECREF(list); return NULL; }
        if (kind[0] && kind[1]) kind++; /* the last kind holds for the rest */
        r.p += arg_len;
        PyList_SET_ITEM(list, i, arg);
    }
    if (r.p != r.end) {
        Py_DECREF(list);
        PyErr_SetString(PyExc_ValueError, "malformed arguments: trailing bytes");
        return NULL;
    }
    return list;
}
