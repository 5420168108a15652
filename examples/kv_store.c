/*
 * kv_store.c: the sharded hash table and the commands kv_server answers (see kv_store.h). What it owns: every key
 * and value, their expiry times, and the wording of each reply. What it promises: a reply for every command, in
 * Redis's words for its errors, and no lock held across anything that can block on a client.
 *
 * Locking: shard->lock protects that shard's buckets, entries and counts. A command that touches several shards
 * takes their locks in ascending shard order. No other lock is taken under a shard lock. The lock is a
 * fiber_mutex_t: one compare-and-swap each way when uncontended, where fiber_rwlock_t takes its internal spinlock
 * on both; on a loaded 2-CPU machine, redis-benchmark's single hot key (INCR, -c 50, 2 workers) ran at 34-44k
 * requests/s with the mutex and 20k with the rwlock. Build with -DKV_RWLOCK=1 for the rwlock (readers share).
 */
#include "kv_store.h"

#include <errno.h>
#include <fiber.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef KV_RWLOCK
#define KV_RWLOCK 0 /* see "Locking" above */
#endif
#if KV_RWLOCK
typedef fiber_rwlock_t kv_lock_t;
#else
typedef fiber_mutex_t kv_lock_t;
#endif

struct kv_entry {
	struct kv_entry *next; /* bucket chain */
	uint64_t hash;
	int64_t expire_ms; /* CLOCK_MONOTONIC ms at which the key goes away; 0 = never */
	uint32_t klen;
	uint32_t vlen;
	char data[]; /* key, then value */
};

struct kv_shard {
	kv_lock_t lock;
	struct kv_entry **buckets; /* lock */
	size_t nbuckets;	   /* lock; a power of two */
	size_t count;		   /* lock; entries, expired ones not yet removed included */
	size_t volatile_count;	   /* lock; entries with an expiry */
} __attribute__((aligned(64)));

/*
 * Commands run, counted per worker: one shared counter would be a cache line that every command on every worker
 * writes. A fiber that migrates between load and store cannot lose a count: the add is atomic (relaxed).
 */
#define KV_COUNT_SLOTS 64
struct kv_count {
	_Atomic uint64_t n;
} __attribute__((aligned(64)));

struct kv_store {
	unsigned nshards;
	unsigned shard_shift;	    /* shard = hash >> shard_shift */
	struct kv_count *commands;  /* KV_COUNT_SLOTS slots, one per worker id (mod): statistics only */
	_Atomic unsigned expire_at; /* next shard kv_store_expire_cycle looks at: relaxed */
	struct kv_shard *shards;
};

static inline void shard_rdlock(kv_lock_t *l)
{
#if KV_RWLOCK
	fiber_rwlock_rdlock(l);
#else
	fiber_mutex_lock(l);
#endif
}

static inline void shard_wrlock(kv_lock_t *l)
{
#if KV_RWLOCK
	fiber_rwlock_wrlock(l);
#else
	fiber_mutex_lock(l);
#endif
}

