/*
 * runtime/sched_fair.c - the fair class: EEVDF as in Linux 6.6+ (SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE policies).
 *
 * Every queued entity has a virtual runtime v (ns of CPU time scaled by 1024 / weight) and a virtual deadline
 * vd = v + slice / weight. V, the load-weighted average of v over the queued entities and curr, is kept as
 * running sums relative to min_vruntime (v0): avg_vruntime = sum (v_i - v0) * w_i and avg_load = sum w_i. An entity
 * is eligible when v <= V (lag = V - v >= 0), tested without a division. The pick is the eligible entity with the
 * earliest virtual deadline: the tree is ordered by deadline and augmented with each subtree's minimum vruntime, so
 * a subtree with no eligible entity is skipped and the pick is O(log n).
 *
 * Placement keeps an entity's lag across sleeps and moves (clamped at dequeue), scaled so that adding the entity
 * does not shift V away from it; new fibers start with half a slice to their first deadline. curr keeps the CPU
 * while it is eligible and has not used its slice (RUN_TO_PARITY). SCHED_IDLE policy is weight 3 inside this class
 * and loses every wake-up contest against a non-idle entity; SCHED_BATCH never wakeup-preempts; a newly spawned
 * fiber does not preempt its parent. A next buddy (set by a join on a queued fiber and by sync wake-ups) is picked
 * first while it is eligible, or while the chain of such hand-offs has not used up 8 base slices. No delayed
 * dequeue (the 6.6-6.11 behaviour), so on_rq always means runnable.
 *
 * All of it under the rq lock.
 */
#include "internal.h"

/* The kernel's nice-to-weight table (nice -20..19): each step is about 10% of CPU time, a factor of 1.25. */
static const uint32_t prio_to_weight[40] = {
	/* -20 */ 88761, 71755, 56483, 46273, 36291,
	/* -15 */ 29154, 23254, 18705, 14949, 11916,
	/* -10 */ 9548,	 7620,	6100,  4904,  3906,
	/*  -5 */ 3121,	 2501,	1991,  1586,  1277,
	/*   0 */ 1024,	 820,	655,   526,   423,
	/*   5 */ 335,	 272,	215,   172,   137,
	/*  10 */ 110,	 87,	70,    56,    45,
	/*  15 */ 36,	 29,	23,    18,    15,
};
#define WEIGHT_IDLEPRIO 3
#define NICE_0_LOAD 1024

static uint64_t nice_weight(int nice)
{
	return prio_to_weight[nice + 20];
}

/* The weight p's policy and static_prio give (kept for a fiber of any policy: it may become fair later). */
static uint64_t task_weight(const struct fiber *p)
{
	return p->policy == FIBER_SCHED_IDLE ? WEIGHT_IDLEPRIO : nice_weight(PRIO_TO_NICE(p->static_prio));
}

/* set_load_weight: from policy and static_prio. */
static void set_load_weight(struct fiber *p)
{
	struct sched_entity *se = &p->se;

	se->load_weight = task_weight(p);
	se->inv_weight = (1ull << 32) / se->load_weight;
}

static inline struct fiber *fair_task_of(struct sched_entity *se)
{
	return container_of(se, struct fiber, se);
}

static inline struct sched_entity *node_se(const struct tnode *n)
{
	return container_of(n, struct sched_entity, node);
}

/* delta * 1024 / weight, by multiplication with 2^32 / weight */
static inline int64_t calc_delta_fair(int64_t delta, const struct sched_entity *se)
{
	if (se->load_weight == NICE_0_LOAD)
		return delta;
	if (delta >= 0)
		return (int64_t)(((unsigned __int128)(uint64_t)delta * NICE_0_LOAD * se->inv_weight) >> 32);
	return -(int64_t)(((unsigned __int128)(uint64_t)-delta * NICE_0_LOAD * se->inv_weight) >> 32);
}

/*
 * ---- the tree: ordered by deadline, augmented with min vruntime ----
 *
 * The callbacks are passed as constants to treap.h's always-inline operations, so they are inlined: no indirect
 * call per comparison or augment step.
 */

static inline bool fair_less(const struct tnode *a, const struct tnode *b)
{
	return node_se(a)->deadline < node_se(b)->deadline;
}

/* Stands in for a missing child in fair_augment: selects and loads instead of branches that the tree's shape decides. */
static struct sched_entity no_child_se = { .min_vruntime = INT64_MAX };

