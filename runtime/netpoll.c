/*
 * runtime/netpoll.c - the readiness path: I/O without io_uring (kernel.io_uring_disabled, seccomp), on epoll.
 *
 * What it owns: one epoll instance, one poller thread blocked in epoll_wait, and a descriptor table indexed by fd.
 * What it promises: fiber__netpoll_wait parks a fiber (no CPU, off every runqueue) until its fd is ready, its
 * deadline passes or it is cancelled; a wake-up is never lost and a waiter that gives up never takes one meant for
 * another.
 *
 * The I/O calls in fallback mode loop: the nonblocking system call; on EAGAIN, fiber__netpoll_wait; again. So a
 * wait is always preceded by a fresh EAGAIN and followed by a fresh attempt, and netpoll only has to say "it may
 * be ready now" (a hint, as Go's netpoller and level-triggered poll are): a spurious readiness costs one EAGAIN.
 *
 * Registration: level-triggered EPOLLONESHOT, re-armed by every wait. A waiter queues itself on its fd's
 * descriptor and, under the descriptor's lock, arms epoll with the union of the queued waiters' events
 * (EPOLL_CTL_MOD, EPOLL_CTL_ADD when the kernel has no entry). Arming makes epoll look at the file's readiness at
 * once, so readiness that arrived between the EAGAIN and the arm fires right away: no lost wake-up, whatever
 * happened before. Re-arming on every wait is also what keeps a reused fd number working after a plain close():
 * close() drops the epoll entry silently (or, with a dup still open, leaves it on the old file), and the next
 * wait's MOD then fails with ENOENT and ADDs the new file. ONESHOT means an event is delivered once per arm, so
 * an fd nobody waits on costs the poller nothing; the price is one epoll_ctl per wait, which is what the fallback
 * path pays instead of Go's edge-triggered register-once (which needs every close to go through it).
 *
 * Wake-ups are grants, as in sync.h: the poller takes an event for a descriptor, and under its lock unqueues
 * every waiter whose events match (POLLERR and POLLHUP match everyone), takes a reference on its fiber, stores the
 * revents in the waiter (release) and queues the fiber on a wake_q; after the lock it issues the wake-ups
 * (fiber__wake_up_q: try_to_wake_up from a plain thread). Waiters that did not match stay queued and the poller
 * re-arms for them (ONESHOT disarmed the entry). All matching waiters are woken, readers and writers apart: many
 * readers on one fd all wake and all but one see EAGAIN again (Linux's poll does the same).
 *
 * The waiter (KERNEL_MAP §6.3, D1): set_current_state(INTERRUPTIBLE) with its full fence, then check its grant,
 * then cancellation, then its timer, then schedule(); loop. The granter stores the grant before try_to_wake_up
 * fences and reads the state, so either the waiter sees the grant or the waker sees it asleep. A waiter that gives
 * up (-ECANCELED, -ETIMEDOUT) takes the descriptor's lock and either finds itself granted meanwhile (it returns
 * the grant: readiness wins, the cancellation stays pending for the next cancellation point) or unqueues itself;
 * since every matching waiter is granted on its own, giving up never swallows anybody else's wake-up.
 *
 * Timeouts: the deadline is a struct fiber_timer on the waiter's stack (nothing to allocate), armed on the worker
 * the fiber runs on; its expiry wakes the fiber, which sees t.fired. fiber__timer_del before return.
 *
 * fiber__netpoll_forget (fiber_close): EPOLL_CTL_DEL, then grant -EBADF to every waiter (after close nothing
 * would wake them). A plain close() with a waiter parked leaves that waiter parked, as a blocking read in another
 * thread stays blocked on Linux; only the reuse of the number is covered.
 *
 * The table: two levels, chunks of 256 descriptors allocated on first use and kept until fini, so a descriptor's
 * address is stable (it is the epoll_data) and lookups take no lock: the top-level array is replaced by a larger
 * copy when an fd beyond it comes (the old arrays are kept until fini for readers that still hold them).
 *
 * Lock order: np_desc.lock is a leaf: nothing is taken under it but epoll_ctl (a system call) and the atomics of
 * wake_q_add_safe; np.grow_lock is a leaf (allocations under it). The poller thread blocks every signal, so it
 * never takes a process-directed signal from the application's threads.
 */
#include "netpoll.h"
#include "sync.h"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

