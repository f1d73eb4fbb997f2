/* Finished spans encoded as they end, into chunks of bytes the span writer process takes as they are.

   Before, a span ended as a tuple snapshot that waited in a deque, was marshalled for the writer
   (~18,000 instructions a traced request) and freed (its tuple, attribute dict and values) when
   the flush was done. Now ``finish`` writes the span's fields straight into the open chunk:
   no snapshot, and a flush hands over a list of ``bytes``.

   A chunk: b"PSB2", the span count (u32), then per span 'P' and its 11 fields. A value is a tag
   and its bytes: 'N' None, 'T'/'F' booleans, 'i' int64, 'f' double, 's' str (u32 length, UTF-8),
   'S' a str the decoder remembers (its n-th such), 'r' a remembered str again (u32 n), '(' tuple,
   '[' list and '{' dict (u32 count, then their items), 'm' anything else marshal writes (u32
   length, marshal data). A subclass of str, int or float is written as its value, and a value
   neither can write (an object) as its str(): what the span store's JSON would have made of them.
   Little-endian, as the machine writes.

   A SpanRecord (stack/_spanrecord.c) is written from the fields as it holds them, and decodes to
   what its tuple would. Its attributes, when they start from a shared dict (``Span.base``: a
   traced method's, or one made for a request's root or an upstream call), are
   'A' (u32: how many pairs the span added), the shared dict, then the added pairs; the shared
   dict is 'B' (u32 count, its pairs) its first time in the chunk (the decoder remembers it, as it
   does an 'S'), 'b' (u32 n: the n-th 'B') after that, or '{' once the chunk remembers as many as
   it may. So shared attributes are written once a chunk, not once a span. Chunks of
   the first format (b"PSB1", before 'A') still decode: span logs keep chunks across versions. */

#include "_spanbuffer.h"

#include <marshal.h>
#include <stdint.h>
#include <string.h>

#define MAGIC "PSB2"
#define MAGIC_V1 "PSB1"           /* chunks from before 'A' (span logs written by an earlier version) */
#define HEADER SPAN_CHUNK_HEADER  /* magic, span count */
#define REFS_SIZE 1024          /* the remembered-string table's slots (a power of two) */
#define REFS_MAX 640            /* strings remembered per chunk at most */
#define MAX_DEPTH SPAN_MAX_DEPTH  /* deeper values are written as their str() */
#define BASES_MAX 32             /* shared attribute dicts remembered per chunk at most */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
    uint32_t spans;
    /* strings seen more than once are likely to come again (attribute keys, names, a trace's id):
       by identity, holding a reference so that the identity stays theirs while the chunk is open */
    PyObject *ref_keys[REFS_SIZE];
    uint32_t ref_index[REFS_SIZE];
    uint32_t refs;
    /* the shared attribute dicts (``Span.base``: a traced method's, a root's, an upstream call's)
       written in the chunk, the n-th as base n: each written once a chunk, not once a span (no
       such dict is handed to Python or changed; held here so that its identity stays its) */
    PyObject *bases[BASES_MAX];
    uint32_t base_count;
} Encoder;

/* room for ``more`` bytes past the end: the rare case, out of line */
static int
grow(Encoder *enc, Py_ssize_t more)
{
    Py_ssize_t capacity = enc->capacity ? enc->capacity : 16384;
    while (capacity < enc->size + more)
        capacity *= 2;
    char *data = PyMem_Realloc(enc->data, capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    enc->data = data;
    enc->capacity = capacity;
    return 0;
}

static inline int
reserve(Encoder *enc, Py_ssize_t more)
{
    return enc->size + more <= enc->capacity ? 0 : grow(enc, more);
}

/* the fixed-size writes take constant sizes, so that their copies compile to moves */
static inline int
put_tag(Encoder *enc, char tag)
{
    if (reserve(enc, 1) < 0)
        return -1;
    enc->data[enc->size++] = tag;
    return 0;
}

static inline int
put_u32(Encoder *enc, char tag, uint32_t value)
{
    if (reserve(enc, 5) < 0)
        return -1;
    enc->data[enc->size] = tag;
    memcpy(enc->data + enc->size + 1, &value, 4);
    enc->size += 5;
    return 0;
}

static inline int
put_8(Encoder *enc, char tag, const void *bytes)
{
    if (reserve(enc, 9) < 0)
        return -1;
    enc->data[enc->size] = tag;
    memcpy(enc->data + enc->size + 1, bytes, 8);
    enc->size += 9;
    return 0;
}

static int
put_sized(Encoder *enc, char tag, const char *bytes, Py_ssize_t length)
{
    if (length > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "span value over 4 GiB");
        return -1;
    }
    uint32_t size = (uint32_t)length;
    if (reserve(enc, 5 + length) < 0)
        return -1;
    enc->data[enc->size] = tag;
    memcpy(enc->data + enc->size + 1, &size, 4);
    memcpy(enc->data + enc->size + 5, bytes, length);
    enc->size += 5 + length;
    return 0;
}

