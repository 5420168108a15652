/*
 * runtime/treap.h - an intrusive, augmented treap: the ordered tree of the fair class (EEVDF, ordered by virtual
 * deadline, augmented with the subtree's minimum vruntime) and the deadline class (EDF, ordered by absolute
 * deadline). Expected O(log n) insert, erase and search; erase by node pointer through parent links.
 *
 * A binary search tree by the caller's less() that is also a heap by a random priority per node, which keeps it
 * balanced in expectation without the case analysis of a red-black tree.
 *
 * Two ways in:
 *   - treap_insert()/treap_erase() with the callbacks stored by treap_init() (less, and augment or NULL), called
 *     through pointers: for trees off the hot path (the deadline class).
 *   - __treap_insert()/__treap_erase() take the callbacks as arguments of always-inline functions. Called with
 *     static functions as constants (the kernel's rb_add(node, tree, less) pattern), the compiler calls them
 *     directly and inlines them: no indirect call per comparison or augment step. The fair class uses these.
 *
 * The augment callbacks (any may be NULL; with compute NULL the tree is not augmented):
 *   compute(n)       recompute n's augmented value from n and its children; true if it changed
 *   copy(dst, src)   dst takes src's value: in a rotation the risen child's subtree is the old parent's subtree
 *   propagate(a, n)  insert: a's subtree gains n (n's own value already set); true if a's value changed
 * Before an insert into an augmented tree the caller sets n's value to that of a leaf (n's own key data): the
 * insert does not compute it.
 * With copy, a rotation recomputes one node instead of two. With propagate, an insert updates its ancestors on
 * the way down (an insert can only move an ancestor's value towards n's) and needs no fix-up walk afterwards; an
 * insert that attached n without walking down from the root (at the last node, or by the finger search)
 * propagates n's value up from its parent instead, and stops at the first ancestor it does not change. Without
 * propagate, and after an erase, the path is fixed up bottom-up with compute and stops at the first ancestor whose
 * value stays the same: every node above it depends on the changed subtree only through that value.
 *
 * Each node links its in-order neighbours (prev/next), set when it is attached as a leaf (one side is its parent,
 * the other the parent's old neighbour) and unchanged by rotations. An erase unlinks it in O(1), and the new first
 * or last node is then its neighbour, without a walk down the subtree whose length the tree's shape decides.
 *
 * The tree caches its first and last node (the kernel's rb_root_cached, both ends): treap_first() is O(1), and an
 * insert at or after the last node attaches there without walking down from the root; one in the root's right
 * half searches from the last node up the right spine and then down (a finger search). The ancestors' values are
 * then fixed up bottom-up, which usually stops at once: a node added near the back rarely lowers a minimum.
 */
#ifndef FIBER_TREAP_H
#define FIBER_TREAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tnode {
	struct tnode *l, *r, *parent;
	struct tnode *prev, *next; /* in-order neighbours (NULL at the ends): the new first/last node at an erase */
	uint32_t prio;
};

typedef bool (*treap_less_fn)(const struct tnode *a, const struct tnode *b);
typedef bool (*treap_compute_fn)(struct tnode *n);
typedef void (*treap_copy_fn)(struct tnode *dst, const struct tnode *src);
typedef bool (*treap_propagate_fn)(struct tnode *a, const struct tnode *n);

struct treap {
	struct tnode *root;
	struct tnode *leftmost, *rightmost; /* the first and last node in order (NULL when empty) */
	uint32_t seed;
	treap_less_fn less;
	treap_compute_fn augment;
};

#define __treap_inline inline __attribute__((always_inline))

static inline void treap_init(struct treap *t, treap_less_fn less, treap_compute_fn augment)
{
	t->root = t->leftmost = t->rightmost = NULL;
	t->seed = 0x9e3779b9u;
	t->less = less;
	t->augment = augment;
}

/*
 * @c ? @a : @b as a conditional move. Whether a node has a child is the tree's shape, which a branch predictor
 * cannot learn, and GCC keeps a branch for the plain ternary here.
 */
static inline void *treap_select(const void *c, void *a, void *b)
{
#if defined(__x86_64__)
	__asm__("test %1, %1\n\tcmovnz %2, %0" : "+r"(b) : "r"(c), "r"(a) : "cc");
	return b;
#else
	return c ? a : b;
#endif
}

/* c->parent = p where c may be NULL, without a branch: a missing child's store goes to a scratch slot. */
static inline void treap_set_parent(struct tnode *c, struct tnode *p)
{
	struct tnode *scratch;
	struct tnode **slot = treap_select(c, (void *)((uintptr_t)c + offsetof(struct tnode, parent)), &scratch);

	*slot = p;
	__asm__("" : : "m"(scratch)); /* the store may land there: keep the slot */
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
	treap_set_parent(new_, p);
}

/* Rotate @c (a child of its parent p) above p. */
static __treap_inline void __treap_rotate_up(struct treap *t, struct tnode *c, treap_compute_fn compute,
					     treap_copy_fn copy)
{
	struct tnode *p = c->parent;

	treap_relink(t, p, c);
	if (p->l == c) {
		p->l = c->r;
		treap_set_parent(c->r, p);
		c->r = p;
	} else {
		p->r = c->l;
		treap_set_parent(c->l, p);
		c->l = p;
	}
	p->parent = c;
	if (!compute)
		return;
	if (copy) {
		copy(c, p); /* c's subtree is now exactly p's old one */
		compute(p);
	} else {
		compute(p);
		compute(c);
	}
}

static __treap_inline void __treap_fixup_path(struct tnode *n, treap_compute_fn compute)
{
	if (!compute)
		return;
	for (; n; n = n->parent)
		if (!compute(n))
			break;
}