_Static_assert(EPOLLIN == POLLIN && EPOLLPRI == POLLPRI && EPOLLOUT == POLLOUT && EPOLLERR == POLLERR &&
		   EPOLLHUP == POLLHUP && EPOLLRDHUP == POLLRDHUP && EPOLLRDNORM == POLLRDNORM &&
		   EPOLLRDBAND == POLLRDBAND && EPOLLWRNORM == POLLWRNORM && EPOLLWRBAND == POLLWRBAND,
	       "poll and epoll event bits agree (Linux)");

/* The events a waiter may ask for; POLLERR and POLLHUP are always reported. */
#define NP_EVENTS (POLLIN | POLLPRI | POLLOUT | POLLRDHUP | POLLRDNORM | POLLRDBAND | POLLWRNORM | POLLWRBAND)
#define NP_ALWAYS (POLLERR | POLLHUP)
#define NP_CHUNK_SHIFT 8
#define NP_CHUNK (1u << NP_CHUNK_SHIFT)
#define NP_INIT_SLOTS 16    /* chunk slots of the first table: fds 0..4095 */
#define NP_FD_MAX (1 << 30) /* above fs.nr_open's ceiling: no such fd exists */
#define NP_BATCH 128	    /* events per epoll_wait */

/* A parked fiber, on its own stack. */
struct np_waiter {
	struct list_head link; /* np_desc.waiters; np_desc.lock */
	struct fiber *task;
	unsigned events;   /* asked for, | NP_ALWAYS; set before it is queued */
	atomic_int result; /* 0 parked; > 0 revents, < 0 -errno: the grant, stored (release) after the unqueue */
};

/* One per fd number that was ever waited on (kept until fini). */
struct np_desc {
	spinlock_t lock;	  /* a leaf lock: the fields below, and the waiters' links */
	bool registered;	  /* epoll had an entry for fd when we last looked */
	int fd;			  /* constant */
	struct list_head waiters; /* struct np_waiter, oldest first */
};

struct np_table {
	struct np_table *older;		 /* the table this one replaced (np.grow_lock; freed at fini) */
	unsigned nr;			 /* chunk slots */
	struct np_desc *_Atomic chunk[]; /* NULL until first use; set (release) under np.grow_lock */
};

static struct {
	pthread_mutex_t init_lock; /* users, and start/stop against each other */
	unsigned users;		   /* fiber__netpoll_init calls not yet undone */
	atomic_int active;	   /* 1 while the poller runs (release after set-up) */
	atomic_int stop;	   /* the poller leaves (set before the eventfd write) */
	int epfd, evfd;		   /* set before active */
	pthread_t thr;
	spinlock_t grow_lock;		/* a leaf lock: table growth and chunk allocation */
	struct np_table *_Atomic table; /* the current table; replaced (release) under grow_lock */
} np = { .init_lock = PTHREAD_MUTEX_INITIALIZER };

/* ------------------------------------------------------------------------------------------------------------
 * The descriptor table
 * ---------------------------------------------------------------------------------------------------------- */

static size_t table_size(unsigned nr)
{
	return sizeof(struct np_table) + nr * sizeof(struct np_desc *);
}

static struct np_table *table_alloc(unsigned nr)
{
	struct np_table *t = fiber__zalloc(table_size(nr));

	if (t)
		t->nr = nr;
	return t;
}

static struct np_desc *desc_get_slow(int fd)
{
	unsigned idx = (unsigned)fd >> NP_CHUNK_SHIFT;
	struct np_desc *c, *d = NULL;
	struct np_table *t;

	spin_lock(&np.grow_lock);
	t = atomic_load_explicit(&np.table, memory_order_relaxed);
	if (idx >= t->nr) {
		unsigned nr = t->nr * 2;
		struct np_table *nt;

		while (nr <= idx)
			nr *= 2;
		nt = table_alloc(nr);
		if (!nt)
			goto out;
		for (unsigned i = 0; i < t->nr; i++)
			atomic_init(&nt->chunk[i], atomic_load_explicit(&t->chunk[i], memory_order_relaxed));
		nt->older = t;
		/* Release: pairs with desc_get's acquire; readers of the old table fall back here and see this one. */
		atomic_store_explicit(&np.table, nt, memory_order_release);
		t = nt;
	}
	c = atomic_load_explicit(&t->chunk[idx], memory_order_relaxed);
	if (!c) {
		c = fiber__malloc(NP_CHUNK * sizeof(*c));
		if (!c)
			goto out;
		for (unsigned i = 0; i < NP_CHUNK; i++) {
			spin_lock_init(&c[i].lock);
			c[i].registered = false;
			c[i].fd = (int)((idx << NP_CHUNK_SHIFT) + i);
			INIT_LIST_HEAD(&c[i].waiters);
		}
		/* Release: the initialized chunk before its pointer (pairs with desc_get's acquire). */
		atomic_store_explicit(&t->chunk[idx], c, memory_order_release);
	}
	d = &c[fd & (int)(NP_CHUNK - 1)];
out:
	spin_unlock(&np.grow_lock);
	return d;
}

