/*
 * runtime/trace.c - the timeline trace (fiber_config.trace_file, FIBER_TRACE=FILE).
 *
 * While the runtime runs, every switch, wake-up (with its waker), migration and new fiber is appended to a buffer
 * of the worker that does it: one writer per buffer (the worker's pthread), no lock and no atomic RMW on the switch
 * path. Events from plain pthreads (a wake-up or spawn from outside the runtime) go to one shared buffer under a
 * spinlock. When a buffer is full, later events are counted as dropped (the trace keeps its beginning).
 *
 * At fiber_runtime_stop, after the workers have exited, the buffers are merged by time and written as Chrome
 * trace-event JSON (Perfetto's UI and chrome://tracing open it): one track per worker, a slice per run of a fiber
 * named "name #id" (args: why the run ended: the wait reason of a blocking fiber, "preempted or yielded", "exit"),
 * flow arrows from the waker's slice to the wakee's next run, instant events for migrations.
 *
 * With tracing off the cost is one load and a predicted branch per hook (fiber__trace_on).
 */
#include "internal.h"

#include <sys/mman.h>

enum trace_type {
	TR_SWITCH = 1, /* a = prev id, b = next id, arg = prev state, str = prev's wait reason */
	TR_WAKE,       /* a = waker id (0: a plain thread), b = wakee id, arg = the worker it is woken on */
	TR_MIGRATE,    /* a = fiber id, arg = from << 16 | to */
	TR_NAME,       /* a = fiber id, name */
};

struct trace_ev {
	uint64_t ts; /* sched_clock ns */
	uint16_t type;
	int16_t cpu; /* the recording worker, -1 a plain thread */
	uint32_t arg;
	uint64_t a, b;
	union {
		const char *str;
		char name[FIBER_NAME_LEN];
	};
};

struct trace_buf {
	struct trace_ev *ev;
	size_t nr, cap;
	uint64_t dropped;
};

#define TRACE_EVENTS_PER_BUF (1u << 18) /* 16 MiB of address space per worker, touched only as it fills */

atomic_int fiber__trace_on __hidden;
static struct trace_buf *bufs; /* [nr_workers + 1]; the last one is the plain threads' */
static spinlock_t ext_lock = SPINLOCK_INIT;
static unsigned nr_bufs;
static FILE *trace_out;
static char trace_path[4096];
static uint64_t trace_t0;

int fiber__trace_start(const char *path, unsigned nr_workers)
{
	size_t len = (size_t)TRACE_EVENTS_PER_BUF * sizeof(struct trace_ev);

	if (!path || !*path)
		return 0;
	trace_out = fopen(path, "w");
	if (!trace_out) {
		fprintf(stderr, "libfiber: cannot write the trace to \"%s\": %s\n", path, strerror(errno));
		return -EINVAL;
	}
	snprintf(trace_path, sizeof(trace_path), "%s", path);
	nr_bufs = nr_workers + 1;
	bufs = fiber__zalloc(nr_bufs * sizeof(*bufs));
	if (!bufs)
		goto nomem;
	for (unsigned i = 0; i < nr_bufs; i++) {
		void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (m == MAP_FAILED)
			goto nomem;
		bufs[i].ev = m;
		bufs[i].cap = TRACE_EVENTS_PER_BUF;
	}
	trace_t0 = fiber__sched_clock();
	/*
	 * Release, though no load pairs with it: the hooks read fiber__trace_on relaxed, and the workers that run them
	 * start after this (runtime_start), so pthread_create orders the buffers before their first event.
	 */
	atomic_store_explicit(&fiber__trace_on, 1, memory_order_release);
	return 0;
nomem:
	fiber__trace_stop();
	return -ENOMEM;
}

/* The buffer the calling thread writes: its worker's, or the shared one (locked by the caller). */
static struct trace_ev *trace_slot(struct worker **wp)
{
	struct worker *w = this_worker();
	struct trace_buf *b;

	*wp = w;
	if (!bufs)
		return NULL;
	if (w) {
		b = &bufs[w->id];
	} else {
		spin_lock(&ext_lock);
		b = &bufs[nr_bufs - 1];
	}
	if (b->nr == b->cap) {
		b->dropped++;
		if (!w)
			spin_unlock(&ext_lock);
		return NULL;
	}
	return &b->ev[b->nr];
}

/* Publish the slot trace_slot gave (only the writer reads nr until stop, which runs after the workers exit). */
static void trace_commit(struct worker *w)
{
	struct trace_buf *b = w ? &bufs[w->id] : &bufs[nr_bufs - 1];

	b->nr++;
	if (!w)
		spin_unlock(&ext_lock);
}

