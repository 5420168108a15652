/*
 * runtime/stats.c - fiber and worker statistics and fiber_dump (a sched_debug-like text dump).
 *
 * The counters are kept by the core and the classes under the rq lock (sum_exec_runtime, wait_sum, nvcsw,
 * nivcsw, rq->nr_switches, rq->idle_ns, rq->pulled/pushed), nr_migrations under pi_lock or the source rq lock
 * (set_task_cpu); this file reads a fiber's under task_rq_lock (both locks) and a worker's under its rq lock.
 * Read without those: a worker's ring counters (the owner's, loaded relaxed: a recent value), nr_fibers, and
 * the deadline bandwidth in fiber_dump (dl_lock's, read under the rq lock only: a snapshot).
 *
 * fiber_dump also prints each fiber's wait reason (fiber__set_wait), a backtrace of parked fibers and each
 * worker's runqueue by class, and can be asked for by a signal (fiber_config.dump_signal / FIBER_DUMP_SIGNAL): the
 * handler only writes a byte to a pipe, and a thread of ours reads it and does the dump, so nothing that is not
 * async-signal-safe runs in the handler. The same thread reports a deadlock (every fiber blocked on fiber
 * primitives, nothing runnable, no timer) once it has lasted fiber_config.deadlock_ms.
 */
#include "io.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static uint32_t user_state(unsigned state)
{
	if (state & TASK_DEAD)
		return TASK_DEAD;
	if (state & TASK_UNINTERRUPTIBLE)
		return TASK_UNINTERRUPTIBLE;
	if (state & TASK_INTERRUPTIBLE)
		return TASK_INTERRUPTIBLE;
	return 0;
}

int fiber_stats(fiber_t *f, struct fiber_stats *out)
{
	struct fiber *p = f ? f : fiber_self();
	struct rq *rq;

	if (!out)
		return -EINVAL;
	if (!atomic_load_explicit(&fiber__rt.running, memory_order_acquire))
		return -ESRCH;
	if (!p)
		return -EINVAL;
	if (READ_ONCE(p->magic) != FIBER_MAGIC_LIVE ||
	    atomic_load_explicit(&p->join_state, memory_order_relaxed) == JOIN_DONE)
		return -ESRCH;
	rq = fiber__task_rq_lock(p);
	/* A running fiber: charge it up to now first, so the numbers include the current run. */
	if (rq->curr == p) {
		fiber__update_rq_clock(rq);
		if (p->sched_class->update_curr)
			p->sched_class->update_curr(rq);
		else
			fiber__update_curr_common(rq);
	}
	memset(out, 0, sizeof(*out));
	out->id = p->id;
	out->worker = p->cpu;
	out->policy = p->policy;
	out->state = user_state(atomic_load_explicit(&p->state, memory_order_relaxed));
	out->nvcsw = p->nvcsw;
	out->nivcsw = p->nivcsw;
	out->sum_exec_ns = p->sum_exec_runtime;
	out->wait_ns = p->wait_sum + (p->wait_start ? rq->clock - p->wait_start : 0);
	out->nr_migrations = p->nr_migrations;
	fiber__task_rq_unlock(rq, p);
	fiber__preempt_point();
	return 0;
}

int fiber_worker_stats(int worker, struct fiber_worker_stats *out)
{
	struct rq *rq;

	if (!out)
		return -EINVAL;
	if (!atomic_load_explicit(&fiber__rt.running, memory_order_acquire))
		return -ESRCH;
	if (worker < 0 || worker >= (int)fiber__rt.nr_workers)
		return -EINVAL;
	rq = cpu_rq(worker);
	memset(out, 0, sizeof(*out));
	spin_lock(&rq->lock);
	out->nr_switches = rq->nr_switches;
	out->nr_running = atomic_load_explicit(&rq->nr_running, memory_order_relaxed);
	out->idle_ns = rq->idle_ns;
	out->pulled = rq->pulled;
	out->pushed = rq->pushed;
	spin_unlock(&rq->lock);
	if (fiber__rt.workers[worker].io) {
		struct io_ring *io = fiber__rt.workers[worker].io;

		out->io_submitted = __atomic_load_n(&io->nr_submitted, __ATOMIC_RELAXED);
		out->io_completed = __atomic_load_n(&io->nr_completed, __ATOMIC_RELAXED);
		out->io_enter_calls = __atomic_load_n(&io->nr_enter, __ATOMIC_RELAXED);
	}
	return 0;
}