/* An exact int's value without a call when it has at most three digits and fits 63 bits (epoch
   nanoseconds take three); 0: PyLong_AsLongLongAndOverflow decides. CPython 3.11's layout: the
   digit count, with the sign, in ob_size. */
static inline int
small_long(PyObject *value, int64_t *out)
{
#if PY_VERSION_HEX < 0x030C0000
    const digit *d = ((PyLongObject *)value)->ob_digit;
    switch (Py_SIZE(value)) {
    case 0:
        *out = 0;
        return 1;
    case 1:
        *out = d[0];
        return 1;
    case -1:
        *out = -(int64_t)d[0];
        return 1;
    case 2:
        *out = (int64_t)d[0] | (int64_t)d[1] << PyLong_SHIFT;
        return 1;
    case 3:
        if (d[2] >> (63 - 2 * PyLong_SHIFT))
            return 0;
        *out = (int64_t)d[0] | (int64_t)d[1] << PyLong_SHIFT | (int64_t)d[2] << (2 * PyLong_SHIFT);
        return 1;
    }
#endif
    (void)value;
    (void)out;
    return 0;
}

static void
encoder_reset(Encoder *enc)
{
    for (Py_ssize_t i = 0; i < REFS_SIZE; i++)
        Py_CLEAR(enc->ref_keys[i]);
    enc->refs = 0;
    for (uint32_t i = 0; i < enc->base_count; i++)
        Py_CLEAR(enc->bases[i]);
    enc->base_count = 0;
    enc->spans = 0;
    enc->size = 0;
}

static void
encoder_free(Encoder *enc)
{
    encoder_reset(enc);
    PyMem_Free(enc->data);
    enc->data = NULL;
    enc->capacity = 0;
}

static int encode_value(Encoder *enc, PyObject *value, int depth);

/* where a string's search in the remembered strings starts */
static inline size_t
ref_slot(PyObject *text)
{
    return ((uintptr_t)text >> 4) * 0x9E3779B97F4A7C15ULL >> 54;  /* 10 bits: REFS_SIZE */
}

static int
encode_str(Encoder *enc, PyObject *text)
{
    Py_ssize_t length;
    const char *utf8;
    if (PyUnicode_IS_COMPACT_ASCII(text)) {  /* ids, names, keys: the string's own bytes, no call */
        utf8 = (const char *)PyUnicode_DATA(text);
        length = PyUnicode_GET_LENGTH(text);
    }
    else if ((utf8 = PyUnicode_AsUTF8AndSize(text, &length)) == NULL)
        return -1;
    if (Py_REFCNT(text) > 1) {
        size_t slot = ref_slot(text);
        while (enc->ref_keys[slot] != NULL) {
            if (enc->ref_keys[slot] == text) {
                uint32_t index = enc->ref_index[slot];
                return put_u32(enc, 'r', index);
            }
            slot = (slot + 1) & (REFS_SIZE - 1);
        }
        if (enc->refs < REFS_MAX) {
            enc->ref_keys[slot] = Py_NewRef(text);
            enc->ref_index[slot] = enc->refs++;
            return put_sized(enc, 'S', utf8, length);
        }
    }
    return put_sized(enc, 's', utf8, length);
}

static int
encode_items(Encoder *enc, char tag, PyObject *const *items, Py_ssize_t count, int depth)
{
    if (put_u32(enc, tag, (uint32_t)count) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < count; i++)
        if (encode_value(enc, items[i], depth + 1) < 0)
            return -1;
    return 0;
}

/* what no tag covers exactly: a subclass of str, int or float as its value (as JSON writes it),
   else marshal's bytes, else the value's str() */
