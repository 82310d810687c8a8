/* The order in which RedisGears 1.2 lists the keys of its own C dictionaries.
 *
 * RedisGears 1.2 keeps records of keys (KeysReader and StreamReader records, a hash's fields)
 * and the groups of groupby/aggregateby/countby in `Gears_dict`s: Redis' dict.c with SipHash-1-2
 * and a seed that is never set (all zero). What a script sees of them is their iteration order:
 * buckets 0..size-1 of the first table, then of the second while rehashing; within a bucket,
 * newest first; tables of 4, doubled when full, rehashed one bucket per find, add or delete.
 * `GearsDict` replays the same operations on the same structure and only reports the order:
 * the values stay in Python. Its Python face: `set(key)` (a record field: find, delete if
 * present, add), `find(key)` (a group's lookup), `add(key)` (a new group: 1.2 looks it up once
 * more, then adds it), `delete(key)`, `keys()` (the keys, as given, in Gears' order). A key is
 * a str (its UTF-8) or bytes. */
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "gears_dict.h"

/* ---- SipHash-1-2 with a zero key, as Redis' siphash.c computes it ------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                  \
    } while (0)

static uint64_t siphash12(const uint8_t *in, size_t len) {
    uint64_t v0 = 0x736f6d6570736575ULL, v1 = 0x646f72616e646f6dULL;
    uint64_t v2 = 0x6c7967656e657261ULL, v3 = 0x7465646279746573ULL;
    const uint8_t *end = in + len - (len % 8);
    for (; in != end; in += 8) {
        uint64_t m;
        memcpy(&m, in, 8); /* wasm32 is little-endian, as the reference reads it */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = ((uint64_t)len) << 56;
    for (size_t i = 0; i < len % 8; i++) b |= ((uint64_t)in[i]) << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the dictionary ------------------------------------------------------------------------ */

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    PyObject *key;   /* as the script gave it */
    PyObject *bytes; /* what RedisGears hashes and compares */
} entry;

typedef struct {
    entry **table;
    size_t size, used;
} table;

typedef struct {
    PyObject_HEAD
    table ht[2];
    long rehashidx; /* -1: not rehashing */
} GearsDict;

#define INITIAL_SIZE 4
#define REHASHING(d) ((d)->rehashidx != -1)

static void rehash_step(GearsDict *d) {
    long empty_visits = 10;
    if (!REHASHING(d) || d->ht[0].used == 0) goto maybe_done;
    while (d->ht[0].table[d->rehashidx] == NULL) {
        d->rehashidx++;
        if (--empty_visits == 0) return;
    }
    for (entry *e = d->ht[0].table[d->rehashidx], *next; e; e = next) {
        next = e->next;
        size_t slot = e->hash & (d->ht[1].size - 1);
        e->next = d->ht[1].table[slot];
        d->ht[1].table[slot] = e;
        d->ht[0].used--;
        d->ht[1].used++;
    }
    d->ht[0].table[d->rehashidx] = NULL;
    d->rehashidx++;
maybe_done:
    if (REHASHING(d) && d->ht[0].used == 0) {
        PyMem_Free(d->ht[0].table);
        d->ht[0] = d->ht[1];
        d->ht[1] = (table){NULL, 0, 0};
        d->rehashidx = -1;
    }
}

static int expand(GearsDict *d, size_t wanted) {
    if (REHASHING(d) || d->ht[0].used > wanted) return 0;
    size_t size = INITIAL_SIZE;
    while (size < wanted) size *= 2;
    if (size == d->ht[0].size) return 0;
    entry **slots = PyMem_Calloc(size, sizeof(entry *));
    if (!slots) {
        PyErr_NoMemory();
        return -1;
    }
    table fresh = {slots, size, 0};
    if (d->ht[0].table == NULL) {
        d->ht[0] = fresh;
    } else {
        d->ht[1] = fresh;
        d->rehashidx = 0;
    }
    return 0;
}

static int expand_if_needed(GearsDict *d) {
    if (REHASHING(d)) return 0;
    if (d->ht[0].size == 0) return expand(d, INITIAL_SIZE);
    if (d->ht[0].used >= d->ht[0].size) return expand(d, d->ht[0].used * 2);
    return 0;
}

static int same(entry *e, uint64_t hash, PyObject *bytes) {
    return e->hash == hash && PyBytes_GET_SIZE(e->bytes) == PyBytes_GET_SIZE(bytes) &&
           memcmp(PyBytes_AS_STRING(e->bytes), PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes)) == 0;
}

