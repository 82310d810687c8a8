/* The guest's C side of the boundary, all of it: boots CPython at snapshot time, exports the
 * one entry point the host calls (`gears_enter`, plus memory plumbing), and builds the
 * `_gears_host` module through which Python reaches the one host import (`gears.host`).
 * Operation codes are only passed through: gears_abi.py (Python) and crates/abi (Rust) own
 * them. Values use the encoding of codec.h. */
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "gears_dict.h"
#include "records.h"

#define EXPORT(name) __attribute__((export_name(name)))
#define IMPORT(name) __attribute__((import_module("gears"), import_name(name)))

/* The one host import: `op` is a HostRequest code (crates/abi/src/ops.rs, gears_abi.py), the
 * request an argument encoding (a batch for call_batch); the host writes the reply (one
 * value) into memory it allocates with gears_alloc. 0, or -1 when the reply does not fit. */
IMPORT("host") int32_t host(uint32_t op, const uint8_t *request, uint32_t len, uint8_t **reply, uint32_t *reply_len);

static PyObject *gears_error;   /* gears.error: raised for Redis error replies */
static PyObject *runtime_enter; /* gears_runtime._enter(op, payload) -> None | bytes | str */

EXPORT("gears_alloc") void *gears_alloc(uint32_t size) { return malloc(size ? size : 1); }

/* ---- _gears_host: the host import, and the codec for the self-test --------------------- */

/* Sends an encoded request to the host and decodes the reply it allocated for us. */
static PyObject *exchange(uint32_t op, codec_buf *request, int error_depth) {
    uint8_t *reply = NULL;
    uint32_t reply_len = 0;
    int32_t rc = host(op, request->data, (uint32_t)request->len, &reply, &reply_len);
    free(request->data);
    if (rc != 0) {
        free(reply);
        return PyErr_Format(PyExc_MemoryError, "the reply did not fit in the sandbox");
    }
    PyObject *value = codec_reply_to_python(reply, reply_len, gears_error, error_depth);
    free(reply);
    return value;
}

static int parse_op(PyObject *const *args, Py_ssize_t nargs, const char *name, uint32_t *op) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes (op, list)", name);
        return -1;
    }
    unsigned long v = PyLong_AsUnsignedLong(args[0]);
    if (v == (unsigned long)-1 && PyErr_Occurred()) return -1;
    *op = (uint32_t)v;
    return 0;
}

/* (op, fields): fields (bytes/bytearray/str) go as an argument encoding; the reply comes back
 * decoded, error replies `error_depth` deep or deeper as text (codec.h). */
static PyObject *request_fields(PyObject *const *args, Py_ssize_t nargs, const char *name, int error_depth) {
    uint32_t op;
    if (parse_op(args, nargs, name, &op) < 0) return NULL;
    codec_buf buf = {0};
    if (codec_put_args(&buf, args[1]) < 0) { free(buf.data); return NULL; }
    return exchange(op, &buf, error_depth);
}

/* request(op, fields): a top-level error reply raises gears.error. */
static PyObject *host_module_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return request_fields(args, nargs, "request", CODEC_ERRORS_TOP);
}

/* RedisGears 1.2 calls without RM_Call's "E" flag: a command Redis refuses before running it
 * gives no reply, and 1.2 raises strerror(errno) instead (redisgears_python.c executeCommand). */
static const struct {
    const char *prefix, *words;
} refusals[] = {
    {"ERR unknown command", "No such file or directory"}, /* ENOENT */
    {"ERR unknown subcommand", "No such file or directory"},
    {"ERR wrong number of arguments", "Invalid argument"}, /* EINVAL */
};

/* With a gears.error raised: 1.2's words for a refusal, else the error as it is. */
static void reword_refusal(void) {
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *text = PyObject_Str(exc);
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    for (size_t i = 0; msg && i < sizeof refusals / sizeof refusals[0]; i++) {
        if (strncmp(msg, refusals[i].prefix, strlen(refusals[i].prefix)) == 0) {
            Py_DECREF(text);
            Py_DECREF(exc);
            PyErr_SetString(gears_error, refusals[i].words);
            return;
        }
    }
    Py_XDECREF(text);
    PyErr_Clear();
    PyErr_SetRaisedException(exc);
}