static inline bool fair_augment(struct tnode *n)
{
	struct sched_entity *se = node_se(n);
	const struct sched_entity *l = n->l ? node_se(n->l) : &no_child_se;
	const struct sched_entity *r = n->r ? node_se(n->r) : &no_child_se;
	int64_t m = se->vruntime, lm = l->min_vruntime, rm = r->min_vruntime;

	m = lm < m ? lm : m;
	m = rm < m ? rm : m;
	if (se->min_vruntime == m)
		return false;
	se->min_vruntime = m;
	return true;
}

static inline void fair_augment_copy(struct tnode *dst, const struct tnode *src)
{
	node_se(dst)->min_vruntime = node_se(src)->min_vruntime;
}

static inline bool fair_augment_propagate(struct tnode *a, const struct tnode *n)
{
	int64_t v = node_se(n)->vruntime;

	if (v >= node_se(a)->min_vruntime)
		return false;
	node_se(a)->min_vruntime = v;
	return true;
}

#ifdef FIBER_DEBUG
/* The whole subtree: parent links, deadline order, priority heap order and min_vruntime recomputed. */
static int64_t fair_tree_check_node(const struct tnode *n, const struct tnode *parent, unsigned *cnt)
{
	const struct sched_entity *se = node_se(n);
	int64_t m = se->vruntime;

	FIBER_BUG_ON(n->parent != parent);
	FIBER_BUG_ON(parent && n->prio < parent->prio);
	FIBER_BUG_ON(n->l && node_se(n->l)->deadline > se->deadline);
	FIBER_BUG_ON(n->r && node_se(n->r)->deadline < se->deadline);
	(*cnt)++;
	if (n->l) {
		int64_t l = fair_tree_check_node(n->l, n, cnt);

		m = l < m ? l : m;
	}
	if (n->r) {
		int64_t r = fair_tree_check_node(n->r, n, cnt);

		m = r < m ? r : m;
	}
	FIBER_BUG_ON(se->min_vruntime != m);
	return m;
}

/* FIBER_DEBUG: check the tree after each change while it is small (the walk is O(n)). */
static void fair_tree_check(struct cfs_rq *cfs)
{
	unsigned cnt = 0;

	if (cfs->nr_running > 64 || !cfs->tree.root)
		return;
	fair_tree_check_node(cfs->tree.root, NULL, &cnt);
	FIBER_BUG_ON(cnt > cfs->nr_running + 1); /* an enqueue inserts before it counts */
	FIBER_BUG_ON(cfs->tree.leftmost != __treap_first_of(cfs->tree.root));
	FIBER_BUG_ON(cfs->tree.rightmost != __treap_last_of(cfs->tree.root));
}
#else
static inline void fair_tree_check(struct cfs_rq *cfs)
{
	(void)cfs;
}
#endif

static inline void fair_tree_insert(struct cfs_rq *cfs, struct sched_entity *se)
{
	__treap_insert(&cfs->tree, &se->node, fair_less, fair_augment, fair_augment_copy, fair_augment_propagate);
	fair_tree_check(cfs);
}

static inline void fair_tree_erase(struct cfs_rq *cfs, struct sched_entity *se)
{
	__treap_erase(&cfs->tree, &se->node, fair_augment, fair_augment_copy);
	fair_tree_check(cfs);
}

/* ---- V, lag and eligibility ---- */

static inline int64_t entity_key(struct cfs_rq *cfs, struct sched_entity *se)
{
	return se->vruntime - cfs->min_vruntime;
}

static void avg_vruntime_add(struct cfs_rq *cfs, struct sched_entity *se)
{
	cfs->avg_vruntime += entity_key(cfs, se) * (int64_t)se->load_weight;
	cfs->avg_load += (int64_t)se->load_weight;
}

static void avg_vruntime_sub(struct cfs_rq *cfs, struct sched_entity *se)
{
	cfs->avg_vruntime -= entity_key(cfs, se) * (int64_t)se->load_weight;
	cfs->avg_load -= (int64_t)se->load_weight;
}

/* v0 moved forward by delta: every key shrank by delta. */
static void avg_vruntime_update(struct cfs_rq *cfs, int64_t delta)
{
	cfs->avg_vruntime -= cfs->avg_load * delta;
}

