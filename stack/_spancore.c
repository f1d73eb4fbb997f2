/* The request path of tracing in C (stack/tracing.py has the design; this is its hot part).

   A traced router or provider method was an ``async def`` wrapper: each call made one more
   coroutine frame, ran ~90 bytecodes and passed every await of the call through that frame.
   Here the wrapper is a C callable (``Traced``) and the awaitable it returns (``TracedCall``)
   forwards to the method's coroutine through ``am_send``, starting its span on the first step
   and finishing it when the coroutine returns or raises. ``finish`` ends any span and encodes it
   into the installed collector's buffer (stack/_spanbuffer.c).

   A span is a ``SpanRecord`` (stack/_spanrecord.c): its ids and times stay machine values and a
   traced method's attributes stay the method's dict, shared, until Python reads them.

   Python still owns every policy: the span's fields and their order (``SpanRecord``), ids
   (``new_span_id``/``new_trace_id``), the attribute hooks, streams (``finish_after``) and the
   collector (``batch_ready`` when its buffer needs a look). ``configure`` hands them over once;
   ``install`` follows ``tracing.install`` and the collector's buffer swaps. */

#include "_spanbuffer.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>

static PyObject *current_var;      /* ContextVar of the current span */
static PyObject *request_var;      /* ContextVar of a request's values (stack/request_context.py): the root is
                                      its third */
static PyObject *empty_tuple;
static PyObject *root_names;       /* (method, route template) -> the root span's name */
static PyObject *upstream_names;   /* method -> an upstream call's span name */
static PyObject *unsampled;        /* the current "span" of a request sampling left out */
static PyTypeObject *span_type;    /* SpanRecord, a subclass of Span (stack/_spanrecord.c) */
static PyObject *finish_after;     /* (stream, record, args, kwargs, on_result) -> async iterator */
static PyObject *str_ok, *str_error, *str_error_type, *str_empty, *str_status_code, *str_route, *str_method,
    *str_route_key, *str_path, *str_sample_rate, *str_method_attribute, *str_path_attribute, *str_url_attribute,
    *str_upstream_attribute, *str_upstream_prefix;

/* start_request's settings (configure_requests) */
static PyObject *request_paths;      /* path -> True when it is not traced; filled by start_slow */
static PyObject *start_slow;         /* (scope, headers) -> root | None: every request but the common kind */
static PyObject *trace_id_header;    /* the response header's name, bytes */
static PyObject *traceparent_header; /* the request header's name, bytes */

/* the installed collector's buffers; NULL: tracing is off */
static PyObject *collector;
static PyObject *span_buffer;      /* a SpanBuffer */
static PyObject *event_buffer;
static PyObject *batch_ready;      /* collector._batch_ready */
static Py_ssize_t attention;       /* buffered spans + events at which batch_ready is called */

/* trace ids' random part: splitmix64 (ids must be unique, not secret), seeded from the OS and again in
   a forked child (``reseed``) */
static uint64_t id_state;
/* span ids' random part: a counter from a random start, through a bijection of 32 bits, so no two
   span ids of one process share it within 2^32 ids */
static uint32_t span_counter;

static int
reseed_ids(void)
{
    if (getrandom(&id_state, sizeof(id_state), 0) != sizeof(id_state)
        || getrandom(&span_counter, sizeof(span_counter), 0) != sizeof(span_counter)) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* MurmurHash3's finaliser: every step is invertible, so distinct inputs give distinct outputs */
static uint32_t
mix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bU;
    h ^= h >> 13;
    h *= 0xc2b2ae35U;
    h ^= h >> 16;
    return h;
}

