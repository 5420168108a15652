/*
 * runtime/syscalls.c - the scheduling calls of the public API, as the kernel's kernel/sched/syscalls.c:
 * fiber_setattr, fiber_getattr, fiber_setaffinity, fiber_getaffinity and fiber_yield, their validation
 * (sched_setattr's checks and errnos), and a spawn's side of the attributes (check, sched_fork, admission).
 *
 * The mechanism they use is core.c's: task_rq_lock, the change pattern (fiber__sched_change_begin/end),
 * affine_move_task, do_sched_yield. What a policy means is the classes' (the params hooks of struct sched_class).
 */
#include "internal.h"

void fiber_yield(void)
{
	struct worker *w = this_worker();

	if (!w || is_idle_task(w->current)) {
		sched_yield();
		return;
	}
	fiber__do_sched_yield(w);
}

/* ------------------------------------------------------------------------------------------------------------
 * Scheduling attributes: sched_setattr's validation, the parameters, and a spawn's side of them
 * ---------------------------------------------------------------------------------------------------------- */

/* The checks of __sched_setscheduler that do not depend on the target fiber: a policy a class runs, its checks. */
static int sched_attr_validate(const struct fiber_sched_attr *a)
{
	const struct sched_class *cls;

	if (!a)
		return -EINVAL;
	/* valid_policy */
	cls = policy_class(a->policy);
	if (!cls || !cls->check_params(a))
		return -EINVAL;
	return 0;
}

/*
 * The checks of a spawn's attributes. A DEADLINE policy is allowed: Linux's "deadline tasks cannot fork" is about a
 * DEADLINE parent's child inheriting the policy, while a spawn that asks for DEADLINE is an explicit request, which
 * fiber_spawn admits as fiber_setattr does (fiber__sched_admit_new).
 */
int fiber__sched_attr_check_spawn(const struct fiber_sched_attr *a)
{
	return sched_attr_validate(a);
}

/*
 * Admission of a new fiber with attributes @a (its class's admit: a DEADLINE reservation) before anyone can see
 * it: 0, or -EBUSY and the fiber must never run.
 */
int fiber__sched_admit_new(struct fiber *p, const struct fiber_sched_attr *a)
{
	int ret;

	if (!p->sched_class->admit)
		return 0;
	spin_lock(&p->pi_lock);
	ret = p->sched_class->admit(p, a, &p->cpus_mask);
	spin_unlock(&p->pi_lock);
	return ret;
}

/* __setscheduler_params: policy, normal prio and the class's parameters (its set_params), from validated @a. */
static void setscheduler_params(struct fiber *p, const struct fiber_sched_attr *a)
{
	const struct sched_class *cls = policy_class(a->policy);

	p->policy = a->policy;
	p->rt_priority = 0; /* the rt class sets its own */
	cls->set_params(p, a);
	p->prio = p->normal_prio;
	p->sched_class = cls;
}

/* Every class recomputes what it derives from the attributes (the fair weight, kept for a fiber in any class). */
static void reweight_task(struct rq *rq, struct fiber *p)
{
	for (unsigned i = 0; i < ARRAY_SIZE(fiber__classes); i++)
		if (fiber__classes[i]->reweight_task)
			fiber__classes[i]->reweight_task(rq, p);
}

/* The classes' task_fork hooks, in table order: a spawn walks only these, not the whole table. */
static void (*task_fork_hooks[NR_SCHED_CLASSES])(struct fiber *p);
static unsigned nr_task_fork_hooks;

/* From the table, at load time (as core.c's task_free hooks): a spawn may come before any runtime start's. */
__attribute__((constructor)) static void task_fork_hooks_init(void)
{
	for (unsigned i = 0; i < ARRAY_SIZE(fiber__classes); i++)
		if (fiber__classes[i]->task_fork)
			task_fork_hooks[nr_task_fork_hooks++] = fiber__classes[i]->task_fork;
}

/* sched_fork: the new fiber's class and priority, and every class's entity (p is not visible to anyone yet). */
void fiber__sched_fork(struct fiber *p, const struct fiber_sched_attr *a)
{
	p->static_prio = NICE_TO_PRIO(0);
	setscheduler_params(p, a);
	for (unsigned i = 0; i < nr_task_fork_hooks; i++)
		task_fork_hooks[i](p);
}

/*
 * The fiber an attribute call is about (@f, or the caller for NULL), with the runtime held open for a plain
 * thread (fiber__rt_enter). NULL with *err = -ESRCH (no runtime; @f exited, is of an earlier runtime or is a
 * runtime fiber) or -EINVAL (NULL outside a fiber). On success the caller ends with fiber__rt_exit().
 */
static struct fiber *attr_target_get(fiber_t *f, int *err)
{
	struct fiber *p;

	*err = -ESRCH;
	if (!fiber__rt_enter())
		return NULL;
	p = f ? f : fiber_self();
	if (!p || READ_ONCE(p->magic) != FIBER_MAGIC_LIVE || p->rt_gen != fiber__rt.gen || (p->flags & PF_KTHREAD) ||
	    atomic_load_explicit(&p->exited, memory_order_acquire)) {
		fiber__rt_exit();
		*err = f ? -ESRCH : -EINVAL;
		return NULL;
	}
	return p;
}