/* The descriptor of @fd (0 <= fd < NP_FD_MAX); made if @create (NULL: out of memory), else NULL if never made. */
static struct np_desc *desc_get(int fd, bool create)
{
	unsigned idx = (unsigned)fd >> NP_CHUNK_SHIFT;
	/* Both acquire loads pair with the release stores of desc_get_slow (table, then chunk). */
	struct np_table *t = atomic_load_explicit(&np.table, memory_order_acquire);
	struct np_desc *c;

	if (idx < t->nr && (c = atomic_load_explicit(&t->chunk[idx], memory_order_acquire)))
		return &c[fd & (int)(NP_CHUNK - 1)];
	return create ? desc_get_slow(fd) : NULL;
}

static void table_free(void)
{
	struct np_table *t = atomic_load_explicit(&np.table, memory_order_relaxed);

	/* Every chunk is in the current table (growth copies them; chunks are only added to the current one). */
	for (unsigned i = 0; t && i < t->nr; i++) {
		struct np_desc *c = atomic_load_explicit(&t->chunk[i], memory_order_relaxed);

		if (!c)
			continue;
		for (unsigned j = 0; j < NP_CHUNK; j++)
			FIBER_BUG_ON(!list_empty(&c[j].waiters)); /* fini with a fiber still parked */
		fiber__free(c, NP_CHUNK * sizeof(*c));
	}
	while (t) {
		struct np_table *older = t->older;

		fiber__free(t, table_size(t->nr));
		t = older;
	}
	atomic_store_explicit(&np.table, NULL, memory_order_relaxed);
}

/* ------------------------------------------------------------------------------------------------------------
 * Arming and granting (np_desc.lock held)
 * ---------------------------------------------------------------------------------------------------------- */

/*
 * Arm @d's fd for @mask, once (ONESHOT): MOD, or ADD when the kernel has no entry for the file that has this
 * number now (first use, or the number was closed and reused). epoll looks at the readiness at once. 0 or -errno.
 */
static int desc_arm(struct np_desc *d, unsigned mask)
{
	struct epoll_event ev = { .events = (mask & NP_EVENTS) | EPOLLONESHOT, .data.ptr = d };
	int saved = errno, ret = 0;

	lockdep_assert_held(&d->lock);
	if (epoll_ctl(np.epfd, EPOLL_CTL_MOD, d->fd, &ev)) {
		ret = -errno;
		if (ret == -ENOENT)
			ret = epoll_ctl(np.epfd, EPOLL_CTL_ADD, d->fd, &ev) ? -errno : 0;
	}
	errno = saved;
	if (!ret)
		d->registered = true;
	return ret;
}

/* The union of what @d's waiters wait for. */
static unsigned desc_mask(struct np_desc *d)
{
	struct list_head *pos, *n;
	unsigned mask = 0;

	lockdep_assert_held(&d->lock);
	list_for_each_safe (pos, n, &d->waiters)
		mask |= list_entry(pos, struct np_waiter, link)->events;
	return mask;
}

/*
 * Unqueue @w and grant it @result (KERNEL_MAP §6.5, as fiber__sync_grant): a reference pins the fiber, the grant is
 * stored, then the wake-up is queued on @q. After the release store the waiter may return and @w vanish.
 */
static void grant(struct np_waiter *w, int result, struct wake_q_head *q)
{
	struct fiber *task = w->task;

	list_del_init(&w->link);
	fiber__get_task_struct(task);
	atomic_store_explicit(&w->result, result, memory_order_release); /* pairs with the waiter's acquire load */
	fiber__wake_q_add_safe(q, task);
}

static void grant_all(struct np_desc *d, int result, struct wake_q_head *q)
{
	struct list_head *pos, *n;

	lockdep_assert_held(&d->lock);
	list_for_each_safe (pos, n, &d->waiters)
		grant(list_entry(pos, struct np_waiter, link), result, q);
}

/* ------------------------------------------------------------------------------------------------------------
 * The poller thread
 * ---------------------------------------------------------------------------------------------------------- */