static uint64_t
next_random(void)
{
    uint64_t z = (id_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* 16 bytes as 32 hex digits: the first 6 the time in milliseconds, the other 10 random (W3C Trace
   Context level 2 asks the right-most 7 to be random). Ids made here sort by time, so the span
   store's key index grows at its end. */
static PyObject *
make_trace_id(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    PyObject *id = PyUnicode_New(32, 127);
    if (id == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(id);
    put_hex(out, ms, 12);
    put_hex(out + 12, next_random(), 4);  /* 16 random bits, then 64: 80 */
    put_hex(out + 16, next_random(), 16);
    return id;
}

/* 8 bytes (16 hex digits when a str is asked for): the first 4 the time in milliseconds modulo 2^32
   (it wraps every 49.7 days), the other 4 ``span_counter``'s next value mixed; never all zeros (W3C:
   not a valid span id). Ids made about the same time sort together, so the span store's index of root
   span ids grows in one place rather than dirtying a random page per request (about 40 % of the
   writer's SQLite work with random ids). Two processes' ids clash only within one millisecond and 32 random bits. */
static uint64_t
span_bits_at(const struct timespec *ts)
{
    uint32_t ms = (uint32_t)((uint64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000);
    uint32_t low;
    while ((low = mix32(span_counter++)) == 0 && ms == 0)
        ;
    return ((uint64_t)ms << 32) | low;
}

static PyObject *
make_span_id(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    PyObject *id = PyUnicode_New(16, 127);
    if (id != NULL)
        put_hex(PyUnicode_1BYTE_DATA(id), span_bits_at(&ts), 16);
    return id;
}

static int64_t
ns_of(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* A span of ``trace_id`` starting now: one clock reading, its start and its id's time */
static Span *
span_starting(PyObject *trace_id, PyObject *name, PyObject *root)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    Span *span = span_new(span_type, trace_id, name, root);
    if (span != NULL) {
        span->span_bits = span_bits_at(&now);
        span->start_ns = ns_of(&now);
    }
    return span;
}

/* A new running span: child of ``parent`` (a SpanRecord), or a new trace's first span when
   ``parent`` is None. Its attributes: ``base`` (a dict spans share, borrowed; or NULL) and what is
   added, or ``attributes``, a dict of its own (taken over: a new reference; or NULL). */
static Span *
new_record(PyObject *parent, PyObject *name, PyObject *base, PyObject *attributes)
{
    PyObject *trace_id;
    if (parent == Py_None)
        trace_id = make_trace_id();
    else if (Span_Check(parent))
        trace_id = Py_NewRef(((Span *)parent)->trace_id);
    else {
        PyErr_SetString(PyExc_TypeError, "the current span is not a SpanRecord");
        trace_id = NULL;
    }
    Span *span = trace_id != NULL ? span_starting(trace_id, name, Py_False) : NULL;
    Py_XDECREF(trace_id);
    if (span == NULL) {
        Py_XDECREF(attributes);
        return NULL;
    }
    if (parent != Py_None) {  /* the parent's id as it holds it: bits, or the str it was given */
        Span *above = (Span *)parent;
        if (above->span_id != NULL)
            span->parent_id = Py_NewRef(above->span_id);
        else
            span->parent_bits = above->span_bits;
    }
    span->base = Py_XNewRef(base);
    span->attributes = attributes;
    return span;
}

/* -- the current span ----------------------------------------------------------------
   The *anchor* is the span made current through a context variable: the current span variable's
   value (a Python ``span()`` block's, or a traced call's in another context), else the request's
   root, which the middleware binds with the request's other values in one set of their variable
   (stack/request_context.py). A traced call that starts in the context the anchor belongs to (the
   same task) sets no variable: setting one and resetting it (a copy of the context's map, a token,
   a second copy) cost a proxied request ~7,000 of its ~28,000 tracing instructions for its two
   traced calls, and ~3,500 more for its root. Its span hangs under the innermost running span of
   the anchor's chain (``active``) instead and is unhooked when the call ends. Every reader takes
   the innermost span of the chain as current. Another context (a task the request started, a
   thread) sees the same; what it starts itself it makes current in its own context through the
   variable, and owns that anchor from then on. So a task started inside a traced call takes as
   parent the span its starter is in when the task's first span starts (as a rule the one it was
   started in: the starter awaits it). */

/* the context running now; compared with anchors' ``owner``, never read */
static inline void *
this_context(void)
{
    return PyThreadState_Get()->context;
}

/* The innermost running span under ``anchor`` (the context variable's value), borrowed: the anchor
   itself when nothing runs under it, and any value that is not a span as it is. */
static PyObject *
innermost(PyObject *anchor)
{
    if (!Span_Check(anchor))
        return anchor;
    Span *span = (Span *)anchor;
    while (span->active != NULL)
        span = (Span *)span->active;
    return (PyObject *)span;
}

/* The anchor, a new reference: the current span variable's value, else the request's root (the
   request's values hold it: the middleware binds both with one set), else None */
static PyObject *
anchor_now(void)
{
    PyObject *anchor;
    if (PyContextVar_Get(current_var, Py_None, &anchor) < 0)
        return NULL;
    if (anchor != Py_None || request_var == NULL)
        return anchor;
    Py_DECREF(anchor);
    PyObject *values;
    if (PyContextVar_Get(request_var, Py_None, &values) < 0)
        return NULL;
    anchor = PyTuple_CheckExact(values) && PyTuple_GET_SIZE(values) == 3 ? PyTuple_GET_ITEM(values, 2) : Py_None;
    Py_INCREF(anchor);
    Py_DECREF(values);
    return anchor;
}

/* The current span as a new reference: the innermost of the anchor's chain (None without) */
static PyObject *
current_record(void)
{
    PyObject *anchor = anchor_now();
    if (anchor == NULL)
        return NULL;
    PyObject *current = Py_NewRef(innermost(anchor));
    Py_DECREF(anchor);
    return current;
}

/* ``span``, made the anchor in this context, owns its chain here */
static void
own(PyObject *span)
{
    ((Span *)span)->owner = this_context();
}

/* ``span`` is an anchor no more: its context may go (and another take its address), and what a
   call left hanging under it goes too */
static void
disown(PyObject *span)
{
    ((Span *)span)->owner = NULL;
    Py_CLEAR(((Span *)span)->active);
}

/* ``span``, hooked under ``anchor``'s chain, unhooked: the chain ends above it. Whatever still hangs
   under it was left running by a coroutine nobody finished; it goes too. */
static void
unhook(PyObject *anchor, PyObject *span)
{
    Span *above = (Span *)anchor;
    while (above->active != NULL && above->active != span)
        above = (Span *)above->active;
    if (above->active == span) {
        Py_CLEAR(((Span *)span)->active);
        Py_CLEAR(above->active);
    }
}

/* End ``record`` (now; with ``error``'s type when it failed) and encode it into the buffer. */
static int
finish_record(PyObject *record, PyObject *error_type)
{
    if (!Span_Check(record)) {
        PyErr_SetString(PyExc_TypeError, "finish: not a running span (a SpanRecord)");
        return -1;
    }
    Span *span = (Span *)record;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    span->end_ns = ns_of(&now);
    span->ended = 1;
    Py_CLEAR(span->end);
    if (error_type != NULL) {
        Py_SETREF(span->status, Py_NewRef(str_error));
        PyObject *name = PyType_GetName((PyTypeObject *)error_type);
        if (name == NULL)
            return -1;
        int failed = span_set_attribute(span, str_error_type, name);
        Py_DECREF(name);
        if (failed)
            return -1;
    }
    if (span_buffer == NULL)
        return 0;
    if (span_buffer_append(span_buffer, record) < 0)
        return -1;
    Py_ssize_t spans = span_buffer_count(span_buffer), events = PyObject_Length(event_buffer);
    if (events < 0)
        return -1;
    if (spans + events >= attention) {
        PyObject *done = PyObject_CallNoArgs(batch_ready);
        if (done == NULL)
            return -1;
        Py_DECREF(done);
    }
    return 0;
}

/* -- TracedCall: one call of a traced method, awaited ------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *coro;        /* the method's coroutine */
    PyObject *traced;      /* the Traced that made it (name, attributes, hook) */
    PyObject *args;        /* positional arguments (a tuple), kept for the hook; NULL without one */
    PyObject *kwargs;      /* keyword arguments (a dict), likewise */
    PyObject *model;       /* an InferenceAttributes hook's request model, read when the call is made; or NULL */
    PyObject *record;      /* the running span; NULL before the first step and for unsampled calls */
    PyObject *token;       /* the context variable's token while the span is its value; or NULL */
    PyObject *anchor;      /* or the anchor whose chain the span hangs in (see "the current span") */
    char started, done;
} TracedCall;

typedef struct {
    PyObject_HEAD
    PyObject *method;
    PyObject *name;        /* the span's name */
    PyObject *base;        /* the attributes every span of the method starts with (its spans share it) */
    PyObject *on_result;   /* None or (record, args, kwargs, result) -> None */
    PyObject *dict;        /* __dict__: __wrapped__, __name__, ... */
    vectorcallfunc vectorcall;
} Traced;

static PyTypeObject TracedCallType, TracedType, InferenceAttributesType;
static PyObject *request_model(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
static int record_model(PyObject *hook, Span *span, PyObject *model);
static int record_result(PyObject *hook, PyObject *record, PyObject *result);

/* The first step: the span starts and becomes current (not when the call is made: a coroutine made
   in one task and awaited in another must take the awaiting task's span as its parent). */
static int
call_begin(TracedCall *self)
{
    self->started = 1;
    if (span_buffer == NULL)
        return 0;
    PyObject *anchor = anchor_now();
    if (anchor == NULL)
        return -1;
    if (anchor == unsampled) {
        Py_DECREF(anchor);
        return 0;
    }
    PyObject *parent = innermost(anchor);
    Traced *traced = (Traced *)self->traced;
    Span *span = new_record(parent, traced->name, traced->base, NULL);
    if (span == NULL) {
        Py_DECREF(anchor);
        return -1;
    }
    self->record = (PyObject *)span;
    if (self->model != NULL && record_model(traced->on_result, span, self->model) < 0)
        PyErr_Clear();  /* attributes are best effort */
    void *context = this_context();
    if (Span_Check(anchor) && context != NULL && ((Span *)anchor)->owner == context) {
        ((Span *)parent)->active = Py_NewRef(span);  /* the innermost: nothing hung there */
        self->anchor = anchor;
        return 0;
    }
    Py_DECREF(anchor);
    self->token = PyContextVar_Set(current_var, self->record);
    if (self->token == NULL)
        return -1;
    own(self->record);
    return 0;
}

/* The hook's attributes are best effort: a failing hook never fails the call. */
static void
call_hook(TracedCall *self, PyObject *result)
{
    Traced *traced = (Traced *)self->traced;
    if (traced->on_result == Py_None)
        return;
    if (Py_IS_TYPE(traced->on_result, &InferenceAttributesType)) {  /* its model is in already */
        if (record_result(traced->on_result, self->record, result) < 0)
            PyErr_Clear();
        return;
    }
    PyObject *outcome = PyObject_CallFunctionObjArgs(traced->on_result, self->record, self->args, self->kwargs,
                                                     result, NULL);
    if (outcome == NULL)
        PyErr_Clear();
    Py_XDECREF(outcome);
}

/* The coroutine returned (PYGEN_RETURN, ``*result`` its value) or raised (PYGEN_ERROR). */
static PySendResult
call_end(TracedCall *self, PySendResult status, PyObject **result)
{
    self->done = 1;
    PyObject *record = self->record;
    if (record == NULL)
        return status;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (self->anchor != NULL) {
        unhook(self->anchor, record);
        Py_CLEAR(self->anchor);
    }
    else {
        disown(record);
        if (PyContextVar_Reset(current_var, self->token) < 0)
            PyErr_Clear();  /* ended in another context (a close from the garbage collector): nothing to undo */
        Py_CLEAR(self->token);
    }
    if (status == PYGEN_ERROR) {
        call_hook(self, Py_None);
        if (finish_record(record, type) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, traceback);
        return status;
    }
    PyTypeObject *kind = Py_TYPE(*result);
    if (kind->tp_as_async != NULL && kind->tp_as_async->am_anext != NULL) {
        /* a stream: its span ends with it */
        /* none kept (no hook, or one that read them as the call was made): empty ones */
        PyObject *kwargs = self->kwargs != NULL ? Py_NewRef(self->kwargs) : PyDict_New();
        PyObject *wrapped = kwargs == NULL ? NULL
            : PyObject_CallFunctionObjArgs(finish_after, *result, record, self->args ? self->args : empty_tuple,
                                           kwargs, ((Traced *)self->traced)->on_result, NULL);
        Py_XDECREF(kwargs);
        Py_SETREF(*result, wrapped);
        if (wrapped == NULL)
            return PYGEN_ERROR;
        return status;
    }
    call_hook(self, *result);
    if (finish_record(record, NULL) < 0)
        PyErr_Clear();  /* a span that could not be buffered is lost, never the call */
    return status;
}

static PySendResult
call_send(TracedCall *self, PyObject *arg, PyObject **result)
{
    if (self->done) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        *result = NULL;
        return PYGEN_ERROR;
    }
    if (!self->started && call_begin(self) < 0) {
        *result = NULL;
        self->done = 1;
        return PYGEN_ERROR;
    }
    PySendResult status = PyIter_Send(self->coro, arg, result);
    if (status == PYGEN_NEXT)
        return status;
    return call_end(self, status, result);
}

/* A PySendResult as Python sees it from send() and __next__: a value, or StopIteration(value). */
static PyObject *
as_step(PySendResult status, PyObject *result)
{
    if (status == PYGEN_NEXT)
        return result;
    if (status == PYGEN_RETURN) {
        if (result == Py_None)
            PyErr_SetNone(PyExc_StopIteration);
        else {
            PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
            if (stop != NULL) {
                PyErr_SetObject(PyExc_StopIteration, stop);
                Py_DECREF(stop);
            }
        }
        Py_DECREF(result);
    }
    return NULL;
}

static PyObject *
call_iternext(TracedCall *self)
{
    PyObject *result;
    PySendResult status = call_send(self, Py_None, &result);  /* before reading result: C leaves the order
                                                                 of a call's arguments open */
    return as_step(status, result);
}

static PyObject *
call_send_method(TracedCall *self, PyObject *arg)
{
    PyObject *result;
    PySendResult status = call_send(self, arg, &result);
    return as_step(status, result);
}

/* A step the inner coroutine's throw() or close() took: a value it yielded, or its end. */
static PyObject *
after_inner(TracedCall *self, PyObject *yielded)
{
    if (yielded != NULL)
        return yielded;
    if (!self->started || self->done)
        return NULL;
    PyObject *value = NULL;
    if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        PyObject *type, *error, *traceback;
        PyErr_Fetch(&type, &error, &traceback);
        PyErr_NormalizeException(&type, &error, &traceback);
        value = error != NULL ? PyObject_GetAttrString(error, "value") : Py_NewRef(Py_None);
        Py_XDECREF(type);
        Py_XDECREF(error);
        Py_XDECREF(traceback);
        if (value == NULL)
            return NULL;
        PySendResult status = call_end(self, PYGEN_RETURN, &value);
        return as_step(status, value);
    }
    call_end(self, PYGEN_ERROR, &value);
    return NULL;
}

static PyObject *
call_throw(TracedCall *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *thrower = PyObject_GetAttrString(self->coro, "throw");
    if (thrower == NULL)
        return NULL;
    if (!self->started && !self->done) {
        /* thrown in before the first step: like an ``async def`` wrapper, no span */
        self->started = self->done = 1;
    }
    PyObject *yielded = PyObject_Vectorcall(thrower, args, nargs, NULL);
    Py_DECREF(thrower);
    return after_inner(self, yielded);
}

static PyObject *
call_close(TracedCall *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *closed = PyObject_CallMethod(self->coro, "close", NULL);
    if (self->started && !self->done) {
        PyObject *saved_type, *saved_value, *saved_traceback;
        PyErr_Fetch(&saved_type, &saved_value, &saved_traceback);
        PyErr_SetNone(PyExc_GeneratorExit);  /* the span ends as the wrapper's would: with GeneratorExit */
        PyObject *ignored_value = NULL;
        call_end(self, PYGEN_ERROR, &ignored_value);
        PyErr_Clear();
        PyErr_Restore(saved_type, saved_value, saved_traceback);
    }
    self->started = self->done = 1;
    return closed;
}

static PyObject *
call_await(TracedCall *self)
{
    return Py_NewRef(self);
}

static int
call_traverse(TracedCall *self, visitproc visit, void *arg)
{
    Py_VISIT(self->coro);
    Py_VISIT(self->traced);
    Py_VISIT(self->args);
    Py_VISIT(self->kwargs);
    Py_VISIT(self->model);
    Py_VISIT(self->record);
    Py_VISIT(self->token);
    Py_VISIT(self->anchor);
    return 0;
}

static int
call_clear(TracedCall *self)
{
    Py_CLEAR(self->coro);
    Py_CLEAR(self->traced);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwargs);
    Py_CLEAR(self->model);
    if (self->anchor != NULL && self->record != NULL && !self->done)
        unhook(self->anchor, self->record);  /* a call nobody finished: its span is current no more */
    Py_CLEAR(self->anchor);
    Py_CLEAR(self->record);
    Py_CLEAR(self->token);
    return 0;
}

static void
call_dealloc(TracedCall *self)
{
    PyObject_GC_UnTrack(self);
    call_clear(self);
    PyObject_GC_Del(self);
}

static PyAsyncMethods call_async = {
    .am_await = (unaryfunc)call_await,
    .am_send = (sendfunc)call_send,
};

static PyMethodDef call_methods[] = {
    {"send", (PyCFunction)call_send_method, METH_O, "Step the call with a value."},
    {"throw", (PyCFunction)(void (*)(void))call_throw, METH_FASTCALL, "Raise an exception inside the call."},
    {"close", (PyCFunction)call_close, METH_NOARGS, "Close the call (its span ends with GeneratorExit)."},
    {NULL},
};

static PyTypeObject TracedCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stack._spancore.TracedCall",
    .tp_doc = "One awaited call of a traced method: the method's coroutine inside its span.",
    .tp_basicsize = sizeof(TracedCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_as_async = &call_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)call_iternext,
    .tp_methods = call_methods,
    .tp_traverse = (traverseproc)call_traverse,
    .tp_clear = (inquiry)call_clear,
    .tp_dealloc = (destructor)call_dealloc,
};