static entry *find(GearsDict *d, uint64_t hash, PyObject *bytes) {
    if (d->ht[0].used + d->ht[1].used == 0) return NULL;
    if (REHASHING(d)) rehash_step(d);
    for (int t = 0; t <= 1; t++) {
        if (d->ht[t].size) {
            for (entry *e = d->ht[t].table[hash & (d->ht[t].size - 1)]; e; e = e->next)
                if (same(e, hash, bytes)) return e;
        }
        if (!REHASHING(d)) break;
    }
    return NULL;
}

static int add(GearsDict *d, uint64_t hash, PyObject *key, PyObject *bytes) {
    if (REHASHING(d)) rehash_step(d);
    if (expand_if_needed(d) < 0) return -1;
    entry *e = PyMem_Malloc(sizeof(entry));
    if (!e) {
        PyErr_NoMemory();
        return -1;
    }
    table *t = &d->ht[REHASHING(d) ? 1 : 0];
    size_t slot = hash & (t->size - 1);
    e->next = t->table[slot];
    e->hash = hash;
    e->key = Py_NewRef(key);
    e->bytes = Py_NewRef(bytes);
    t->table[slot] = e;
    t->used++;
    return 0;
}

static void free_entry(entry *e) {
    Py_DECREF(e->key);
    Py_DECREF(e->bytes);
    PyMem_Free(e);
}

static void delete(GearsDict *d, uint64_t hash, PyObject *bytes) {
    if (d->ht[0].used + d->ht[1].used == 0) return;
    if (REHASHING(d)) rehash_step(d);
    for (int t = 0; t <= 1; t++) {
        if (d->ht[t].size) {
            entry **link = &d->ht[t].table[hash & (d->ht[t].size - 1)];
            for (entry *e = *link; e; link = &e->next, e = e->next) {
                if (same(e, hash, bytes)) {
                    *link = e->next;
                    d->ht[t].used--;
                    free_entry(e);
                    return;
                }
            }
        }
        if (!REHASHING(d)) break;
    }
}

/* ---- Python face ----------------------------------------------------------------------------- */

static PyObject *key_bytes(PyObject *key) {
    if (PyUnicode_Check(key)) return PyUnicode_AsEncodedString(key, "utf-8", "surrogatepass");
    if (PyBytes_Check(key)) return Py_NewRef(key);
    if (PyByteArray_Check(key)) return PyBytes_FromStringAndSize(PyByteArray_AS_STRING(key), PyByteArray_GET_SIZE(key));
    PyErr_Format(PyExc_TypeError, "a GearsDict key is str or bytes, not %.100s", Py_TYPE(key)->tp_name);
    return NULL;
}

static uint64_t hash_of(PyObject *bytes) {
    return siphash12((const uint8_t *)PyBytes_AS_STRING(bytes), (size_t)PyBytes_GET_SIZE(bytes));
}

static PyObject *gd_set(GearsDict *d, PyObject *key) {
    PyObject *bytes = key_bytes(key);
    if (!bytes) return NULL;
    uint64_t hash = hash_of(bytes);
    if (find(d, hash, bytes)) delete(d, hash, bytes);
    int rc = add(d, hash, key, bytes);
    Py_DECREF(bytes);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *gd_find(GearsDict *d, PyObject *key) {
    PyObject *bytes = key_bytes(key);
    if (!bytes) return NULL;
    entry *e = find(d, hash_of(bytes), bytes);
    Py_DECREF(bytes);
    return PyBool_FromLong(e != NULL);
}

static PyObject *gd_add(GearsDict *d, PyObject *key) {
    PyObject *bytes = key_bytes(key);
    if (!bytes) return NULL;
    uint64_t hash = hash_of(bytes);
    int rc = 0;
    /* 1.2 asserts the key is absent (Gears_dictFetchValue: a find) before it adds it. */
    if (find(d, hash, bytes)) {
        PyErr_SetString(PyExc_KeyError, "GearsDict.add of a key already there");
        rc = -1;
    } else {
        rc = add(d, hash, key, bytes);
    }
    Py_DECREF(bytes);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *gd_delete(GearsDict *d, PyObject *key) {
    PyObject *bytes = key_bytes(key);
    if (!bytes) return NULL;
    delete(d, hash_of(bytes), bytes);
    Py_DECREF(bytes);
    Py_RETURN_NONE;
}

static PyObject *gd_keys(GearsDict *d, PyObject *unused) {
    (void)unused;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (int t = 0; t <= 1; t++) {
        for (size_t i = 0; i < d->ht[t].size; i++) {
            for (entry *e = d->ht[t].table[i]; e; e = e->next) {
                if (PyList_Append(out, e->key) < 0) {
                    Py_DECREF(out);
                    return NULL;
                }
            }
        }
        if (!REHASHING(d)) break;
    }
    return out;
}

static Py_ssize_t gd_len(GearsDict *d) { return (Py_ssize_t)(d->ht[0].used + d->ht[1].used); }

static PyObject *gd_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "GearsDict() takes no arguments");
        return NULL;
    }
    GearsDict *d = (GearsDict *)type->tp_alloc(type, 0);
    if (!d) return NULL;
    d->rehashidx = -1;
    return (PyObject *)d;
}

