/* SpanRecord's C base (stack/_spanrecord.h has the layout and why): a running span whose fields
   are made objects only when Python reads them. In Python it is a sequence of FinishedSpan's 11
   fields (``record[ATTRIBUTES]``, ``tuple(record)``) with them by name as well (``record.status``). */

#include "_spanrecord.h"

static PyObject *str_ok;

Span *
span_new(PyTypeObject *type, PyObject *trace_id, PyObject *name, PyObject *root)
{
    if (str_ok == NULL && (str_ok = PyUnicode_InternFromString("ok")) == NULL)
        return NULL;
    Span *span = (Span *)type->tp_alloc(type, 0);  /* zeroed: no ids, times, attributes */
    if (span == NULL)
        return NULL;
    span->trace_id = Py_NewRef(trace_id);
    span->name = Py_NewRef(name);
    span->root = Py_NewRef(root);
    span->status = Py_NewRef(str_ok);
    span->metrics = Py_NewRef(Py_None);
    span->expires = Py_NewRef(Py_None);
    return span;
}

/* drop the attributes held beside the shared dict (now in a dict of the span's own, or replaced) */
static void
forget_added(Span *span)
{
    for (int i = 0; i < span->added; i++) {
        Py_CLEAR(span->added_keys[i]);
        Py_CLEAR(span->added_values[i]);
    }
    span->added = 0;
}

PyObject *
span_attributes(Span *span)
{
    if (span->attributes != NULL)
        return span->attributes;
    PyObject *own = span->base != NULL ? PyDict_Copy(span->base) : PyDict_New();
    if (own == NULL)
        return NULL;
    for (int i = 0; i < span->added; i++)
        if (PyDict_SetItem(own, span->added_keys[i], span->added_values[i]) < 0) {
            Py_DECREF(own);
            return NULL;
        }
    forget_added(span);
    Py_CLEAR(span->base);
    span->attributes = own;
    return own;
}

int
span_set_attribute(Span *span, PyObject *key, PyObject *value)
{
    if (span->attributes == NULL && PyUnicode_CheckExact(key)) {
        for (int i = 0; i < span->added; i++)
            if (same_str(span->added_keys[i], key)) {
                Py_SETREF(span->added_values[i], Py_NewRef(value));
                return 0;
            }
        if (span->added < SPAN_ADDED_MAX) {
            int shared = span->base != NULL ? PyDict_Contains(span->base, key) : 0;
            if (shared < 0)
                return -1;
            if (!shared) {  /* a key of the shared dict would come twice: the span takes a dict of its own */
                span->added_keys[span->added] = Py_NewRef(key);
                span->added_values[span->added++] = Py_NewRef(value);
                return 0;
            }
        }
    }
    PyObject *own = span_attributes(span);
    return own == NULL ? -1 : PyObject_SetItem(own, key, value);
}

/* 16 hex digits of ``bits``, kept in ``*slot`` (read again, the same str) */
static PyObject *
hex_id(PyObject **slot, uint64_t bits)
{
    if (*slot == NULL) {
        PyObject *id = PyUnicode_New(16, 127);
        if (id == NULL)
            return NULL;
        put_hex(PyUnicode_1BYTE_DATA(id), bits, 16);
        *slot = id;
    }
    return Py_NewRef(*slot);
}

PyObject *
span_field(Span *span, int index)
{
    switch (index) {
    case F_TRACE_ID:
        return Py_NewRef(span->trace_id);
    case F_SPAN_ID:
        return hex_id(&span->span_id, span->span_bits);
    case F_PARENT:
        if (span->parent_id == NULL && span->parent_bits == 0)
            Py_RETURN_NONE;
        return hex_id(&span->parent_id, span->parent_bits);
    case F_NAME:
        return Py_NewRef(span->name);
    case F_START:
        return span->start != NULL ? Py_NewRef(span->start) : PyLong_FromLongLong(span->start_ns);
    case F_END:
        if (span->end != NULL)
            return Py_NewRef(span->end);
        if (!span->ended)
            Py_RETURN_NONE;
        return PyLong_FromLongLong(span->end_ns);
    case F_STATUS:
        return Py_NewRef(span->status);
    case F_ROOT:
        return Py_NewRef(span->root);
    case F_ATTRIBUTES: {
        PyObject *own = span_attributes(span);
        return own == NULL ? NULL : Py_NewRef(own);
    }
    case F_METRICS:
        return Py_NewRef(span->metrics);
    case F_EXPIRES:
        return Py_NewRef(span->expires);
    }
    PyErr_SetString(PyExc_IndexError, "SpanRecord index out of range");
    return NULL;
}