static inline void shard_unlock(kv_lock_t *l)
{
#if KV_RWLOCK
	fiber_rwlock_unlock(l);
#else
	fiber_mutex_unlock(l);
#endif
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a, then a final mix so that the top bits (the shard) depend on every byte. */
static uint64_t hash_key(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

int kv_store_create(struct kv_store **out, unsigned nshards)
{
	struct kv_store *kv;
	unsigned bits = 0;

	if (!out || nshards == 0 || nshards > 65536 || (nshards & (nshards - 1)))
		return -EINVAL;
	while ((1u << bits) < nshards)
		bits++;
	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return -ENOMEM;
	kv->nshards = nshards;
	kv->shard_shift = 64 - bits; /* bits == 0: a shift by 64 is undefined, shard_of handles it */
	if (posix_memalign((void **)&kv->shards, 64, nshards * sizeof(*kv->shards))) {
		free(kv);
		return -ENOMEM;
	}
	memset(kv->shards, 0, nshards * sizeof(*kv->shards));
	if (posix_memalign((void **)&kv->commands, 64, KV_COUNT_SLOTS * sizeof(*kv->commands))) {
		free(kv->shards);
		free(kv);
		return -ENOMEM;
	}
	memset(kv->commands, 0, KV_COUNT_SLOTS * sizeof(*kv->commands));
	for (unsigned i = 0; i < nshards; i++) {
		struct kv_shard *s = &kv->shards[i];

#if KV_RWLOCK
		fiber_rwlock_init(&s->lock);
#else
		fiber_mutex_init(&s->lock);
#endif
		s->nbuckets = 16;
		s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
		if (!s->buckets) {
			kv_store_destroy(kv);
			return -ENOMEM;
		}
	}
	*out = kv;
	return 0;
}

static void shard_clear(struct kv_shard *s)
{
	for (size_t b = 0; b < s->nbuckets; b++) {
		struct kv_entry *e = s->buckets[b], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
		s->buckets[b] = NULL;
	}
	s->count = s->volatile_count = 0;
}

void kv_store_destroy(struct kv_store *kv)
{
	if (!kv)
		return;
	for (unsigned i = 0; i < kv->nshards; i++) {
		if (kv->shards[i].buckets)
			shard_clear(&kv->shards[i]);
		free(kv->shards[i].buckets);
#if KV_RWLOCK
		fiber_rwlock_destroy(&kv->shards[i].lock);
#else
		fiber_mutex_destroy(&kv->shards[i].lock);
#endif
	}
	free(kv->shards);
	free(kv->commands);
	free(kv);
}

static unsigned shard_index(const struct kv_store *kv, uint64_t h)
{
	return kv->nshards == 1 ? 0 : (unsigned)(h >> kv->shard_shift);
}

static struct kv_shard *shard_of(struct kv_store *kv, uint64_t h)
{
	return &kv->shards[shard_index(kv, h)];
}

static bool expired(const struct kv_entry *e, int64_t *now)
{
	if (!e->expire_ms)
		return false;
	if (!*now)
		*now = now_ms();
	return e->expire_ms <= *now;
}

/* The entry for key (k, n) in @s, expired or not, and the link that points at it. Caller holds s->lock. */
static struct kv_entry **find_link(struct kv_shard *s, uint64_t h, const char *k, size_t n)
{
	struct kv_entry **link = &s->buckets[h & (s->nbuckets - 1)];

	for (; *link; link = &(*link)->next) {
		struct kv_entry *e = *link;

		if (e->hash == h && e->klen == n && memcmp(e->data, k, n) == 0)
			break;
	}
	return link;
}

/* A live entry for the key, or NULL. Caller holds s->lock (read is enough). */
static struct kv_entry *lookup(struct kv_shard *s, uint64_t h, const char *k, size_t n, int64_t *now)
{
	struct kv_entry *e = *find_link(s, h, k, n);

	return e && !expired(e, now) ? e : NULL;
}

static void unlink_entry(struct kv_shard *s, struct kv_entry **link)
{
	struct kv_entry *e = *link;

	*link = e->next;
	s->count--;
	if (e->expire_ms)
		s->volatile_count--;
	free(e);
}

static void shard_grow(struct kv_shard *s)
{
	size_t n = s->nbuckets * 2;
	struct kv_entry **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return; /* longer chains, still correct */
	for (size_t b = 0; b < s->nbuckets; b++) {
		struct kv_entry *e = s->buckets[b], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	free(s->buckets);
	s->buckets = nb;
	s->nbuckets = n;
}

static struct kv_entry *entry_new(uint64_t h, const char *k, size_t kl, const char *v, size_t vl, int64_t expire)
{
	struct kv_entry *e;

	if (kl > UINT32_MAX || vl > UINT32_MAX)
		return NULL;
	e = malloc(sizeof(*e) + kl + vl);
	if (!e)
		return NULL;
	e->next = NULL;
	e->hash = h;
	e->expire_ms = expire;
	e->klen = (uint32_t)kl;
	e->vlen = (uint32_t)vl;
	memcpy(e->data, k, kl);
	memcpy(e->data + kl, v, vl);
	return e;
}

/*
 * Store (k, v) in @s, replacing what is there; @expire as entry->expire_ms, or -1 to keep the old entry's expiry
 * (KEEPTTL). Caller holds s->lock for writing. 0 or -1 (out of memory; the old value stays).
 */
static int store(struct kv_shard *s, uint64_t h, const char *k, size_t kl, const char *v, size_t vl, int64_t expire)
{
	struct kv_entry **link = find_link(s, h, k, kl), *old = *link, *e;

	if (expire < 0)
		expire = old ? old->expire_ms : 0;
	e = entry_new(h, k, kl, v, vl, expire);
	if (!e)
		return -1;
	if (old) {
		e->next = old->next;
		*link = e;
		if (old->expire_ms)
			s->volatile_count--;
		free(old);
	} else {
		e->next = s->buckets[h & (s->nbuckets - 1)];
		s->buckets[h & (s->nbuckets - 1)] = e;
		s->count++;
		if (s->count > s->nbuckets)
			shard_grow(s);
	}
	if (e->expire_ms)
		s->volatile_count++;
	return 0;
}

/* ---- argument helpers ---------------------------------------------------------------------------------------- */

static bool arg_is(const struct resp_cmd *c, size_t i, const char *s)
{
	size_t n = strlen(s);

	return c->argl[i] == n && strncasecmp(c->argv[i], s, n) == 0;
}

/* A whole argument as a signed 64-bit integer, as Redis's string2ll accepts it: optional '-', no '+', no spaces,
 * no leading zeros. */
static bool parse_i64(const char *p, size_t n, int64_t *out)
{
	uint64_t u = 0, lim;
	bool neg = false;
	size_t i = 0;

	if (n == 0 || n > 20)
		return false;
	if (p[0] == '-') {
		neg = true;
		i = 1;
		if (n == 1)
			return false;
	}
	if (p[i] == '0' && n > i + 1)
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		unsigned d;

		if (p[i] < '0' || p[i] > '9')
			return false;
		d = (unsigned)(p[i] - '0');
		if (u > (lim - d) / 10)
			return false;
		u = u * 10 + d;
	}
	*out = neg ? (int64_t)(0 - u) : (int64_t)u;
	return true;
}

#define ERR_NOT_INT "ERR value is not an integer or out of range"
#define ERR_SYNTAX "ERR syntax error"

/* ---- commands ------------------------------------------------------------------------------------------------ */

typedef int (*kv_cmd_fn)(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out);

struct kv_command {
	const char *name;
	int arity;	   /* Redis's convention: n = exactly n arguments with the name, -n = at least n */
	const char *flags; /* for COMMAND: "readonly", "write", "fast" ... */
	int first_key, last_key, key_step;
	kv_cmd_fn fn;
};

static int cmd_ping(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	if (c->argc > 2)
		return resp_error(out, "ERR wrong number of arguments for 'ping' command");
	if (c->argc == 2)
		return resp_bulk(out, c->argv[1], c->argl[1]);
	return resp_simple(out, "PONG");
}

static int cmd_echo(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	return resp_bulk(out, c->argv[1], c->argl[1]);
}

static int cmd_get(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	uint64_t h = hash_key(c->argv[1], c->argl[1]);
	struct kv_shard *s = shard_of(kv, h);
	struct kv_entry *e;
	int64_t now = 0;
	int ret;

	shard_rdlock(&s->lock);
	e = lookup(s, h, c->argv[1], c->argl[1], &now);
	ret = e ? resp_bulk(out, e->data + e->klen, e->vlen) : resp_null(out);
	shard_unlock(&s->lock);
	return ret;
}

/* SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-seconds | PXAT unix-ms | KEEPTTL] */
static int cmd_set(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	bool nx = false, xx = false, get = false, keepttl = false, have_exp = false;
	int64_t expire = 0, now = 0;
	uint64_t h;
	struct kv_shard *s;
	struct kv_entry *e;
	int ret = 0;

	for (size_t i = 3; i < c->argc; i++) {
		bool ex = arg_is(c, i, "EX"), px = arg_is(c, i, "PX");
		bool exat = arg_is(c, i, "EXAT"), pxat = arg_is(c, i, "PXAT");

		if (arg_is(c, i, "NX") && !xx) {
			nx = true;
		} else if (arg_is(c, i, "XX") && !nx) {
			xx = true;
		} else if (arg_is(c, i, "GET")) {
			get = true;
		} else if (arg_is(c, i, "KEEPTTL") && !have_exp) {
			keepttl = true;
		} else if ((ex || px || exat || pxat) && !have_exp && !keepttl && i + 1 < c->argc) {
			int64_t v;

			if (!parse_i64(c->argv[i + 1], c->argl[i + 1], &v))
				return resp_error(out, ERR_NOT_INT);
			if (v <= 0 || ((ex || exat) && v > INT64_MAX / 1000))
				return resp_error(out, "ERR invalid expire time in 'set' command");
			now = now_ms();
			if (ex || px) {
				int64_t ms = ex ? v * 1000 : v;

				if (ms > INT64_MAX - now)
					return resp_error(out, "ERR invalid expire time in 'set' command");
				expire = now + ms;
			} else {
				/* absolute Unix times, turned into the monotonic clock the store keeps */
				struct timespec ts;
				int64_t unix_ms, ms = exat ? v * 1000 : v;

				clock_gettime(CLOCK_REALTIME, &ts);
				unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
				expire = now + (ms - unix_ms);
				if (expire <= 0)
					expire = 1; /* already in the past: expired at once */
			}
			have_exp = true;
			i++;
		} else {
			return resp_error(out, ERR_SYNTAX);
		}
	}
	h = hash_key(c->argv[1], c->argl[1]);
	s = shard_of(kv, h);
	shard_wrlock(&s->lock);
	e = lookup(s, h, c->argv[1], c->argl[1], &now);
	if (get)
		ret = e ? resp_bulk(out, e->data + e->klen, e->vlen) : resp_null(out);
	if ((nx && e) || (xx && !e)) {
		shard_unlock(&s->lock);
		return get ? ret : resp_null(out);
	}
	if (!e && !have_exp)
		keepttl = false; /* an expired entry's TTL does not carry over */
	if (store(s, h, c->argv[1], c->argl[1], c->argv[2], c->argl[2], keepttl ? -1 : expire)) {
		shard_unlock(&s->lock);
		return -1;
	}
	shard_unlock(&s->lock);
	return get ? ret : resp_simple(out, "OK");
}

static int cmd_del(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	int64_t n = 0, now = 0;

	for (size_t i = 1; i < c->argc; i++) {
		uint64_t h = hash_key(c->argv[i], c->argl[i]);
		struct kv_shard *s = shard_of(kv, h);
		struct kv_entry **link;

		shard_wrlock(&s->lock);
		link = find_link(s, h, c->argv[i], c->argl[i]);
		if (*link) {
			if (!expired(*link, &now))
				n++;
			unlink_entry(s, link);
		}
		shard_unlock(&s->lock);
	}
	return resp_int(out, n);
}

static int cmd_exists(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	int64_t n = 0, now = 0;

	for (size_t i = 1; i < c->argc; i++) {
		uint64_t h = hash_key(c->argv[i], c->argl[i]);
		struct kv_shard *s = shard_of(kv, h);

		shard_rdlock(&s->lock);
		if (lookup(s, h, c->argv[i], c->argl[i], &now))
			n++;
		shard_unlock(&s->lock);
	}
	return resp_int(out, n);
}

static int incr_by(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out, int64_t by)
{
	uint64_t h = hash_key(c->argv[1], c->argl[1]);
	struct kv_shard *s = shard_of(kv, h);
	struct kv_entry *e;
	int64_t v = 0, now = 0;
	char num[24];
	int n;

	shard_wrlock(&s->lock);
	e = lookup(s, h, c->argv[1], c->argl[1], &now);
	if (e && !parse_i64(e->data + e->klen, e->vlen, &v)) {
		shard_unlock(&s->lock);
		return resp_error(out, ERR_NOT_INT);
	}
	if ((by > 0 && v > INT64_MAX - by) || (by < 0 && v < INT64_MIN - by)) {
		shard_unlock(&s->lock);
		return resp_error(out, "ERR increment or decrement would overflow");
	}
	v += by;
	n = snprintf(num, sizeof(num), "%lld", (long long)v);
	/* INCR keeps the key's time to live, as Redis does; a key that had expired starts afresh */
	if (store(s, h, c->argv[1], c->argl[1], num, (size_t)n, e ? -1 : 0)) {
		shard_unlock(&s->lock);
		return -1;
	}
	shard_unlock(&s->lock);
	return resp_int(out, v);
}

static int cmd_incr(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	return incr_by(kv, c, out, 1);
}

static int cmd_decr(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	return incr_by(kv, c, out, -1);
}

static int cmd_incrby(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	int64_t by;

	if (!parse_i64(c->argv[2], c->argl[2], &by))
		return resp_error(out, ERR_NOT_INT);
	return incr_by(kv, c, out, by);
}

static int cmd_decrby(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	int64_t by;

	if (!parse_i64(c->argv[2], c->argl[2], &by) || by == INT64_MIN)
		return resp_error(out, ERR_NOT_INT);
	return incr_by(kv, c, out, -by);
}

static int cmd_mget(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	int64_t now = 0;

	if (resp_array(out, (int64_t)c->argc - 1))
		return -1;
	for (size_t i = 1; i < c->argc; i++) {
		uint64_t h = hash_key(c->argv[i], c->argl[i]);
		struct kv_shard *s = shard_of(kv, h);
		struct kv_entry *e;
		int ret;

		shard_rdlock(&s->lock);
		e = lookup(s, h, c->argv[i], c->argl[i], &now);
		ret = e ? resp_bulk(out, e->data + e->klen, e->vlen) : resp_null(out);
		shard_unlock(&s->lock);
		if (ret)
			return -1;
	}
	return 0;
}

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

/* Lock the shards of keys argv[first], argv[first + step], ... for writing, in ascending order, each once; the
 * sorted, unique shard indices go to *idx (caller frees), their number is returned, -1 out of memory. */
static long lock_shards(struct kv_store *kv, const struct resp_cmd *c, size_t first, size_t step, unsigned **idx)
{
	size_t n = 0, u = 0;
	unsigned *v = malloc(((c->argc - first + step - 1) / step) * sizeof(*v));

	if (!v)
		return -1;
	for (size_t i = first; i < c->argc; i += step)
		v[n++] = shard_index(kv, hash_key(c->argv[i], c->argl[i]));
	qsort(v, n, sizeof(*v), cmp_unsigned);
	for (size_t i = 0; i < n; i++)
		if (u == 0 || v[u - 1] != v[i])
			v[u++] = v[i];
	for (size_t i = 0; i < u; i++)
		shard_wrlock(&kv->shards[v[i]].lock);
	*idx = v;
	return (long)u;
}

static void unlock_shards(struct kv_store *kv, unsigned *idx, long n)
{
	while (n-- > 0)
		shard_unlock(&kv->shards[idx[n]].lock);
	free(idx);
}

/* MSET key value [key value ...]: atomic, every shard it touches is held while it stores. */
static int cmd_mset(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	unsigned *idx;
	long n;
	int ret = 0;

	if (c->argc % 2 == 0)
		return resp_error(out, "ERR wrong number of arguments for 'mset' command");
	n = lock_shards(kv, c, 1, 2, &idx);
	if (n < 0)
		return -1;
	for (size_t i = 1; i < c->argc && !ret; i += 2) {
		uint64_t h = hash_key(c->argv[i], c->argl[i]);

		ret = store(shard_of(kv, h), h, c->argv[i], c->argl[i], c->argv[i + 1], c->argl[i + 1], 0);
	}
	unlock_shards(kv, idx, n);
	return ret ? -1 : resp_simple(out, "OK");
}

/* EXPIRE / PEXPIRE key time [NX | XX | GT | LT] */
static int expire_generic(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out, int64_t unit)
{
	bool nx = false, xx = false, gt = false, lt = false;
	uint64_t h = hash_key(c->argv[1], c->argl[1]);
	struct kv_shard *s = shard_of(kv, h);
	struct kv_entry **link, *e;
	int64_t v, now = now_ms(), when;

	if (!parse_i64(c->argv[2], c->argl[2], &v))
		return resp_error(out, ERR_NOT_INT);
	for (size_t i = 3; i < c->argc; i++) {
		if (arg_is(c, i, "NX"))
			nx = true;
		else if (arg_is(c, i, "XX"))
			xx = true;
		else if (arg_is(c, i, "GT"))
			gt = true;
		else if (arg_is(c, i, "LT"))
			lt = true;
		else
			return resp_errorf(out, "ERR Unsupported option %.*s", (int)c->argl[i], c->argv[i]);
	}
	if (nx && (xx || gt || lt))
		return resp_error(out, "ERR NX and XX, GT or LT options at the same time are not compatible");
	if (gt && lt)
		return resp_error(out, "ERR GT and LT options at the same time are not compatible");
	if (v > (INT64_MAX - now) / unit || v < (INT64_MIN + now) / unit)
		return resp_error(out, "ERR invalid expire time in 'expire' command");
	when = now + v * unit;
	shard_wrlock(&s->lock);
	link = find_link(s, h, c->argv[1], c->argl[1]);
	e = *link;
	if (!e || expired(e, &now)) {
		shard_unlock(&s->lock);
		return resp_int(out, 0);
	}
	if ((nx && e->expire_ms) || (xx && !e->expire_ms) || (gt && (!e->expire_ms || when <= e->expire_ms)) ||
	    (lt && e->expire_ms && when >= e->expire_ms)) {
		shard_unlock(&s->lock);
		return resp_int(out, 0);
	}
	if (when <= now) {
		unlink_entry(s, link); /* a time in the past deletes the key */
	} else {
		if (!e->expire_ms)
			s->volatile_count++;
		e->expire_ms = when;
	}
	shard_unlock(&s->lock);
	return resp_int(out, 1);
}

static int cmd_expire(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	return expire_generic(kv, c, out, 1000);
}

static int cmd_pexpire(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	return expire_generic(kv, c, out, 1);
}

static int ttl_generic(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out, bool ms)
{
	uint64_t h = hash_key(c->argv[1], c->argl[1]);
	struct kv_shard *s = shard_of(kv, h);
	struct kv_entry *e;
	int64_t now = now_ms(), ttl;

	shard_rdlock(&s->lock);
	e = lookup(s, h, c->argv[1], c->argl[1], &now);
	ttl = !e ? -2 : !e->expire_ms ? -1 : e->expire_ms - now;
	shard_unlock(&s->lock);
	if (ttl >= 0 && !ms)
		ttl = (ttl + 500) / 1000; /* Redis rounds to the nearest second */
	return resp_int(out, ttl);
}

static int cmd_ttl(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	return ttl_generic(kv, c, out, false);
}

static int cmd_pttl(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	return ttl_generic(kv, c, out, true);
}

static int cmd_persist(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	uint64_t h = hash_key(c->argv[1], c->argl[1]);
	struct kv_shard *s = shard_of(kv, h);
	struct kv_entry *e;
	int64_t now = 0;
	int r = 0;

	shard_wrlock(&s->lock);
	e = lookup(s, h, c->argv[1], c->argl[1], &now);
	if (e && e->expire_ms) {
		e->expire_ms = 0;
		s->volatile_count--;
		r = 1;
	}
	shard_unlock(&s->lock);
	return resp_int(out, r);
}

static int cmd_dbsize(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	return resp_int(out, (int64_t)kv_store_size(kv));
}

static int cmd_flushall(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	if (c->argc > 2 || (c->argc == 2 && !arg_is(c, 1, "SYNC") && !arg_is(c, 1, "ASYNC")))
		return resp_error(out, ERR_SYNTAX);
	for (unsigned i = 0; i < kv->nshards; i++)
		shard_wrlock(&kv->shards[i].lock);
	for (unsigned i = 0; i < kv->nshards; i++)
		shard_clear(&kv->shards[i]);
	for (unsigned i = kv->nshards; i-- > 0;)
		shard_unlock(&kv->shards[i].lock);
	return resp_simple(out, "OK");
}

static int cmd_select(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	int64_t db;

	if (!parse_i64(c->argv[1], c->argl[1], &db))
		return resp_error(out, ERR_NOT_INT);
	if (db != 0)
		return resp_error(out, "ERR DB index is out of range");
	return resp_simple(out, "OK");
}

static int cmd_quit(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	return resp_simple(out, "OK") ? -1 : KV_EXEC_QUIT;
}

/* CONFIG GET parameter: redis-benchmark asks for "save" and "appendonly" at start; the store keeps nothing on
 * disk, which is what these answers say. */
static int cmd_config(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	static const char *const params[][2] = { { "save", "" }, { "appendonly", "no" }, { "databases", "1" } };

	if (!arg_is(c, 1, "GET"))
		return resp_errorf(out, "ERR unknown subcommand '%.*s'", (int)c->argl[1], c->argv[1]);
	if (c->argc != 3)
		return resp_error(out, "ERR wrong number of arguments for 'config|get' command");
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		if (arg_is(c, 2, params[i][0]))
			return resp_array(out, 2) || resp_bulk_str(out, params[i][0]) ||
			       resp_bulk_str(out, params[i][1]);
	}
	return resp_array(out, 0);
}

static int cmd_info(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	char text[256];
	int n = snprintf(
	    text, sizeof(text),
	    "# Server\r\nkv_server:libfiber %s\r\nworkers:%u\r\n\r\n# Stats\r\ntotal_commands_processed:%llu"
	    "\r\n\r\n# Keyspace\r\ndb0:keys=%llu\r\n",
	    fiber_version(), fiber_worker_count(), (unsigned long long)kv_store_commands(kv),
	    (unsigned long long)kv_store_size(kv));

	return resp_bulk(out, text, (size_t)n);
}

static int cmd_command(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out);

/* Sorted by nothing in particular; the lookup checks the length first. */
static const struct kv_command commands[] = {
	{ "get", 2, "readonly fast", 1, 1, 1, cmd_get },
	{ "set", -3, "write denyoom", 1, 1, 1, cmd_set },
	{ "ping", -1, "fast", 0, 0, 0, cmd_ping },
	{ "echo", 2, "fast", 0, 0, 0, cmd_echo },
	{ "del", -2, "write", 1, -1, 1, cmd_del },
	{ "exists", -2, "readonly fast", 1, -1, 1, cmd_exists },
	{ "incr", 2, "write denyoom fast", 1, 1, 1, cmd_incr },
	{ "decr", 2, "write denyoom fast", 1, 1, 1, cmd_decr },
	{ "incrby", 3, "write denyoom fast", 1, 1, 1, cmd_incrby },
	{ "decrby", 3, "write denyoom fast", 1, 1, 1, cmd_decrby },
	{ "mget", -2, "readonly fast", 1, -1, 1, cmd_mget },
	{ "mset", -3, "write denyoom", 1, -1, 2, cmd_mset },
	{ "expire", -3, "write fast", 1, 1, 1, cmd_expire },
	{ "pexpire", -3, "write fast", 1, 1, 1, cmd_pexpire },
	{ "ttl", 2, "readonly fast", 1, 1, 1, cmd_ttl },
	{ "pttl", 2, "readonly fast", 1, 1, 1, cmd_pttl },
	{ "persist", 2, "write fast", 1, 1, 1, cmd_persist },
	{ "dbsize", 1, "readonly fast", 0, 0, 0, cmd_dbsize },
	{ "flushall", -1, "write", 0, 0, 0, cmd_flushall },
	{ "flushdb", -1, "write", 0, 0, 0, cmd_flushall },
	{ "select", 2, "loading stale fast", 0, 0, 0, cmd_select },
	{ "quit", -1, "fast", 0, 0, 0, cmd_quit },
	{ "config", -2, "admin", 0, 0, 0, cmd_config },
	{ "info", -1, "loading stale", 0, 0, 0, cmd_info },
	{ "command", -1, "loading stale", 0, 0, 0, cmd_command },
};
#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct kv_command *find_command(const char *name, size_t n)
{
	for (size_t i = 0; i < NR_COMMANDS; i++) {
		const struct kv_command *k = &commands[i];

		if (strlen(k->name) == n && strncasecmp(k->name, name, n) == 0)
			return k;
	}
	return NULL;
}

/* One COMMAND INFO entry: name, arity, flags, first key, last key, step (the fields redis-cli reads). */
static int command_info(const struct kv_command *k, struct sbuf *out)
{
	const char *f = k->flags;
	int nflags = 0;

	for (const char *p = f; *p; p++)
		if (p == f || (p[-1] == ' ' && *p != ' '))
			nflags++;
	if (resp_array(out, 6) || resp_bulk_str(out, k->name) || resp_int(out, k->arity) || resp_array(out, nflags))
		return -1;
	while (*f) {
		const char *e = strchr(f, ' ');
		size_t n = e ? (size_t)(e - f) : strlen(f);

		if (sbuf_append(out, "+", 1) || sbuf_append(out, f, n) || sbuf_append(out, "\r\n", 2))
			return -1;
		f += n;
		while (*f == ' ')
			f++;
	}
	return resp_int(out, k->first_key) || resp_int(out, k->last_key) || resp_int(out, k->key_step);
}

/* COMMAND, COMMAND COUNT, COMMAND INFO name..., COMMAND DOCS [name...] (no docs: an empty map) */
static int cmd_command(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	if (c->argc == 1) {
		if (resp_array(out, (int64_t)NR_COMMANDS))
			return -1;
		for (size_t i = 0; i < NR_COMMANDS; i++)
			if (command_info(&commands[i], out))
				return -1;
		return 0;
	}
	if (arg_is(c, 1, "COUNT") && c->argc == 2)
		return resp_int(out, (int64_t)NR_COMMANDS);
	if (arg_is(c, 1, "DOCS"))
		return resp_array(out, 0);
	if (arg_is(c, 1, "INFO")) {
		if (resp_array(out, (int64_t)c->argc - 2))
			return -1;
		for (size_t i = 2; i < c->argc; i++) {
			const struct kv_command *k = find_command(c->argv[i], c->argl[i]);

			if (k ? command_info(k, out) : sbuf_append(out, "*-1\r\n", 5))
				return -1;
		}
		return 0;
	}
	return resp_errorf(out, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.", (int)c->argl[1], c->argv[1]);
}

int kv_exec(struct kv_store *kv, const struct resp_cmd *c, struct sbuf *out)
{
	const struct kv_command *k = find_command(c->argv[0], c->argl[0]);
	int w = fiber_worker_id();

	atomic_fetch_add_explicit(&kv->commands[(unsigned)(w < 0 ? 0 : w) % KV_COUNT_SLOTS].n, 1, memory_order_relaxed);
	if (!k) {
		/* Redis's wording: the name and the start of the first arguments, quoted */
		char args[128] = "";
		size_t used = 0;

		for (size_t i = 1; i < c->argc && used < sizeof(args) - 8; i++) {
			int n = snprintf(args + used, sizeof(args) - used, "'%.*s' ",
					 (int)(c->argl[i] > 40 ? 40 : c->argl[i]), c->argv[i]);

			if (n < 0 || (size_t)n >= sizeof(args) - used)
				break;
			used += (size_t)n;
		}
		return resp_errorf(out, "ERR unknown command '%.*s', with args beginning with: %s",
				   (int)(c->argl[0] > 64 ? 64 : c->argl[0]), c->argv[0], args);
	}
	if ((k->arity > 0 && c->argc != (size_t)k->arity) || (k->arity < 0 && c->argc < (size_t)-k->arity))
		return resp_errorf(out, "ERR wrong number of arguments for '%s' command", k->name);
	return k->fn(kv, c, out);
}

size_t kv_store_expire_cycle(struct kv_store *kv)
{
	unsigned per_call = kv->nshards < 16 ? kv->nshards : 16;
	size_t removed = 0;
	int64_t now = now_ms();

	for (unsigned n = 0; n < per_call; n++) {
		unsigned i = atomic_fetch_add_explicit(&kv->expire_at, 1, memory_order_relaxed) % kv->nshards;
		struct kv_shard *s = &kv->shards[i];

		shard_wrlock(&s->lock);
		for (size_t b = 0; b < s->nbuckets && s->volatile_count; b++) {
			struct kv_entry **link = &s->buckets[b];

			while (*link) {
				if (expired(*link, &now)) {
					unlink_entry(s, link);
					removed++;
				} else {
					link = &(*link)->next;
				}
			}
		}
		shard_unlock(&s->lock);
	}
	return removed;
}

uint64_t kv_store_size(struct kv_store *kv)
{
	uint64_t n = 0;
	int64_t now = 0;

	for (unsigned i = 0; i < kv->nshards; i++) {
		struct kv_shard *s = &kv->shards[i];

		shard_rdlock(&s->lock);
		if (!s->volatile_count) {
			n += s->count;
		} else {
			/* keys that have expired but are not removed yet do not count */
			for (size_t b = 0; b < s->nbuckets; b++)
				for (struct kv_entry *e = s->buckets[b]; e; e = e->next)
					n += !expired(e, &now);
		}
		shard_unlock(&s->lock);
	}
	return n;
}

uint64_t kv_store_commands(struct kv_store *kv)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < KV_COUNT_SLOTS; i++)
		n += atomic_load_explicit(&kv->commands[i].n, memory_order_relaxed);
	return n;
}
