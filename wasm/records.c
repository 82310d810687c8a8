/* key_records(keys, pairs, event=None) -> [record, ...]: the records of a KeysReader batch
 * from what read_keys answered per key ([TYPE's answer, the value's reply]), each the dict a
 * script gets, `{event, key, type, value}` in that order:
 *   - TYPE refused (an error instead of a name): type 'empty', value None;
 *   - string, list: the value as its reply decoded; hash: field_dict() of it (1.2's field
 *     order); a refused value command: None;
 *   - every other type: its RedisGears name ('set', 'zset'; a stream 'unknown', a vanished key
 *     'empty', a module type 'module'), value None. */
#include "records.h"

#include "gears_dict.h"

static PyObject *error_type; /* gears.error */
static PyObject *s_event, *s_key, *s_type, *s_value, *s_string, *s_hash, *s_list, *s_empty, *s_module, *names;

static int intern_all(void) {
    struct {
        PyObject **slot;
        const char *text;
    } all[] = {{&s_event, "event"}, {&s_key, "key"},     {&s_type, "type"},   {&s_value, "value"},
               {&s_string, "string"}, {&s_hash, "hash"}, {&s_list, "list"},   {&s_empty, "empty"},
               {&s_module, "module"}};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!(*all[i].slot = PyUnicode_InternFromString(all[i].text))) return -1;
    /* TYPE's names -> RedisGears 1.2's; the three with values map to the interned names above
     * (compared by identity in type_and_value). */
    if (!(names = PyDict_New())) return -1;
    struct {
        const char *type;
        PyObject *name;
    } map[] = {{"string", s_string}, {"hash", s_hash}, {"list", s_list}, {"none", s_empty}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (PyDict_SetItemString(names, map[i].type, map[i].name) < 0) return -1;
    const char *renamed[][2] = {{"set", "set"}, {"zset", "zset"}, {"stream", "unknown"}};
    for (size_t i = 0; i < sizeof renamed / sizeof renamed[0]; i++) {
        PyObject *name = PyUnicode_InternFromString(renamed[i][1]);
        int rc = name ? PyDict_SetItemString(names, renamed[i][0], name) : -1;
        Py_XDECREF(name);
        if (rc < 0) return -1;
    }
    return 0;
}

/* The record's type and value (new references). */
static int type_and_value(PyObject *kind, PyObject *value, PyObject **type_out, PyObject **value_out) {
    if (!PyUnicode_Check(kind)) { /* TYPE refused */
        *type_out = Py_NewRef(s_empty);
        *value_out = Py_NewRef(Py_None);
        return 0;
    }
    PyObject *name = PyDict_GetItemWithError(names, kind);
    if (!name && PyErr_Occurred()) return -1;
    *type_out = Py_NewRef(name ? name : s_module);
    int refused = PyObject_TypeCheck(value, (PyTypeObject *)error_type);
    if (refused || (name != s_string && name != s_hash && name != s_list)) {
        *value_out = Py_NewRef(Py_None);
        return 0;
    }
    *value_out = name == s_hash ? gears_field_dict(value) : Py_NewRef(value);
    if (!*value_out) { Py_CLEAR(*type_out); return -1; }
    return 0;
}

static PyObject *record(PyObject *event, PyObject *key, PyObject *pair) {
    if (!PyList_Check(pair) || PyList_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_ValueError, "read_keys answered something else than [type, value]");
        return NULL;
    }
    PyObject *type, *value;
    if (type_and_value(PyList_GET_ITEM(pair, 0), PyList_GET_ITEM(pair, 1), &type, &value) < 0) return NULL;
    PyObject *out = PyDict_New();
    if (out && (PyDict_SetItem(out, s_event, event) < 0 || PyDict_SetItem(out, s_key, key) < 0 ||
                PyDict_SetItem(out, s_type, type) < 0 || PyDict_SetItem(out, s_value, value) < 0))
        Py_CLEAR(out);
    Py_DECREF(type);
    Py_DECREF(value);
    return out;
}

static PyObject *key_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs < 2 || nargs > 3 || !PyList_Check(args[0]) || !PyList_Check(args[1]) ||
        PyList_GET_SIZE(args[0]) != PyList_GET_SIZE(args[1])) {
        PyErr_SetString(PyExc_TypeError, "key_records() takes (keys, pairs of the same length, event=None)");
        return NULL;
    }
    PyObject *event = nargs == 3 ? args[2] : Py_None;
    Py_ssize_t n = PyList_GET_SIZE(args[0]);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out && i < n; i++) {
        PyObject *r = record(event, PyList_GET_ITEM(args[0], i), PyList_GET_ITEM(args[1], i));
        if (!r) Py_CLEAR(out);
        else PyList_SET_ITEM(out, i, r);
    }
    return out;
}

static PyMethodDef functions[] = {
    {"key_records", (PyCFunction)(void (*)(void))key_records, METH_FASTCALL,
     "A KeysReader batch's records from read_keys' answers: (keys, pairs, event=None) -> [dict, ...]."},
    {NULL, NULL, 0, NULL},
};

int records_add_functions(PyObject *module, PyObject *gears_error) {
    error_type = gears_error;
    if (intern_all() < 0) return -1;
    return PyModule_AddFunctions(module, functions);
}