/* V = v0 + sum((v - v0) w) / sum(w), including curr; rounded towards -inf so that V never overshoots. */
static int64_t avg_vruntime(struct cfs_rq *cfs)
{
	struct sched_entity *curr = cfs->curr;
	int64_t avg = cfs->avg_vruntime, load = cfs->avg_load;

	if (curr && curr->on_rq) {
		avg += entity_key(cfs, curr) * (int64_t)curr->load_weight;
		load += (int64_t)curr->load_weight;
	}
	if (load) {
		if (avg < 0)
			avg -= load - 1;
		avg /= load;
	}
	return cfs->min_vruntime + avg;
}

/* v <= V, as (v - v0) * W <= sum((v_i - v0) w_i): no division. */
static bool vruntime_eligible(struct cfs_rq *cfs, int64_t vruntime)
{
	struct sched_entity *curr = cfs->curr;
	int64_t avg = cfs->avg_vruntime, load = cfs->avg_load;

	if (curr && curr->on_rq) {
		avg += entity_key(cfs, curr) * (int64_t)curr->load_weight;
		load += (int64_t)curr->load_weight;
	}
	return avg >= (vruntime - cfs->min_vruntime) * load;
}

static bool entity_eligible(struct cfs_rq *cfs, struct sched_entity *se)
{
	return vruntime_eligible(cfs, se->vruntime);
}

/* min_vruntime only moves forward: the smaller of curr's and the tree's minimum, if larger than before. */
static void update_min_vruntime(struct cfs_rq *cfs)
{
	struct sched_entity *curr = cfs->curr;
	int64_t v = cfs->min_vruntime;
	bool have = false;

	if (curr && curr->on_rq) {
		v = curr->vruntime;
		have = true;
	}
	if (cfs->tree.root) {
		int64_t m = node_se(cfs->tree.root)->min_vruntime;

		v = have && v < m ? v : m;
		have = true;
	}
	if (have && v > cfs->min_vruntime) {
		avg_vruntime_update(cfs, v - cfs->min_vruntime);
		cfs->min_vruntime = v;
	}
}

static inline __attribute__((always_inline)) void __enqueue_entity(struct cfs_rq *cfs, struct sched_entity *se)
{
	avg_vruntime_add(cfs, se);
	se->min_vruntime = se->vruntime;
	fair_tree_insert(cfs, se);
}

static inline __attribute__((always_inline)) void __dequeue_entity(struct cfs_rq *cfs, struct sched_entity *se)
{
	fair_tree_erase(cfs, se);
	avg_vruntime_sub(cfs, se);
}

/* ---- accounting ---- */

/* A new deadline once the slice is used up: v >= vd. Returns true if it did (time to let others run). */
static bool update_deadline(struct cfs_rq *cfs, struct sched_entity *se)
{
	if (se->vruntime < se->deadline)
		return false;
	se->slice = fiber__rt.base_slice_ns;
	se->deadline = se->vruntime + calc_delta_fair((int64_t)se->slice, se);
	return cfs->nr_running > 1;
}

static __noinline void __update_curr_fair(struct rq *rq)
{
	struct cfs_rq *cfs = &rq->cfs;
	struct sched_entity *curr = cfs->curr;
	int64_t delta;
	bool resched;

	delta = fiber__update_curr_common(rq);
	if (delta <= 0)
		return;
	curr->vruntime += calc_delta_fair(delta, curr);
	resched = update_deadline(cfs, curr);
	update_min_vruntime(cfs);
	/* Last (it reads nothing of the cfs_rq): a tail call, with nothing to keep live across it. */
	if (resched)
		fiber__resched_curr(rq);
}

/*
 * Charge the fair curr up to rq->clock. One schedule() calls this from several hooks (yield, pick, put_prev) at the
 * same clock; all but the first find nothing to charge, and that test is inline, so they cost a few instructions.
 */
static inline __attribute__((always_inline)) void update_curr_fair(struct rq *rq)
{
	struct fiber *curr = rq->curr; /* never NULL: the idle fiber at least */

	/* Time to charge first (the repeated calls stop there), then whether it is fair's curr. */
	if ((int64_t)(rq->clock - curr->exec_start) > 0 && rq->cfs.curr == &curr->se)
		__update_curr_fair(rq);
}

static void update_curr_fair_hook(struct rq *rq)
{
	update_curr_fair(rq);
}

