/* A KeysReader's records, built in C from one read_keys batch (records.c). */
#ifndef GEARS_RECORDS_H
#define GEARS_RECORDS_H

#include <Python.h>

/* Adds key_records() to `module`; `error_type` is gears.error. 0, or -1 with a Python error set. */
int records_add_functions(PyObject *module, PyObject *error_type);

#endif
