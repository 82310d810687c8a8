/* The guest's C side: boots CPython at snapshot time, exposes the exports the host calls,
 * and the `_gears_host` built-in module through which Python reaches the host imports.
 * Values crossing the boundary use the encoding of codec.h (decoded here, in C). */
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define EXPORT(name) __attribute__((export_name(name)))
#define IMPORT(name) __attribute__((import_module("gears"), import_name(name)))

/* Host imports. Replies are written into memory the host allocates with gears_alloc. */
IMPORT("call") int32_t host_call(const uint8_t *args, uint32_t len, uint8_t **reply, uint32_t *reply_len);
IMPORT("log") void host_log(int32_t level, const char *msg, uint32_t len);
IMPORT("config_get") int32_t host_config_get(const char *key, uint32_t len, uint8_t **value, uint32_t *value_len);
IMPORT("call_batch") int32_t host_call_batch(const uint8_t *cmds, uint32_t len, uint8_t **reply, uint32_t *reply_len);
IMPORT("atomic") int32_t host_atomic(int32_t enter);
IMPORT("create_registration") int32_t host_create_registration(const uint8_t *info, uint32_t len, uint8_t **id, uint32_t *id_len);
IMPORT("create_execution") int32_t host_create_execution(const uint8_t *plan, uint32_t len, uint8_t **id, uint32_t *id_len);
IMPORT("request") int32_t host_request(const uint8_t *fields, uint32_t len, uint8_t **reply, uint32_t *reply_len);

static PyObject *gears_error;      /* gears.error: raised for Redis error replies */
static PyObject *runtime_exec;     /* gears_runtime._exec_script(bytes) -> None | str */
static PyObject *runtime_reseed;   /* gears_runtime._reseed() */
static PyObject *runtime_run;      /* gears_runtime._run_execution(str) -> bytes */
static PyObject *runtime_trigger;  /* gears_runtime._run_trigger(bytes) -> bytes */
static PyObject *runtime_key_event; /* gears_runtime._run_key_event(bytes) -> bytes */
static PyObject *runtime_dispatch;  /* gears_runtime._dispatch(bytes) -> bytes | None | str */

EXPORT("gears_alloc") void *gears_alloc(uint32_t size) { return malloc(size ? size : 1); }
EXPORT("gears_free") void gears_free(void *p) { free(p); }

/* ---- _gears_host: call / log / config_get ---------------------------------------------- */

typedef int32_t (*host_fn)(const uint8_t *, uint32_t, uint8_t **, uint32_t *);

/* Sends an encoded request to a host import and decodes the reply it allocated for us. */
static PyObject *exchange(host_fn fn, codec_buf *request) {
    uint8_t *reply = NULL;
    uint32_t reply_len = 0;
    int32_t rc = fn(request->data, (uint32_t)request->len, &reply, &reply_len);
    free(request->data);
    if (rc != 0) {
        free(reply);
        return PyErr_Format(PyExc_MemoryError, "the reply did not fit in the sandbox");
    }
    PyObject *value = codec_reply_to_python(reply, reply_len, gears_error);
    free(reply);
    return value;
}

/* Sends one list of bytes/str (command args, a plan, registration fields) to a host import. */
static PyObject *exchange_list(host_fn fn, PyObject *list, const char *name) {
    if (!PyList_Check(list)) return PyErr_Format(PyExc_TypeError, "%s() takes a list", name);
    codec_buf buf = {0};
    if (codec_put_args(&buf, list) < 0) { free(buf.data); return NULL; }
    return exchange(fn, &buf);
}

static PyObject *host_module_call(PyObject *self, PyObject *parts) {
    return exchange_list(host_call, parts, "call");
}

/* Several commands under one acquisition of the Redis lock; error replies come back as
 * gears.error instances in the list instead of raising. */
static PyObject *host_module_call_batch(PyObject *self, PyObject *commands) {
    if (!PyList_Check(commands)) return PyErr_Format(PyExc_TypeError, "call_batch() takes a list of lists");
    codec_buf buf = {0};
    Py_ssize_t n = PyList_GET_SIZE(commands);
    uint32_t count = (uint32_t)n;
    if (codec_put_raw(&buf, &count, 4) < 0) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *parts = PyList_GET_ITEM(commands, i);
        if (!PyList_Check(parts)) { PyErr_SetString(PyExc_TypeError, "each command must be a list"); goto fail; }
        if (codec_put_args(&buf, parts) < 0) goto fail;
    }
    return exchange(host_call_batch, &buf);
fail:
    free(buf.data);
    return NULL;
}

/* Stages a registration with the host (fields: reader, mode, trigger, ...); returns its id. */
static PyObject *host_module_create_registration(PyObject *self, PyObject *fields) {
    return exchange_list(host_create_registration, fields, "create_registration");
}

/* Registers an execution with the host (plan = flat list of step fields); returns its id. */
static PyObject *host_module_create_execution(PyObject *self, PyObject *plan) {
    return exchange_list(host_create_execution, plan, "create_execution");
}

/* Everything else the host offers a running callback ([op, fields...]: the command being
 * hooked, override_reply, call_next, time events); error replies raise gears.error. */
static PyObject *host_module_request(PyObject *self, PyObject *fields) {
    return exchange_list(host_request, fields, "request");
}

static PyObject *host_module_log(PyObject *self, PyObject *args) {
    int level;
    const char *msg;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "is#", &level, &msg, &len)) return NULL;
    host_log(level, msg, (uint32_t)len);
    Py_RETURN_NONE;
}