static const char *policy_name(uint32_t policy)
{
	switch (policy) {
	case FIBER_SCHED_NORMAL: return "NORMAL";
	case FIBER_SCHED_FIFO: return "FIFO";
	case FIBER_SCHED_RR: return "RR";
	case FIBER_SCHED_BATCH: return "BATCH";
	case FIBER_SCHED_IDLE: return "IDLE";
	case FIBER_SCHED_DEADLINE: return "DEADLINE";
	}
	return "?";
}

/* ------------------------------------------------------------------------------------------------------------
 * fiber_dump
 * ---------------------------------------------------------------------------------------------------------- */

/* Text is built in a buffer first: the rq lock is never held across a write(2). */
struct dbuf {
	char *p;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) db_printf(struct dbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->len >= b->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len = b->len + (size_t)n < b->cap ? b->len + (size_t)n : b->cap;
}

static void db_flush(struct dbuf *b, int fd)
{
	size_t off = 0;

	if (b->len >= b->cap && b->cap > 4) {
		memcpy(b->p + b->cap - 4, "...\n", 4);
	}
	while (off < b->len) {
		ssize_t n = write(fd, b->p + off, b->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	b->len = 0;
}

static const char *fiber_label(struct fiber *p)
{
	return p->name[0] ? p->name : "-";
}

static void dump_entity(struct dbuf *b, struct fiber *p)
{
	db_printf(b, " %llu(%s)", (unsigned long long)p->id, fiber_label(p));
}

static void dump_tree(struct dbuf *b, struct tnode *n, size_t off, unsigned *left)
{
	if (!n || !*left)
		return;
	dump_tree(b, n->l, off, left);
	if (*left) {
		(*left)--;
		dump_entity(b, (struct fiber *)((char *)n - off));
	}
	dump_tree(b, n->r, off, left);
}

#define DUMP_RQ_MAX 64 /* fibers listed per class and worker */

/* The queued fibers of @rq by class, highest class first. rq->lock held. */
static void dump_rq(struct dbuf *b, struct rq *rq)
{
	unsigned left;

	db_printf(b, "  stop:");
	if (rq->stop_queued && rq->stop)
		dump_entity(b, rq->stop);
	db_printf(b, "\n  dl:");
	left = DUMP_RQ_MAX;
	dump_tree(b, rq->dl.tree.root, offsetof(struct fiber, dl.node), &left);
	db_printf(b, "\n  rt:");
	left = DUMP_RQ_MAX;
	for (int prio = 0; prio < RT_PRIO_LEVELS && left; prio++) {
		struct list_head *h = &rq->rt.queue[prio], *pos;

		if (!(rq->rt.bitmap[prio / 64] & (1ull << (prio % 64))))
			continue;
		for (pos = h->next; pos != h && left; pos = pos->next, left--)
			dump_entity(b, container_of(pos, struct fiber, rt.run_list));
	}
	db_printf(b, "\n  fair:");
	if (rq->cfs.curr)
		db_printf(b, " [curr %llu]", (unsigned long long)container_of(rq->cfs.curr, struct fiber, se)->id);
	left = DUMP_RQ_MAX;
	dump_tree(b, rq->cfs.tree.root, offsetof(struct fiber, se.node), &left);
	db_printf(b, "\n");
}

/* Executable segments of the loaded objects: where a return address may point. */
#define DUMP_MAX_SEGS 256
struct exec_segs {
	uintptr_t lo[DUMP_MAX_SEGS], hi[DUMP_MAX_SEGS];
	unsigned nr;
};

static int exec_seg_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	struct exec_segs *s = data;

	for (int i = 0; i < info->dlpi_phnum && s->nr < DUMP_MAX_SEGS; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			s->lo[s->nr] = info->dlpi_addr + ph->p_vaddr;
			s->hi[s->nr] = s->lo[s->nr] + ph->p_memsz;
			s->nr++;
		}
	}
	return 0;
}

