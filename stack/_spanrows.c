/* The span store's rows of a chunk, made in C for the span writer process.

   The writer used to decode a chunk into span tuples, group them by trace in Python and have
   orjson write each trace's spans as JSON: ~13 µs of its ~30 µs a proxied request. Here the
   chunk's bytes are read where they lie: a first pass finds each span's fields (and the chunk's
   remembered strings), spans are grouped by trace id in a hash table, and each group's JSON is
   written straight from the bytes. The rows are chunk_table.chunk_rows's, field for field.

   Only what JSON writes exactly is handled: strings, 64-bit integers, booleans, None and finite
   floats, and attributes whose keys are strings and values are those. A chunk holding anything
   else (a nested or marshalled value, NaN) gives None, and the caller takes the Python path,
   which knows the store's own encoding of them. */

#include "_spanbuffer.h"

#include <math.h>
#include <string.h>

/* the span fields the rows read (stack/tracing.py's SpanRecord order) */
enum { TRACE_ID, SPAN_ID, PARENT, NAME, START, END, STATUS, ROOT, ATTRIBUTES, METRICS, EXPIRES };

typedef struct {
    const char *at;
    Py_ssize_t length;
} Text;

typedef struct {
    Text trace_id, span_id;
    Py_ssize_t stored_at;      /* where its span_id (the first stored field) starts */
    char root, has_end, has_expiry, first;  /* first: its trace's first span in the chunk */
    int64_t start, end, expiry;
    Py_ssize_t next;           /* the next span of its trace, -1 after the last */
} SpanView;

/* a shared attribute dict the chunk remembers ('B'): where its pairs are, and whether JSON writes them */
typedef struct {
    Py_ssize_t at;
    uint32_t count;
    char plain;
} BaseView;

typedef struct {
    const char *data;
    Py_ssize_t size, at;
    BaseView *bases;           /* the chunk's remembered shared dicts, in order */
    Py_ssize_t bases_count, bases_capacity;
    Text *refs;                /* the chunk's remembered strings, in order */
    signed char *clean;        /* per remembered string: 1 its JSON needs no escape, 0 it does, -1 not known yet */
    Py_ssize_t refs_count, refs_capacity;
    int replay;                /* reading again (the JSON pass): the strings are remembered already */
} Reader;

/* what a value is, as the rows need it */
typedef enum { V_TEXT, V_INT, V_NONE, V_BOOL, V_FLOAT, V_DICT, V_OTHER } Kind;

typedef struct {
    Kind kind;
    Text text;
    int64_t ref;               /* V_TEXT: its remembered string's index, or -1 */
    int64_t number;
    char truth;
} Value;

static int
need(Reader *r, Py_ssize_t length)
{
    if (r->size - r->at < length) {
        PyErr_SetString(PyExc_ValueError, "span chunk: truncated");
        return -1;
    }
    return 0;
}

