/*
 * kv_store: the key-value store behind kv_server, and its command table. A fixed number of shards, each a chained
 * hash table under its own fiber mutex (a fiber rwlock with -DKV_RWLOCK=1: readers then share a shard; see
 * kv_store.c for why the mutex is the default), and commands that touch several shards at once (MSET, FLUSHALL)
 * lock them in ascending order, so no two commands can deadlock. Keys with a time to live expire lazily (a read
 * of an expired key sees nothing) and in the background (kv_store_expire_cycle, which kv_server runs in a fiber).
 *
 * Context: any thread; a contended shard lock blocks a plain thread (the tests run commands from one).
 */
#ifndef EXAMPLES_KV_STORE_H
#define EXAMPLES_KV_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "resp.h"
#include "sbuf.h"

struct kv_store;

#define KV_SHARDS_DEFAULT 256

/* kv_store_create - an empty store of @nshards shards (a power of two, 1..65536). 0, -EINVAL, -ENOMEM. */
int kv_store_create(struct kv_store **out, unsigned nshards);
void kv_store_destroy(struct kv_store *kv);

/* kv_exec results */
#define KV_EXEC_OK 0
#define KV_EXEC_QUIT 1 /* the reply is in @out; close the connection after sending it */

/*
 * kv_exec - run one command (cmd->argc >= 1) and append its reply to @out. Command names are case-insensitive.
 * Wrong arity, unknown commands and bad arguments get RESP error replies, as Redis words them.
 * Returns KV_EXEC_OK, KV_EXEC_QUIT, or -1 when out of memory (the reply may be incomplete: close).
 */
int kv_exec(struct kv_store *kv, const struct resp_cmd *cmd, struct sbuf *out);

/* kv_store_expire_cycle - remove expired keys from a slice of the table (a few shards per call); returns how
 * many it removed. */
size_t kv_store_expire_cycle(struct kv_store *kv);

/* Number of live keys (what DBSIZE says). */
uint64_t kv_store_size(struct kv_store *kv);
/* Commands run since creation. */
uint64_t kv_store_commands(struct kv_store *kv);

#endif