static bool in_exec(const struct exec_segs *s, uintptr_t a, uintptr_t before)
{
	for (unsigned i = 0; i < s->nr; i++)
		if (a >= s->lo[i] + before && a <= s->hi[i])
			return true;
	return false;
}

/* Does a call instruction end at @r? (x86_64 encodings: e8 rel32, ff /2 with the usual ModRM forms.) */
static bool after_call(const struct exec_segs *s, uintptr_t r)
{
	const uint8_t *c = (const uint8_t *)r;

	if (!in_exec(s, r, 7))
		return false;
	if (c[-5] == 0xe8)
		return true; /* call rel32 */
	if (c[-6] == 0xff && (c[-5] == 0x15 || (c[-5] & 0xf8) == 0x90))
		return true; /* call *disp32(%rip), call *disp32(%reg) */
	if (c[-7] == 0xff && c[-6] == 0x94)
		return true; /* call *disp32(sib) */
	if (c[-2] == 0xff && (c[-1] & 0xf8) == 0xd0)
		return true; /* call *%reg */
	if (c[-3] == 0x41 && c[-2] == 0xff && (c[-1] & 0xf8) == 0xd0)
		return true; /* call *%r8..%r15 */
	if (c[-3] == 0xff && ((c[-2] & 0xf8) == 0x50 || c[-2] == 0x14))
		return true; /* call *disp8(%reg), call *(sib) */
	return false;
}

/*
 * The full symbol table (.symtab) of a loaded object, read from its file: dladdr only knows exported symbols, and
 * most of the runtime (and a program's static functions) is not exported. Mapped for the length of one dump.
 */
#define DUMP_MAX_OBJS 16
struct obj_syms {
	uintptr_t bias; /* link_map l_addr: st_value + bias = run-time address */
	void *map;
	size_t map_len;
	const ElfW(Sym) * sym;
	size_t nsym;
	const char *str;
	size_t str_len;
};
static struct obj_syms objs[DUMP_MAX_OBJS];
static unsigned nr_objs;

static const struct obj_syms *obj_syms_get(const char *path, uintptr_t bias)
{
	struct obj_syms *o;
	const ElfW(Ehdr) * eh;
	const ElfW(Shdr) * sh;
	struct stat st;
	int fd;

	for (unsigned i = 0; i < nr_objs; i++)
		if (objs[i].bias == bias)
			return objs[i].map ? &objs[i] : NULL;
	if (nr_objs == DUMP_MAX_OBJS)
		return NULL;
	o = &objs[nr_objs++];
	memset(o, 0, sizeof(*o));
	o->bias = bias;
	fd = open(path && path[0] ? path : "/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0 && path && path[0])
		fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || (size_t)st.st_size < sizeof(ElfW(Ehdr))) {
		close(fd);
		return NULL;
	}
	o->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (o->map == MAP_FAILED) {
		o->map = NULL;
		return NULL;
	}
	o->map_len = (size_t)st.st_size;
	eh = o->map;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_shoff + (size_t)eh->e_shnum * sizeof(ElfW(Shdr)) > o->map_len)
		return o; /* no section headers: no symbols */
	sh = (const ElfW(Shdr) *)((const char *)o->map + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const ElfW(Shdr) * strs;

		if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
			continue;
		strs = &sh[sh[i].sh_link];
		if (sh[i].sh_offset + sh[i].sh_size > o->map_len || strs->sh_offset + strs->sh_size > o->map_len)
			break;
		o->sym = (const ElfW(Sym) *)((const char *)o->map + sh[i].sh_offset);
		o->nsym = sh[i].sh_size / sizeof(ElfW(Sym));
		o->str = (const char *)o->map + strs->sh_offset;
		o->str_len = strs->sh_size;
		break;
	}
	return o;
}

static void obj_syms_release(void)
{
	for (unsigned i = 0; i < nr_objs; i++)
		if (objs[i].map)
			munmap(objs[i].map, objs[i].map_len);
	nr_objs = 0;
}