/* -- Traced: a method whose calls are spans -------------------------------------------------- */

static PyObject *
traced_vectorcall(Traced *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *coro = PyObject_Vectorcall(self->method, args, nargsf, kwnames);
    if (coro == NULL || span_buffer == NULL)  /* tracing off: the method's own coroutine */
        return coro;
    TracedCall *call = PyObject_GC_New(TracedCall, &TracedCallType);
    if (call == NULL) {
        Py_DECREF(coro);
        return NULL;
    }
    call->coro = coro;
    call->traced = Py_NewRef(self);
    call->args = call->kwargs = call->model = call->record = call->token = call->anchor = NULL;
    call->started = call->done = 0;
    if (Py_IS_TYPE(self->on_result, &InferenceAttributesType)) {
        /* its one argument, read now: no copy of the call's arguments kept for the end */
        call->model = request_model(args, PyVectorcall_NARGS(nargsf), kwnames);
        if (call->model == NULL)
            PyErr_Clear();  /* attributes are best effort */
    }
    else if (self->on_result != Py_None) {  /* the hook reads the call's arguments */
        Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
        call->args = PyTuple_New(nargs);
        call->kwargs = PyDict_New();
        if (call->args == NULL || call->kwargs == NULL) {
            Py_DECREF(call);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nargs; i++)
            PyTuple_SET_ITEM(call->args, i, Py_NewRef(args[i]));
        for (Py_ssize_t i = 0; i < nkw; i++) {
            if (PyDict_SetItem(call->kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
                Py_DECREF(call);
                return NULL;
            }
        }
    }
    PyObject_GC_Track(call);
    return (PyObject *)call;
}

static PyObject *
traced_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"method", "name", "attributes", "on_result", NULL};
    PyObject *method, *name, *base, *on_result = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OUO!|O:Traced", keywords, &method, &name, &PyDict_Type, &base,
                                     &on_result))
        return NULL;
    Traced *self = (Traced *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->method = Py_NewRef(method);
    self->name = Py_NewRef(name);
    self->base = PyDict_Copy(base);  /* its own: the spans share it, so nothing may change it */
    if (self->base == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->on_result = Py_NewRef(on_result);
    self->dict = PyDict_New();
    self->vectorcall = (vectorcallfunc)traced_vectorcall;
    if (self->dict == NULL || PyDict_SetItemString(self->dict, "__wrapped__", method) < 0
            || PyDict_SetItemString(self->dict, "__traced__", Py_True) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    /* what functools.wraps would copy: names and documentation, for help() and inspect */
    static const char *copied[] = {"__name__", "__qualname__", "__doc__", "__module__", NULL};
    for (const char **attribute = copied; *attribute != NULL; attribute++) {
        PyObject *value = PyObject_GetAttrString(method, *attribute);
        if (value == NULL) {
            PyErr_Clear();
            continue;
        }
        int failed = PyDict_SetItemString(self->dict, *attribute, value);
        Py_DECREF(value);
        if (failed) {
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}

static int
traced_traverse(Traced *self, visitproc visit, void *arg)
{
    Py_VISIT(self->method);
    Py_VISIT(self->name);
    Py_VISIT(self->base);
    Py_VISIT(self->on_result);
    Py_VISIT(self->dict);
    return 0;
}

static int
traced_clear(Traced *self)
{
    Py_CLEAR(self->method);
    Py_CLEAR(self->name);
    Py_CLEAR(self->base);
    Py_CLEAR(self->on_result);
    Py_CLEAR(self->dict);
    return 0;
}

static void
traced_dealloc(Traced *self)
{
    PyObject_GC_UnTrack(self);
    traced_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
traced_get_name(Traced *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->name);
}

static PyGetSetDef traced_getset[] = {
    {"span_name", (getter)traced_get_name, NULL, "the name of the spans it makes", NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL},
};

static PyTypeObject TracedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stack._spancore.Traced",
    .tp_doc = "Traced(method, name, attributes, on_result=None): ``method`` (an async method) with each "
              "call a span named ``name``, starting with ``attributes`` (as they are now); ``on_result(record, "
              "args, kwargs, result)`` adds attributes when the call ends (result None when it failed).",
    .tp_basicsize = sizeof(Traced),
    .tp_dictoffset = offsetof(Traced, dict),
    .tp_vectorcall_offset = offsetof(Traced, vectorcall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_call = PyVectorcall_Call,
    .tp_new = traced_new,
    .tp_getset = traced_getset,
    .tp_traverse = (traverseproc)traced_traverse,
    .tp_clear = (inquiry)traced_clear,
    .tp_dealloc = (destructor)traced_dealloc,
    .tp_descr_get = NULL,
};

/* -- InferenceAttributes: the attribute hook of inference spans ------------------------------ */

/* Called as ``on_result(record, args, kwargs, result)`` on every traced inference call (router and
   provider): the request's model, and with the result's usage its model and token counts, under
   the attribute names Python gives (stack/_trace_stack.py: the GenAI conventions' names). In C: in
   Python this was the request path's largest share of bytecodes. */
typedef struct {
    PyObject_HEAD
    PyObject *model_key, *response_model_key, *input_key, *output_key;  /* None: not recorded */
    PyObject *derived;  /* a tuple of derived-metric names the span starts its metrics with, or None */
    vectorcallfunc vectorcall;
} InferenceAttributes;

static PyObject *str_getattribute, *object_getattribute;  /* "__getattribute__", object's own (borrowed) */
static PyObject *str_model_id, *str_request, *str_model, *str_usage, *str_prompt_tokens, *str_completion_tokens;

/* getattr(obj, name, None) as a new reference (None included); NULL only on a real error. A request
   or result (pydantic models) keeps its fields in its __dict__: read there when nothing in its type can
   come first (a data descriptor, or a __getattribute__ of its own), else the full lookup. */
static PyObject *
attribute_or_none(PyObject *obj, PyObject *name)
{
    if (obj == Py_None)
        return Py_NewRef(Py_None);
    PyTypeObject *type = Py_TYPE(obj);
    PyObject *value;
    if (type->tp_getattro == PyObject_GenericGetAttr
            || _PyType_Lookup(type, str_getattribute) == object_getattribute) {
        PyObject *descriptor = _PyType_Lookup(type, name);  /* borrowed */
        PyObject **dict = descriptor == NULL || Py_TYPE(descriptor)->tp_descr_set == NULL
            ? _PyObject_GetDictPtr(obj) : NULL;
        if (dict != NULL && *dict != NULL && PyDict_CheckExact(*dict)) {
            value = PyDict_GetItemWithError(*dict, name);
            if (value != NULL)
                return Py_NewRef(value);
            if (PyErr_Occurred())
                return NULL;
        }
    }
    if (_PyObject_LookupAttr(obj, name, &value) < 0)
        return NULL;
    return value != NULL ? value : Py_NewRef(Py_None);
}

static int
set_attribute(Span *span, PyObject *key, PyObject *value)
{
    if (key == Py_None || value == Py_None)
        return 0;
    return span_set_attribute(span, key, value);
}

/* The model an inference call asks for: ``model_id`` unless None, else ``request``'s ``.model`` (either
   may be NULL: not passed); a new reference, None when there is none. */
static PyObject *
model_asked(PyObject *model_id, PyObject *request)
{
    if (model_id != NULL && model_id != Py_None)
        return Py_NewRef(model_id);
    return attribute_or_none(request != NULL ? request : Py_None, str_model);
}

/* model_asked of a vectorcall's arguments: the request is the first positional one or ``request=`` */
static PyObject *
request_model(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *request = nargs ? args[0] : NULL, *model_id = NULL;
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_Compare(key, str_model_id) == 0)
            model_id = args[nargs + i];
        else if (request == NULL && PyUnicode_Compare(key, str_request) == 0)
            request = args[nargs + i];
    }
    return PyErr_Occurred() ? NULL : model_asked(model_id, request);
}

static int
record_model(PyObject *hook, Span *span, PyObject *model)
{
    return set_attribute(span, ((InferenceAttributes *)hook)->model_key, model);
}

/* The result's part: with its usage, the response's model and the token counts; then the derived
   metrics' names */
static int
record_result(PyObject *hook, PyObject *record, PyObject *result)
{
    InferenceAttributes *self = (InferenceAttributes *)hook;
    Span *span = (Span *)record;
    int failed = 0;
    if (self->input_key != Py_None || self->output_key != Py_None || self->response_model_key != Py_None) {
        PyObject *usage = attribute_or_none(result, str_usage);
        if (usage == NULL)
            return -1;
        if (usage != Py_None) {
            PyObject *response_model = attribute_or_none(result, str_model);
            PyObject *prompt = response_model ? attribute_or_none(usage, str_prompt_tokens) : NULL;
            PyObject *completion = prompt ? attribute_or_none(usage, str_completion_tokens) : NULL;
            failed = completion == NULL
                || (PyObject_IsTrue(response_model) == 1 && set_attribute(span, self->response_model_key,
                                                                           response_model) < 0)
                || set_attribute(span, self->input_key, prompt) < 0
                || set_attribute(span, self->output_key, completion) < 0;
            Py_XDECREF(response_model);
            Py_XDECREF(prompt);
            Py_XDECREF(completion);
        }
        Py_DECREF(usage);
        if (failed)
            return -1;
    }
    if (self->derived != Py_None) {  /* the derived metrics first, then any recorded on the span */
        PyObject *metrics = span->metrics;
        PyObject *combined = metrics == Py_None ? Py_NewRef(self->derived) : PySequence_Concat(self->derived, metrics);
        if (combined == NULL)
            return -1;
        Py_SETREF(span->metrics, combined);
    }
    return 0;
}

/* The hook called from Python (streams' ends, tests): the request's model from ``args`` and ``kwargs``
   (when a traced call's model was read as the call was made, they are empty), then the result's part */
static PyObject *
inference_attributes_call(InferenceAttributes *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 4 || kwnames != NULL || !Span_Check(args[0]) || !PyTuple_Check(args[1])
            || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "InferenceAttributes(record, args: tuple, kwargs: dict, result)");
        return NULL;
    }
    PyObject *record = args[0], *call_args = args[1], *call_kwargs = args[2], *result = args[3];
    PyObject *model_id = PyDict_GetItemWithError(call_kwargs, str_model_id);  /* borrowed, both */
    PyObject *request = model_id == NULL && PyErr_Occurred() ? NULL
        : PyTuple_GET_SIZE(call_args) ? PyTuple_GET_ITEM(call_args, 0)
        : PyDict_GetItemWithError(call_kwargs, str_request);
    PyObject *model = PyErr_Occurred() ? NULL : model_asked(model_id, request);
    if (model == NULL)
        return NULL;
    int failed = record_model((PyObject *)self, (Span *)record, model);
    Py_DECREF(model);
    if (failed || record_result((PyObject *)self, record, result) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
inference_attributes_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"model", "response_model", "input_tokens", "output_tokens", "derived", NULL};
    PyObject *model = Py_None, *response_model = Py_None, *input = Py_None, *output = Py_None, *derived = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOOO:InferenceAttributes", keywords, &model, &response_model,
                                     &input, &output, &derived))
        return NULL;
    if (derived != Py_None && !PyTuple_Check(derived)) {
        PyErr_SetString(PyExc_TypeError, "InferenceAttributes: derived is a tuple of metric names");
        return NULL;
    }
    InferenceAttributes *self = (InferenceAttributes *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->model_key = Py_NewRef(model);
    self->response_model_key = Py_NewRef(response_model);
    self->input_key = Py_NewRef(input);
    self->output_key = Py_NewRef(output);
    self->derived = Py_NewRef(derived);
    self->vectorcall = (vectorcallfunc)inference_attributes_call;
    return (PyObject *)self;
}