/* One argument of execute() as 1.2 sends it: bytes and bytearray as they are (bytes() of a
 * subclass), a str as it is, anything else as str(). */
static PyObject *execute_arg(PyObject *a) {
    if (PyBytes_CheckExact(a) || PyByteArray_CheckExact(a) || PyUnicode_CheckExact(a)) return Py_NewRef(a);
    if (PyBytes_Check(a) || PyByteArray_Check(a)) return PyObject_Bytes(a);
    return PyObject_Str(a);
}

/* execute(op, command, *args): a script's execute() (gears_api), as request `op`: the reply
 * decoded; an error reply raises gears.error. */
static PyObject *host_module_execute(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "execute() missing 1 required positional argument: 'command'");
        return NULL;
    }
    unsigned long op = PyLong_AsUnsignedLong(args[0]);
    if (op == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    if (!PyUnicode_Check(args[1])) {
        PyErr_SetString(gears_error, "the given command must be a string");
        return NULL;
    }
    PyObject *parts = PyList_New(nargs - 1);
    if (!parts) return NULL;
    PyList_SET_ITEM(parts, 0, Py_NewRef(args[1]));
    for (Py_ssize_t i = 2; i < nargs; i++) {
        PyObject *part = execute_arg(args[i]);
        if (!part) { Py_DECREF(parts); return NULL; }
        PyList_SET_ITEM(parts, i - 1, part);
    }
    codec_buf buf = {0};
    int rc = codec_put_args(&buf, parts);
    Py_DECREF(parts);
    if (rc < 0) { free(buf.data); return NULL; }
    PyObject *reply = exchange((uint32_t)op, &buf, CODEC_ERRORS_TOP);
    if (!reply && PyErr_ExceptionMatches(gears_error)) reword_refusal();
    return reply;
}

/* request_pairs(op, fields): as request, for a reply of [[a, b], ...] pairs whose members may
 * be error replies: those come back as gears.error instances (read_keys). */
static PyObject *host_module_request_pairs(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return request_fields(args, nargs, "request_pairs", CODEC_ERRORS_PAIRS);
}

/* request_batch(op, commands): several commands under one acquisition of the Redis lock;
 * error replies come back as gears.error instances in the list instead of raising. */
static PyObject *host_module_request_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    uint32_t op;
    if (parse_op(args, nargs, "request_batch", &op) < 0) return NULL;
    codec_buf buf = {0};
    if (codec_put_batch(&buf, args[1]) < 0) { free(buf.data); return NULL; }
    return exchange(op, &buf, CODEC_ERRORS_BATCH);
}

/* The codec alone, for the self-test: decode(bytes) -> objects; encode_args(list) -> bytes;
 * encode_batch(list of lists) -> bytes. */
static PyObject *host_module_decode(PyObject *self, PyObject *data) {
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *value = codec_reply_to_python(view.buf, (uint32_t)view.len, gears_error, CODEC_ERRORS_ALL);
    PyBuffer_Release(&view);
    return value;
}

/* decode_args(payload, kinds=b"b") -> [field, ...]: an entry's payload (the runtime's hot
 * path), each field decoded as `kinds` says (codec.h: b bytes, s str, n name, v value). */
static PyObject *host_module_decode_args(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2 || !PyBytes_Check(args[0]) || (nargs == 2 && !PyBytes_Check(args[1]))) {
        PyErr_SetString(PyExc_TypeError, "decode_args() takes (payload: bytes, kinds: bytes = b'b')");
        return NULL;
    }
    const char *kinds = nargs == 2 ? PyBytes_AS_STRING(args[1]) : "b";
    if (!kinds[0]) kinds = "b";
    return codec_args_to_python((const uint8_t *)PyBytes_AS_STRING(args[0]), (size_t)PyBytes_GET_SIZE(args[0]), kinds);
}

