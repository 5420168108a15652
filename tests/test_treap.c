/*
 * test_treap: runtime/treap.h, white-box. Random inserts and erases against a check of every invariant after each
 * step: in-order keys, heap order of the priorities, parent links, and the augmented value (the subtree minimum of
 * a second field, as the fair class keeps min_vruntime) of every node recomputed from scratch, the cached first
 * and last node, and the in-order neighbour links (prev/next) against the walk.
 *  - the always-inline operations with copy and propagate (the fair class's way in);
 *  - the callback-pointer operations (the deadline class's way in), augmented and not;
 *  - __treap_replace and __treap_replace_only (the fair class's yield between two fibers) of a tree's only node,
 *    and __treap_replace of a node with neighbours on both sides.
 * No runtime is started.
 */
#include "test_util.h"

#include "treap.h"

struct item {
	struct tnode node;
	int64_t key; /* the order (the fair class: deadline) */
	int64_t val; /* the augmented field's input (vruntime) */
	int64_t min; /* augmented: min val in the subtree */
	bool in;
};

#define NITEMS 512
static struct item items[NITEMS];

static inline struct item *item_of(const struct tnode *n)
{
	return (struct item *)((char *)n - offsetof(struct item, node));
}

static inline bool it_less(const struct tnode *a, const struct tnode *b)
{
	return item_of(a)->key < item_of(b)->key;
}

static inline bool it_compute(struct tnode *n)
{
	int64_t m = item_of(n)->val;

	if (n->l && item_of(n->l)->min < m)
		m = item_of(n->l)->min;
	if (n->r && item_of(n->r)->min < m)
		m = item_of(n->r)->min;
	if (item_of(n)->min == m)
		return false;
	item_of(n)->min = m;
	return true;
}

static inline void it_copy(struct tnode *dst, const struct tnode *src)
{
	item_of(dst)->min = item_of(src)->min;
}

static inline bool it_propagate(struct tnode *a, const struct tnode *n)
{
	if (item_of(n)->val >= item_of(a)->min)
		return false;
	item_of(a)->min = item_of(n)->val;
	return true;
}

/* Walks the subtree: returns its size, and sets *bad on the first broken invariant. */
static unsigned check(const struct tnode *n, const struct tnode *parent, const struct tnode **prevn, bool aug,
		      int64_t *min, int *bad)
{
	unsigned cnt = 1;
	int64_t m = item_of(n)->val, cm;

	if (n->parent != parent)
		*bad |= 1;
	if (parent && n->prio < parent->prio)
		*bad |= 2;
	if (n->l) {
		cnt += check(n->l, n, prevn, aug, &cm, bad);
		if (cm < m)
			m = cm;
	}
	if (*prevn && item_of(n)->key < item_of(*prevn)->key)
		*bad |= 4;
	/* the in-order threads: n's neighbours are those of the walk */
	if (n->prev != *prevn || (*prevn && (*prevn)->next != n))
		*bad |= 128;
	*prevn = n;
	if (n->r) {
		cnt += check(n->r, n, prevn, aug, &cm, bad);
		if (cm < m)
			m = cm;
	}
	if (aug && item_of(n)->min != m)
		*bad |= 8;
	*min = m;
	return cnt;
}

