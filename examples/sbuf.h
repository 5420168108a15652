/*
 * sbuf: a growable byte buffer for the example servers' input and output. Header-only, no runtime calls: the
 * protocol code (resp.c, kv_store.c) and its unit tests use it without a running libfiber.
 *
 * Input buffers consume from the front (sbuf_consume) and are compacted before each read, so a connection's buffer
 * stays as small as its largest request.
 */
#ifndef EXAMPLES_SBUF_H
#define EXAMPLES_SBUF_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbuf {
	char *data;
	size_t off; /* consumed bytes at the front (input buffers) */
	size_t len; /* bytes in data[0..len), data[off..len) unconsumed */
	size_t cap;
};

static inline void sbuf_free(struct sbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

/* Make room for @n more bytes after len. 0, or -1 when out of memory (the buffer is left as it was). */
static inline int sbuf_reserve(struct sbuf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->cap - b->len >= n)
		return 0;
	if (b->off) { /* slide the unconsumed bytes to the front first */
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= n)
			return 0;
	}
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			return -1;
		cap *= 2;
	}
	p = realloc(b->data, cap);
	if (!p)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

static inline size_t sbuf_avail(const struct sbuf *b)
{
	return b->len - b->off;
}

static inline const char *sbuf_head(const struct sbuf *b)
{
	return b->data + b->off;
}

static inline void sbuf_consume(struct sbuf *b, size_t n)
{
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

static inline void sbuf_reset(struct sbuf *b)
{
	b->off = b->len = 0;
}

static inline int sbuf_append(struct sbuf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0; /* p may be NULL (an empty buffer's data): memcpy must not see it */
	if (sbuf_reserve(b, n))
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static inline int sbuf_puts(struct sbuf *b, const char *s)
{
	return sbuf_append(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static inline int sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (sbuf_reserve(b, 128))
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= b->cap - b->len) {
		if (sbuf_reserve(b, (size_t)n + 1))
			return -1;
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
	return 0;
}

/* Append the decimal form of @v: the reply builders' hot path, cheaper than printf. */
static inline int sbuf_put_i64(struct sbuf *b, int64_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return sbuf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

#endif