static void
inference_attributes_dealloc(InferenceAttributes *self)
{
    Py_XDECREF(self->model_key);
    Py_XDECREF(self->response_model_key);
    Py_XDECREF(self->input_key);
    Py_XDECREF(self->output_key);
    Py_XDECREF(self->derived);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject InferenceAttributesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stack._spancore.InferenceAttributes",
    .tp_doc = "InferenceAttributes(*, model=None, response_model=None, input_tokens=None, output_tokens=None, "
              "derived=None): an on_result hook recording an inference call's request model and, from the "
              "result's usage, its model and token counts, under the given attribute names (None: not "
              "recorded); ``derived``: metric names the span's metrics start with.",
    .tp_basicsize = sizeof(InferenceAttributes),
    .tp_vectorcall_offset = offsetof(InferenceAttributes, vectorcall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_call = PyVectorcall_Call,
    .tp_new = inference_attributes_new,
    .tp_dealloc = (destructor)inference_attributes_dealloc,
};

/* -- module functions ------------------------------------------------------------------------ */

static PyObject *
configure(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *var, *marker, *record_type, *streams, *request = NULL;
    if (!PyArg_ParseTuple(args, "OOO!O|O:configure", &var, &marker, &PyType_Type, &record_type, &streams, &request))
        return NULL;
    if (!PyContextVar_CheckExact(var) || (request != NULL && !PyContextVar_CheckExact(request))
            || !PyType_IsSubtype((PyTypeObject *)record_type, &SpanType)) {
        PyErr_SetString(PyExc_TypeError, "configure: ContextVars and a subclass of Span are needed");
        return NULL;
    }
    Py_XSETREF(current_var, Py_NewRef(var));
    Py_XSETREF(request_var, Py_XNewRef(request));
    Py_XSETREF(unsampled, Py_NewRef(marker));
    Py_XSETREF(span_type, (PyTypeObject *)Py_NewRef(record_type));
    Py_XSETREF(finish_after, Py_NewRef(streams));
    Py_RETURN_NONE;
}

static PyObject *
install(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *target, *spans = NULL, *events = NULL, *ready = NULL;
    Py_ssize_t limit = 0;
    if (!PyArg_ParseTuple(args, "O|OOOn:install", &target, &spans, &events, &ready, &limit))
        return NULL;
    if (target != Py_None && (spans == NULL || events == NULL || ready == NULL || limit <= 0)) {
        PyErr_SetString(PyExc_TypeError, "install: a collector comes with its buffers, batch_ready and attention");
        return NULL;
    }
    if (target != Py_None && current_var == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "install: configure() first");
        return NULL;
    }
    Py_CLEAR(collector);
    Py_CLEAR(span_buffer);
    Py_CLEAR(event_buffer);
    Py_CLEAR(batch_ready);
    if (target == Py_None)
        Py_RETURN_NONE;
    if (!PyObject_TypeCheck(spans, &SpanBufferType)) {
        PyErr_SetString(PyExc_TypeError, "install: the collector's spans are a SpanBuffer");
        return NULL;
    }
    collector = Py_NewRef(target);
    span_buffer = Py_NewRef(spans);
    event_buffer = Py_NewRef(events);
    batch_ready = Py_NewRef(ready);
    attention = limit;
    Py_RETURN_NONE;
}

