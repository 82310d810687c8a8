/* `_gears_host.GearsDict`: the key order of RedisGears 1.2's C dictionaries (gears_dict.c). */
#ifndef GEARS_DICT_H
#define GEARS_DICT_H

#include <Python.h>

/* Adds the GearsDict type and field_dict() to `module`. 0, or -1 with a Python error set. */
int gears_dict_add_type(PyObject *module);

/* [field, value, ...] -> {field: value} in the order of 1.2's hash-set record of them. */
PyObject *gears_field_dict(PyObject *flat);

#endif