static int
remember(Reader *r, Text text)
{
    if (r->refs_count == r->refs_capacity) {
        Py_ssize_t capacity = r->refs_capacity ? r->refs_capacity * 2 : 256;
        Text *refs = PyMem_Realloc(r->refs, capacity * sizeof(Text));
        if (refs != NULL)
            r->refs = refs;
        signed char *clean = refs != NULL ? PyMem_Realloc(r->clean, capacity) : NULL;
        if (clean == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        r->clean = clean;
        r->refs_capacity = capacity;
    }
    r->clean[r->refs_count] = -1;
    r->refs[r->refs_count++] = text;
    return 0;
}

static int
read_u32(Reader *r, uint32_t *out)
{
    if (need(r, 4) < 0)
        return -1;
    memcpy(out, r->data + r->at, 4);
    r->at += 4;
    return 0;
}

/* a sized run of bytes (a string's UTF-8, marshal's data) */
static int
read_sized(Reader *r, Text *out)
{
    uint32_t n;
    if (read_u32(r, &n) < 0 || need(r, n) < 0)
        return -1;
    out->at = r->data + r->at;
    out->length = n;
    r->at += n;
    return 0;
}

/* a string's bytes; ``*ref``: its index among the remembered strings when it is a reference to one, else -1 */
static int
read_text(Reader *r, char tag, Text *out, int64_t *ref)
{
    uint32_t n;
    *ref = -1;
    if (tag == 'r') {
        if (read_u32(r, &n) < 0)
            return -1;
        if (n >= (uint64_t)r->refs_count) {
            PyErr_SetString(PyExc_ValueError, "span chunk: a string reference before its string");
            return -1;
        }
        *out = r->refs[n];
        *ref = n;
        return 0;
    }
    if (read_sized(r, out) < 0)
        return -1;
    return tag == 'S' && !r->replay ? remember(r, *out) : 0;
}

static int read_value(Reader *r, Value *v, int depth);

/* ``count`` key-value pairs of a dict at ``depth``; ``*plain``: 0 unless every key is a string and
   every value plain */
static int
read_pairs(Reader *r, uint32_t count, int depth, int *plain)
{
    Value item;
    *plain = 1;
    for (uint64_t i = 0; i < 2 * (uint64_t)count; i++) {
        if (read_value(r, &item, depth + 1) < 0)
            return -1;
        if (i % 2 == 0 ? item.kind != V_TEXT : (item.kind == V_DICT || item.kind == V_OTHER))
            *plain = 0;
    }
    return 0;
}

static int
remember_base(Reader *r, Py_ssize_t at, uint32_t count, int plain)
{
    if (r->bases_count == r->bases_capacity) {
        Py_ssize_t capacity = r->bases_capacity ? r->bases_capacity * 2 : 16;
        BaseView *bases = PyMem_Realloc(r->bases, capacity * sizeof(BaseView));
        if (bases == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        r->bases = bases;
        r->bases_capacity = capacity;
    }
    r->bases[r->bases_count++] = (BaseView){at, count, (char)plain};
    return 0;
}

/* 'A' (its tag read): the shared dict ('B', 'b' or '{'), then the pairs the span added; plain as a
   span's attributes dict is */
static int
read_shared(Reader *r, Value *v, int depth)
{
    uint32_t added, n;
    int plain = depth == 1, pairs_plain;
    if (read_u32(r, &added) < 0 || need(r, 1) < 0)
        return -1;
    char tag = r->data[r->at++];
    if (read_u32(r, &n) < 0)
        return -1;
    if (tag == 'b') {
        if (n >= (uint64_t)r->bases_count) {
            PyErr_SetString(PyExc_ValueError, "span chunk: a shared dict's reference before the dict");
            return -1;
        }
        plain &= r->bases[n].plain;
    }
    else if (tag == 'B' || tag == '{') {
        Py_ssize_t at = r->at;
        if (read_pairs(r, n, depth, &pairs_plain) < 0)
            return -1;
        if (tag == 'B' && !r->replay && remember_base(r, at, n, pairs_plain) < 0)
            return -1;
        plain &= pairs_plain;
    }
    else {
        PyErr_Format(PyExc_ValueError, "span chunk: 0x%02x where a shared dict should be", (unsigned char)tag);
        return -1;
    }
    if (read_pairs(r, added, depth, &pairs_plain) < 0)
        return -1;
    v->kind = plain && pairs_plain ? V_DICT : V_OTHER;
    return 0;
}

/* Read one value at r->at. A dict (attributes) is checked for string keys and plain values;
   anything nested or marshalled is V_OTHER (skipped past). */
static int
read_value(Reader *r, Value *v, int depth)
{
    char tag;
    if (depth > SPAN_MAX_DEPTH + 1) {
        PyErr_SetString(PyExc_ValueError, "span chunk: nested too deep");
        return -1;
    }
    if (need(r, 1) < 0)
        return -1;
    tag = r->data[r->at++];
    switch (tag) {
    case 'N':
        v->kind = V_NONE;
        return 0;
    case 'T':
    case 'F':
        v->kind = V_BOOL;
        v->truth = tag == 'T';
        return 0;
    case 'i':
    case 'f':
        if (need(r, 8) < 0)
            return -1;
        if (tag == 'i') {
            memcpy(&v->number, r->data + r->at, 8);
            v->kind = V_INT;
        }
        else {
            double number;
            memcpy(&number, r->data + r->at, 8);
            v->kind = isfinite(number) ? V_FLOAT : V_OTHER;
        }
        r->at += 8;
        return 0;
    case 's':
    case 'S':
    case 'r':
        v->kind = V_TEXT;
        return read_text(r, tag, &v->text, &v->ref);
    case 'm':
        v->kind = V_OTHER;
        return read_sized(r, &v->text);
    case '{': {
        uint32_t count;
        int plain;
        if (read_u32(r, &count) < 0 || read_pairs(r, count, depth, &plain) < 0)
            return -1;
        v->kind = plain && depth == 1 ? V_DICT : V_OTHER;  /* a span's attributes: str keys, plain values */
        return 0;
    }
    case '(':
    case '[': {
        uint32_t count;
        Value item;
        if (read_u32(r, &count) < 0)
            return -1;
        for (uint32_t i = 0; i < count; i++)
            if (read_value(r, &item, depth + 1) < 0)
                return -1;
        v->kind = V_OTHER;
        return 0;
    }
    case 'A':
        return read_shared(r, v, depth);
    default:
        PyErr_Format(PyExc_ValueError, "span chunk: unknown tag 0x%02x", (unsigned char)tag);
        return -1;
    }
}

/* -- JSON output ------------------------------------------------------------------------------ */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
} Out;

static int
grow(Out *o, Py_ssize_t more)
{
    if (o->size + more <= o->capacity)
        return 0;
    Py_ssize_t capacity = o->capacity ? o->capacity : 4096;
    while (capacity < o->size + more)
        capacity *= 2;
    char *data = PyMem_Realloc(o->data, capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->data = data;
    o->capacity = capacity;
    return 0;
}

static int
out_bytes(Out *o, const char *bytes, Py_ssize_t length)
{
    if (grow(o, length) < 0)
        return -1;
    memcpy(o->data + o->size, bytes, length);
    o->size += length;
    return 0;
}

/* bytes a JSON string cannot hold as they are: '"', '\' and the control characters */
static int
needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* whether none of 8 bytes needs escaping: no byte below 0x20, no '"', no '\' (the "has a byte
   less than n" and "has a zero byte" word tricks: exact about whether any byte does) */
static int
clean_word(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
    return ((((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash)) & highs) == 0;
}

/* the end of the run from ``at`` that a JSON string holds as it is (no byte to escape), words at a time */
static inline const unsigned char *
clean_run(const unsigned char *at, const unsigned char *end)
{
    uint64_t word;
    while (end - at >= 8 && (memcpy(&word, at, 8), clean_word(word)))
        at += 8;
    while (at < end && !needs_escape(*at))
        at++;
    return at;
}

/* a JSON string of UTF-8 text: '"' and '\' escaped, control characters as \uXXXX (or their short
   forms), the rest as it is, copied in runs */
static int
out_string(Out *o, Text text)
{
    static const char hex[] = "0123456789abcdef";
    if (grow(o, text.length * 6 + 2) < 0)
        return -1;
    char *w = o->data + o->size;
    const unsigned char *at = (const unsigned char *)text.at, *end = at + text.length;
    *w++ = '"';
    while (at < end) {
        const unsigned char *run = at;
        at = clean_run(at, end);
        memcpy(w, run, at - run);
        w += at - run;
        if (at == end)
            break;
        unsigned char c = *at++;
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '\n': *w++ = 'n'; break;
        case '\r': *w++ = 'r'; break;
        case '\t': *w++ = 't'; break;
        case '\b': *w++ = 'b'; break;
        case '\f': *w++ = 'f'; break;
        default:
            *w++ = 'u'; *w++ = '0'; *w++ = '0'; *w++ = hex[c >> 4]; *w++ = hex[c & 15];
        }
    }
    *w++ = '"';
    o->size = w - o->data;
    return 0;
}

/* a JSON string of text that needs no escaping: its bytes between quotes */
static int
out_quoted(Out *o, Text text)
{
    if (grow(o, text.length + 2) < 0)
        return -1;
    char *w = o->data + o->size;
    *w = '"';
    memcpy(w + 1, text.at, text.length);
    w[text.length + 1] = '"';
    o->size += text.length + 2;
    return 0;
}

/* a 64-bit integer in decimal, two digits a step (snprintf took a fifth of the rows' time) */
static int
out_int(Out *o, int64_t number)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    char digits[21];
    int n = sizeof(digits);
    uint64_t magnitude = number < 0 ? (uint64_t)0 - (uint64_t)number : (uint64_t)number;
    while (magnitude >= 100) {
        n -= 2;
        memcpy(digits + n, pairs + 2 * (magnitude % 100), 2);
        magnitude /= 100;
    }
    if (magnitude >= 10) {
        n -= 2;
        memcpy(digits + n, pairs + 2 * magnitude, 2);
    }
    else
        digits[--n] = (char)('0' + magnitude);
    if (number < 0)
        digits[--n] = '-';
    return out_bytes(o, digits + n, sizeof(digits) - n);
}

static int out_value(Reader *r, Out *o);

/* ``count`` pairs at r->at as JSON members, a comma before each but the object's first */
static int
out_pairs(Reader *r, Out *o, uint32_t count, uint32_t *written)
{
    for (uint32_t i = 0; i < count; i++, (*written)++)
        if ((*written && out_bytes(o, ",", 1) < 0) || out_value(r, o) < 0 || out_bytes(o, ":", 1) < 0
                || out_value(r, o) < 0)
            return -1;
    return 0;
}

/* Write the value at r->at as JSON (read_value has vouched for it: plain, or a plain dict). */
static int
out_value(Reader *r, Out *o)
{
    char tag = r->data[r->at];
    uint32_t count, written = 0;
    Value v;
    if (tag == '{') {
        memcpy(&count, r->data + r->at + 1, 4);
        r->at += 5;
        if (out_bytes(o, "{", 1) < 0 || out_pairs(r, o, count, &written) < 0)
            return -1;
        return out_bytes(o, "}", 1);
    }
    if (tag == 'A') {  /* the shared pairs (where the chunk first wrote them, for a 'b'), then the added */
        uint32_t added;
        memcpy(&added, r->data + r->at + 1, 4);
        char shared = r->data[r->at + 5];
        memcpy(&count, r->data + r->at + 6, 4);
        r->at += 10;
        if (out_bytes(o, "{", 1) < 0)
            return -1;
        if (shared == 'b') {
            Py_ssize_t after = r->at;
            r->at = r->bases[count].at;
            if (out_pairs(r, o, r->bases[count].count, &written) < 0)
                return -1;
            r->at = after;
        }
        else if (out_pairs(r, o, count, &written) < 0)
            return -1;
        if (out_pairs(r, o, added, &written) < 0)
            return -1;
        return out_bytes(o, "}", 1);
    }
    Py_ssize_t at = r->at;
    if (read_value(r, &v, 2) < 0)
        return -1;
    switch (v.kind) {
    case V_TEXT:
        if (v.ref >= 0) {  /* a key or name again: whether it needs escaping is known after its first time */
            signed char *clean = &r->clean[v.ref];
            if (*clean < 0) {
                const unsigned char *at = (const unsigned char *)v.text.at;
                *clean = clean_run(at, at + v.text.length) == at + v.text.length;
            }
            if (*clean)
                return out_quoted(o, v.text);
        }
        return out_string(o, v.text);
    case V_INT:
        return out_int(o, v.number);
    case V_NONE:
        return out_bytes(o, "null", 4);
    case V_BOOL:
        return v.truth ? out_bytes(o, "true", 4) : out_bytes(o, "false", 5);
    case V_FLOAT: {
        double x;
        memcpy(&x, r->data + at + 1, 8);
        /* repr's shortest round-trip digits, as Python's json writes them */
        char *text = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL)
            return -1;
        int failed = out_bytes(o, text, strlen(text));
        PyMem_Free(text);
        return failed;
    }
    default:
        PyErr_SetString(PyExc_SystemError, "chunk_rows: a value it cannot write");
        return -1;
    }
}