int fiber_setattr(fiber_t *f, const struct fiber_sched_attr *a)
{
	const struct sched_class *old_pclass, *new_pclass;
	struct sched_change ch;
	struct fiber *p;
	struct rq *rq;
	int ret;

	if (!a)
		return -EINVAL;
	ret = sched_attr_validate(a);
	if (ret)
		return ret;
	p = attr_target_get(f, &ret);
	if (!p)
		return ret;

	rq = fiber__task_rq_lock(p);
	if (atomic_load_explicit(&p->state, memory_order_relaxed) == TASK_DEAD) {
		fiber__task_rq_unlock(rq, p);
		fiber__rt_exit();
		return -ESRCH;
	}
	old_pclass = policy_class(p->policy);
	new_pclass = policy_class(a->policy);
	/*
	 * Admission (sched_dl_overflow) under pi_lock and the rq lock, as __sched_setscheduler does it: -EBUSY when no
	 * allowed worker has the bandwidth left, and nothing has changed then. Two concurrent changes of one fiber
	 * are serialized here, so a reservation always matches the parameters that were applied.
	 */
	if (new_pclass->admit) {
		ret = new_pclass->admit(p, a, &p->cpus_mask);
		if (ret) {
			fiber__task_rq_unlock(rq, p);
			fiber__rt_exit();
			return ret;
		}
	}
	fiber__update_rq_clock(rq);

	/* The change pattern: take p out, change it, put it back. */
	fiber__sched_change_begin(rq, p, &ch);
	setscheduler_params(p, a);
	reweight_task(rq, p);
	fiber__sched_change_end(rq, p, &ch);
	if (ch.running && !ch.queued)
		fiber__resched_curr(rq);
	/* A fiber that became DEADLINE while it runs needs the tick from now on, to have its budget enforced. */
	fiber__tick_update(rq);
	if (old_pclass != new_pclass && old_pclass->release)
		old_pclass->release(p);
	/* Partitioned EDF: the fiber goes to the worker that holds its bandwidth (releases both locks). */
	fiber__affine_move_task(rq, p);
	fiber__rt_exit();
	fiber__preempt_point();
	return 0;
}

/*
 * fiber_setaffinity: the kernel's sched_setaffinity. The mask is intersected with the worker set; a deadline fiber
 * whose worker is not in the new mask is re-admitted on one that is (-EBUSY, nothing changed, when none has the
 * bandwidth). A fiber on a worker it may no longer use moves at once if it is queued, at its next preemption point
 * if it runs, and at its wake-up if it sleeps.
 */
int fiber_setaffinity(fiber_t *f, const cpu_set_t *set)
{
	cpu_set_t mask;
	struct fiber *p;
	struct rq *rq;
	int n = 0, ret = 0;

	if (!set)
		return -EINVAL;
	p = attr_target_get(f, &ret);
	if (!p)
		return ret;
	CPU_ZERO(&mask);
	for (int i = 0; i < (int)fiber__rt.nr_workers; i++) {
		if (CPU_ISSET(i, set)) {
			CPU_SET(i, &mask);
			n++;
		}
	}
	if (!n) {
		fiber__rt_exit();
		return -EINVAL;
	}
	rq = fiber__task_rq_lock(p);
	if (atomic_load_explicit(&p->state, memory_order_relaxed) == TASK_DEAD) {
		fiber__task_rq_unlock(rq, p);
		fiber__rt_exit();
		return -ESRCH;
	}
	if (policy_class(p->policy)->admit) {
		ret = policy_class(p->policy)->admit(p, NULL, &mask);
		if (ret) {
			fiber__task_rq_unlock(rq, p);
			fiber__rt_exit();
			return ret;
		}
	}
	p->cpus_mask = mask;
	p->nr_cpus_allowed = n;
	/* Pairs with the fence in fiber_migrate_enable: either it sees the new mask, or we see it enabled. */
	atomic_thread_fence(memory_order_seq_cst);
	fiber__affine_move_task(rq, p);
	fiber__rt_exit();
	fiber__preempt_point();
	return 0;
}

int fiber_getaffinity(fiber_t *f, cpu_set_t *set)
{
	struct fiber *p;
	int ret;

	if (!set)
		return -EINVAL;
	p = attr_target_get(f, &ret);
	if (!p)
		return ret;
	spin_lock(&p->pi_lock);
	*set = p->cpus_mask;
	spin_unlock(&p->pi_lock);
	fiber__rt_exit();
	fiber__preempt_point();
	return 0;
}

int fiber_getattr(fiber_t *f, struct fiber_sched_attr *a)
{
	struct fiber *p;
	int ret;

	if (!a)
		return -EINVAL;
	p = attr_target_get(f, &ret);
	if (!p)
		return ret;
	spin_lock(&p->pi_lock);
	memset(a, 0, sizeof(*a));
	a->policy = p->policy;
	if (policy_class(p->policy)->get_params)
		policy_class(p->policy)->get_params(p, a);
	spin_unlock(&p->pi_lock);
	fiber__rt_exit();
	fiber__preempt_point();
	return 0;
}