static PyObject *host_module_config_get(PyObject *self, PyObject *key) {
    Py_ssize_t len;
    const char *k = PyUnicode_AsUTF8AndSize(key, &len);
    if (!k) return NULL;
    uint8_t *value = NULL;
    uint32_t value_len = 0;
    if (!host_config_get(k, (uint32_t)len, &value, &value_len)) Py_RETURN_NONE;
    PyObject *s = PyUnicode_DecodeUTF8((const char *)value, value_len, "replace");
    free(value);
    return s;
}

static PyObject *host_module_atomic(PyObject *self, PyObject *enter) {
    int flag = PyObject_IsTrue(enter);
    if (flag < 0) return NULL;
    if (host_atomic(flag) != 0) return PyErr_Format(gears_error, "atomic() is not available here");
    Py_RETURN_NONE;
}

static PyMethodDef host_methods[] = {
    {"call", host_module_call, METH_O, "Run a Redis command: list of bytes -> reply."},
    {"call_batch", host_module_call_batch, METH_O, "Run several commands under one lock."},
    {"atomic", host_module_atomic, METH_O, "Hold (True) or release (False) the Redis lock."},
    {"create_registration", host_module_create_registration, METH_O, "Stage a registration; its id."},
    {"create_execution", host_module_create_execution, METH_O, "Register an execution; its id."},
    {"request", host_module_request, METH_O, "Ask the host for [op, fields...]; its reply."},
    {"log", host_module_log, METH_VARARGS, "Write (level, message) to the Redis log."},
    {"config_get", host_module_config_get, METH_O, "A configuration value as str, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef host_module_def = {PyModuleDef_HEAD_INIT, "_gears_host", NULL, -1, host_methods};

static PyObject *init_host_module(void) {
    PyObject *m = PyModule_Create(&host_module_def);
    if (!m) return NULL;
    gears_error = PyErr_NewException("gears.error", NULL, NULL);
    if (!gears_error || PyModule_AddObjectRef(m, "error", gears_error) < 0) return NULL;
    return m;
}

/* ---- snapshot-time initialisation -------------------------------------------------------- */

static void fail(const char *what) {
    if (PyErr_Occurred()) PyErr_Print();
    host_log(3, what, (uint32_t)strlen(what));
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
    runtime_exec = PyObject_GetAttrString(runtime, "_exec_script");
    runtime_reseed = PyObject_GetAttrString(runtime, "_reseed");
    runtime_run = PyObject_GetAttrString(runtime, "_run_execution");
    runtime_trigger = PyObject_GetAttrString(runtime, "_run_trigger");
    runtime_key_event = PyObject_GetAttrString(runtime, "_run_key_event");
    runtime_dispatch = PyObject_GetAttrString(runtime, "_dispatch");
    if (!runtime_exec || !runtime_reseed || !runtime_run || !runtime_trigger || !runtime_key_event ||
        !runtime_dispatch)
        fail("gears_runtime is incomplete");
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

static char *out_data;
static uint32_t out_len;

static void set_out(const char *s, size_t len) {
    free(out_data);
    out_data = malloc(len + 1);
    if (!out_data) { out_len = 0; return; }
    memcpy(out_data, s, len);
    out_len = (uint32_t)len;
}

EXPORT("gears_out_ptr") const char *gears_out_ptr(void) { return out_data; }
EXPORT("gears_out_len") uint32_t gears_out_len(void) { return out_len; }

/* Gives the session its own `random` state (the snapshot's is shared by every session). */
EXPORT("gears_reseed") int32_t gears_reseed(void) {
    PyObject *r = PyObject_CallNoArgs(runtime_reseed);
    if (!r) { PyErr_Clear(); return -1; }
    Py_DECREF(r);
    return 0;
}

/* Calls a runtime entry point with `arg` (stolen). None -> 0 and empty output; bytes -> 0 with
 * them as output; str -> 1 with it as the error text. */
static int32_t call_runtime(PyObject *fn, PyObject *arg) {
    PyObject *result = arg ? PyObject_CallOneArg(fn, arg) : NULL;
    Py_XDECREF(arg);
    if (!result) {
        /* The runtime itself failed (typically MemoryError while formatting). */
        PyObject *exc = PyErr_GetRaisedException();
        const char *name = exc ? Py_TYPE(exc)->tp_name : "unknown error";
        set_out(name, strlen(name));
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

/* Runs a script's top level. 0 on success, 1 with the formatted error in gears_out_*. */
EXPORT("gears_exec_script") int32_t gears_exec_script(const char *src, uint32_t len) {
    return call_runtime(runtime_exec, PyBytes_FromStringAndSize(src, len));
}

/* Runs a created execution. 0 with the encoded [[results],[errors]] in gears_out_*. */
EXPORT("gears_run_execution") int32_t gears_run_execution(const char *id, uint32_t len) {
    return call_runtime(runtime_run, PyUnicode_DecodeUTF8(id, len, "replace"));
}

/* Runs a registration's flow for one trigger (payload: encoded [id, trigger, args...]). */
EXPORT("gears_run_trigger") int32_t gears_run_trigger(const char *payload, uint32_t len) {
    return call_runtime(runtime_trigger, PyBytes_FromStringAndSize(payload, len));
}

/* Runs a KeysReader registration's flow for one event (payload: encoded [id, key, event]). */
EXPORT("gears_run_key_event") int32_t gears_run_key_event(const char *payload, uint32_t len) {
    return call_runtime(runtime_key_event, PyBytes_FromStringAndSize(payload, len));
}

/* Runs any other callback the host schedules (payload: encoded [kind, fields...]: a stream
 * batch, a time event). Output as for the others. */
EXPORT("gears_dispatch") int32_t gears_dispatch(const char *payload, uint32_t len) {
    return call_runtime(runtime_dispatch, PyBytes_FromStringAndSize(payload, len));
}