/* Lag at dequeue, clamped to what two slices (or a tick) could have earned. */
static void update_entity_lag(struct cfs_rq *cfs, struct sched_entity *se)
{
	int64_t lim = (int64_t)(2 * se->slice > fiber__rt.tick_ns ? 2 * se->slice : fiber__rt.tick_ns);
	int64_t lag = avg_vruntime(cfs) - se->vruntime;

	lim = calc_delta_fair(lim, se);
	se->vlag = lag < -lim ? -lim : lag > lim ? lim : lag;
}

static void place_entity(struct cfs_rq *cfs, struct sched_entity *se, int flags)
{
	int64_t vruntime = avg_vruntime(cfs), lag = 0, vslice;

	se->slice = fiber__rt.base_slice_ns;
	vslice = calc_delta_fair((int64_t)se->slice, se);
	/*
	 * Keep the lag the entity had. Adding it (weight w) to a queue of load W moves V towards it by lag * w / (W + w);
	 * placing it at V - lag * (W + w) / W leaves it with exactly its lag after the move.
	 */
	/*
	 * DELAY_DEQUEUE + DELAY_ZERO (Linux 6.12): an entity that went to sleep owing service (negative lag) pays it
	 * off while it sleeps, as if it had stayed queued until it became eligible, and then has no lag. The kernel
	 * keeps such an entity on the queue ("delayed") until it is picked; the same outcome is computed here at the
	 * wake-up: V has moved on meanwhile, and the lag left is V - v (its vruntime is unchanged since the dequeue), at
	 * most 0. Without it, a connection fiber that overran by 200 us waited 200 us times every other queued fiber
	 * after each wake-up, however long it had slept (hundreds of milliseconds with 500 connections).
	 */
	if (se->vlag < 0 && (flags & ENQUEUE_WAKEUP) && !(flags & ENQUEUE_MIGRATED) && !se->rel_deadline) {
		int64_t left = vruntime - se->vruntime;

		se->vlag = left >= 0 ? 0 : left > se->vlag ? left : se->vlag;
	}
	if (cfs->nr_running) {
		int64_t load = cfs->avg_load;

		if (cfs->curr && cfs->curr->on_rq)
			load += (int64_t)cfs->curr->load_weight;
		lag = se->vlag;
		if (load && lag) {
			int64_t prod;

			/* 64-bit where the product fits (lag is clamped to a few slices: almost always), else 128-bit */
			if (!__builtin_mul_overflow(lag, load + (int64_t)se->load_weight, &prod))
				lag = prod / load;
			else
				lag = (int64_t)((__int128)lag * (load + (int64_t)se->load_weight) / load);
		}
	}
	se->vruntime = vruntime - lag;
	if (se->rel_deadline) {
		/* A non-sleep move (migration, attribute change): keep the deadline relative. */
		se->deadline += se->vruntime;
		se->rel_deadline = false;
		return;
	}
	if (flags & ENQUEUE_INITIAL)
		vslice /= 2; /* a new fiber gets half a slice to its first deadline */
	se->deadline = se->vruntime + vslice;
}

/* ---- class hooks ---- */

static void enqueue_task_fair(struct rq *rq, struct fiber *p, int flags)
{
	struct cfs_rq *cfs = &rq->cfs;
	struct sched_entity *se = &p->se;
	bool curr = cfs->curr == se;

	FIBER_DEBUG_BUG_ON(se->on_rq);
	update_curr_fair(rq);
	place_entity(cfs, se, flags);
	if (!curr)
		__enqueue_entity(cfs, se);
	se->on_rq = true;
	cfs->nr_running++;
	add_nr_running(rq, 1);
}

static bool dequeue_task_fair(struct rq *rq, struct fiber *p, int flags)
{
	struct cfs_rq *cfs = &rq->cfs;
	struct sched_entity *se = &p->se;

	FIBER_DEBUG_BUG_ON(!se->on_rq);
	update_curr_fair(rq);
	/* An exiting fiber's lag is never used again (task_fork_fair resets it): no V and no clamp for it. */
	if (likely(!(atomic_load_explicit(&p->state, memory_order_relaxed) & TASK_DEAD)))
		update_entity_lag(cfs, se);
	if (!(flags & DEQUEUE_SLEEP)) {
		/* PLACE_REL_DEADLINE: a move keeps its deadline relative to its vruntime */
		se->deadline -= se->vruntime;
		se->rel_deadline = true;
	}
	if (cfs->curr != se)
		__dequeue_entity(cfs, se);
	if (cfs->next == se)
		cfs->next = NULL;
	se->on_rq = false;
	cfs->nr_running--;
	sub_nr_running(rq, 1);
	update_min_vruntime(cfs);
	return true;
}

