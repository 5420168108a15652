/*
 * runtime/treap.h - an intrusive, augmented treap: the ordered tree of the fair class (EEVDF, ordered by virtual
 * deadline, augmented with the subtree's minimum vruntime) and the deadline class (EDF, ordered by absolute
 * deadline). Expected O(log n) insert, erase and search; erase by node pointer through parent links.
 *
 * A binary search tree by the caller's less() that is also a heap by a random priority per node, which keeps it
 * balanced in expectation without the case analysis of a red-black tree. augment(n), when not NULL, recomputes n's
 * augmented data from n and its children and says whether it changed; it is called bottom-up on the nodes whose
 * subtree changed, stopping at the first ancestor whose value stays the same (its ancestors' inputs are unchanged).
 */
#ifndef FIBER_TREAP_H
#define FIBER_TREAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tnode {
	struct tnode *l, *r, *parent;
	uint32_t prio;
};

struct treap {
	struct tnode *root;
	uint32_t seed;
	bool (*less)(const struct tnode *a, const struct tnode *b);
	bool (*augment)(struct tnode *n);
};

static inline void treap_init(struct treap *t, bool (*less)(const struct tnode *, const struct tnode *),
			      bool (*augment)(struct tnode *))
{
	t->root = NULL;
	t->seed = 0x9e3779b9u;
	t->less = less;
	t->augment = augment;
}

static inline bool treap_update(struct treap *t, struct tnode *n)
{
	return t->augment && t->augment(n);
}

/* Replace the link that points to @old (from its parent, or the root) with @new. */
static inline void treap_relink(struct treap *t, struct tnode *old, struct tnode *new_)
{
	struct tnode *p = old->parent;

	if (!p)
		t->root = new_;
	else if (p->l == old)
		p->l = new_;
	else
		p->r = new_;
	if (new_)
		new_->parent = p;
}

/* Rotate @c (a child of its parent p) above p. */
static inline void treap_rotate_up(struct treap *t, struct tnode *c)
{
	struct tnode *p = c->parent;

	treap_relink(t, p, c);
	if (p->l == c) {
		p->l = c->r;
		if (c->r)
			c->r->parent = p;
		c->r = p;
	} else {
		p->r = c->l;
		if (c->l)
			c->l->parent = p;
		c->l = p;
	}
	p->parent = c;
	treap_update(t, p);
	treap_update(t, c);
}

static inline void treap_fixup_path(struct treap *t, struct tnode *n)
{
	for (; n; n = n->parent)
		if (!treap_update(t, n))
			break;
}

static inline void treap_insert(struct treap *t, struct tnode *n)
{
	struct tnode **link = &t->root, *parent = NULL;

	/* xorshift32: the priorities only need to be unpredictable to the insertion order */
	t->seed ^= t->seed << 13;
	t->seed ^= t->seed >> 17;
	t->seed ^= t->seed << 5;
	n->prio = t->seed;
	n->l = n->r = NULL;
	while (*link) {
		parent = *link;
		link = t->less(n, parent) ? &parent->l : &parent->r;
	}
	*link = n;
	n->parent = parent;
	treap_update(t, n);
	while (n->parent && n->prio < n->parent->prio)
		treap_rotate_up(t, n);
	treap_fixup_path(t, n->parent);
}

static inline void treap_erase(struct treap *t, struct tnode *n)
{
	struct tnode *p;

	/* Rotate n down (its higher-priority child up) until it is a leaf or has one child. */
	while (n->l && n->r)
		treap_rotate_up(t, n->l->prio < n->r->prio ? n->l : n->r);
	p = n->parent;
	treap_relink(t, n, n->l ? n->l : n->r);
	treap_fixup_path(t, p);
	n->l = n->r = n->parent = NULL;
}

static inline struct tnode *treap_first(const struct treap *t)
{
	struct tnode *n = t->root;

	if (n)
		while (n->l)
			n = n->l;
	return n;
}

static inline bool treap_empty(const struct treap *t)
{
	return t->root == NULL;
}

#endif