/* The function symbol of @o that contains run-time address @a, or NULL. */
static const char *obj_syms_find(const struct obj_syms *o, uintptr_t a, uintptr_t *start)
{
	uintptr_t v = a - o->bias;

	for (size_t i = 0; o && i < o->nsym; i++) {
		const ElfW(Sym) *sym = &o->sym[i];

		if (ELF64_ST_TYPE(sym->st_info) != STT_FUNC || !sym->st_size || sym->st_name >= o->str_len)
			continue;
		if (v >= sym->st_value && v - sym->st_value < sym->st_size) {
			*start = sym->st_value + o->bias;
			return o->str + sym->st_name;
		}
	}
	return NULL;
}

static void dump_symbol(struct dbuf *b, unsigned n, uintptr_t a, const char *how)
{
	Dl_info di;
	const ElfW(Sym) *sym = NULL;
	struct link_map *lm = NULL;

	if (dladdr1((void *)a, &di, (void **)&sym, RTLD_DL_SYMENT) && di.dli_fname) {
		const char *mod = strrchr(di.dli_fname, '/') ? strrchr(di.dli_fname, '/') + 1 : di.dli_fname;
		uintptr_t off = a - (uintptr_t)di.dli_fbase, start = 0;
		const char *name = NULL;

		if (dladdr1((void *)a, &di, (void **)&lm, RTLD_DL_LINKMAP) && lm)
			name = obj_syms_find(obj_syms_get(lm->l_name, lm->l_addr), a, &start);
		/* The symbol dladdr found only counts when the address is inside it (hidden functions have none). */
		if (!name && di.dli_sname && sym && a - (uintptr_t)di.dli_saddr < sym->st_size) {
			name = di.dli_sname;
			start = (uintptr_t)di.dli_saddr;
		}
		if (name)
			db_printf(b, "    #%-2u %#014lx %s+%#lx (%s+%#lx)%s\n", n, (unsigned long)a, name,
				  (unsigned long)(a - start), mod[0] ? mod : "?", (unsigned long)off, how);
		else
			db_printf(b, "    #%-2u %#014lx %s+%#lx%s\n", n, (unsigned long)a, mod[0] ? mod : "?",
				  (unsigned long)off, how);
	} else {
		db_printf(b, "    #%-2u %#014lx ??%s\n", n, (unsigned long)a, how);
	}
}

#define DUMP_STACK_COPY (64 * 1024) /* bytes of a parked stack scanned, from its saved sp up */
#define DUMP_FRAMES 24

/*
 * Backtrace of a parked fiber: the switch frame's return address is exact; above it, the words of the stack that
 * point just after a call instruction in an executable segment (a stack scan: no frame pointers, no unwind
 * tables at run time). The stack is copied (stack_copy) under the fiber's rq lock, where it cannot be switched in,
 * with process_vm_readv, which fails cleanly instead of faulting; the scan runs on the copy after the unlock.
 */
static ssize_t copy_stack(struct fiber *p, uint64_t *buf)
{
	uintptr_t sp = (uintptr_t)p->sp, top;
	size_t len;
	struct iovec local, remote;

	if (!p->stack_base || !sp)
		return -1;
	top = fiber__stack_top(p);
	if (sp < (uintptr_t)p->stack_base || sp + FRAME_SIZE > top)
		return -1;
	len = top - sp < DUMP_STACK_COPY ? top - sp : DUMP_STACK_COPY;
	local.iov_base = buf;
	local.iov_len = len;
	remote.iov_base = (void *)sp;
	remote.iov_len = len;
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
}

static void dump_backtrace(struct dbuf *b, const uint64_t *buf, ssize_t got, const struct exec_segs *segs)
{
	unsigned n = 0;

	if (got < (ssize_t)FRAME_SIZE) {
		db_printf(b, "    (stack not readable)\n");
		return;
	}
	dump_symbol(b, n++, (uintptr_t)buf[FRAME_RET / 8], "");
	for (size_t i = FRAME_SIZE / 8; i < (size_t)got / 8 && n < DUMP_FRAMES; i++) {
		uintptr_t w = (uintptr_t)buf[i];

		if (w == (uintptr_t)fiber__trampoline)
			break; /* a fresh fiber's stack: the trampoline's slot is its bottom */
		if (after_call(segs, w))
			dump_symbol(b, n++, w, " ?");
	}
}

