/* A running span (stack/_spanrecord.c): stack/tracing.py's SpanRecord, for stack/_spancore.c and the
   encoder of stack/_spanbuffer.c. */

#ifndef POLYSTACK_SPANRECORD_H
#define POLYSTACK_SPANRECORD_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* SpanRecord's fields, in FinishedSpan's order (stack/tracing.py: TRACE_ID ... ) */
enum { F_TRACE_ID, F_SPAN_ID, F_PARENT, F_NAME, F_START, F_END, F_STATUS, F_ROOT, F_ATTRIBUTES, F_METRICS,
       F_EXPIRES, N_FIELDS };

/* attributes a span holds beside its shared ones before they become a dict of its own */
#define SPAN_ADDED_MAX 8

/* The request path makes four spans a request and most are never looked at in Python: what it
   knows as machine values stays so (ids as 64 bits, times as nanoseconds), and its attributes are
   a dict shared with every span of its kind (a traced method's) plus the few a call adds, kept
   beside it. Read in Python, a field is made an object then (the attributes a dict of the span's
   own, which from then on holds them); the encoder writes them as they are. */
typedef struct {
    PyObject_HEAD
    PyObject *trace_id;      /* a str (any object for a span made in Python) */
    PyObject *span_id;       /* NULL: span_bits, as 16 hex digits */
    PyObject *parent_id;     /* NULL: parent_bits (0: None) */
    uint64_t span_bits, parent_bits;
    PyObject *name;
    PyObject *start;         /* NULL: start_ns */
    PyObject *end;           /* NULL: end_ns when ``ended``, else None */
    int64_t start_ns, end_ns;
    PyObject *status;
    PyObject *root;
    PyObject *attributes;    /* its own dict, once there is one; then ``base`` and ``added`` are empty */
    PyObject *base;          /* NULL or a dict that spans share and nothing changes */
    PyObject *metrics;
    PyObject *expires;
    /* the running span a traced call started under this one without making it the context
       variable's (stack/_spancore.c, "the current span"): strong; NULL when none runs */
    PyObject *active;
    /* the context (a PyContext) in which the context variable was set to this span, while it is
       that variable's value there; compared, never read (NULL: none) */
    void *owner;
    int added;               /* pairs in added_keys/added_values: exact str keys none of ``base`` has */
    char ended;
    PyObject *added_keys[SPAN_ADDED_MAX];
    PyObject *added_values[SPAN_ADDED_MAX];
} Span;

extern PyTypeObject SpanType;

static inline int
Span_Check(PyObject *op)
{
    return PyObject_TypeCheck(op, &SpanType);
}

/* A running span of ``type`` (SpanType or a subclass) with every field None or empty but the given
   ones: the caller sets the rest. */
Span *span_new(PyTypeObject *type, PyObject *trace_id, PyObject *name, PyObject *root);
/* attributes[key] = value (value a new reference is not taken: the span makes its own) */
int span_set_attribute(Span *span, PyObject *key, PyObject *value);
/* The span's attributes as its own dict (made now when it has none): borrowed. */
PyObject *span_attributes(Span *span);
/* A field by index (F_*), made an object if it is not one: a new reference. */
PyObject *span_field(Span *span, int index);
/* Replace a field by index. */
int span_set_field(Span *span, int index, PyObject *value);

/* whether two ready strs hold the same text: by identity, else length, kind and bytes (no hash) */
static inline int
same_str(PyObject *a, PyObject *b)
{
    return a == b || (PyUnicode_GET_LENGTH(a) == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b)
                      && memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b),
                                PyUnicode_GET_LENGTH(a) * PyUnicode_KIND(a)) == 0);
}

/* the low ``n`` hex digits of ``bits`` into out[0..n), the last digit the lowest (``n`` even: two
   digits a byte, from a table) */
static inline void
put_hex(void *out, uint64_t bits, int n)
{
    static const char pairs[] =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    char *text = out;
    for (int i = n - 2; i >= 0; i -= 2, bits >>= 8)
        memcpy(text + i, pairs + 2 * (bits & 255), 2);
}

#endif
