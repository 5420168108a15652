/*
 * test_symbols: libfiber.so exports exactly the names of include/fiber.h (API.md) and nothing else: the runtime's
 * internals (fiber__*, scheduler functions) are hidden by -fvisibility=hidden and the version script.
 */
#include "test_util.h"

#include <dlfcn.h>

static const char *const api[] = {
	"fiber_config_init",
	"fiber_runtime_start",
	"fiber_runtime_stop",
	"fiber_run",
	"fiber_worker_count",
	"fiber_worker_id",
	"fiber_version",
	"fiber_attr_init",
	"fiber_spawn",
	"fiber_join",
	"fiber_detach",
	"fiber_exit",
	"fiber_self",
	"fiber_id",
	"fiber_yield",
	"fiber_sleep",
	"fiber_cancel",
	"fiber_setattr",
	"fiber_getattr",
	"fiber_setaffinity",
	"fiber_getaffinity",
	"fiber_preempt_disable",
	"fiber_preempt_enable",
	"fiber_cond_resched",
	"fiber_migrate_disable",
	"fiber_migrate_enable",
	"fiber_blocking_begin",
	"fiber_blocking_end",
	"fiber_read",
	"fiber_write",
	"fiber_pread",
	"fiber_pwrite",
	"fiber_readv",
	"fiber_writev",
	"fiber_recv",
	"fiber_send",
	"fiber_recvmsg",
	"fiber_sendmsg",
	"fiber_accept",
	"fiber_connect",
	"fiber_openat",
	"fiber_close",
	"fiber_fsync",
	"fiber_poll",
	"fiber_io_timeout",
	"fiber_preempt_notifier_init",
	"fiber_preempt_notifier_register",
	"fiber_preempt_notifier_unregister",
	"fiber_stats",
	"fiber_worker_stats",
	"fiber_dump",
	/* Waiting and synchronisation */
	"fiber_waitq_init",
	"fiber_wake_up",
	"fiber_wake_up_all",
	"fiber_wait_entry_init",
	"fiber_prepare_to_wait",
	"fiber_wait_schedule",
	"fiber_finish_wait",
	"fiber_mutex_init",
	"fiber_mutex_destroy",
	"fiber_mutex_lock",
	"fiber_mutex_trylock",
	"fiber_mutex_timedlock",
	"fiber_mutex_unlock",
	"fiber_cond_init",
	"fiber_cond_destroy",
	"fiber_cond_wait",
	"fiber_cond_timedwait",
	"fiber_cond_signal",
	"fiber_cond_broadcast",
	"fiber_rwlock_init",
	"fiber_rwlock_destroy",
	"fiber_rwlock_rdlock",
	"fiber_rwlock_wrlock",
	"fiber_rwlock_tryrdlock",
	"fiber_rwlock_trywrlock",
	"fiber_rwlock_unlock",
	"fiber_sem_init",
	"fiber_sem_destroy",
	"fiber_sem_wait",
	"fiber_sem_trywait",
	"fiber_sem_timedwait",
	"fiber_sem_post",
	"fiber_barrier_init",
	"fiber_barrier_destroy",
	"fiber_barrier_wait",
	"fiber_wg_init",
	"fiber_wg_add",
	"fiber_wg_done",
	"fiber_wg_wait",
	"fiber_chan_create",
	"fiber_chan_send",
	"fiber_chan_recv",
	"fiber_chan_trysend",
	"fiber_chan_tryrecv",
	"fiber_chan_close",
	"fiber_chan_destroy",
	"fiber_chan_select",
	"fiber_key_create",
	"fiber_key_delete",
	"fiber_setspecific",
	"fiber_getspecific",
};

static void test_symbols_exported_exactly(void **state)
{
	char cmd[4096];
	char line[512];
	FILE *p;
	int n = 0, unknown = 0;

	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s'", LIBFIBER_SO);
	p = popen(cmd, "r");
	if (!p)
		skip();
	while (fgets(line, sizeof(line), p)) {
		char addr[64], type[8], name[256];
		int known = 0;

		if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3)
			continue;
		char *at = strchr(name, '@');
		if (at)
			*at = 0;
		if (!strcmp(name, "LIBFIBER_0"))
			continue;
		for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++)
			known |= !strcmp(name, api[i]);
		if (!known) {
			fprintf(stderr, "unexpected export: %s\n", name);
			unknown++;
		}
		n++;
	}
	if (pclose(p) != 0 && n == 0)
		skip(); /* no nm */
	assert_int_equal(unknown, 0);
	assert_int_equal(n, (int)(sizeof(api) / sizeof(api[0])));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_symbols_exported_exactly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