void fiber__trace_switch_slow(struct worker *w, struct fiber *prev, struct fiber *next)
{
	struct trace_buf *b = &bufs[w->id];
	struct trace_ev *e;
	unsigned st = atomic_load_explicit(&prev->state, memory_order_relaxed);

	if (unlikely(b->nr == b->cap)) {
		b->dropped++;
		return;
	}
	e = &b->ev[b->nr];
	e->ts = w->rq.clock; /* __schedule just updated it */
	e->type = TR_SWITCH;
	e->cpu = (int16_t)w->id;
	e->arg = st;
	e->a = prev->id;
	e->b = next->id;
	e->str = st ? atomic_load_explicit(&prev->wait_reason, memory_order_relaxed) : NULL;
	b->nr++;
}

void fiber__trace_wake_slow(struct fiber *p)
{
	struct worker *w;
	struct trace_ev *e = trace_slot(&w);

	if (!e)
		return;
	e->ts = fiber__sched_clock();
	e->type = TR_WAKE;
	e->cpu = w ? (int16_t)w->id : -1;
	e->arg = (uint32_t)READ_ONCE(p->cpu);
	e->a = w && !is_idle_task(w->current) ? w->current->id : 0;
	e->b = p->id;
	e->str = NULL;
	trace_commit(w);
}

void fiber__trace_migrate_slow(struct fiber *p, int from, int to)
{
	struct worker *w;
	struct trace_ev *e = trace_slot(&w);

	if (!e)
		return;
	e->ts = fiber__sched_clock();
	e->type = TR_MIGRATE;
	e->cpu = w ? (int16_t)w->id : -1;
	e->arg = (uint32_t)from << 16 | (uint32_t)to;
	e->a = p->id;
	e->b = 0;
	e->str = NULL;
	trace_commit(w);
}

void fiber__trace_name_slow(struct fiber *p)
{
	struct worker *w;
	struct trace_ev *e = trace_slot(&w);

	if (!e)
		return;
	e->ts = fiber__sched_clock();
	e->type = TR_NAME;
	e->cpu = w ? (int16_t)w->id : -1;
	e->arg = 0;
	e->a = p->id;
	e->b = 0;
	memcpy(e->name, p->name, sizeof(e->name));
	e->name[sizeof(e->name) - 1] = 0;
	trace_commit(w);
}

/* ------------------------------------------------------------------------------------------------------------
 * Writing the JSON (at stop, single-threaded)
 * ---------------------------------------------------------------------------------------------------------- */

/* Fiber id -> name and pending wake-up flow: open addressing, ids are never 0 here. */
struct fib_info {
	uint64_t id;
	const char *name;
	uint64_t flow; /* a wake-up arrow waiting for the fiber's next run, 0 none */
};
static struct fib_info *ftab;
static size_t ftab_mask;

static struct fib_info *finfo(uint64_t id)
{
	size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull) & ftab_mask;

	while (ftab[i].id && ftab[i].id != id)
		i = (i + 1) & ftab_mask;
	ftab[i].id = id;
	return &ftab[i];
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static double us(uint64_t ts)
{
	return ts > trace_t0 ? (double)(ts - trace_t0) / 1000.0 : 0.0;
}

/* The track of a recording worker; plain threads share one after the workers. */
static int track(int cpu)
{
	return cpu >= 0 ? cpu : (int)nr_bufs - 1;
}

static const char *end_reason(unsigned st, const char *reason)
{
	if (st & TASK_DEAD)
		return "exit";
	if (!st)
		return "preempted or yielded";
	return reason ? reason : "blocked";
}

struct run {
	uint64_t id, start;
	bool on;
};

static void emit_slice(FILE *f, bool *first, int cpu, const struct run *r, uint64_t end, const char *why)
{
	struct fib_info *fi = finfo(r->id);
	char name[FIBER_NAME_LEN + 24];

	snprintf(name, sizeof(name), "%s #%llu", fi->name && fi->name[0] ? fi->name : "fiber",
		 (unsigned long long)r->id);
	fprintf(f, "%s\n{\"ph\":\"X\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"name\":", *first ? "" : ",", cpu,
		us(r->start), us(end) - us(r->start));
	json_str(f, name);
	fprintf(f, ",\"cat\":\"run\",\"args\":{\"fiber\":%llu,\"ended\":", (unsigned long long)r->id);
	json_str(f, why);
	fputs("}}", f);
	*first = false;
}