/* An event for @d: grant the waiters it matches, re-arm for the others. */
static void desc_ready(struct np_desc *d, unsigned revents)
{
	DEFINE_WAKE_Q(q);
	struct list_head *pos, *n;
	unsigned rest = 0;

	spin_lock(&d->lock);
	list_for_each_safe (pos, n, &d->waiters) {
		struct np_waiter *w = list_entry(pos, struct np_waiter, link);
		unsigned r = revents & w->events;

		if (r)
			grant(w, (int)r, &q);
		else
			rest |= w->events;
	}
	/* ONESHOT disarmed the entry: arm it again for those still waiting (EBADF: closed under them; tell them). */
	if (rest) {
		int err = desc_arm(d, rest);

		if (err)
			grant_all(d, err, &q);
	}
	spin_unlock(&d->lock);
	fiber__wake_up_q(&q);
}

static void *poller_main(void *arg)
{
	struct epoll_event ev[NP_BATCH];

	(void)arg;
	pthread_setname_np(pthread_self(), "fiber-netpoll");
	while (!atomic_load_explicit(&np.stop, memory_order_acquire)) { /* pairs with the release store at fini */
		int n = epoll_wait(np.epfd, ev, NP_BATCH, -1);

		/* Only EINTR can fail it (a debugger, SIGSTOP/SIGCONT): the others mean a broken epfd or ev. */
		FIBER_BUG_ON(n < 0 && errno != EINTR);
		for (int i = 0; i < n; i++)
			if (ev[i].data.ptr) /* NULL: the eventfd, written by fini after it set np.stop */
				desc_ready(ev[i].data.ptr, ev[i].events);
	}
	return NULL;
}

static int np_start(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	sigset_t all, old;
	struct np_table *t;
	int ret;

	t = table_alloc(NP_INIT_SLOTS);
	if (!t)
		return -ENOMEM;
	atomic_store_explicit(&np.table, t, memory_order_relaxed);
	spin_lock_init(&np.grow_lock);
	atomic_store(&np.stop, 0);
	np.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (np.epfd < 0) {
		ret = -errno;
		goto err_table;
	}
	np.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (np.evfd < 0) {
		ret = -errno;
		goto err_epoll;
	}
	if (epoll_ctl(np.epfd, EPOLL_CTL_ADD, np.evfd, &ev)) {
		ret = -errno;
		goto err_eventfd;
	}
	/* The poller blocks every signal (it inherits the mask): the application's signals go to its own threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&np.thr, NULL, poller_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		goto err_eventfd;
	/* Pairs with the acquire loads of active in fiber__netpoll_wait and fiber__netpoll_forget. */
	atomic_store_explicit(&np.active, 1, memory_order_release);
	return 0;

err_eventfd:
	close(np.evfd);
err_epoll:
	close(np.epfd);
err_table:
	table_free();
	return ret;
}

int fiber__netpoll_init(void)
{
	int saved = errno, ret = 0;

	pthread_mutex_lock(&np.init_lock);
	if (!np.users)
		ret = np_start();
	if (!ret)
		np.users++;
	pthread_mutex_unlock(&np.init_lock);
	errno = saved;
	return ret;
}