static PyObject *
finish(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "finish(record, error=None)");
        return NULL;
    }
    PyObject *error_type = nargs == 2 && args[1] != Py_None ? (PyObject *)Py_TYPE(args[1]) : NULL;
    if (finish_record(args[0], error_type) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
start_child(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "start_child(name: str, attributes: dict)");
        return NULL;
    }
    if (current_var == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "start_child: configure() first");
        return NULL;
    }
    PyObject *current = current_record();
    if (current == NULL)
        return NULL;
    Span *record = new_record(current, args[0], NULL, Py_NewRef(args[1]));
    Py_DECREF(current);
    return (PyObject *)record;
}

/* The attributes a request's root or an upstream call's span starts with, as a dict its spans
   share (``Span.base``) as a traced method's spans share theirs: the encoder then writes it once a
   chunk, not once a span. A few are kept per kind, the latest made replacing the oldest, and found
   by comparing the values (exact strs: a method, a path, a URL; a URL is a new str every call, so
   no hash is worked out). NULL and no error when a value is not an exact str: the caller sets the
   attributes one by one. */
#define SHARED_BASES 8
#define SHARED_VALUES_MAX 3

typedef struct {
    PyObject *values[SHARED_BASES][SHARED_VALUES_MAX];
    PyObject *bases[SHARED_BASES];
    int next;  /* the slot the next one made takes */
} SharedBases;