static void trace_write(FILE *f)
{
	size_t total = 0, names = 0, *pos;
	uint64_t dropped = 0, flows = 0, last_ts = trace_t0;
	struct run *runs;
	bool first = true;

	for (unsigned i = 0; i < nr_bufs; i++) {
		total += bufs[i].nr;
		dropped += bufs[i].dropped;
		for (size_t j = 0; j < bufs[i].nr; j++)
			names += bufs[i].ev[j].type == TR_NAME;
	}
	for (ftab_mask = 64; ftab_mask < 2 * names + 64; ftab_mask <<= 1)
		;
	ftab = calloc(ftab_mask, sizeof(*ftab));
	ftab_mask--;
	pos = calloc(nr_bufs, sizeof(*pos));
	runs = calloc(nr_bufs, sizeof(*runs));
	if (!ftab || !pos || !runs) {
		fprintf(stderr, "libfiber: trace: out of memory writing %s\n", trace_path);
		goto out;
	}
	for (unsigned i = 0; i < nr_bufs; i++)
		for (size_t j = 0; j < bufs[i].nr; j++)
			if (bufs[i].ev[j].type == TR_NAME)
				finfo(bufs[i].ev[j].a)->name = bufs[i].ev[j].name;

	fputs("{\"displayTimeUnit\":\"ns\",\"otherData\":{\"generator\":\"libfiber\",", f);
	fprintf(f, "\"events\":%zu,\"dropped\":%llu},\"traceEvents\":[", total, (unsigned long long)dropped);
	fprintf(f, "\n{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"libfiber\"}}");
	for (unsigned i = 0; i < nr_bufs; i++) {
		fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"name\":\"thread_name\",\"args\":{\"name\":", i);
		if (i + 1 < nr_bufs)
			fprintf(f, "\"worker %u\"}}", i);
		else
			fputs("\"plain threads\"}}", f);
		fprintf(f,
			",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"name\":\"thread_sort_index\",\"args\":"
			"{\"sort_index\":%u}}",
			i, i);
	}
	first = false;

	/* Merge the buffers by time: each is in time order already. */
	for (;;) {
		struct trace_ev *e = NULL;
		unsigned from = 0;

		for (unsigned i = 0; i < nr_bufs; i++) {
			if (pos[i] < bufs[i].nr && (!e || bufs[i].ev[pos[i]].ts < e->ts)) {
				e = &bufs[i].ev[pos[i]];
				from = i;
			}
		}
		if (!e)
			break;
		pos[from]++;
		if (e->ts > last_ts)
			last_ts = e->ts;
		switch (e->type) {
		case TR_SWITCH: {
			struct run *r = &runs[from];
			struct fib_info *fi;

			if (r->on && r->id)
				emit_slice(f, &first, (int)from, r, e->ts, end_reason(e->arg, e->str));
			r->id = e->b;
			r->start = e->ts;
			r->on = true;
			if (!e->b)
				break; /* the idle fiber: the gap is idle time */
			fi = finfo(e->b);
			if (fi->flow) {
				fprintf(f,
					",\n{\"ph\":\"f\",\"bp\":\"e\",\"pid\":1,\"tid\":%u,\"ts\":%.3f,\"id\":%llu,"
					"\"name\":\"wakeup\",\"cat\":\"wakeup\"}",
					from, us(e->ts), (unsigned long long)fi->flow);
				fi->flow = 0;
			}
			break;
		}
		case TR_WAKE: {
			struct fib_info *fi = finfo(e->b);

			fi->flow = ++flows;
			fprintf(f,
				",\n{\"ph\":\"s\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"id\":%llu,\"name\":\"wakeup\","
				"\"cat\":\"wakeup\",\"args\":{\"waker\":%llu,\"wakee\":%llu,\"on_worker\":%u}}",
				track(e->cpu), us(e->ts), (unsigned long long)fi->flow, (unsigned long long)e->a,
				(unsigned long long)e->b, e->arg);
			break;
		}
		case TR_MIGRATE:
			fprintf(
			    f,
			    ",\n{\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":%u,\"ts\":%.3f,\"name\":\"migrate #%llu "
			    "w%u->w%u\",\"cat\":\"migrate\"}",
			    e->arg & 0xffff, us(e->ts), (unsigned long long)e->a, e->arg >> 16, e->arg & 0xffff);
			break;
		default: break;
		}
	}
	/* Runs still open at stop end at the last event. */
	for (unsigned i = 0; i < nr_bufs; i++)
		if (runs[i].on && runs[i].id)
			emit_slice(f, &first, (int)i, &runs[i], last_ts, "trace end");
	fputs("\n]}\n", f);
	if (dropped)
		fprintf(stderr, "libfiber: trace: %llu events dropped (buffers full), %s has the first %zu\n",
			(unsigned long long)dropped, trace_path, total);
out:
	free(ftab);
	free(pos);
	free(runs);
	ftab = NULL;
}

void fiber__trace_stop(void)
{
	size_t len = (size_t)TRACE_EVENTS_PER_BUF * sizeof(struct trace_ev);

	atomic_store_explicit(&fiber__trace_on, 0, memory_order_relaxed);
	if (bufs && trace_out)
		trace_write(trace_out);
	if (trace_out) {
		if (fclose(trace_out))
			fprintf(stderr, "libfiber: trace: writing %s: %s\n", trace_path, strerror(errno));
		trace_out = NULL;
	}
	if (bufs) {
		for (unsigned i = 0; i < nr_bufs; i++)
			if (bufs[i].ev)
				munmap(bufs[i].ev, len);
		fiber__free(bufs, nr_bufs * sizeof(*bufs));
		bufs = NULL;
	}
	nr_bufs = 0;
}
