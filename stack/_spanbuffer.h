/* Finished spans encoded as they end (stack/_spanbuffer.c), for stack/_spancore.c. */

#ifndef POLYSTACK_SPANBUFFER_H
#define POLYSTACK_SPANBUFFER_H

#include "_spanrecord.h"

/* the fields of a span: stack/tracing.py's SpanRecord and FinishedSpan */
#define SPAN_FIELDS 11
/* where its span id and its parent's are */
#define SPAN_ID_FIELD 1
#define PARENT_ID_FIELD 2

extern PyTypeObject SpanBufferType;

/* Encode ``span`` (a SpanRecord, or a tuple of its fields) into ``buffer`` (a SpanBuffer). */
int span_buffer_append(PyObject *buffer, PyObject *span);
/* The spans ``buffer`` holds. */
Py_ssize_t span_buffer_count(PyObject *buffer);

/* The span count of a chunk (bytes with the PSB1 header); -1 and an error when it is not one. */
int span_chunk_header(PyObject *chunk, uint32_t *spans);
/* Where a chunk's first span starts. */
#define SPAN_CHUNK_HEADER 8
/* How deep a chunk's values nest at most (deeper ones were written as their str()). */
#define SPAN_MAX_DEPTH 32

/* module functions: decode(chunk) -> [span tuples], encode(spans) -> chunk, chunk_spans(chunk) -> int */
PyObject *spanbuffer_decode(PyObject *module, PyObject *chunk);
PyObject *spanbuffer_encode(PyObject *module, PyObject *spans);
PyObject *spanbuffer_chunk_spans(PyObject *module, PyObject *chunk);
/* stack/_spanrows.c: chunk_rows(chunk, default_expiry_ns, json_text) -> [row tuples] | None */
PyObject *spanrows_chunk_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif
