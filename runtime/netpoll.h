/*
 * runtime/netpoll.h - the readiness fallback for I/O when io_uring is unavailable (netpoll.c).
 *
 * The I/O calls use it in fallback mode as: loop { r = the nonblocking system call; if (r != -EAGAIN) return r;
 * r = fiber__netpoll_wait(fd, POLLIN or POLLOUT, deadline); if (r < 0) return r; }.
 */
#ifndef FIBER_NETPOLL_H
#define FIBER_NETPOLL_H

#include "internal.h"

/*
 * Set up the poller (an epoll instance, an eventfd and a poller thread). 0 or -errno (-ENOMEM, -EMFILE, -EAGAIN
 * when the thread cannot be made). Calls nest: each successful init needs one fini, and only the last fini tears
 * the poller down (so a test may bring up its own around a runtime that has one). Context: a plain thread.
 */
__hidden int fiber__netpoll_init(void);

/* Undo one fiber__netpoll_init. The last one stops the poller; no fiber may be parked then. Context: a plain thread. */
__hidden void fiber__netpoll_fini(void);

/*
 * Park the calling fiber until @fd is ready for @events (POLLIN, POLLOUT, POLLPRI; POLLERR and POLLHUP always
 * count), until @deadline (absolute, fiber__sched_clock() ns; 0 = none) has passed, or until the fiber is
 * cancelled. Returns the revents seen (> 0; a readiness hint: the caller retries its call, which may say EAGAIN
 * again), -ETIMEDOUT, -ECANCELED (also when the cancellation was pending at entry), -EBADF (a bad fd, or the fd
 * went through fiber__netpoll_forget while we waited), -EPERM (a regular file or directory: epoll refuses it;
 * the caller makes the blocking call), -ENOMEM, -ENXIO (no poller set up), or another -errno of epoll_ctl.
 * A plain pthread (no fiber) blocks in poll(2) with the same results.
 * Context: a fiber, no locks held (a cancellation point).
 */
__hidden int fiber__netpoll_wait(int fd, short events, uint64_t deadline);

/*
 * @fd is about to be closed (fiber_close calls it before close): drop its epoll registration and wake every fiber
 * parked on it with -EBADF (the descriptor is going away: nothing would ever wake them). Cheap when nothing was
 * registered. Context: any thread.
 */
__hidden void fiber__netpoll_forget(int fd);

#endif /* FIBER_NETPOLL_H */