static SharedBases root_bases, upstream_bases;

static PyObject *
shared_base(SharedBases *cache, PyObject *const *keys, PyObject *const *values, int n)
{
    for (int i = 0; i < n; i++)
        if (!PyUnicode_CheckExact(values[i]) || PyUnicode_READY(values[i]) < 0)
            return NULL;
    for (int slot = 0; slot < SHARED_BASES && cache->bases[slot] != NULL; slot++) {
        int i = 0;
        while (i < n && same_str(cache->values[slot][i], values[i]))
            i++;
        if (i == n)
            return Py_NewRef(cache->bases[slot]);
    }
    PyObject *base = PyDict_New();
    for (int i = 0; base != NULL && i < n; i++)
        if (PyDict_SetItem(base, keys[i], values[i]) < 0)
            Py_CLEAR(base);
    if (base == NULL)
        return NULL;
    int slot = cache->next;
    cache->next = (slot + 1) % SHARED_BASES;
    Py_XSETREF(cache->bases[slot], Py_NewRef(base));
    for (int i = 0; i < n; i++)
        Py_XSETREF(cache->values[slot][i], Py_NewRef(values[i]));
    return base;
}

/* ``span`` (just made, its attributes empty) starts from shared_base's dict, or from the attributes
   set one by one where there is none */
static int
start_from(Span *span, SharedBases *cache, PyObject *const *keys, PyObject *const *values, int n)
{
    span->base = shared_base(cache, keys, values, n);
    if (span->base != NULL)
        return 0;
    if (PyErr_Occurred())
        return -1;
    for (int i = 0; i < n; i++)
        if (span_set_attribute(span, keys[i], values[i]) < 0)
            return -1;
    return 0;
}

/* A request's first span: ``parent`` the caller's (trace_id, span_id) from its traceparent, or None (a
   new trace); ``attributes`` a dict of its own (taken over: a new reference), or NULL (added to). */
static Span *
root_record(PyObject *parent, PyObject *attributes)
{
    PyObject *trace_id = parent == Py_None ? make_trace_id() : Py_NewRef(PyTuple_GET_ITEM(parent, 0));
    Span *span = trace_id != NULL ? span_starting(trace_id, str_empty, Py_True) : NULL;
    Py_XDECREF(trace_id);
    if (span == NULL) {
        Py_XDECREF(attributes);
        return NULL;
    }
    if (parent != Py_None)
        span->parent_id = Py_NewRef(PyTuple_GET_ITEM(parent, 1));
    span->attributes = attributes;
    return span;
}

/* ``span`` (taken over) as a request's root: (record, None, (header_name, the trace id as bytes)). The
   caller makes it current: the request's values take it (``request_context.set_request``, in this
   context: the span owns its chain here) */
static PyObject *
root_span(Span *span, PyObject *header_name)
{
    own((PyObject *)span);
    PyObject *value = PyUnicode_AsASCIIString(span->trace_id);
    PyObject *header = value != NULL ? PyTuple_Pack(2, header_name, value) : NULL;
    PyObject *root = header != NULL ? PyTuple_Pack(3, span, Py_None, header) : NULL;
    Py_DECREF(span);
    Py_XDECREF(value);
    Py_XDECREF(header);
    return root;
}

/* start_root(parent, attributes, header_name): root_span with a copy of nothing: ``attributes`` is
   the span's own dict from now on. */
static PyObject *
start_root(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyDict_Check(args[1]) || !PyBytes_Check(args[2])
            || (args[0] != Py_None && !(PyTuple_Check(args[0]) && PyTuple_GET_SIZE(args[0]) == 2))) {
        PyErr_SetString(PyExc_TypeError, "start_root(parent: (trace_id, span_id) | None, attributes: dict, "
                                         "header_name: bytes)");
        return NULL;
    }
    if (current_var == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "start_root: configure() first");
        return NULL;
    }
    Span *span = root_record(args[0], Py_NewRef(args[1]));
    return span != NULL ? root_span(span, args[2]) : NULL;
}

/* start_request(scope, headers): the request's root span as stack/server/tracing.py's start_root makes
   it, the common case here: tracing on, a path known to be traced, no traceparent, every request
   sampled. Anything else goes to that function (configure_requests). */
static PyObject *
start_request(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "start_request(scope: dict, headers: dict)");
        return NULL;
    }
    if (collector == NULL)
        Py_RETURN_NONE;
    if (start_slow == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "start_request: configure_requests() first");
        return NULL;
    }
    PyObject *scope = args[0], *headers = args[1];
    PyObject *path = PyDict_GetItemWithError(scope, str_path), *method = NULL;  /* borrowed */
    if (path != NULL && PyUnicode_CheckExact(path) && PyDict_GetItemWithError(request_paths, path) == Py_False
            && PyDict_GetItemWithError(headers, traceparent_header) == NULL && !PyErr_Occurred()
            && (method = PyDict_GetItemWithError(scope, str_method)) != NULL) {
        PyObject *rate = PyObject_GetAttr(collector, str_sample_rate);
        if (rate == NULL)
            return NULL;
        double value = PyFloat_AsDouble(rate);
        Py_DECREF(rate);
        if (value == -1.0 && PyErr_Occurred())
            return NULL;
        if (value >= 1.0) {
            Span *span = root_record(Py_None, NULL);
            PyObject *keys[] = {str_method_attribute, str_path_attribute}, *values[] = {method, path};
            if (span == NULL || start_from(span, &root_bases, keys, values, 2) < 0) {
                Py_XDECREF(span);
                return NULL;
            }
            return root_span(span, trace_id_header);
        }
    }
    if (PyErr_Occurred())
        return NULL;
    return PyObject_CallFunctionObjArgs(start_slow, scope, headers, NULL);
}

