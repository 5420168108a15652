/*
 * runtime/list.h - intrusive doubly linked lists, as in include/linux/list.h.
 *
 * Included by internal.h (after its compiler helpers: container_of); not a header of its own to include alone.
 */
#ifndef FIBER_LIST_H
#define FIBER_LIST_H

#include <stdbool.h>

struct list_head {
	struct list_head *next, *prev;
};

/*
 * The ->next stores are relaxed atomics (plain moves): finish_wait peeks at its entry's next without the lock
 * (list_empty_careful), and every other access is under the list's lock.
 */
static inline void INIT_LIST_HEAD(struct list_head *h)
{
	__atomic_store_n(&h->next, h, __ATOMIC_RELAXED);
	h->prev = h;
}
static inline bool list_empty(const struct list_head *h)
{
	return h->next == h;
}
static inline void __list_add(struct list_head *n, struct list_head *prev, struct list_head *next)
{
	next->prev = n;
	__atomic_store_n(&n->next, next, __ATOMIC_RELAXED);
	n->prev = prev;
	__atomic_store_n(&prev->next, n, __ATOMIC_RELAXED);
}
static inline void list_add(struct list_head *n, struct list_head *h)
{
	__list_add(n, h, h->next);
}
static inline void list_add_tail(struct list_head *n, struct list_head *h)
{
	__list_add(n, h->prev, h);
}
static inline void list_del_init(struct list_head *e)
{
	e->next->prev = e->prev;
	__atomic_store_n(&e->prev->next, e->next, __ATOMIC_RELAXED);
	INIT_LIST_HEAD(e);
}
static inline void list_move_tail(struct list_head *e, struct list_head *h)
{
	list_del_init(e);
	list_add_tail(e, h);
}
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(h, type, member) list_entry((h)->next, type, member)
#define list_for_each_safe(pos, n, head) for (pos = (head)->next, n = pos->next; pos != (head); pos = n, n = pos->next)

#endif /* FIBER_LIST_H */