/* -- grouping and rows ------------------------------------------------------------------------ */

/* a trace id's hash: its last 8 bytes mixed (the random end of the ids made here), FNV-1a for
   shorter ones */
static uint64_t
text_hash(Text t)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)t.length;
    if (t.length >= 8) {
        uint64_t tail;
        memcpy(&tail, t.at + t.length - 8, 8);
        h ^= tail;
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
        return h ^ (h >> 31);
    }
    for (Py_ssize_t i = 0; i < t.length; i++)
        h = (h ^ (unsigned char)t.at[i]) * 1099511628211ULL;
    return h;
}

static int
same_text(Text a, Text b)
{
    return a.length == b.length && memcmp(a.at, b.at, a.length) == 0;
}

/* UTF-8 text as a str: copied when it is all ASCII (ids, names, most JSON), which takes a fraction
   of what decoding it does, else decoded */
static PyObject *
as_str(Text t)
{
    const unsigned char *at = (const unsigned char *)t.at, *end = at + t.length;
    uint64_t high = 0, word;
    for (; end - at >= 8; at += 8) {
        memcpy(&word, at, 8);
        high |= word;
    }
    for (; at < end; at++)
        high |= *at;
    if (high & 0x8080808080808080ULL)
        return PyUnicode_DecodeUTF8(t.at, t.length, NULL);
    PyObject *text = PyUnicode_New(t.length, 127);
    if (text != NULL)
        memcpy(PyUnicode_1BYTE_DATA(text), t.at, t.length);
    return text;
}