/* configure_requests(paths, start_slow, trace_id_header, traceparent_header): what start_request needs:
   the dict of paths known to be traced (False) or not (True), filled by ``start_slow``. */
static PyObject *
configure_requests(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *paths, *slow, *id_header, *parent_header;
    if (!PyArg_ParseTuple(args, "O!OO!O!:configure_requests", &PyDict_Type, &paths, &slow, &PyBytes_Type,
                          &id_header, &PyBytes_Type, &parent_header))
        return NULL;
    Py_XSETREF(request_paths, Py_NewRef(paths));
    Py_XSETREF(start_slow, Py_NewRef(slow));
    Py_XSETREF(trace_id_header, Py_NewRef(id_header));
    Py_XSETREF(traceparent_header, Py_NewRef(parent_header));
    Py_RETURN_NONE;
}

/* "upstream <method>", an upstream call's span name: made once per method (the few an upstream
   client uses), never more than UPSTREAM_NAMES_MAX kept */
#define UPSTREAM_NAMES_MAX 64

static PyObject *
upstream_name(PyObject *method)
{
    PyObject *name = PyDict_GetItemWithError(upstream_names, method);  /* borrowed */
    if (name != NULL)
        return Py_NewRef(name);
    if (PyErr_Occurred())
        return NULL;
    name = PyUnicode_Concat(str_upstream_prefix, method);
    if (name != NULL && PyUnicode_CheckExact(method) && PyDict_GET_SIZE(upstream_names) < UPSTREAM_NAMES_MAX
            && PyDict_SetItem(upstream_names, method, name) < 0)
        Py_CLEAR(name);
    return name;
}

/* start_upstream(method, url, upstream): the span of a call to an upstream service, child of the
   current span, and the traceparent header's value that puts the upstream's spans under it; None
   when the request is not recorded (tracing off, or left out by sampling). */
static PyObject *
start_upstream(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "start_upstream(method: str, url, upstream)");
        return NULL;
    }
    if (collector == NULL)
        Py_RETURN_NONE;
    PyObject *current = current_record();
    if (current == NULL)
        return NULL;
    if (current == unsampled) {
        Py_DECREF(current);
        Py_RETURN_NONE;
    }
    PyObject *name = upstream_name(args[0]);
    Span *record = name != NULL ? new_record(current, name, NULL, NULL) : NULL;
    Py_DECREF(current);
    Py_XDECREF(name);
    PyObject *keys[] = {str_method_attribute, str_url_attribute, str_upstream_attribute};
    if (record == NULL || start_from(record, &upstream_bases, keys, args, 3) < 0) {
        Py_XDECREF(record);
        return NULL;
    }
    PyObject *trace_id = record->trace_id, *traceparent;
    if (PyUnicode_Check(trace_id) && PyUnicode_IS_COMPACT_ASCII(trace_id) && PyUnicode_GET_LENGTH(trace_id) == 32) {
        /* "00-" trace "-" span "-01": 55 characters, copied rather than formatted */
        traceparent = PyUnicode_New(55, 127);
        if (traceparent != NULL) {
            Py_UCS1 *out = PyUnicode_1BYTE_DATA(traceparent);
            memcpy(out, "00-", 3);
            memcpy(out + 3, PyUnicode_1BYTE_DATA(trace_id), 32);
            out[35] = '-';
            put_hex(out + 36, record->span_bits, 16);  /* a new span's id: its bits */
            memcpy(out + 52, "-01", 3);
        }
    }
    else {  /* a trace id given by a caller (any str): formatted */
        PyObject *span_id = span_field(record, F_SPAN_ID);
        traceparent = span_id != NULL ? PyUnicode_FromFormat("00-%S-%S-01", trace_id, span_id) : NULL;
        Py_XDECREF(span_id);
    }
    if (traceparent == NULL) {
        Py_DECREF(record);
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, record, traceparent);
    Py_DECREF(record);
    Py_DECREF(traceparent);
    return pair;
}