/*
 * sched_yield, as upstream's "sched/fair: Forfeit vruntime on yield": an eligible yielder gives up the rest of its
 * slice - its vruntime moves to its deadline and its deadline one slice further. Pushing only the deadline (6.6)
 * left the yielder eligible with the earliest deadline whenever the peer was not eligible, so a yield often picked
 * the yielder again. Once its vruntime reached the deadline, every peer whose vruntime is not beyond it is eligible
 * and has a deadline no later than the yielder's new one, so the pick goes to a peer. An ineligible yielder is left
 * alone: pick_eevdf passes it over anyway, and moving it on would let its vruntime run away (upstream's reason).
 */
static void yield_task_fair(struct rq *rq)
{
	struct cfs_rq *cfs = &rq->cfs;
	struct sched_entity *se = cfs->curr;

	if (!se || cfs->nr_running <= 1)
		return;
	FIBER_DEBUG_BUG_ON(!se->on_rq);
	update_curr_fair(rq);
	/*
	 * entity_eligible(cfs, se) for curr itself: v <= V with curr's own term on both sides, (v - v0) * (W + w) <=
	 * avg + (v - v0) * w, is (v - v0) * W <= avg over the tree alone.
	 */
	if ((se->vruntime - cfs->min_vruntime) * cfs->avg_load <= cfs->avg_vruntime) {
		se->vruntime = se->deadline;
		se->deadline += calc_delta_fair((int64_t)se->slice, se);
	}
}

/* The eligible entity with the earliest virtual deadline, curr included. */
static inline __attribute__((always_inline)) struct sched_entity *pick_eevdf(struct cfs_rq *cfs, uint64_t now)
{
	struct sched_entity *curr = cfs->curr, *best = NULL;
	struct tnode *node = cfs->tree.root;
	int64_t avg, load, v0 = cfs->min_vruntime;

	if (curr && !curr->on_rq)
		curr = NULL;
	if (cfs->nr_running == 1)
		return curr ? curr : (node ? node_se(treap_first(&cfs->tree)) : NULL);

	/* The eligibility test v <= V as (v - v0) * load <= avg, with the sums computed once for the whole walk. */
	avg = cfs->avg_vruntime;
	load = cfs->avg_load;
	if (curr) {
		avg += (curr->vruntime - v0) * (int64_t)curr->load_weight;
		load += (int64_t)curr->load_weight;
	}
#define ELIGIBLE(v) (avg >= ((v)-v0) * load)
	/*
	 * NEXT_BUDDY: a fiber someone waits on (join) or hands the CPU to (sync wake-up) goes first if it is eligible,
	 * or, like Go's runnext, while the chain of such hand-offs has not used up 8 base slices: the waiter has just
	 * given up the CPU for it. After that the fair pick takes over again, so a chain cannot starve the queue.
	 */
	if (cfs->next && cfs->next->on_rq &&
	    (ELIGIBLE(cfs->next->vruntime) || now - cfs->chain_start < 8 * fiber__rt.base_slice_ns))
		return cfs->next;
	if (curr && !ELIGIBLE(curr->vruntime))
		curr = NULL;
	/* RUN_TO_PARITY: curr keeps running until its slice is used (its deadline moved) or it became ineligible */
	if (curr && curr->deadline == curr->pick_deadline)
		return curr;

	/*
	 * The first node in deadline order, if eligible, is the pick without a walk (the tree caches it): the common
	 * case of a queue of fibers that take turns. Otherwise the walk finds the leftmost eligible node.
	 */
	if (cfs->tree.leftmost && ELIGIBLE(node_se(cfs->tree.leftmost)->vruntime)) {
		best = node_se(cfs->tree.leftmost);
		node = NULL;
	}
	while (node) {
		if (node->l && ELIGIBLE(node_se(node->l)->min_vruntime)) {
			node = node->l; /* earlier deadlines, and an eligible entity among them */
			continue;
		}
		if (ELIGIBLE(node_se(node)->vruntime)) {
			best = node_se(node);
			break;
		}
		node = node->r;
	}
#undef ELIGIBLE
	if (!best || (curr && curr->deadline < best->deadline))
		best = curr;
	if (!best && cfs->tree.root)
		best = node_se(treap_first(&cfs->tree)); /* rounding: nothing eligible, take the earliest deadline */
	return best;
}