int
span_set_field(Span *span, int index, PyObject *value)
{
    PyObject **slot;
    switch (index) {
    case F_TRACE_ID: slot = &span->trace_id; break;
    case F_SPAN_ID: slot = &span->span_id; break;
    case F_PARENT: slot = &span->parent_id; break;
    case F_NAME: slot = &span->name; break;
    case F_START: slot = &span->start; break;
    case F_END: slot = &span->end; break;
    case F_STATUS: slot = &span->status; break;
    case F_ROOT: slot = &span->root; break;
    case F_ATTRIBUTES:
        forget_added(span);
        Py_CLEAR(span->base);
        slot = &span->attributes;
        break;
    case F_METRICS: slot = &span->metrics; break;
    case F_EXPIRES: slot = &span->expires; break;
    default:
        PyErr_SetString(PyExc_IndexError, "SpanRecord assignment index out of range");
        return -1;
    }
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

/* -- the Python type ---------------------------------------------------------------------------- */

static PyObject *
span_py_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *given;
    if (!PyArg_ParseTuple(args, "O:SpanRecord", &given) || (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "SpanRecord(fields): no keyword arguments");
        return NULL;
    }
    PyObject *fields = PySequence_Fast(given, "SpanRecord(fields): a sequence of the 11 fields");
    if (fields == NULL)
        return NULL;
    if (PySequence_Fast_GET_SIZE(fields) != N_FIELDS) {
        Py_DECREF(fields);
        PyErr_Format(PyExc_TypeError, "SpanRecord(fields): 11 fields, not %zd", PySequence_Fast_GET_SIZE(given));
        return NULL;
    }
    PyObject *const *items = PySequence_Fast_ITEMS(fields);
    Span *span = span_new(type, items[F_TRACE_ID], items[F_NAME], items[F_ROOT]);
    for (int i = 0; span != NULL && i < N_FIELDS; i++)
        if (span_set_field(span, i, items[i]) < 0)
            Py_CLEAR(span);
    Py_DECREF(fields);
    return (PyObject *)span;
}

static Py_ssize_t
span_length(PyObject *Py_UNUSED(self))
{
    return N_FIELDS;
}

static PyObject *
span_item(PyObject *self, Py_ssize_t index)
{
    if (index < 0 || index >= N_FIELDS) {
        PyErr_SetString(PyExc_IndexError, "SpanRecord index out of range");
        return NULL;
    }
    return span_field((Span *)self, (int)index);
}

static int
span_assign(PyObject *self, Py_ssize_t index, PyObject *value)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "a SpanRecord's fields cannot be deleted");
        return -1;
    }
    if (index < 0 || index >= N_FIELDS) {
        PyErr_SetString(PyExc_IndexError, "SpanRecord assignment index out of range");
        return -1;
    }
    return span_set_field((Span *)self, (int)index, value);
}

static PyObject *
span_get(PyObject *self, void *index)
{
    return span_field((Span *)self, (int)(intptr_t)index);
}

static int
span_put(PyObject *self, PyObject *value, void *index)
{
    return span_assign(self, (Py_ssize_t)(intptr_t)index, value);
}