static PyObject *
optional_int(char present, int64_t value)
{
    return present ? PyLong_FromLongLong(value) : Py_NewRef(Py_None);
}

/* the kinds each field may have for the rows to be made here (bits: 1 << Kind) */
#define K(kind) (1u << (kind))
static const unsigned allowed[SPAN_FIELDS] = {
    [TRACE_ID] = K(V_TEXT), [SPAN_ID] = K(V_TEXT), [PARENT] = K(V_TEXT) | K(V_NONE), [NAME] = K(V_TEXT) | K(V_NONE),
    [START] = K(V_INT), [END] = K(V_INT) | K(V_NONE), [STATUS] = K(V_TEXT) | K(V_NONE), [ROOT] = K(V_BOOL),
    [ATTRIBUTES] = K(V_DICT), [METRICS] = ~0u, [EXPIRES] = K(V_INT) | K(V_NONE),
};
#undef K

/* Read the chunk's spans into ``spans`` (count of them); 1 if every one is JSON-writable, 0 if not. */
static int
scan(Reader *r, SpanView *spans, uint32_t count)
{
    Value v;
    for (uint32_t n = 0; n < count; n++) {
        SpanView *s = &spans[n];
        if (need(r, 1) < 0)
            return -1;
        if (r->data[r->at++] != 'P') {
            PyErr_SetString(PyExc_ValueError, "span chunk: a span does not start where one should");
            return -1;
        }
        for (int field = 0; field < SPAN_FIELDS; field++) {
            if (field == SPAN_ID)
                s->stored_at = r->at;
            if (read_value(r, &v, 1) < 0)
                return -1;
            if (!(allowed[field] >> v.kind & 1))
                return 0;
            switch (field) {
            case TRACE_ID: s->trace_id = v.text; break;
            case SPAN_ID: s->span_id = v.text; break;
            case START: s->start = v.number; break;
            case END: s->has_end = v.kind == V_INT; s->end = v.number; break;
            case ROOT: s->root = v.truth; break;
            /* 0 counts as unset, as ``span[10] or default`` does */
            case EXPIRES: s->has_expiry = v.kind == V_INT && v.number != 0; s->expiry = v.number; break;
            }
        }
    }
    if (r->at != r->size) {
        PyErr_SetString(PyExc_ValueError, "span chunk: bytes after its last span");
        return -1;
    }
    return 1;
}