static int
encode_other(Encoder *enc, PyObject *value, int depth)
{
    if (PyUnicode_Check(value)) {
        Py_ssize_t length;
        const char *utf8 = PyUnicode_AsUTF8AndSize(value, &length);
        return utf8 == NULL ? -1 : put_sized(enc, 's', utf8, length);
    }
    if (PyFloat_Check(value)) {
        double number = PyFloat_AS_DOUBLE(value);
        return put_8(enc, 'f', &number);
    }
    if (PyLong_Check(value) && !PyBool_Check(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (number == -1 && PyErr_Occurred())
            return -1;
        if (!overflow) {
            int64_t exact = number;
            return put_8(enc, 'i', &exact);
        }
    }
    if (depth < MAX_DEPTH) {
        PyObject *data = PyMarshal_WriteObjectToString(value, Py_MARSHAL_VERSION);
        if (data != NULL) {
            int failed = put_sized(enc, 'm', PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
            Py_DECREF(data);
            return failed;
        }
        PyErr_Clear();
    }
    PyObject *text = PyObject_Str(value);
    if (text == NULL) {
        PyErr_Clear();
        text = PyUnicode_FromFormat("<%s object>", Py_TYPE(value)->tp_name);
        if (text == NULL)
            return -1;
    }
    int failed = encode_str(enc, text);
    Py_DECREF(text);
    return failed;
}

static int
encode_value(Encoder *enc, PyObject *value, int depth)
{
    PyTypeObject *type = Py_TYPE(value);
    if (value == Py_None)
        return put_tag(enc, 'N');
    if (type == &PyUnicode_Type)
        return encode_str(enc, value);
    if (type == &PyBool_Type)
        return put_tag(enc, value == Py_True ? 'T' : 'F');
    if (type == &PyLong_Type) {
        int64_t small;
        if (small_long(value, &small))
            return put_8(enc, 'i', &small);
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow) {
            if (number == -1 && PyErr_Occurred())
                return -1;
            int64_t exact = number;
            return put_8(enc, 'i', &exact);
        }
        return encode_other(enc, value, depth);
    }
    if (type == &PyFloat_Type) {
        double number = PyFloat_AS_DOUBLE(value);
        return put_8(enc, 'f', &number);
    }
    if (depth >= MAX_DEPTH)
        return encode_other(enc, value, depth);
    if (type == &PyTuple_Type)
        return encode_items(enc, '(', &PyTuple_GET_ITEM(value, 0), PyTuple_GET_SIZE(value), depth);
    if (type == &PyList_Type)
        return encode_items(enc, '[', PySequence_Fast_ITEMS(value), PyList_GET_SIZE(value), depth);
    if (type == &PyDict_Type) {
        uint32_t size = (uint32_t)PyDict_GET_SIZE(value);
        if (put_u32(enc, '{', size) < 0)
            return -1;
        Py_ssize_t position = 0, written = 0;
        PyObject *key, *item;
        while (PyDict_Next(value, &position, &key, &item)) {
            if (encode_value(enc, key, depth + 1) < 0 || encode_value(enc, item, depth + 1) < 0)
                return -1;
            written++;
        }
        return written == size ? 0 : (PyErr_SetString(PyExc_RuntimeError, "a span's dict changed while written"), -1);
    }
    return encode_other(enc, value, depth);
}

/* a span id: a str written out (it comes once or twice in a chunk, its span's and its children's: not
   looked up in and added to the remembered strings, whose table it would fill), else any value */
static int
encode_id(Encoder *enc, PyObject *id)
{
    if (PyUnicode_CheckExact(id) && PyUnicode_IS_COMPACT_ASCII(id))
        return put_sized(enc, 's', (const char *)PyUnicode_DATA(id), PyUnicode_GET_LENGTH(id));
    return encode_value(enc, id, 1);
}

/* an id the span holds as 64 bits: its 16 hex digits as a str */
static int
encode_bits(Encoder *enc, uint64_t bits)
{
    const uint32_t length = 16;
    if (reserve(enc, 5 + length) < 0)
        return -1;
    enc->data[enc->size] = 's';
    memcpy(enc->data + enc->size + 1, &length, 4);
    put_hex(enc->data + enc->size + 5, bits, 16);
    enc->size += 5 + length;
    return 0;
}

static int
encode_ns(Encoder *enc, PyObject *given, int64_t ns)
{
    return given != NULL ? encode_value(enc, given, 1) : put_8(enc, 'i', &ns);
}

/* a shared dict's pairs after its tag and count */
static int
encode_pairs(Encoder *enc, char tag, PyObject *dict)
{
    if (put_u32(enc, tag, (uint32_t)PyDict_GET_SIZE(dict)) < 0)
        return -1;
    Py_ssize_t position = 0;
    PyObject *key, *item;
    while (PyDict_Next(dict, &position, &key, &item))
        if (encode_value(enc, key, 2) < 0 || encode_value(enc, item, 2) < 0)
            return -1;
    return 0;
}

/* A running span's attributes: its own dict, or the shared ones (once a chunk: 'A') and those the
   span added */
static int
encode_attributes(Encoder *enc, Span *span)
{
    if (span->attributes != NULL)
        return encode_value(enc, span->attributes, 1);
    /* a shared dict is never handed to Python (reading a span's attributes copies it): it cannot change here */
    if (span->base == NULL || PyDict_GET_SIZE(span->base) == 0) {
        if (put_u32(enc, '{', (uint32_t)span->added) < 0)
            return -1;
    }
    else {
        if (put_u32(enc, 'A', (uint32_t)span->added) < 0)
            return -1;
        uint32_t n = 0;
        while (n < enc->base_count && enc->bases[n] != span->base)
            n++;
        if (n < enc->base_count) {
            if (put_u32(enc, 'b', n) < 0)
                return -1;
        }
        else if (n < BASES_MAX) {
            if (encode_pairs(enc, 'B', span->base) < 0)
                return -1;
            enc->bases[enc->base_count++] = Py_NewRef(span->base);
        }
        else if (encode_pairs(enc, '{', span->base) < 0)
            return -1;
    }
    for (int i = 0; i < span->added; i++)
        if (encode_str(enc, span->added_keys[i]) < 0 || encode_value(enc, span->added_values[i], 2) < 0)
            return -1;
    return 0;
}

/* A SpanRecord's fields, as they are held */
static int
encode_record(Encoder *enc, Span *span)
{
    if (encode_value(enc, span->trace_id, 1) < 0
            || (span->span_id != NULL ? encode_id(enc, span->span_id) : encode_bits(enc, span->span_bits)) < 0
            || (span->parent_id != NULL ? encode_id(enc, span->parent_id)
                : span->parent_bits == 0 ? put_tag(enc, 'N') : encode_bits(enc, span->parent_bits)) < 0
            || encode_value(enc, span->name, 1) < 0
            || encode_ns(enc, span->start, span->start_ns) < 0
            || (span->end != NULL || span->ended ? encode_ns(enc, span->end, span->end_ns) : put_tag(enc, 'N')) < 0
            || encode_value(enc, span->status, 1) < 0
            || encode_value(enc, span->root, 1) < 0
            || encode_attributes(enc, span) < 0)
        return -1;
    return encode_value(enc, span->metrics, 1) < 0 || encode_value(enc, span->expires, 1) < 0 ? -1 : 0;
}

/* Forget the strings and shared dicts remembered since the ``refs``-th and ``bases``-th: a span
   that failed half way took back their bytes, so the decoder never learns them */
static void
forget_refs(Encoder *enc, uint32_t refs, uint32_t bases)
{
    for (; enc->base_count > bases; enc->base_count--)
        Py_CLEAR(enc->bases[enc->base_count - 1]);
    if (enc->refs == refs)
        return;
    /* open addressing: what stays must still be found from its own slot, so the table is built again */
    PyObject *keys[REFS_SIZE];
    uint32_t index[REFS_SIZE];
    memcpy(keys, enc->ref_keys, sizeof(keys));
    memcpy(index, enc->ref_index, sizeof(index));
    memset(enc->ref_keys, 0, sizeof(keys));
    for (Py_ssize_t i = 0; i < REFS_SIZE; i++) {
        if (keys[i] == NULL)
            continue;
        if (index[i] >= refs) {
            Py_DECREF(keys[i]);
            continue;
        }
        size_t slot = ref_slot(keys[i]);
        while (enc->ref_keys[slot] != NULL)
            slot = (slot + 1) & (REFS_SIZE - 1);
        enc->ref_keys[slot] = keys[i];
        enc->ref_index[slot] = index[i];
    }
    enc->refs = refs;
}

/* One span: a SpanRecord, or a tuple (or list) of its fields. */
static int
encode_span(Encoder *enc, PyObject *span)
{
    int record = Span_Check(span);
    if (!record && (!(PyList_Check(span) || PyTuple_Check(span)) || PySequence_Fast_GET_SIZE(span) != SPAN_FIELDS)) {
        PyErr_SetString(PyExc_TypeError, "a span is a SpanRecord or a tuple of its 11 fields");
        return -1;
    }
    Py_ssize_t start = enc->size;
    uint32_t refs = enc->refs, bases = enc->base_count;
    if (enc->size == 0) {  /* a new chunk: its header, the count filled in when it is sealed */
        if (reserve(enc, HEADER) < 0)
            return -1;
        memcpy(enc->data, MAGIC, 4);
        memset(enc->data + 4, 0, 4);
        enc->size = start = HEADER;
    }
    if (put_tag(enc, 'P') < 0)
        goto failed;
    if (record) {
        if (encode_record(enc, (Span *)span) < 0)
            goto failed;
    }
    else {
        PyObject *const *fields = PySequence_Fast_ITEMS(span);
        for (int i = 0; i < SPAN_FIELDS; i++)
            if ((i == SPAN_ID_FIELD || i == PARENT_ID_FIELD ? encode_id(enc, fields[i])
                 : encode_value(enc, fields[i], 1)) < 0)
                goto failed;
    }
    enc->spans++;
    return 0;
failed:
    enc->size = start;  /* the span is not half written */
    forget_refs(enc, refs, bases);
    return -1;
}

/* The open chunk as bytes (NULL and no error: it holds no span). */
static PyObject *
seal(Encoder *enc)
{
    if (enc->spans == 0)
        return NULL;
    memcpy(enc->data + 4, &enc->spans, 4);
    PyObject *chunk = PyBytes_FromStringAndSize(enc->data, enc->size);
    encoder_reset(enc);
    return chunk;
}

/* -- decoding ------------------------------------------------------------------------------- */

typedef struct {
    const char *data;
    Py_ssize_t size, at;
    PyObject *refs;  /* list of remembered strings */
    PyObject *bases; /* list of remembered shared attribute dicts */
} Decoder;

static int
take(Decoder *dec, void *out, Py_ssize_t length)
{
    if (dec->size - dec->at < length) {
        PyErr_SetString(PyExc_ValueError, "span chunk: truncated");
        return -1;
    }
    memcpy(out, dec->data + dec->at, length);
    dec->at += length;
    return 0;
}

static PyObject *decode_value(Decoder *dec, int depth);

/* ``count`` key-value pairs set in ``dict`` (taken over: NULL when one fails) */
static PyObject *
decode_pairs(Decoder *dec, PyObject *dict, uint32_t count, int depth)
{
    if (dict != NULL && count > (uint64_t)(dec->size - dec->at)) {  /* every item takes a byte at least */
        PyErr_SetString(PyExc_ValueError, "span chunk: a count past its end");
        Py_CLEAR(dict);
    }
    for (uint32_t i = 0; dict != NULL && i < count; i++) {
        PyObject *key = decode_value(dec, depth + 1);
        PyObject *value = key != NULL ? decode_value(dec, depth + 1) : NULL;
        if (value == NULL || PyDict_SetItem(dict, key, value) < 0)
            Py_CLEAR(dict);
        Py_XDECREF(key);
        Py_XDECREF(value);
    }
    return dict;
}

static PyObject *
decode_items(Decoder *dec, char tag, int depth)
{
    uint32_t count;
    if (take(dec, &count, 4) < 0)
        return NULL;
    if (count > (uint64_t)(dec->size - dec->at)) {  /* every item takes a byte at least */
        PyErr_SetString(PyExc_ValueError, "span chunk: a count past its end");
        return NULL;
    }
    if (tag == '{')
        return decode_pairs(dec, PyDict_New(), count, depth);
    PyObject *items = tag == '(' ? PyTuple_New(count) : PyList_New(count);
    for (uint32_t i = 0; items != NULL && i < count; i++) {
        PyObject *item = decode_value(dec, depth + 1);
        if (item == NULL)
            Py_CLEAR(items);
        else if (tag == '(')
            PyTuple_SET_ITEM(items, i, item);
        else
            PyList_SET_ITEM(items, i, item);
    }
    return items;
}

/* 'A': a copy of the shared dict that follows, with the span's added pairs set in it */
static PyObject *
decode_shared(Decoder *dec, int depth)
{
    uint32_t added, n;
    char tag;
    if (take(dec, &added, 4) < 0 || take(dec, &tag, 1) < 0)
        return NULL;
    PyObject *base;
    if (tag == 'b') {
        if (take(dec, &n, 4) < 0)
            return NULL;
        if (n >= (uint64_t)PyList_GET_SIZE(dec->bases)) {
            PyErr_SetString(PyExc_ValueError, "span chunk: a shared dict's reference before the dict");
            return NULL;
        }
        base = Py_NewRef(PyList_GET_ITEM(dec->bases, n));
    }
    else if (tag == 'B' || tag == '{') {
        base = decode_items(dec, '{', depth);
        if (base != NULL && tag == 'B' && PyList_Append(dec->bases, base) < 0)
            Py_CLEAR(base);
    }
    else {
        PyErr_Format(PyExc_ValueError, "span chunk: 0x%02x where a shared dict should be", (unsigned char)tag);
        return NULL;
    }
    PyObject *dict = base != NULL ? PyDict_Copy(base) : NULL;
    Py_XDECREF(base);
    return decode_pairs(dec, dict, added, depth);
}

static PyObject *
decode_value(Decoder *dec, int depth)
{
    char tag;
    if (depth > MAX_DEPTH + 1) {
        PyErr_SetString(PyExc_ValueError, "span chunk: nested too deep");
        return NULL;
    }
    if (take(dec, &tag, 1) < 0)
        return NULL;
    switch (tag) {
    case 'N':
        return Py_NewRef(Py_None);
    case 'T':
        return Py_NewRef(Py_True);
    case 'F':
        return Py_NewRef(Py_False);
    case 'i': {
        int64_t number;
        return take(dec, &number, 8) < 0 ? NULL : PyLong_FromLongLong(number);
    }
    case 'f': {
        double number;
        return take(dec, &number, 8) < 0 ? NULL : PyFloat_FromDouble(number);
    }
    case 'r': {
        uint32_t index;
        if (take(dec, &index, 4) < 0)
            return NULL;
        if (index >= (uint64_t)PyList_GET_SIZE(dec->refs)) {
            PyErr_SetString(PyExc_ValueError, "span chunk: a string reference before its string");
            return NULL;
        }
        return Py_NewRef(PyList_GET_ITEM(dec->refs, index));
    }
    case 's':
    case 'S':
    case 'm': {
        uint32_t length;
        if (take(dec, &length, 4) < 0)
            return NULL;
        if (length > (uint64_t)(dec->size - dec->at)) {
            PyErr_SetString(PyExc_ValueError, "span chunk: truncated");
            return NULL;
        }
        const char *bytes = dec->data + dec->at;
        dec->at += length;
        if (tag == 'm')
            return PyMarshal_ReadObjectFromString(bytes, length);
        PyObject *text = PyUnicode_DecodeUTF8(bytes, length, NULL);
        if (text != NULL && tag == 'S' && PyList_Append(dec->refs, text) < 0)
            Py_CLEAR(text);
        return text;
    }
    case '(':
    case '[':
    case '{':
        return decode_items(dec, tag, depth);
    case 'A':
        return decode_shared(dec, depth);
    default:
        PyErr_Format(PyExc_ValueError, "span chunk: unknown tag 0x%02x", (unsigned char)tag);
        return NULL;
    }
}

int
span_chunk_header(PyObject *chunk, uint32_t *spans)
{
    if (!PyBytes_Check(chunk)) {
        PyErr_SetString(PyExc_TypeError, "a span chunk is bytes");
        return -1;
    }
    if (PyBytes_GET_SIZE(chunk) < HEADER || (memcmp(PyBytes_AS_STRING(chunk), MAGIC, 4) != 0
                                             && memcmp(PyBytes_AS_STRING(chunk), MAGIC_V1, 4) != 0)) {
        PyErr_SetString(PyExc_ValueError, "not a span chunk (no PSB2 or PSB1 header)");
        return -1;
    }
    memcpy(spans, PyBytes_AS_STRING(chunk) + 4, 4);
    return 0;
}

/* decode(chunk): its spans, as tuples of their 11 fields */
PyObject *
spanbuffer_decode(PyObject *Py_UNUSED(module), PyObject *chunk)
{
    uint32_t count;
    if (span_chunk_header(chunk, &count) < 0)
        return NULL;
    Decoder dec = {PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk), HEADER, PyList_New(0), PyList_New(0)};
    PyObject *spans = dec.refs != NULL && dec.bases != NULL ? PyList_New(0) : NULL;
    for (uint32_t n = 0; spans != NULL && n < count; n++) {
        char tag;
        if (take(&dec, &tag, 1) < 0 || tag != 'P') {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "span chunk: a span does not start where one should");
            Py_CLEAR(spans);
            break;
        }
        PyObject *span = PyTuple_New(SPAN_FIELDS);
        for (int i = 0; span != NULL && i < SPAN_FIELDS; i++) {
            PyObject *value = decode_value(&dec, 1);
            if (value == NULL)
                Py_CLEAR(span);
            else
                PyTuple_SET_ITEM(span, i, value);
        }
        if (span == NULL || PyList_Append(spans, span) < 0)
            Py_CLEAR(spans);
        Py_XDECREF(span);
    }
    if (spans != NULL && dec.at != dec.size) {
        PyErr_SetString(PyExc_ValueError, "span chunk: bytes after its last span");
        Py_CLEAR(spans);
    }
    Py_XDECREF(dec.refs);
    Py_XDECREF(dec.bases);
    return spans;
}