static __treap_inline void __treap_insert(struct treap *t, struct tnode *n, treap_less_fn less,
					  treap_compute_fn compute, treap_copy_fn copy, treap_propagate_fn propagate)
{
	struct tnode **link = &t->root, *parent = NULL;
	bool walked = false;

	/* xorshift32: the priorities only need to be unpredictable to the insertion order */
	t->seed ^= t->seed << 13;
	t->seed ^= t->seed >> 17;
	t->seed ^= t->seed << 5;
	n->prio = t->seed;
	n->l = n->r = NULL;
	if (!t->root) {
		t->leftmost = t->rightmost = n;
	} else if (!less(n, t->rightmost)) {
		/*
		 * Not before the last node (equal keys go right): it becomes the last node's right child, without the
		 * walk down from the root - the common case of a queue whose members go to the back (a yield ring).
		 */
		parent = t->rightmost;
		link = &parent->r;
		t->rightmost = n;
	} else {
		struct tnode *z = t->root;

		if (less(n, t->leftmost))
			t->leftmost = n;
		if (!less(n, z)) {
			/*
			 * In the root's right half: a finger search from the last node. Climb the right spine while n
			 * orders before the parent; n then belongs in z's left subtree. A key near the back (a yield ring
			 * where the deadlines spread over a slice) walks a few recently used nodes near the bottom
			 * instead of the whole depth.
			 */
			z = t->rightmost;
			while (z->parent && less(n, z->parent))
				z = z->parent;
		} else {
			walked = true;
			if (compute && propagate)
				propagate(z, n);
		}
		link = &z->l; /* n orders before z */
		parent = z;
		while (*link) {
			parent = *link;
			if (walked && compute && propagate)
				propagate(parent, n);
			link = less(n, parent) ? &parent->l : &parent->r;
		}
	}
	*link = n;
	n->parent = parent;
	/* A new leaf's in-order neighbours: its parent on one side, the parent's old neighbour on the other. */
	if (!parent) {
		n->prev = n->next = NULL;
	} else if (link == &parent->l) {
		n->next = parent;
		n->prev = parent->prev;
		if (parent->prev)
			parent->prev->next = n;
		parent->prev = n;
	} else {
		n->prev = parent;
		n->next = parent->next;
		if (parent->next)
			parent->next->prev = n;
		parent->next = n;
	}
	/*
	 * n's own value is set (the caller's part, see above). Ancestors first, so that the rotations below start from correct values: stops at the first unchanged. A
	 * walk down with propagate has updated them already; otherwise propagate, where there is one, is the cheaper
	 * step up (n joins each subtree on the path: one comparison per ancestor, not a recomputation).
	 */
	if (compute && propagate) {
		if (!walked)
			for (struct tnode *a = n->parent; a && propagate(a, n); a = a->parent)
				;
	} else {
		__treap_fixup_path(n->parent, compute);
	}
	while (n->parent && n->prio < n->parent->prio)
		__treap_rotate_up(t, n, compute, copy);
}

static inline struct tnode *__treap_first_of(struct tnode *n)
{
	while (n->l)
		n = n->l;
	return n;
}

static inline struct tnode *__treap_last_of(struct tnode *n)
{
	while (n->r)
		n = n->r;
	return n;
}

static __treap_inline void __treap_erase(struct treap *t, struct tnode *n, treap_compute_fn compute, treap_copy_fn copy)
{
	struct tnode *p;

	/* The in-order neighbours close the gap; at an end, the neighbour is the new first or last node. */
	if (n->prev)
		n->prev->next = n->next;
	else
		t->leftmost = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		t->rightmost = n->prev;
	/* Rotate n down (its higher-priority child up) until it is a leaf or has one child. */
	while (n->l && n->r)
		__treap_rotate_up(t, n->l->prio < n->r->prio ? n->l : n->r, compute, copy);
	p = n->parent;
	treap_relink(t, n, n->l ? n->l : n->r);
	__treap_fixup_path(p, compute);
	n->l = n->r = n->parent = n->prev = n->next = NULL;
}

/*
 * __treap_replace - @new_ takes @old's place (links and priority); @old leaves the tree. The caller guarantees that
 * @new_'s key orders the same as @old's against every other node, and fixes the augmented values (@new_'s and
 * those of its ancestors).
 */
static inline void __treap_replace(struct treap *t, struct tnode *old, struct tnode *new_)
{
	*new_ = *old;
	treap_relink(t, old, new_);
	if (t->leftmost == old)
		t->leftmost = new_;
	if (t->rightmost == old)
		t->rightmost = new_;
	if (new_->l)
		new_->l->parent = new_;
	if (new_->r)
		new_->r->parent = new_;
	if (new_->prev)
		new_->prev->next = new_;
	if (new_->next)
		new_->next->prev = new_;
	old->l = old->r = old->parent = old->prev = old->next = NULL;
}

/*
 * __treap_replace_only - the tree is the one node @old (the root, no children): @new_ takes its place and priority.
 * @old's links are all NULL already, as after an erase. The augmented value is the caller's, as for __treap_replace.
 */
static inline void __treap_replace_only(struct treap *t, struct tnode *old, struct tnode *new_)
{
	new_->l = new_->r = new_->parent = new_->prev = new_->next = NULL;
	new_->prio = old->prio;
	t->root = t->leftmost = t->rightmost = new_;
}

static inline void treap_insert(struct treap *t, struct tnode *n)
{
	__treap_insert(t, n, t->less, t->augment, NULL, NULL);
}

static inline void treap_erase(struct treap *t, struct tnode *n)
{
	__treap_erase(t, n, t->augment, NULL);
}

static inline struct tnode *treap_first(const struct treap *t)
{
	return t->leftmost;
}

#endif