/* What the dump prints of one fiber, read under its rq lock (the fields the scheduler writes under it). */
struct fiber_snap {
	uint64_t id, exec, wait, nvcsw, nivcsw, migrations, last;
	unsigned state;
	uint32_t policy;
	int prio, cpu;
	bool on_cpu;
	ssize_t stack_got; /* bytes of the stack copied, < 0 none */
};

static void fiber_snapshot(struct fiber *p, struct fiber_snap *s, uint64_t *stack)
{
	struct rq *rq = fiber__task_rq_lock(p);

	s->id = p->id;
	s->exec = p->sum_exec_runtime;
	s->wait = p->wait_sum;
	s->nvcsw = p->nvcsw;
	s->nivcsw = p->nivcsw;
	s->migrations = p->nr_migrations;
	s->last = p->exec_start;
	s->state = atomic_load_explicit(&p->state, memory_order_relaxed);
	s->policy = p->policy;
	s->prio = p->prio;
	s->cpu = p->cpu;
	s->on_cpu = atomic_load_explicit(&p->on_cpu, memory_order_relaxed);
	s->stack_got = -1;
	if (!s->on_cpu && !(s->state & TASK_DEAD))
		s->stack_got = copy_stack(p, stack);
	fiber__task_rq_unlock(rq, p);
}

static const char *state_name(const struct fiber_snap *sn)
{
	unsigned st = sn->state;

	if (st & TASK_DEAD)
		return "dead";
	if (st & TASK_NEW)
		return "new";
	if (st & TASK_UNINTERRUPTIBLE)
		return "blocked";
	if (st & TASK_INTERRUPTIBLE)
		return "sleeping";
	if (sn->on_cpu)
		return "running";
	return "runnable";
}