static PyObject *encoded(codec_buf *buf, int rc) {
    PyObject *out = rc < 0 ? NULL : PyBytes_FromStringAndSize((const char *)buf->data, (Py_ssize_t)buf->len);
    free(buf->data);
    return out;
}

/* encode_results(results, errors, durations=None) -> bytes: a flow's results for the host. */
static PyObject *host_module_encode_results(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "encode_results() takes (results, errors, durations=None)");
        return NULL;
    }
    codec_buf buf = {0};
    return encoded(&buf, codec_put_results(&buf, args[0], args[1], nargs == 3 ? args[2] : Py_None));
}

/* encode_record(record) -> bytes: one record as 1.2 sends it (override_reply). */
static PyObject *host_module_encode_record(PyObject *self, PyObject *record) {
    codec_buf buf = {0};
    return encoded(&buf, codec_put_record(&buf, record, 0));
}

static PyObject *host_module_encode_args(PyObject *self, PyObject *parts) {
    codec_buf buf = {0};
    return encoded(&buf, codec_put_args(&buf, parts));
}

static PyObject *host_module_encode_batch(PyObject *self, PyObject *commands) {
    codec_buf buf = {0};
    return encoded(&buf, codec_put_batch(&buf, commands));
}

static PyMethodDef host_methods[] = {
    {"request", (PyCFunction)(void (*)(void))host_module_request, METH_FASTCALL, "Ask the host: (op, fields) -> reply."},
    {"request_batch", (PyCFunction)(void (*)(void))host_module_request_batch, METH_FASTCALL,
     "Ask the host with a batch of commands: (op, [[args...]...]) -> list of replies."},
    {"execute", (PyCFunction)(void (*)(void))host_module_execute, METH_FASTCALL,
     "A script's execute(): (op, command, *args) -> reply."},
    {"request_pairs", (PyCFunction)(void (*)(void))host_module_request_pairs, METH_FASTCALL,
     "Ask the host for pairs: (op, fields) -> [[a, b]...], errors in them as instances."},
    {"decode", host_module_decode, METH_O, "Decode one encoded value (self-test)."},
    {"decode_args", (PyCFunction)(void (*)(void))host_module_decode_args, METH_FASTCALL,
     "Decode an argument encoding: (payload, kinds=b'b') -> list."},
    {"encode_results", (PyCFunction)(void (*)(void))host_module_encode_results, METH_FASTCALL,
     "A flow's results for the host: (results, errors, durations=None) -> bytes."},
    {"encode_record", host_module_encode_record, METH_O, "One record as RedisGears 1.2 sends it -> bytes."},
    {"encode_args", host_module_encode_args, METH_O, "Encode a list as arguments (self-test)."},
    {"encode_batch", host_module_encode_batch, METH_O, "Encode a list of lists as a batch (self-test)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef host_module_def = {PyModuleDef_HEAD_INIT, "_gears_host", NULL, -1, host_methods};

static PyObject *init_host_module(void) {
    PyObject *m = PyModule_Create(&host_module_def);
    if (!m) return NULL;
    gears_error = PyErr_NewException("gears.error", NULL, NULL);
    if (!gears_error || PyModule_AddObjectRef(m, "error", gears_error) < 0) return NULL;
    if (gears_dict_add_type(m) < 0) return NULL;
    if (records_add_functions(m, gears_error) < 0) return NULL;
    return m;
}

/* ---- snapshot-time initialisation -------------------------------------------------------- */

/* At build time there is no host: the snapshot tool shows the guest's stderr. */
static void fail(const char *what) {
    if (PyErr_Occurred()) PyErr_Print();
    fprintf(stderr, "gears snapshot: %s\n", what);
    abort();
}

/* Runs once, under Wizer, at build time: everything it does is frozen into the image. */
EXPORT("wizer-initialize") void gears_wizer_initialize(void) {
    if (PyImport_AppendInittab("_gears_host", init_host_module) < 0) fail("inittab");
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.use_frozen_modules = 1;
    config.write_bytecode = 0;
    config.site_import = 0;
    config.buffered_stdio = 0; /* every print reaches the host (the Redis log) at once */
    config.install_signal_handlers = 0;
    config.module_search_paths_set = 1;
    PyStatus st = PyWideStringList_Append(&config.module_search_paths, L"/lib/python313.zip");
    if (!PyStatus_Exception(st)) st = PyConfig_SetString(&config, &config.program_name, L"gears");
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) fail("Py_InitializeFromConfig failed");

    PyObject *runtime = PyImport_ImportModule("gears_runtime");
    if (!runtime) fail("import gears_runtime failed");
    runtime_enter = PyObject_GetAttrString(runtime, "_enter");
    if (!runtime_enter) fail("gears_runtime has no _enter");
    /* Pre-import what scripts commonly use, so sessions start with it in the image. */
    /* gc.freeze(): the objects of the image move to the permanent generation. Otherwise a
     * session's first collection walks (and so writes to, copying on write) every page of
     * the image: ~10 ms per session instead of microseconds. */
    if (PyRun_SimpleString("import json, re, collections, functools, itertools, copy, gears_builder\n"
                           /* compile() builds the AST types once: ~7 ms a session if left lazy */
                           "compile('x = 1', '<init>', 'exec')\n"
                           "import gc; gc.collect(); gc.freeze()\n") < 0)
        fail("pre-importing the stdlib failed");
}

/* ---- per-session exports ----------------------------------------------------------------- */

/* The last entry's output: where it is and how long, at a fixed address (gears_out) that the
 * host reads after each entry, without calling in again. */
static struct {
    char *data;
    uint32_t len;
} out;

static void set_out(const char *s, size_t len) {
    free(out.data);
    out.data = malloc(len + 1);
    if (!out.data) { out.len = 0; return; }
    memcpy(out.data, s, len);
    out.len = (uint32_t)len;
}

EXPORT("gears_out") void *gears_out(void) { return &out; }

/* The one entry point: `op` is a GuestEntry code (crates/abi/src/ops.rs, gears_abi.py), the
 * payload its input, allocated by the host with gears_alloc and freed here. The runtime
 * answers None -> 0 and empty output; bytes -> 0 with them as output; str -> 1 with it as the
 * error text. */
EXPORT("gears_enter") int32_t gears_enter(uint32_t op, char *payload, uint32_t len) {
    PyObject *args[2] = {PyLong_FromUnsignedLong(op), PyBytes_FromStringAndSize(payload, (Py_ssize_t)len)};
    free(payload);
    PyObject *result = args[0] && args[1] ? PyObject_Vectorcall(runtime_enter, args, 2, NULL) : NULL;
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    if (!result) {
        /* The runtime itself failed (typically MemoryError while formatting). */
        PyObject *exc = PyErr_GetRaisedException();
        PyObject *text = exc ? PyObject_Str(exc) : NULL;
        const char *detail = text ? PyUnicode_AsUTF8(text) : NULL;
        if (!detail) PyErr_Clear();
        char msg[512];
        snprintf(msg, sizeof msg, "%s: %s", exc ? Py_TYPE(exc)->tp_name : "unknown error", detail ? detail : "");
        set_out(msg, strlen(msg));
        Py_XDECREF(text);
        Py_XDECREF(exc);
        return 1;
    }
    if (result == Py_None) { Py_DECREF(result); set_out("", 0); return 0; }
    if (PyBytes_Check(result)) {
        set_out(PyBytes_AS_STRING(result), (size_t)PyBytes_GET_SIZE(result));
        Py_DECREF(result);
        return 0;
    }
    Py_ssize_t n;
    const char *msg = PyUnicode_AsUTF8AndSize(result, &n);
    if (msg) set_out(msg, (size_t)n);
    else { PyErr_Clear(); set_out("error", 5); }
    Py_DECREF(result);
    return 1;
}