/* encode(spans): one chunk of ``spans`` (tuples of their fields, or SpanRecords) */
PyObject *
spanbuffer_encode(PyObject *Py_UNUSED(module), PyObject *spans)
{
    PyObject *items = PySequence_Fast(spans, "encode: a sequence of spans");
    if (items == NULL)
        return NULL;
    Encoder *enc = PyMem_Calloc(1, sizeof(Encoder));
    if (enc == NULL) {
        Py_DECREF(items);
        return PyErr_NoMemory();
    }
    PyObject *chunk = NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < count; i++)
        if (encode_span(enc, PySequence_Fast_GET_ITEM(items, i)) < 0)
            goto done;
    chunk = count ? seal(enc) : PyBytes_FromStringAndSize(MAGIC "\0\0\0\0", HEADER);
done:
    encoder_free(enc);
    PyMem_Free(enc);
    Py_DECREF(items);
    return chunk;
}

/* chunk_spans(chunk): how many spans it holds */
PyObject *
spanbuffer_chunk_spans(PyObject *Py_UNUSED(module), PyObject *chunk)
{
    uint32_t count;
    return span_chunk_header(chunk, &count) < 0 ? NULL : PyLong_FromUnsignedLong(count);
}

/* -- SpanBuffer: the collector's spans ------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Encoder *open;             /* the chunk being written */
    PyObject *sealed;          /* full chunks (bytes), oldest first */
    Py_ssize_t sealed_spans;
    Py_ssize_t chunk_spans;    /* spans a chunk holds; 0: every span is discarded (benchmarks) */
} SpanBuffer;