void fiber__netpoll_fini(void)
{
	int saved = errno;
	uint64_t one = 1;

	pthread_mutex_lock(&np.init_lock);
	if (!np.users || --np.users) {
		pthread_mutex_unlock(&np.init_lock);
		return;
	}
	atomic_store_explicit(&np.active, 0, memory_order_relaxed);
	/* Release: pairs with the poller's acquire load after epoll_wait returns the eventfd. */
	atomic_store_explicit(&np.stop, 1, memory_order_release);
	while (write(np.evfd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(np.thr, NULL);
	close(np.evfd);
	close(np.epfd);
	table_free();
	pthread_mutex_unlock(&np.init_lock);
	errno = saved;
}

/* ------------------------------------------------------------------------------------------------------------
 * Waiting
 * ---------------------------------------------------------------------------------------------------------- */

/* A plain pthread (no fiber to park): poll(2), with the fiber path's results. */
static int wait_pthread(int fd, unsigned events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = (short)events };
	int saved = errno;

	for (;;) {
		int ms = -1, n, err;

		if (deadline) {
			uint64_t now = fiber__sched_clock(), d;

			if (now >= deadline)
				return -ETIMEDOUT;
			d = (deadline - now + 999999) / 1000000;
			ms = d > INT_MAX ? INT_MAX : (int)d;
		}
		n = poll(&p, 1, ms);
		err = errno;
		errno = saved;
		if (n > 0)
			return (p.revents & POLLNVAL) ? -EBADF : p.revents;
		if (n < 0 && err != EINTR)
			return -err;
		/* Timed out (the loop checks the deadline by our clock) or EINTR: again. */
	}
}

int fiber__netpoll_wait(int fd, short events, uint64_t deadline)
{
	struct fiber *curr = sync_self();
	unsigned want = ((unsigned)(unsigned short)events & NP_EVENTS) | NP_ALWAYS;
	struct np_waiter w;
	struct fiber_timer t;
	struct np_desc *d;
	bool gave_up = false, said;
	int ret;

	if (fd < 0 || fd >= NP_FD_MAX)
		return -EBADF;
	if (!curr)
		return wait_pthread(fd, want, deadline);
	if (fiber__signal_pending(curr))
		return -ECANCELED;
	if (!atomic_load_explicit(&np.active, memory_order_acquire))
		return -ENXIO;
	if (deadline && fiber__sched_clock() >= deadline)
		return -ETIMEDOUT;
	d = desc_get(fd, true);
	if (!d)
		return -ENOMEM;

	w.task = curr;
	w.events = want;
	atomic_init(&w.result, 0);
	/*
	 * Shown by fiber_dump and gdb, unless the caller said something more precise. "io:": the deadlock report
	 * does not count a fiber that waits for the outside world as blocked on another fiber.
	 */
	said = !atomic_load_explicit(&curr->wait_reason, memory_order_relaxed);
	if (said)
		fiber__set_wait(curr, "io:netpoll", d);
	spin_lock(&d->lock);
	list_add_tail(&w.link, &d->waiters);
	ret = desc_arm(d, desc_mask(d));
	if (ret) {
		/* EPERM: a regular file or directory (always ready; the caller makes the call). EBADF, ENOMEM, ... */
		list_del_init(&w.link);
		spin_unlock(&d->lock);
		if (said)
			fiber__set_wait(curr, NULL, NULL);
		return ret;
	}
	spin_unlock(&d->lock);

	if (deadline) {
		/* On the worker we run on now; its expiry wakes us wherever we are by then. */
		fiber__timer_init(&t, NULL, curr);
		preempt_disable();
		fiber__timer_add(&this_worker()->timers, &t, deadline, curr);
		preempt_enable_no_resched();
	}
	for (;;) {
		/* D1: the state store and its full fence, then the grant; the granter stores it, then ttwu reads state. */
		fiber__set_current_state(TASK_INTERRUPTIBLE);
		ret = atomic_load_explicit(&w.result, memory_order_acquire); /* pairs with grant's release store */
		if (ret)
			break;
		if (fiber__signal_pending(curr)) {
			ret = -ECANCELED;
			gave_up = true;
			break;
		}
		/* Pairs with run_timers' release store of fired (timer.c). */
		if (deadline && atomic_load_explicit(&t.fired, memory_order_acquire)) {
			ret = -ETIMEDOUT;
			gave_up = true;
			break;
		}
		fiber__schedule();
	}
	atomic_store_explicit(&curr->state, TASK_RUNNING, memory_order_relaxed);
	if (deadline)
		fiber__timer_del(&t);
	if (gave_up) {
		int g;

		/* Granted since we looked: it is ours (grants happen under the lock). Else leave the queue. */
		spin_lock(&d->lock);
		g = atomic_load_explicit(&w.result, memory_order_relaxed);
		if (g)
			ret = g;
		else
			list_del_init(&w.link);
		spin_unlock(&d->lock);
	}
	if (said)
		fiber__set_wait(curr, NULL, NULL);
	return ret;
}

void fiber__netpoll_forget(int fd)
{
	DEFINE_WAKE_Q(q);
	struct np_desc *d;

	if (fd < 0 || fd >= NP_FD_MAX || !atomic_load_explicit(&np.active, memory_order_acquire))
		return;
	d = desc_get(fd, false);
	if (!d)
		return;
	spin_lock(&d->lock);
	if (d->registered) {
		int saved = errno;

		/* Also drops an entry a dup of the file would keep alive after close (it would fire into @d). */
		epoll_ctl(np.epfd, EPOLL_CTL_DEL, fd, NULL);
		errno = saved;
		d->registered = false;
	}
	grant_all(d, -EBADF, &q);
	spin_unlock(&d->lock);
	fiber__wake_up_q(&q);
}