static bool fair_idle_policy(struct fiber *p)
{
	return p->policy == FIBER_SCHED_IDLE;
}

static void wakeup_preempt_fair(struct rq *rq, struct fiber *p, int flags)
{
	struct fiber *curr = rq->curr;
	struct cfs_rq *cfs = &rq->cfs;

	if (curr == p || !cfs->curr)
		return;
	/* An idle-policy curr loses to any non-idle wakee; idle-policy and batch wakees never preempt. */
	if (fair_idle_policy(curr) && !fair_idle_policy(p)) {
		fiber__resched_curr(rq);
		return;
	}
	if (p->policy != FIBER_SCHED_NORMAL)
		return;
	/*
	 * The parent runs first after a spawn (the kernel's default sched_child_runs_first = 0; CFS got the same from
	 * START_DEBIT): it usually spawns more and then joins, and the join hands the CPU to the child it waits for
	 * (next buddy). Letting each child preempt its parent instead runs a spawn tree breadth-first, with every
	 * level's stacks alive at once.
	 */
	if (flags & WF_FORK)
		return;
	update_curr_fair(rq);
	/*
	 * A sync wake-up on the waker's worker (a channel hand-off, a joiner woken by an exiting fiber): the waker said
	 * it is about to block, and ttwu_do_activate made p the next buddy, which the pick takes when it does. A
	 * preemption now would only switch earlier. So, as upstream's rework of NEXT_BUDDY treats WF_SYNC (the waker is
	 * not preempted at once, preempt_sync), the waker keeps the CPU while it is in the slice it was picked with.
	 * One that goes on running instead is preempted by the tick, which runs while two are runnable: at once if it
	 * is not eligible (task_tick_fair), else at its deadline (update_deadline); the buddy runs then.
	 */
	if ((flags & WF_SYNC) && cfs->next == &p->se && cfs->curr->deadline == cfs->curr->pick_deadline)
		return;
	/* Cancel run-to-parity for the contest: p wins if it is the eligible earliest deadline. */
	cfs->curr->pick_deadline = cfs->curr->deadline - 1;
	if (pick_eevdf(cfs, rq->clock) == &p->se)
		fiber__resched_curr(rq);
	else
		cfs->curr->pick_deadline = cfs->curr->deadline;
}

static inline __attribute__((always_inline)) struct fiber *pick_task_fair(struct rq *rq)
{
	struct cfs_rq *cfs = &rq->cfs;
	struct sched_entity *se;

	if (!cfs->nr_running)
		return NULL;
	update_curr_fair(rq);
	se = pick_eevdf(cfs, rq->clock);
	return se ? fair_task_of(se) : NULL;
}

/*
 * The tree holds only @next's node, and @next leaves it to run: @prev (queued) takes the node's place instead of an
 * insert followed by an erase (a yield between two fibers, a wake-up of a second one).
 */
static inline bool put_prev_replace(struct cfs_rq *cfs, struct sched_entity *se, struct sched_entity *next)
{
	struct tnode *root = cfs->tree.root;

	if (root != &next->node || root->l || root->r)
		return false;
	avg_vruntime_sub(cfs, next);
	avg_vruntime_add(cfs, se);
	se->min_vruntime = se->vruntime;
	__treap_replace_only(&cfs->tree, root, &se->node);
	fair_tree_check(cfs);
	return true;
}

static void put_prev_task_fair(struct rq *rq, struct fiber *prev, struct fiber *next)
{
	struct cfs_rq *cfs = &rq->cfs;
	struct sched_entity *se = &prev->se;

	update_curr_fair(rq);
	if (se->on_rq) {
		if (put_prev_replace(cfs, se, &next->se))
			cfs->replaced = &next->se; /* set_next_task finds it out of the tree already */
		else
			__enqueue_entity(cfs, se);
	}
	cfs->curr = NULL;
}