static int check_tree(const struct treap *t, unsigned want, bool aug)
{
	const struct tnode *last = NULL;
	int64_t min;
	int bad = 0;
	unsigned cnt = t->root ? check(t->root, NULL, &last, aug, &min, &bad) : 0;

	if (cnt != want)
		bad |= 16;
	/* the cached ends */
	if (t->leftmost != (t->root ? __treap_first_of(t->root) : NULL))
		bad |= 32;
	if (t->rightmost != (t->root ? __treap_last_of(t->root) : NULL))
		bad |= 64;
	if (last && last->next)
		bad |= 128;
	return bad;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

enum mode { INLINE_AUG, GENERIC_AUG, GENERIC_PLAIN };

static void insert(struct treap *t, struct item *it, enum mode m)
{
	it->min = it->val;
	if (m == INLINE_AUG)
		__treap_insert(t, &it->node, it_less, it_compute, it_copy, it_propagate);
	else
		treap_insert(t, &it->node);
	it->in = true;
}

static void erase(struct treap *t, struct item *it, enum mode m)
{
	if (m == INLINE_AUG)
		__treap_erase(t, &it->node, it_compute, it_copy);
	else
		treap_erase(t, &it->node);
	it->in = false;
}

/* 20,000 random steps; returns the first bad check (0: all good). */
static int random_run(enum mode m)
{
	struct treap t;
	unsigned n = 0;

	memset(items, 0, sizeof(items));
	treap_init(&t, it_less, m == GENERIC_PLAIN ? NULL : it_compute);
	for (int step = 0; step < 20000; step++) {
		struct item *it = &items[rnd() % NITEMS];
		int bad;

		if (!it->in) {
			/* few distinct keys: equal keys must work too */
			/* every other one near the back (a yield ring's pattern: insert's fast path and finger search) */
			it->key = rnd() % 2 ? (int64_t)(rnd() % 300) - 100
					    : (t.rightmost ? item_of(t.rightmost)->key : 0) + (int64_t)(rnd() % 9) - 6;
			it->val = (int64_t)(rnd() % 1000) - 500;
			insert(&t, it, m);
			n++;
		} else {
			erase(&t, it, m);
			n--;
		}
		bad = check_tree(&t, n, m != GENERIC_PLAIN);
		if (bad)
			return bad | (step << 8);
	}
	return 0;
}

static void test_treap_inline_augmented_random(void **state)
{
	assert_int_equal(random_run(INLINE_AUG), 0);
}

static void test_treap_generic_augmented_random(void **state)
{
	assert_int_equal(random_run(GENERIC_AUG), 0);
}

static void test_treap_generic_plain_random(void **state)
{
	assert_int_equal(random_run(GENERIC_PLAIN), 0);
}

/* After @b took @a's place as the only node: the tree checks out and goes on working from @b. */
static void replaced_goes_on(struct treap *t, struct item *a, struct item *b)
{
	assert_int_equal(check_tree(t, 1, true), 0);
	insert(t, a, INLINE_AUG);
	assert_int_equal(check_tree(t, 2, true), 0);
	assert_int_equal(item_of(t->root)->min, 3);
	erase(t, b, INLINE_AUG);
	assert_int_equal(check_tree(t, 1, true), 0);
}

static void test_treap_replace_single_node(void **state)
{
	struct treap t;
	struct item *a = &items[0], *b = &items[1];

	memset(items, 0, sizeof(items));
	treap_init(&t, it_less, it_compute);
	a->key = 5, a->val = 3;
	insert(&t, a, INLINE_AUG);
	b->key = 9, b->val = 7;
	b->min = b->val;
	__treap_replace(&t, &a->node, &b->node);
	assert_ptr_equal(t.root, &b->node);
	assert_null(a->node.parent);
	assert_null(a->node.l);
	assert_null(a->node.r);
	replaced_goes_on(&t, a, b);
}

static void test_treap_replace_only_single_node(void **state)
{
	struct treap t;
	struct item *a = &items[0], *b = &items[1];
	uint32_t prio;

	memset(items, 0, sizeof(items));
	treap_init(&t, it_less, it_compute);
	a->key = 5, a->val = 3;
	insert(&t, a, INLINE_AUG);
	prio = a->node.prio;
	b->key = 9, b->val = 7;
	b->min = b->val;
	b->node.l = b->node.r = b->node.parent = &a->node; /* stale links: replace_only sets them */
	__treap_replace_only(&t, &a->node, &b->node);
	a->in = false, b->in = true;
	assert_ptr_equal(t.root, &b->node);
	assert_ptr_equal(t.leftmost, &b->node);
	assert_ptr_equal(t.rightmost, &b->node);
	assert_int_equal(b->node.prio, prio);
	assert_null(a->node.parent);
	assert_null(a->node.l);
	assert_null(a->node.r);
	replaced_goes_on(&t, a, b);
}

/* __treap_replace of a node with neighbours on both sides: the new node takes its links and its place in order. */
static void test_treap_replace_inner_node_keeps_neighbours(void **state)
{
	struct treap t;
	struct item *old = &items[4], *new_ = &items[20];
	int i;

	memset(items, 0, sizeof(items));
	treap_init(&t, it_less, it_compute);
	for (i = 0; i < 9; i++) {
		items[i].key = i * 10, items[i].val = 100 - i;
		insert(&t, &items[i], INLINE_AUG);
	}
	new_->key = 45, new_->val = old->val; /* orders the same against every other node; the same value */
	new_->min = old->min;
	__treap_replace(&t, &old->node, &new_->node);
	old->in = false, new_->in = true;
	assert_int_equal(check_tree(&t, 9, true), 0);
	assert_ptr_equal(new_->node.prev, &items[3].node);
	assert_ptr_equal(new_->node.next, &items[5].node);
	assert_null(old->node.prev);
	assert_null(old->node.next);
	/* the neighbours go, then the new node: the threads and the ends follow */
	erase(&t, &items[3], INLINE_AUG);
	erase(&t, &items[5], INLINE_AUG);
	assert_int_equal(check_tree(&t, 7, true), 0);
	assert_ptr_equal(new_->node.prev, &items[2].node);
	assert_ptr_equal(new_->node.next, &items[6].node);
	erase(&t, new_, INLINE_AUG);
	assert_int_equal(check_tree(&t, 6, true), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_treap_inline_augmented_random),
		cmocka_unit_test(test_treap_generic_augmented_random),
		cmocka_unit_test(test_treap_generic_plain_random),
		cmocka_unit_test(test_treap_replace_single_node),
		cmocka_unit_test(test_treap_replace_only_single_node),
		cmocka_unit_test(test_treap_replace_inner_node_keeps_neighbours),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
