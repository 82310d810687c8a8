/* The host<->guest value encoding (crates/abi defines it; vectors/codec.json pins it), all
 * integers little-endian.
 *   command args:  u32 argc, then argc x (u32 len, bytes)
 *   reply:         one tagged value:
 *     '$' u32 len bytes   bulk string      '+' u32 len bytes   status
 *     '-' u32 len bytes   error            ':' i64             integer
 *     ',' f64             double           '_'                 null
 *     '*' u32 n, n values array                                                               */
#ifndef GEARS_CODEC_H
#define GEARS_CODEC_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *data;
    size_t len, cap;
} codec_buf;

/* Appends raw bytes. -1 with a Python error set on failure. */
int codec_put_raw(codec_buf *buf, const void *src, size_t n);

/* Appends a list of str/bytes/bytearray objects as command args. -1 with a Python error set on
 * failure. */
int codec_put_args(codec_buf *buf, PyObject *parts);

/* Appends a list of such lists as a batch (u32 n, then n argument encodings). */
int codec_put_batch(codec_buf *buf, PyObject *commands);

/* Decodes a reply into Python objects: bulk/status -> str (bytearray if not UTF-8),
 * integer -> int, double -> float, null -> None, array -> list. An error reply at the top
 * level raises `error_type`; one nested less than `error_depth` deep becomes its instance, a
 * deeper one its text (as RedisGears 1.2's replyToPyList gives nested errors: str). */
PyObject *codec_reply_to_python(const uint8_t *data, uint32_t len, PyObject *error_type, int error_depth);

/* Decodes command args (an entry's payload) into a list, field i as kinds[i] says (the last
 * kind for the rest): 'b' bytes; 's' str (undecodable bytes replaced); 'n' a name, str if
 * UTF-8 else bytes (hashable); 'v' a value as a bulk reply decodes, str if UTF-8 else
 * bytearray. ValueError when malformed. */
PyObject *codec_args_to_python(const uint8_t *data, size_t len, const char *kinds);

/* Appends one result record as 1.2 sends it (str: bulk, or status/error when it starts with
 * + or - and is longer than that; bytes: bulk; int: integer, beyond i64 its digits; float:
 * "%f"; list: array, up to MAX_DEPTH deep; anything else: "PY RECORD"). */
int codec_put_record(codec_buf *buf, PyObject *record, int depth);

/* Appends a flow's results: [[records...], [errors...]] (+ [durations in ms] unless None). */
int codec_put_results(codec_buf *buf, PyObject *results, PyObject *errors, PyObject *durations);

/* error_depth for: a request's reply (nested errors are text), a batch's (each command's own
 * error reply an error instance), a batch of pairs' (read_keys: each member's), the
 * self-test's decode (errors at any depth instances). */
#define CODEC_ERRORS_TOP 1
#define CODEC_ERRORS_BATCH 2
#define CODEC_ERRORS_PAIRS 3
#define CODEC_ERRORS_ALL 0x7fffffff

#endif
