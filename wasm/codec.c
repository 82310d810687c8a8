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

/* ---- records out: a flow's results (gears_encode's format, pinned by the vectors) -------- */

static int put_tagged(codec_buf *b, char tag, const void *s, size_t n) {
    if (put(b, &tag, 1) < 0 || put_u32(b, (uint32_t)n) < 0) return -1;
    return put(b, s, n);
}

/* A str as UTF-8, lone surrogates included (surrogatepass). A new bytes object. */
static PyObject *utf8_of(PyObject *s, const char *errors) {
    return PyUnicode_AsEncodedString(s, "utf-8", errors);
}

static int put_str_record(codec_buf *b, PyObject *r) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(r, &n);
    PyObject *owned = NULL;
    if (!s) { /* lone surrogates: encoded as they are */
        PyErr_Clear();
        if (!(owned = utf8_of(r, "surrogatepass"))) return -1;
        s = PyBytes_AS_STRING(owned);
        n = PyBytes_GET_SIZE(owned);
    }
    int rc;
    Py_UCS4 first = PyUnicode_GET_LENGTH(r) > 1 ? PyUnicode_READ_CHAR(r, 0) : 0;
    if (first == '+' || first == '-') /* 1.2: a status or an error reply, without the sign */
        rc = put_tagged(b, (char)first, s + 1, (size_t)n - 1);
    else
        rc = put_tagged(b, '$', s, (size_t)n);
    Py_XDECREF(owned);
    return rc;
}

int codec_put_record(codec_buf *b, PyObject *r, int depth) {
    if (PyUnicode_Check(r)) return put_str_record(b, r);
    if (PyBytes_Check(r)) /* 1.2 (PythonRecord_SendReply): bytes only; a bytearray is a PY RECORD */
        return put_tagged(b, '$', PyBytes_AS_STRING(r), (size_t)PyBytes_GET_SIZE(r));
    if (PyLong_Check(r)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(r, &overflow);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (!overflow) {
            int64_t i = v;
            return put(b, ":", 1) < 0 ? -1 : put(b, &i, 8);
        }
        PyObject *text = PyObject_Str(r); /* beyond i64: its digits, as a bulk string */
        Py_ssize_t n;
        const char *digits = text ? PyUnicode_AsUTF8AndSize(text, &n) : NULL;
        int rc = digits ? put_tagged(b, '$', digits, (size_t)n) : -1;
        Py_XDECREF(text);
        return rc;
    }
    if (PyFloat_Check(r)) { /* b"%f" % value */
        char *text = PyOS_double_to_string(PyFloat_AS_DOUBLE(r), 'f', 6, 0, NULL);
        if (!text) return -1;
        int rc = put_tagged(b, '$', text, strlen(text));
        PyMem_Free(text);
        return rc;
    }
    if (PyList_Check(r) && depth < MAX_DEPTH) {
        Py_ssize_t n = PyList_GET_SIZE(r);
        if (put(b, "*", 1) < 0 || put_u32(b, (uint32_t)n) < 0) return -1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(r); i++)
            if (codec_put_record(b, PyList_GET_ITEM(r, i), depth + 1) < 0) return -1;
        return 0;
    }
    return put_tagged(b, '$', "PY RECORD", 9);
}

int codec_put_results(codec_buf *b, PyObject *results, PyObject *errors, PyObject *durations) {
    PyObject *rs = PySequence_Fast(results, "results must be a sequence");
    PyObject *es = rs ? PySequence_Fast(errors, "errors must be a sequence") : NULL;
    PyObject *ds = es && durations != Py_None ? PySequence_Fast(durations, "durations must be a sequence") : NULL;
    int rc = -1;
    if (!es || (durations != Py_None && !ds)) goto done;
    Py_ssize_t nr = PySequence_Fast_GET_SIZE(rs), ne = PySequence_Fast_GET_SIZE(es);
    if (put(b, "*", 1) < 0 || put_u32(b, ds ? 3 : 2) < 0) goto done;
    if (put(b, "*", 1) < 0 || put_u32(b, (uint32_t)nr) < 0) goto done;
    for (Py_ssize_t i = 0; i < nr; i++)
        if (codec_put_record(b, PySequence_Fast_GET_ITEM(rs, i), 0) < 0) goto done;
    if (put(b, "*", 1) < 0 || put_u32(b, (uint32_t)ne) < 0) goto done;
    for (Py_ssize_t i = 0; i < ne; i++) {
        PyObject *err = PySequence_Fast_GET_ITEM(es, i);
        if (!PyUnicode_Check(err)) {
            PyErr_SetString(PyExc_TypeError, "errors must be str");
            goto done;
        }
        PyObject *text = utf8_of(err, "replace");
        int bad = !text || put_tagged(b, '$', PyBytes_AS_STRING(text), (size_t)PyBytes_GET_SIZE(text)) < 0;
        Py_XDECREF(text);
        if (bad) goto done;
    }
    if (ds) {
        Py_ssize_t nd = PySequence_Fast_GET_SIZE(ds);
        if (put(b, "*", 1) < 0 || put_u32(b, (uint32_t)nd) < 0) goto done;
        for (Py_ssize_t i = 0; i < nd; i++) {
            int64_t ms = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(ds, i));
            if (ms == -1 && PyErr_Occurred()) goto done;
            if (put(b, ":", 1) < 0 || put(b, &ms, 8) < 0) goto done;
        }
    }
    rc = 0;
done:
    Py_XDECREF(rs);
    Py_XDECREF(es);
    Py_XDECREF(ds);
    return rc;
}