static PyObject *
span_set_method(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set(key, value)");
        return NULL;
    }
    if (span_set_attribute((Span *)self, args[0], args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
span_repr(PyObject *self)
{
    PyObject *fields = PySequence_Tuple(self);
    if (fields == NULL)
        return NULL;
    PyObject *text = PyUnicode_FromFormat("%s(%R)", _PyType_Name(Py_TYPE(self)), fields);
    Py_DECREF(fields);
    return text;
}

static int
span_traverse(Span *self, visitproc visit, void *arg)
{
    Py_VISIT(self->trace_id);
    Py_VISIT(self->span_id);
    Py_VISIT(self->parent_id);
    Py_VISIT(self->name);
    Py_VISIT(self->start);
    Py_VISIT(self->end);
    Py_VISIT(self->status);
    Py_VISIT(self->root);
    Py_VISIT(self->attributes);
    Py_VISIT(self->base);
    Py_VISIT(self->metrics);
    Py_VISIT(self->expires);
    Py_VISIT(self->active);
    for (int i = 0; i < self->added; i++) {
        Py_VISIT(self->added_keys[i]);
        Py_VISIT(self->added_values[i]);
    }
    return 0;
}

static int
span_clear(Span *self)
{
    Py_CLEAR(self->trace_id);
    Py_CLEAR(self->span_id);
    Py_CLEAR(self->parent_id);
    Py_CLEAR(self->name);
    Py_CLEAR(self->start);
    Py_CLEAR(self->end);
    Py_CLEAR(self->status);
    Py_CLEAR(self->root);
    Py_CLEAR(self->attributes);
    Py_CLEAR(self->base);
    Py_CLEAR(self->metrics);
    Py_CLEAR(self->expires);
    Py_CLEAR(self->active);
    forget_added(self);
    return 0;
}

static void
span_dealloc(Span *self)
{
    PyObject_GC_UnTrack(self);
    span_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define FIELD(name, index, settable, doc) \
    {name, span_get, settable ? span_put : NULL, doc, (void *)(intptr_t)(index)}

static PyGetSetDef span_getset[] = {
    FIELD("trace_id", F_TRACE_ID, 0, "the trace's id (32 hex digits)"),
    FIELD("span_id", F_SPAN_ID, 0, "this span's id (16 hex digits)"),
    FIELD("parent_span_id", F_PARENT, 0, "the parent span's id; None for a trace's first span"),
    FIELD("name", F_NAME, 1, "what the span did"),
    FIELD("start_ns", F_START, 0, "when it started (epoch ns)"),
    FIELD("end_ns", F_END, 1, "when it finished (epoch ns); None while it runs"),
    FIELD("status", F_STATUS, 1, "\"ok\" or \"error\""),
    FIELD("root", F_ROOT, 0, "the first span of its trace on this server (a request's span): what trace queries list"),
    FIELD("attributes", F_ATTRIBUTES, 0, "its attributes (a dict, changed in place)"),
    FIELD("metrics", F_METRICS, 1, "metrics recorded on it in-process (``Metric`` tuples, or names of "
                                   "``DERIVED_METRICS``); they travel with it to the sinks (``span_metrics``)"),
    FIELD("expires_ns", F_EXPIRES, 1, "epoch ns after which a store may delete it (posted spans' ttl_seconds); "
                                      "None: the store's default"),
    {NULL},
};

/* pickle and copy: the type and its fields (what ``SpanRecord(fields)`` takes) */
static PyObject *
span_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *fields = PySequence_Tuple(self);
    if (fields == NULL)
        return NULL;
    return Py_BuildValue("O(N)", (PyObject *)Py_TYPE(self), fields);  /* N: takes ``fields`` over */
}

static PyMethodDef span_methods[] = {
    {"set", (PyCFunction)(void (*)(void))span_set_method, METH_FASTCALL, "set(key, value): one attribute."},
    {"__reduce__", span_reduce, METH_NOARGS, "The type and its fields, for pickle and copy."},
    {NULL},
};

static PySequenceMethods span_sequence = {
    .sq_length = span_length,
    .sq_item = span_item,
    .sq_ass_item = span_assign,
};

PyTypeObject SpanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stack._spancore.Span",
    .tp_doc = "Span(fields): a running span, a sequence of FinishedSpan's 11 fields (also by name); "
              "stack.tracing.SpanRecord is the one to use.",
    .tp_basicsize = sizeof(Span),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = span_py_new,
    .tp_repr = span_repr,
    .tp_as_sequence = &span_sequence,
    .tp_getset = span_getset,
    .tp_methods = span_methods,
    .tp_traverse = (traverseproc)span_traverse,
    .tp_clear = (inquiry)span_clear,
    .tp_dealloc = (destructor)span_dealloc,
};