int
span_buffer_append(PyObject *self, PyObject *span)
{
    SpanBuffer *buffer = (SpanBuffer *)self;
    if (buffer->chunk_spans == 0)
        return 0;
    if (encode_span(buffer->open, span) < 0)
        return -1;
    if ((Py_ssize_t)buffer->open->spans >= buffer->chunk_spans) {
        Py_ssize_t spans = buffer->open->spans;
        PyObject *chunk = seal(buffer->open);
        if (chunk == NULL || PyList_Append(buffer->sealed, chunk) < 0) {
            Py_XDECREF(chunk);
            return -1;
        }
        Py_DECREF(chunk);
        buffer->sealed_spans += spans;
    }
    return 0;
}

Py_ssize_t
span_buffer_count(PyObject *self)
{
    SpanBuffer *buffer = (SpanBuffer *)self;
    return buffer->sealed_spans + buffer->open->spans;
}

static PyObject *
buffer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"chunk_spans", NULL};
    Py_ssize_t chunk_spans = 512;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|n:SpanBuffer", keywords, &chunk_spans))
        return NULL;
    if (chunk_spans < 0) {
        PyErr_SetString(PyExc_ValueError, "SpanBuffer: chunk_spans must be 0 (discard) or more");
        return NULL;
    }
    SpanBuffer *self = (SpanBuffer *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->chunk_spans = chunk_spans;
    self->sealed = PyList_New(0);
    self->open = PyMem_Calloc(1, sizeof(Encoder));
    if (self->sealed == NULL || self->open == NULL) {
        int no_memory = self->open == NULL;
        Py_DECREF(self);
        return no_memory ? PyErr_NoMemory() : NULL;
    }
    return (PyObject *)self;
}