void fiber_dump(int fd)
{
	static char text[64 * 1024];
	static uint64_t stack_copy[DUMP_STACK_COPY / 8];
	static struct exec_segs segs;
	static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER; /* one dump at a time: the buffers are static */
	struct dbuf b = { text, 0, sizeof(text) };
	uint64_t switches = 0, idle = 0, pulled = 0, pushed = 0, migrations = 0, exec = 0, now;
	unsigned n, listed = 0, kthreads = 0, running = 0;
	int live;

	if (!atomic_load_explicit(&fiber__rt.running, memory_order_acquire)) {
		dprintf(fd, "libfiber: no runtime\n");
		return;
	}
	pthread_mutex_lock(&dump_lock);
	segs.nr = 0;
	dl_iterate_phdr(exec_seg_cb, &segs);
	now = fiber__sched_clock();
	n = fiber__rt.nr_workers;
	/* nr_fibers less the counts the workers and spare threads hold in advance (fiber__live_get): a recent value */
	live = atomic_load(&fiber__rt.nr_fibers);
	for (unsigned i = 0; i < n + fiber__rt.nr_spares; i++)
		live -= atomic_load_explicit(&fiber__rt.workers[i].live_credit, memory_order_relaxed);
	for (unsigned i = 0; i < n; i++) {
		struct rq *rq = cpu_rq(i);

		spin_lock(&rq->lock);
		switches += rq->nr_switches;
		idle += rq->idle_ns;
		pulled += rq->pulled;
		pushed += rq->pushed;
		running += atomic_load_explicit(&rq->nr_running, memory_order_relaxed);
		spin_unlock(&rq->lock);
	}
	db_printf(&b, "libfiber %s: %u workers, %d fibers, tick %u Hz\n", fiber_version(), n, live, fiber__rt.tick_hz);
	db_printf(&b, "totals: nr_running %u, switches %llu, idle %llu ms, balanced: pulled %llu pushed %llu\n",
		  running, (unsigned long long)switches, (unsigned long long)(idle / 1000000),
		  (unsigned long long)pulled, (unsigned long long)pushed);
	db_flush(&b, fd);
	for (unsigned i = 0; i < n; i++) {
		struct rq *rq = cpu_rq(i);

		spin_lock(&rq->lock);
		db_printf(&b,
			  "\nworker %u: curr %llu (%s) nr_running %u nr_switches %llu idle_ms %llu "
			  "fair %u rt %u dl %u (bw %llu/1024)\n",
			  i, (unsigned long long)rq->curr->id, rq->curr->name, atomic_load(&rq->nr_running),
			  (unsigned long long)rq->nr_switches, (unsigned long long)(rq->idle_ns / 1000000),
			  rq->cfs.nr_running, rq->rt.rt_nr_running, rq->dl.dl_nr_running,
			  (unsigned long long)(rq->dl.this_bw >> (BW_SHIFT - 10)));
		dump_rq(&b, rq);
		spin_unlock(&rq->lock);
		if (fiber__rt.workers[i].io) {
			struct io_ring *io = fiber__rt.workers[i].io;

			db_printf(&b,
				  "  io_uring: setup flags %#x, %u CQEs awaited, submitted %llu completed %llu "
				  "io_uring_enter %llu\n",
				  io->setup_flags, __atomic_load_n(&io->expected, __ATOMIC_RELAXED),
				  (unsigned long long)__atomic_load_n(&io->nr_submitted, __ATOMIC_RELAXED),
				  (unsigned long long)__atomic_load_n(&io->nr_completed, __ATOMIC_RELAXED),
				  (unsigned long long)__atomic_load_n(&io->nr_enter, __ATOMIC_RELAXED));
		} else if (fiber__io_mode == IO_MODE_POLL) {
			db_printf(&b, "  io: the poll readiness path (no io_uring)\n");
		}
		db_flush(&b, fd);
	}
	db_printf(&b, "\n%8s %-16s %-8s %-12s %-8s %5s %4s %12s %12s %10s %10s %9s\n", "id", "name", "state", "reason",
		  "policy", "prio", "cpu", "exec_ms", "wait_ms", "nvcsw", "nivcsw", "last_ms");
	db_flush(&b, fd);
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &fiber__rt.workers[i];
		struct list_head *pos, *tmp;

		spin_lock(&w->all_lock);
		list_for_each_safe (pos, tmp, &w->all_fibers) {
			struct fiber *p = list_entry(pos, struct fiber, all);
			const char *reason = atomic_load_explicit(&p->wait_reason, memory_order_relaxed);
			struct fiber_snap sn;
			bool parked;

			fiber_snapshot(p, &sn, stack_copy);
			parked = !sn.on_cpu && !(sn.state & TASK_DEAD);
			listed++;
			kthreads += !!(p->flags & PF_KTHREAD);
			exec += sn.exec;
			migrations += sn.migrations;
			db_printf(&b, "%8llu %-16s %-8s %-12s %-8s %5d %4d %12.3f %12.3f %10llu %10llu",
				  (unsigned long long)sn.id, fiber_label(p), state_name(&sn), reason ? reason : "-",
				  (p->flags & PF_KTHREAD) ? "stop" : policy_name(sn.policy), sn.prio, sn.cpu,
				  (double)sn.exec / 1e6, (double)sn.wait / 1e6, (unsigned long long)sn.nvcsw,
				  (unsigned long long)sn.nivcsw);
			if (parked && sn.last && now >= sn.last)
				db_printf(&b, " %9.1f\n", (double)(now - sn.last) / 1e6);
			else
				db_printf(&b, " %9s\n", parked ? "-" : "now");
			if (parked)
				dump_backtrace(&b, stack_copy, sn.stack_got, &segs);
			/* A write under the list lock only when the buffer runs full (the lock keeps p listed). */
			if (b.len > b.cap / 2)
				db_flush(&b, fd);
		}
		spin_unlock(&w->all_lock);
		db_flush(&b, fd);
	}
	db_printf(&b, "\n%u fibers listed (%u runtime), exec %.3f ms in all, %llu migrations\n", listed, kthreads,
		  (double)exec / 1e6, (unsigned long long)migrations);
	db_flush(&b, fd);
	obj_syms_release();
	pthread_mutex_unlock(&dump_lock);
	fiber__preempt_point();
}

/* ------------------------------------------------------------------------------------------------------------
 * The debug thread: the dump on a signal (fiber_config.dump_signal, FIBER_DUMP_SIGNAL) and the deadlock report
 * (fiber_config.deadlock_ms, FIBER_DEADLOCK_MS)
 * ---------------------------------------------------------------------------------------------------------- */