/* One row, its values in chunk_table.CHUNK_COLUMNS' order (trace_id, chunk_id, root, root_span_id, start_ns,
   end_ns, expires_ns, spans): the spans of a trace from ``first`` on (linked by ``next``). */
static PyObject *
make_row(Reader *r, SpanView *spans, Py_ssize_t first, int has_default, int64_t default_expiry, PyObject *json_text,
         Out *o)
{
    SpanView *root = NULL;
    int64_t start = spans[first].start, expiry = 0;
    int expires = 1;
    o->size = 0;
    if (out_bytes(o, "[", 1) < 0)
        return NULL;
    for (Py_ssize_t n = first; n >= 0; n = spans[n].next) {
        SpanView *s = &spans[n];
        if (root == NULL && s->root)
            root = s;
        if (s->start < start)
            start = s->start;
        int64_t end = s->has_expiry ? s->expiry : default_expiry;
        if (!s->has_expiry && !has_default)
            expires = 0;  /* one kept for good keeps the chunk */
        else if (end > expiry || n == first)
            expiry = end;
        /* [span_id, parent, name, start, end, status, root, attributes] */
        r->at = s->stored_at;
        if ((n != first && out_bytes(o, ",", 1) < 0) || out_bytes(o, "[", 1) < 0)
            return NULL;
        for (int field = SPAN_ID; field <= ATTRIBUTES; field++)
            if ((field != SPAN_ID && out_bytes(o, ",", 1) < 0) || out_value(r, o) < 0)
                return NULL;
        if (out_bytes(o, "]", 1) < 0)
            return NULL;
    }
    if (out_bytes(o, "]", 1) < 0)
        return NULL;
    if (root != NULL)
        start = root->start;
    PyObject *text = as_str((Text){o->data, o->size});
    PyObject *encoded = text ? PyObject_CallOneArg(json_text, text) : NULL;
    Py_XDECREF(text);
    PyObject *row = encoded ? PyTuple_New(8) : NULL;
    if (row == NULL) {
        Py_XDECREF(encoded);
        return NULL;
    }
    PyObject *values[8] = {
        as_str(spans[first].trace_id), as_str(spans[first].span_id), Py_NewRef(root ? Py_True : Py_False),
        root ? as_str(root->span_id) : Py_NewRef(Py_None), PyLong_FromLongLong(start),
        root ? optional_int(root->has_end, root->end) : Py_NewRef(Py_None), optional_int(expires, expiry), encoded,
    };
    int failed = 0;
    for (int i = 0; i < 8; i++) {
        if (values[i] == NULL)
            failed = 1;
        else
            PyTuple_SET_ITEM(row, i, values[i]);  /* steals it */
    }
    if (failed) {
        Py_DECREF(row);
        return NULL;
    }
    return row;
}