static void
buffer_dealloc(SpanBuffer *self)
{
    if (self->open != NULL) {
        encoder_free(self->open);
        PyMem_Free(self->open);
    }
    Py_XDECREF(self->sealed);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
buffer_append(SpanBuffer *self, PyObject *span)
{
    return span_buffer_append((PyObject *)self, span) < 0 ? NULL : Py_NewRef(Py_None);
}

/* take(): every chunk, the open one sealed; the buffer is left empty */
static PyObject *
buffer_take(SpanBuffer *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *last = seal(self->open);
    if (last == NULL && PyErr_Occurred())
        return NULL;
    PyObject *chunks = self->sealed;
    if (last != NULL) {
        int failed = PyList_Append(chunks, last);
        Py_DECREF(last);
        if (failed)
            return NULL;
    }
    self->sealed = PyList_New(0);
    self->sealed_spans = 0;
    if (self->sealed == NULL) {
        self->sealed = chunks;
        return NULL;
    }
    return chunks;
}

/* drop_oldest(): the oldest chunk goes (the open one when it is the only one); the spans it held */
static PyObject *
buffer_drop_oldest(SpanBuffer *self, PyObject *Py_UNUSED(ignored))
{
    if (PyList_GET_SIZE(self->sealed) > 0) {
        uint32_t count;
        if (span_chunk_header(PyList_GET_ITEM(self->sealed, 0), &count) < 0
                || PySequence_DelItem(self->sealed, 0) < 0)
            return NULL;
        self->sealed_spans -= count;
        return PyLong_FromUnsignedLong(count);
    }
    uint32_t count = self->open->spans;
    encoder_reset(self->open);
    return PyLong_FromUnsignedLong(count);
}

static PyObject *
buffer_clear(SpanBuffer *self, PyObject *Py_UNUSED(ignored))
{
    encoder_reset(self->open);
    self->sealed_spans = 0;
    return PyList_SetSlice(self->sealed, 0, PyList_GET_SIZE(self->sealed), NULL) < 0 ? NULL : Py_NewRef(Py_None);
}

static Py_ssize_t
buffer_length(SpanBuffer *self)
{
    return span_buffer_count((PyObject *)self);
}

/* ``chunk``'s spans added to the list ``spans`` */
static int
extend_decoded(PyObject *spans, PyObject *chunk)
{
    PyObject *decoded = spanbuffer_decode(NULL, chunk);
    if (decoded == NULL)
        return -1;
    Py_ssize_t end = PyList_GET_SIZE(spans);
    int failed = PyList_SetSlice(spans, end, end, decoded);
    Py_DECREF(decoded);
    return failed;
}

/* iter(buffer): its spans decoded, oldest first (for tests and tools; a flush uses take()) */
static PyObject *
buffer_iter(SpanBuffer *self)
{
    PyObject *spans = PyList_New(0);
    for (Py_ssize_t i = 0; spans != NULL && i < PyList_GET_SIZE(self->sealed); i++)
        if (extend_decoded(spans, PyList_GET_ITEM(self->sealed, i)) < 0)
            Py_CLEAR(spans);
    if (spans != NULL && self->open->spans > 0) {
        PyObject *open = PyBytes_FromStringAndSize(self->open->data, self->open->size);
        if (open != NULL)
            memcpy(PyBytes_AS_STRING(open) + 4, &self->open->spans, 4);  /* the count a seal would write */
        if (open == NULL || extend_decoded(spans, open) < 0)
            Py_CLEAR(spans);
        Py_XDECREF(open);
    }
    if (spans == NULL)
        return NULL;
    PyObject *iterator = PyObject_GetIter(spans);
    Py_DECREF(spans);
    return iterator;
}

static PySequenceMethods buffer_sequence = {
    .sq_length = (lenfunc)buffer_length,
};

static PyMethodDef buffer_methods[] = {
    {"append", (PyCFunction)buffer_append, METH_O,
     "append(span): encode a span (a SpanRecord or a tuple of its fields)."},
    {"take", (PyCFunction)buffer_take, METH_NOARGS,
     "take() -> [chunk bytes]: everything buffered; the buffer is emptied."},
    {"drop_oldest", (PyCFunction)buffer_drop_oldest, METH_NOARGS,
     "drop_oldest() -> int: drop the oldest chunk; the spans it held."},
    {"clear", (PyCFunction)buffer_clear, METH_NOARGS, "clear(): drop everything."},
    {NULL},
};

PyTypeObject SpanBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stack._spancore.SpanBuffer",
    .tp_doc = "SpanBuffer(chunk_spans=512): finished spans encoded as they are added, in chunks of bytes "
              "(decode() reads one); chunk_spans=0 discards every span.",
    .tp_basicsize = sizeof(SpanBuffer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = buffer_new,
    .tp_dealloc = (destructor)buffer_dealloc,
    .tp_as_sequence = &buffer_sequence,
    .tp_iter = (getiterfunc)buffer_iter,
    .tp_methods = buffer_methods,
};