static int dump_pipe[2] = { -1, -1 };
static int dump_sig;
static bool debug_thread_on;
static unsigned deadlock_ms;
static struct sigaction dump_old_action;
static pthread_t dump_thr;

/* Async-signal-safe: one write(2) to a non-blocking pipe, errno preserved. A full pipe drops the request. */
static void dump_handler(int sig)
{
	int saved = errno;
	char c = 'd';

	(void)!write(dump_pipe[1], &c, 1);
	errno = saved;
}

/*
 * A deadlock: user fibers exist, every one of them is blocked on a fiber primitive (a wait reason is set), and
 * nothing can make progress inside the runtime: every worker runs its idle fiber with an empty runqueue and an
 * empty wakelist, and no timer is armed anywhere (a sleeper, a timed wait or a DEADLINE replenishment would wake
 * something). Peeked at without locks, so a true result is confirmed by the caller over time (the switch count
 * must not move). *@switches: the sum of the workers' switch counts.
 */
static bool all_blocked(uint64_t *switches, unsigned *nr)
{
	unsigned n = fiber__rt.nr_workers, blocked = 0;
	bool ok = atomic_load_explicit(&fiber__rt.nr_fibers, memory_order_acquire) > 0;

	*switches = 0;
	for (unsigned i = 0; i < n && ok; i++) {
		struct worker *w = &fiber__rt.workers[i];
		struct rq *rq = &w->rq;

		spin_lock(&rq->lock);
		*switches += rq->nr_switches;
		ok = rq->curr == rq->idle && !atomic_load_explicit(&rq->nr_running, memory_order_relaxed);
		spin_unlock(&rq->lock);
		ok = ok && !atomic_load_explicit(&w->wake_list, memory_order_acquire) &&
		     atomic_load_explicit(&w->timers.next_expiry, memory_order_acquire) == UINT64_MAX;
	}
	for (unsigned i = 0; i < n && ok; i++) {
		struct worker *w = &fiber__rt.workers[i];
		struct list_head *pos, *tmp;

		spin_lock(&w->all_lock);
		list_for_each_safe (pos, tmp, &w->all_fibers) {
			struct fiber *p = list_entry(pos, struct fiber, all);
			unsigned st = atomic_load_explicit(&p->state, memory_order_relaxed);

			if (p->flags & PF_KTHREAD)
				continue;
			const char *why = atomic_load_explicit(&p->wait_reason, memory_order_relaxed);

			/* A fiber waiting for I/O waits for the outside world, not for another fiber. */
			if (!(st & TASK_NORMAL) || atomic_load_explicit(&p->on_cpu, memory_order_relaxed) || !why ||
			    !strncmp(why, "io:", 3)) {
				ok = false;
				break;
			}
			blocked++;
		}
		spin_unlock(&w->all_lock);
	}
	*nr = blocked;
	return ok && blocked;
}

static void *dump_thread(void *arg)
{
	uint64_t since = 0, seen_switches = UINT64_MAX;
	bool reported = false;

	for (;;) {
		struct pollfd pfd = { .fd = dump_pipe[0], .events = POLLIN };
		int timeout = deadlock_ms ? (int)(deadlock_ms / 4 ? deadlock_ms / 4 : 1) : -1;
		int r = poll(&pfd, 1, timeout);
		char c;

		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0) {
			ssize_t n = read(dump_pipe[0], &c, 1);

			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0 || c == 'q')
				break;
			fiber_dump(STDERR_FILENO);
			continue;
		}
		if (!deadlock_ms)
			continue;
		uint64_t switches, now = fiber__sched_clock();
		unsigned nr;

		if (!all_blocked(&switches, &nr) || switches != seen_switches) {
			/* Progress, or not every fiber is stuck: start over; a new deadlock gets its own report. */
			if (switches != seen_switches)
				reported = false;
			seen_switches = switches;
			since = now;
			continue;
		}
		if (!reported && now - since >= (uint64_t)deadlock_ms * 1000000ull) {
			reported = true;
			dprintf(
			    STDERR_FILENO,
			    "libfiber: deadlock? all %u fibers have been blocked on fiber primitives for %u ms, with "
			    "nothing runnable and no timer armed (a plain thread may still wake one; the program "
			    "goes on)\n",
			    nr, (unsigned)((now - since) / 1000000));
			fiber_dump(STDERR_FILENO);
		}
	}
	return NULL;
}