/* finish_upstream(record, status): the upstream answered ``status``; its span ends */
static PyObject *
finish_upstream(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !Span_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "finish_upstream(record: a running span, status)");
        return NULL;
    }
    if (span_set_attribute((Span *)args[0], str_status_code, args[1]) < 0
            || finish_record(args[0], NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* "<method> <where>", the root span's name: from ``root_names`` when ``where`` is a route's template
   (a few, named again on every request), else made (a raw path: any number of them). The cache stops
   growing at ROOT_NAMES_MAX: the method is the client's (any token an HTTP parser lets through). */
#define ROOT_NAMES_MAX 4096

static PyObject *
root_name(PyObject *method, PyObject *where, int routed)
{
    PyObject *key = routed ? PyTuple_Pack(2, method, where) : NULL;
    if (key != NULL) {
        PyObject *name = PyDict_GetItemWithError(root_names, key);  /* borrowed */
        if (name != NULL) {
            Py_DECREF(key);
            return Py_NewRef(name);
        }
    }
    if (PyErr_Occurred()) {
        Py_XDECREF(key);
        return NULL;
    }
    PyObject *name = PyUnicode_FromFormat("%S %S", method, where);
    if (key != NULL && name != NULL && PyDict_GET_SIZE(root_names) < ROOT_NAMES_MAX
            && PyDict_SetItem(root_names, key, name) < 0)
        Py_CLEAR(name);
    Py_XDECREF(key);
    return name;
}

/* finish_root(root, status, error, scope): the request is over. Its span is named "<method> <route>"
   (the ASGI scope's matched route's template, also attributes["http.route"]) or, without a route,
   "<method> <path>"; it fails with an error or a 5xx status. ``root`` is start_root's, or (None,
   token, None) for a request left out by sampling: then only the context is restored. */
static PyObject *
finish_root(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != 3 || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "finish_root(root, status, error, scope: dict)");
        return NULL;
    }
    PyObject *record = PyTuple_GET_ITEM(args[0], 0), *status = args[1], *error = args[2], *scope = args[3];
    PyObject *token = PyTuple_GET_ITEM(args[0], 1);  /* an unsampled request's: UNSAMPLED was made current */
    if (token != Py_None && PyContextVar_Reset(current_var, token) < 0)
        return NULL;
    if (record == Py_None)
        Py_RETURN_NONE;
    if (!Span_Check(record)) {
        PyErr_SetString(PyExc_TypeError, "finish_root: not a root span");
        return NULL;
    }
    Span *span = (Span *)record;
    disown(record);
    if (status != Py_None) {
        if (span_set_attribute(span, str_status_code, status) < 0)
            return NULL;
        long code = PyLong_AsLong(status);
        if (code == -1 && PyErr_Occurred())
            return NULL;
        if (code >= 500)
            Py_SETREF(span->status, Py_NewRef(str_error));
    }
    PyObject *method = PyDict_GetItemWithError(scope, str_method);  /* borrowed */
    if (method == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_KeyError, "method");
        return NULL;
    }
    PyObject *where = NULL, *route = PyDict_GetItemWithError(scope, str_route_key);
    if (route == NULL && PyErr_Occurred())
        return NULL;
    if (route != NULL && route != Py_None) {
        if (_PyObject_LookupAttr(route, str_path, &where) < 0)
            return NULL;
        if (where != NULL && where != Py_None && span_set_attribute(span, str_route, where) < 0) {
            Py_DECREF(where);
            return NULL;
        }
        if (where == Py_None)
            Py_CLEAR(where);
    }
    if (where == NULL) {
        where = PyDict_GetItemWithError(scope, str_path);
        if (where == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_KeyError, "path");
            return NULL;
        }
        Py_INCREF(where);
    }
    PyObject *name = root_name(method, where, route != NULL && route != Py_None);
    Py_DECREF(where);
    if (name == NULL)
        return NULL;
    Py_SETREF(span->name, name);
    if (finish_record(record, error != Py_None ? (PyObject *)Py_TYPE(error) : NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
collector_of(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(collector ? collector : Py_None);
}

static PyObject *
span_id_function(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return make_span_id();
}

static PyObject *
trace_id_function(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return make_trace_id();
}

static PyObject *
current_function(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    if (current_var == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "current: configure() first");
        return NULL;
    }
    return current_record();
}

static PyObject *
reseed_function(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return reseed_ids() < 0 ? NULL : Py_NewRef(Py_None);
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(current_var, unsampled, SpanRecord, finish_after[, request_var]): once, at import."},
    {"new_trace_id", (PyCFunction)trace_id_function, METH_NOARGS,
     "new_trace_id() -> str: 32 hex digits, the first 12 the time in ms, the rest random."},
    {"new_span_id", (PyCFunction)span_id_function, METH_NOARGS,
     "new_span_id() -> str: 16 hex digits, the first 8 the time in ms modulo 2^32, the rest random; never all zeros."},
    {"reseed", (PyCFunction)reseed_function, METH_NOARGS, "reseed(): new random state (a forked child)."},
    {"current", (PyCFunction)current_function, METH_NOARGS,
     "current() -> the current span: the innermost running span under the context variable's (or its value)."},
    {"install", install, METH_VARARGS,
     "install(collector, spans, events, batch_ready, attention) or install(None): where finished spans go."},
    {"finish", (PyCFunction)(void (*)(void))finish, METH_FASTCALL,
     "finish(record, error=None): end a running span and buffer it."},
    {"start_child", (PyCFunction)(void (*)(void))start_child, METH_FASTCALL,
     "start_child(name, attributes): a new span, child of the current one (a new trace without one); "
     "``attributes`` is used as it is, not copied."},
    {"start_root", (PyCFunction)(void (*)(void))start_root, METH_FASTCALL,
     "start_root(parent, attributes, header_name): a request's first span, for the request's values "
     "(request_context.set_request) to make current; (record, None, (header_name, trace id bytes))."},
    {"start_request", (PyCFunction)(void (*)(void))start_request, METH_FASTCALL,
     "start_request(scope, headers): the request's root span (start_root's tuple), or None when it is "
     "not traced; the cases other than the common one go to configure_requests' start_slow."},
    {"configure_requests", configure_requests, METH_VARARGS,
     "configure_requests(paths, start_slow, trace_id_header, traceparent_header): once, at import."},
    {"start_upstream", (PyCFunction)(void (*)(void))start_upstream, METH_FASTCALL,
     "start_upstream(method, url, upstream) -> (record, traceparent) | None: an upstream call's span."},
    {"finish_upstream", (PyCFunction)(void (*)(void))finish_upstream, METH_FASTCALL,
     "finish_upstream(record, status): the upstream call's span ends with its HTTP status."},
    {"finish_root", (PyCFunction)(void (*)(void))finish_root, METH_FASTCALL,
     "finish_root(root, status, error, scope): the request's span ends, named by its route."},
    {"decode", spanbuffer_decode, METH_O, "decode(chunk) -> [span tuples]: a SpanBuffer chunk's spans."},
    {"encode", spanbuffer_encode, METH_O, "encode(spans) -> chunk: spans (tuples of their fields) as one chunk."},
    {"chunk_spans", spanbuffer_chunk_spans, METH_O, "chunk_spans(chunk) -> int: the spans a chunk holds."},
    {"chunk_rows", (PyCFunction)(void (*)(void))spanrows_chunk_rows, METH_FASTCALL,
     "chunk_rows(chunk, default_expiry_ns, json_text) -> [rows] | None: the span store's rows of a chunk "
     "(chunk_table.chunk_rows), or None when a value needs the Python path."},
    {"installed", collector_of, METH_NOARGS, "The collector spans go to now (None: tracing is off)."},
    {NULL},
};

static struct PyModuleDef spancore_module = {
    PyModuleDef_HEAD_INIT, "stack._spancore", "The request path of tracing, in C (see stack/tracing.py).", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__spancore(void)
{
    if (PyType_Ready(&SpanType) < 0 || PyType_Ready(&TracedCallType) < 0 || PyType_Ready(&TracedType) < 0
            || PyType_Ready(&SpanBufferType) < 0 || PyType_Ready(&InferenceAttributesType) < 0)
        return NULL;
    str_ok = PyUnicode_InternFromString("ok");
    str_error = PyUnicode_InternFromString("error");
    str_error_type = PyUnicode_InternFromString("error.type");
    str_empty = PyUnicode_InternFromString("");
    str_status_code = PyUnicode_InternFromString("http.response.status_code");
    str_route = PyUnicode_InternFromString("http.route");
    str_method = PyUnicode_InternFromString("method");
    str_model_id = PyUnicode_InternFromString("model_id");
    str_getattribute = PyUnicode_InternFromString("__getattribute__");
    object_getattribute = str_getattribute ? _PyType_Lookup(&PyBaseObject_Type, str_getattribute) : NULL;
    empty_tuple = PyTuple_New(0);
    root_names = PyDict_New();
    upstream_names = PyDict_New();
    str_request = PyUnicode_InternFromString("request");
    str_model = PyUnicode_InternFromString("model");
    str_usage = PyUnicode_InternFromString("usage");
    str_prompt_tokens = PyUnicode_InternFromString("prompt_tokens");
    str_completion_tokens = PyUnicode_InternFromString("completion_tokens");
    str_route_key = PyUnicode_InternFromString("route");
    str_path = PyUnicode_InternFromString("path");
    str_sample_rate = PyUnicode_InternFromString("sample_rate");
    str_method_attribute = PyUnicode_InternFromString("http.request.method");
    str_path_attribute = PyUnicode_InternFromString("url.path");
    str_url_attribute = PyUnicode_InternFromString("url.full");
    str_upstream_attribute = PyUnicode_InternFromString("polystack.upstream");
    str_upstream_prefix = PyUnicode_InternFromString("upstream ");
    if (str_ok == NULL || str_error == NULL || str_error_type == NULL || str_empty == NULL || str_status_code == NULL
            || str_route == NULL || str_method == NULL || str_route_key == NULL || str_path == NULL
            || str_model_id == NULL || str_request == NULL || str_model == NULL || str_usage == NULL
            || str_prompt_tokens == NULL || str_completion_tokens == NULL || str_sample_rate == NULL
            || str_method_attribute == NULL || str_path_attribute == NULL || str_url_attribute == NULL
            || str_upstream_attribute == NULL || str_upstream_prefix == NULL || object_getattribute == NULL
            || empty_tuple == NULL || root_names == NULL || upstream_names == NULL)
        return NULL;
    if (reseed_ids() < 0)
        return NULL;
    PyObject *module = PyModule_Create(&spancore_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddType(module, &TracedType) < 0 || PyModule_AddType(module, &TracedCallType) < 0
            || PyModule_AddType(module, &SpanBufferType) < 0 || PyModule_AddType(module, &InferenceAttributesType) < 0
            || PyModule_AddType(module, &SpanType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