/* set_next_task's part after @se (on_rq) is out of the tree: the buddy, curr, RUN_TO_PARITY. */
static inline void set_next_entity(struct rq *rq, struct cfs_rq *cfs, struct sched_entity *se)
{
	if (cfs->next == se)
		cfs->next = NULL; /* clear_buddies; a buddy pick continues the hand-off chain */
	else
		cfs->chain_start = rq->clock;
	cfs->curr = se;
	/* RUN_TO_PARITY starts here */
	se->pick_deadline = se->deadline;
	/*
	 * No update_min_vruntime here (the kernel's set_next_entity has none either): the queued set is the same as
	 * before the pick, only its split between curr and the tree changed, so the minimum is too; and v0 is only the
	 * base of the relative sums, which stay exact wherever it is.
	 */
}

static void set_next_task_fair(struct rq *rq, struct fiber *p, bool first)
{
	struct cfs_rq *cfs = &rq->cfs;
	struct sched_entity *se = &p->se;

	if (cfs->replaced == se)
		cfs->replaced = NULL; /* put_prev_task took it out of the tree already */
	else if (se->on_rq)
		__dequeue_entity(cfs, se);
	FIBER_DEBUG_BUG_ON(cfs->replaced);
	(void)first;
	set_next_entity(rq, cfs, se);
}

/*
 * The core's fast path (prev not above fair, every runnable fiber fair), as the kernel's pick_next_task_fair: the
 * pick, and for another fiber put_prev_task(prev) and set_next_task(next) in one step, with the one update_curr
 * of the pick (put_prev_task's would find nothing left to charge at the same clock). NULL when nothing fair is
 * runnable: the core takes idle and switches the classes itself.
 */
__hidden struct fiber *fiber__pick_next_task_fair(struct rq *rq, struct fiber *prev)
{
	struct cfs_rq *cfs = &rq->cfs;
	struct sched_entity *se, *pse = &prev->se;
	struct fiber *next = pick_task_fair(rq);

	if (!next || next == prev)
		return next;
	se = &next->se;
	if (prev->sched_class != &fiber__fair_sched_class) {
		/* prev is the idle fiber (a lower class): its class puts it back */
		prev->sched_class->put_prev_task(rq, prev, next);
		set_next_task_fair(rq, next, true);
		return next;
	}
	/* put_prev_task_fair and set_next_task_fair; next is queued and not curr, so it is in the tree */
	FIBER_DEBUG_BUG_ON(!se->on_rq || cfs->curr == se || cfs->replaced);
	if (!pse->on_rq || !put_prev_replace(cfs, pse, se)) {
		if (pse->on_rq)
			__enqueue_entity(cfs, pse);
		__dequeue_entity(cfs, se);
	}
	set_next_entity(rq, cfs, se);
	if (cfs->nr_running >= FIBER_PREFETCH_MIN && cfs->tree.leftmost)
		fiber__prefetch_next(fair_task_of(node_se(cfs->tree.leftmost)), offsetof(struct fiber, se),
				     sizeof(struct sched_entity));
	return next;
}

static void task_tick_fair(struct rq *rq, struct fiber *curr, int queued)
{
	struct cfs_rq *cfs = &rq->cfs;

	(void)curr, (void)queued;
	update_curr_fair(rq);
	/* Ineligible curr (its lag went negative while others wait): let pick_eevdf decide now. */
	if (cfs->curr && cfs->nr_running > 1 && !entity_eligible(cfs, cfs->curr))
		fiber__resched_curr(rq);
}

static void task_fork_fair(struct fiber *p)
{
	struct sched_entity *se = &p->se;

	set_load_weight(p);
	se->slice = fiber__rt.base_slice_ns;
	se->vlag = 0;
	se->rel_deadline = false;
	se->on_rq = false;
}

/* A nice change on a dequeued entity (the change pattern): keep the real lag w * vlag. */
static void reweight_task_fair(struct rq *rq, struct fiber *p)
{
	struct sched_entity *se = &p->se;
	uint64_t old = se->load_weight, weight = task_weight(p);

	(void)rq;
	if (old == weight)
		return;
	se->vlag = (int64_t)((__int128)se->vlag * (int64_t)old / (int64_t)weight);
	if (se->rel_deadline)
		se->deadline = (int64_t)((__int128)se->deadline * (int64_t)old / (int64_t)weight);
	se->load_weight = weight;
	se->inv_weight = (1ull << 32) / weight;
}

static void switched_to_fair(struct rq *rq, struct fiber *p)
{
	(void)rq;
	(void)p;
}