/* chunk_rows(chunk, default_expiry_ns, json_text): chunk_table.chunk_rows of the chunk's spans (a row per
   trace, in the order of their first spans, a tuple in chunk_table.CHUNK_COLUMNS' order), the JSON of each
   made here and wrapped by ``json_text`` (storage's JsonText); None when the chunk holds a value only
   the Python path writes right. */
PyObject *
spanrows_chunk_rows(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || (args[1] != Py_None && !PyLong_Check(args[1]))) {
        PyErr_SetString(PyExc_TypeError, "chunk_rows(chunk: bytes, default_expiry_ns: int | None, json_text)");
        return NULL;
    }
    uint32_t count;
    if (span_chunk_header(args[0], &count) < 0)
        return NULL;
    int has_default = args[1] != Py_None;
    int64_t default_expiry = has_default ? PyLong_AsLongLong(args[1]) : 0;
    if (default_expiry == -1 && PyErr_Occurred())
        return NULL;
    if (count > (uint64_t)PyBytes_GET_SIZE(args[0]) / 12) {  /* a span takes 12 bytes at least: 'P', 11 tags */
        PyErr_SetString(PyExc_ValueError, "span chunk: a count past its end");
        return NULL;
    }
    Reader r = {.data = PyBytes_AS_STRING(args[0]), .size = PyBytes_GET_SIZE(args[0]), .at = SPAN_CHUNK_HEADER};
    SpanView *spans = PyMem_Calloc(count ? count : 1, sizeof(SpanView));
    size_t slots = 16;
    while (slots < 2 * (size_t)count)
        slots *= 2;
    Py_ssize_t *table = PyMem_Malloc(slots * sizeof(Py_ssize_t));  /* trace -> its first span */
    Py_ssize_t *last = PyMem_Malloc((count ? count : 1) * sizeof(Py_ssize_t));  /* first span -> its trace's last */
    Out out = {NULL, 0, 0};
    PyObject *rows = NULL;
    if (spans == NULL || table == NULL || last == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int writable = scan(&r, spans, count);
    if (writable < 0)
        goto done;
    if (!writable) {
        rows = Py_NewRef(Py_None);
        goto done;
    }
    r.replay = 1;
    for (size_t i = 0; i < slots; i++)
        table[i] = -1;
    for (Py_ssize_t n = 0; n < (Py_ssize_t)count; n++) {
        spans[n].next = -1;
        size_t slot = text_hash(spans[n].trace_id) & (slots - 1);
        while (table[slot] >= 0 && !same_text(spans[table[slot]].trace_id, spans[n].trace_id))
            slot = (slot + 1) & (slots - 1);
        if (table[slot] < 0) {
            table[slot] = n;
            last[n] = n;
            spans[n].first = 1;
        }
        else {
            Py_ssize_t first = table[slot];
            spans[last[first]].next = n;
            last[first] = n;
        }
    }
    rows = PyList_New(0);
    for (Py_ssize_t n = 0; rows != NULL && n < (Py_ssize_t)count; n++) {  /* in the order of first spans */
        if (!spans[n].first)
            continue;
        PyObject *row = make_row(&r, spans, n, has_default, default_expiry, args[2], &out);
        if (row == NULL || PyList_Append(rows, row) < 0)
            Py_CLEAR(rows);
        Py_XDECREF(row);
    }
done:
    PyMem_Free(spans);
    PyMem_Free(table);
    PyMem_Free(last);
    PyMem_Free(r.refs);
    PyMem_Free(r.bases);
    PyMem_Free(r.clean);
    PyMem_Free(out.data);
    return rows;
}