static void gd_dealloc(GearsDict *d) {
    for (int t = 0; t <= 1; t++) {
        for (size_t i = 0; i < d->ht[t].size; i++) {
            for (entry *e = d->ht[t].table[i], *next; e; e = next) {
                next = e->next;
                free_entry(e);
            }
        }
        PyMem_Free(d->ht[t].table);
    }
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static PyMethodDef gd_methods[] = {
    {"set", (PyCFunction)gd_set, METH_O, "A record field: find, delete if present, add."},
    {"find", (PyCFunction)gd_find, METH_O, "A group's lookup: find; True if the key is there."},
    {"add", (PyCFunction)gd_add, METH_O, "A new group: find (1.2's assert), then add."},
    {"delete", (PyCFunction)gd_delete, METH_O, "Delete a key if present."},
    {"keys", (PyCFunction)gd_keys, METH_NOARGS, "The keys in RedisGears 1.2's iteration order."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods gd_sequence = {.sq_length = (lenfunc)gd_len};

static PyTypeObject GearsDictType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_gears_host.GearsDict",
    .tp_basicsize = sizeof(GearsDict),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The key order of a RedisGears 1.2 C dictionary (keys only).",
    .tp_new = gd_new,
    .tp_dealloc = (destructor)gd_dealloc,
    .tp_methods = gd_methods,
    .tp_as_sequence = &gd_sequence,
};

/* field_dict([field, value, ...]) -> {field: value} in the order of 1.2's hash-set record of
 * them (a field given twice keeps its last value); a bytearray field name becomes bytes. */
PyObject *gears_field_dict(PyObject *flat) {
    if (!PyList_Check(flat)) {
        PyErr_SetString(PyExc_TypeError, "field_dict takes a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(flat) / 2 * 2;
    GearsDict *order = (GearsDict *)PyType_GenericAlloc(&GearsDictType, 0);
    PyObject *values = PyDict_New(), *out = NULL, *keys = NULL;
    if (!order || !values) goto done;
    order->rehashidx = -1;
    for (Py_ssize_t i = 0; i < n; i += 2) {
        PyObject *field = PyList_GET_ITEM(flat, i);
        PyObject *key = PyByteArray_Check(field)
                            ? PyBytes_FromStringAndSize(PyByteArray_AS_STRING(field), PyByteArray_GET_SIZE(field))
                            : Py_NewRef(field);
        if (!key) goto done;
        PyObject *set = gd_set(order, key);
        int rc = set ? PyDict_SetItem(values, key, PyList_GET_ITEM(flat, i + 1)) : -1;
        Py_XDECREF(set);
        Py_DECREF(key);
        if (rc < 0) goto done;
    }
    keys = gd_keys(order, NULL);
    out = keys ? PyDict_New() : NULL;
    for (Py_ssize_t i = 0; out && i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (PyDict_SetItem(out, key, PyDict_GetItemWithError(values, key)) < 0) Py_CLEAR(out);
    }
done:
    Py_XDECREF(keys);
    Py_XDECREF(values);
    Py_XDECREF((PyObject *)order);
    return out;
}

static PyObject *field_dict(PyObject *module, PyObject *flat) {
    (void)module;
    return gears_field_dict(flat);
}

static PyMethodDef module_functions[] = {
    {"field_dict", field_dict, METH_O, "[field, value, ...] as a dict in RedisGears 1.2's field order."},
    {NULL, NULL, 0, NULL},
};

int gears_dict_add_type(PyObject *module) {
    if (PyType_Ready(&GearsDictType) < 0) return -1;
    if (PyModule_AddFunctions(module, module_functions) < 0) return -1;
    return PyModule_AddObjectRef(module, "GearsDict", (PyObject *)&GearsDictType);
}