static void prio_changed_fair(struct rq *rq, struct fiber *p, int oldprio)
{
	if (oldprio == p->prio)
		return;
	if (rq->curr != p && task_on_rq_queued(p) && rq->curr->sched_class == p->sched_class)
		wakeup_preempt_fair(rq, p, 0);
}

/* yield_to_task (set_next_buddy): @p (queued here, fair, not running) is picked next by pick_eevdf's buddy rule. */
static void yield_to_task_fair(struct rq *rq, struct fiber *p)
{
	lockdep_assert_held(&rq->lock);
	/* Never for the SCHED_IDLE policy: a buddy must not lift it above the normal ones. */
	if (p->policy != FIBER_SCHED_IDLE && p->se.on_rq && rq->cfs.curr != &p->se)
		rq->cfs.next = &p->se;
}

/*
 * The next buddy that a sync wake-up just queued runs on @src as soon as its waker blocks. Pulling it to an idle
 * worker meanwhile turns a hand-off on one worker into a cross-worker wake-up per message (a channel ping-pong on
 * two workers: the idle one polls and finds two runnable at every message). As the kernel's task_hot counts the
 * buddy as cache hot (CACHE_HOT_BUDDY) and Go's stealer leaves a running P's runnext alone for a few
 * microseconds, it stays put for BUDDY_HOT_NS after its enqueue: longer than a hand-off takes, short against a
 * slice; a waker that goes on running loses it after that.
 */
#define BUDDY_HOT_NS 50000ull

static bool buddy_hot(struct rq *src, struct fiber *p)
{
	return src->cfs.next == &p->se && p->wait_start && fiber__sched_clock() - p->wait_start < BUDDY_HOT_NS;
}

/* In-order walk of the tree for the first movable fiber, looking at no more than a few (balance.c). */
static struct fiber *pick_migratable_task_fair(struct rq *src, int dst)
{
	struct tnode *n = treap_first(&src->cfs.tree);
	int budget = 16;

	while (n && budget--) {
		struct fiber *p = container_of(container_of(n, struct sched_entity, node), struct fiber, se);

		if (fiber__can_migrate_task(src, p, dst) && !buddy_hot(src, p))
			return p;
		/* in-order successor */
		if (n->r) {
			n = n->r;
			while (n->l)
				n = n->l;
		} else {
			while (n->parent && n->parent->r == n)
				n = n->parent;
			n = n->parent;
		}
	}
	return NULL;
}

/* ---- parameters: nice -20..19 (clamped), priority 0 ---- */

static int clamp_nice(int32_t nice)
{
	return nice < -20 ? -20 : nice > 19 ? 19 : nice;
}

static bool check_params_fair(const struct fiber_sched_attr *a)
{
	return a->priority == 0;
}

static void set_params_fair(struct fiber *p, const struct fiber_sched_attr *a)
{
	p->static_prio = NICE_TO_PRIO(clamp_nice(a->nice));
	p->normal_prio = p->static_prio;
}

static void get_params_fair(const struct fiber *p, struct fiber_sched_attr *a)
{
	a->nice = PRIO_TO_NICE(p->static_prio);
}

const struct sched_class fiber__fair_sched_class = {
	.name = "fair",
	.rank = 3,
	.policies = 1u << FIBER_SCHED_NORMAL | 1u << FIBER_SCHED_BATCH | 1u << FIBER_SCHED_IDLE,
	.enqueue_task = enqueue_task_fair,
	.dequeue_task = dequeue_task_fair,
	.yield_task = yield_task_fair,
	.wakeup_preempt = wakeup_preempt_fair,
	.pick_task = pick_task_fair,
	.put_prev_task = put_prev_task_fair,
	.set_next_task = set_next_task_fair,
	.task_tick = task_tick_fair,
	.task_fork = task_fork_fair,
	.switched_to = switched_to_fair,
	.prio_changed = prio_changed_fair,
	.update_curr = update_curr_fair_hook,
	.reweight_task = reweight_task_fair,
	.pick_migratable_task = pick_migratable_task_fair,
	.yield_to_task = yield_to_task_fair,
	.check_params = check_params_fair,
	.set_params = set_params_fair,
	.get_params = get_params_fair,
};

/* Init a cfs_rq (worker start). */
__hidden void fiber__init_cfs_rq(struct cfs_rq *cfs)
{
	memset(cfs, 0, sizeof(*cfs));
	treap_init(&cfs->tree, fair_less, fair_augment);
}
