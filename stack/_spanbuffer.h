/* Finished spans encoded as they end (stack/_spanbuffer.c), for stack/_spancore.c. */

#ifndef POLYSTACK_SPANBUFFER_H
#define POLYSTACK_SPANBUFFER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* the fields of a span: stack/tracing.py's SpanRecord and FinishedSpan */
#define SPAN_FIELDS 11

extern PyTypeObject SpanBufferType;

/* Encode ``span`` (a SpanRecord, or a tuple of its fields) into ``buffer`` (a SpanBuffer). */
int span_buffer_append(PyObject *buffer, PyObject *span);
/* The spans ``buffer`` holds. */
Py_ssize_t span_buffer_count(PyObject *buffer);

/* module functions: decode(chunk) -> [span tuples], encode(spans) -> chunk, chunk_spans(chunk) -> int */
PyObject *spanbuffer_decode(PyObject *module, PyObject *chunk);
PyObject *spanbuffer_encode(PyObject *module, PyObject *spans);
PyObject *spanbuffer_chunk_spans(PyObject *module, PyObject *chunk);

#endif