/* A signal the dump may take: not one the runtime or the kernel needs for itself. */
static bool dump_signal_ok(int sig)
{
	return sig > 0 && sig <= SIGRTMAX && sig != SIGKILL && sig != SIGSTOP && sig != SIGSEGV && sig != SIGBUS &&
	       sig != SIGILL && sig != SIGFPE && sig != SIGTRAP && sig != SIGABRT;
}

static int parse_signal(const char *s)
{
	char *end;
	long v;

	if (!strncmp(s, "SIG", 3))
		s += 3;
	v = strtol(s, &end, 10);
	if (end != s && !*end)
		return v > 0 && v <= SIGRTMAX ? (int)v : -1;
	for (int i = 1; i < SIGRTMIN; i++) {
		const char *abbrev = sigabbrev_np(i);

		if (abbrev && !strcmp(abbrev, s))
			return i;
	}
	return -1;
}

int fiber__debug_config(struct fiber_config *c)
{
	const char *env;

	if (c->dump_signal && !dump_signal_ok(c->dump_signal))
		return -EINVAL;
	env = getenv("FIBER_DUMP_SIGNAL");
	if (!c->dump_signal && env && *env) {
		int sig = parse_signal(env);

		if (sig < 0 || !dump_signal_ok(sig)) {
			fprintf(stderr,
				"libfiber: FIBER_DUMP_SIGNAL=\"%s\" is not a signal the dump can use "
				"(e.g. SIGQUIT, SIGUSR1; not KILL, STOP, SEGV, BUS, ILL, FPE, TRAP, ABRT)\n",
				env);
			return -EINVAL;
		}
		c->dump_signal = sig;
	}
	if (c->deadlock_ms < -1 || c->deadlock_ms > 3600000)
		return -EINVAL;
	env = getenv("FIBER_DEADLOCK_MS");
	if (!c->deadlock_ms && env && *env) {
		char *end;
		long v = strtol(env, &end, 10);

		if (end == env || *end || v < 0 || v > 3600000) {
			fprintf(stderr, "libfiber: FIBER_DEADLOCK_MS=\"%s\" is not a time in 0..3600000 ms (0: off)\n",
				env);
			return -EINVAL;
		}
		c->deadlock_ms = v ? (int)v : -1;
	}
	env = getenv("FIBER_TRACE");
	if (!c->trace_file && env && *env)
		c->trace_file = env;
	return 0;
}

void fiber__debug_start(const struct fiber_config *c)
{
	struct sigaction sa;
	int sig = c->dump_signal;

	deadlock_ms = c->deadlock_ms > 0 ? (unsigned)c->deadlock_ms : 0;
	if (!sig && !deadlock_ms)
		return;
	if (pipe2(dump_pipe, O_CLOEXEC)) {
		fprintf(stderr, "libfiber: no dump on signal, no deadlock report: pipe: %s\n", strerror(errno));
		return;
	}
	fcntl(dump_pipe[1], F_SETFL, O_NONBLOCK);
	if (pthread_create(&dump_thr, NULL, dump_thread, NULL)) {
		fprintf(stderr, "libfiber: no dump on signal, no deadlock report: cannot create their thread\n");
		close(dump_pipe[0]);
		close(dump_pipe[1]);
		dump_pipe[0] = dump_pipe[1] = -1;
		return;
	}
	pthread_setname_np(dump_thr, "fiber-debug");
	debug_thread_on = true;
	if (!sig)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = dump_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, &dump_old_action);
	dump_sig = sig;
}

void fiber__debug_stop(void)
{
	char c = 'q';

	if (dump_sig) {
		sigaction(dump_sig, &dump_old_action, NULL);
		dump_sig = 0;
	}
	if (!debug_thread_on)
		return;
	debug_thread_on = false;
	while (write(dump_pipe[1], &c, 1) < 0 && errno == EINTR)
		;
	pthread_join(dump_thr, NULL);
	close(dump_pipe[0]);
	close(dump_pipe[1]);
	dump_pipe[0] = dump_pipe[1] = -1;
}
