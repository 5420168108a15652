/*
 * libFuzzer harness for examples/resp.c: any byte string is parsed as a stream of pipelined requests, the way
 * kv_server's connection loop does (parse, consume, again; stop at "incomplete" or at an error), and each command
 * is run against a small store through kv_exec, so the parser and the command table see the same input.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Iexamples tests/fuzz/fuzz_resp.c \
 *       examples/resp.c examples/kv_store.c build/libfiber.a $(pkg-config --libs liburing jemalloc) -lpthread
 *   ./a.out tests/fuzz/corpus/resp          (tests/fuzz/run.sh does this, -runs=N)
 * Without -fsanitize=fuzzer (FUZZ_REPLAY defined) it builds a plain program that replays the files given as
 * arguments, which is what ctest runs (test_fuzz_resp_replay).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kv_store.h"
#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct resp_limits lim = { .max_bulk = 4096, .max_args = 64, .max_inline = 256 };
	static struct kv_store *kv;
	struct resp_cmd cmd = { 0 };
	struct sbuf out = { 0 };
	size_t off = 0;

	if (!kv && kv_store_create(&kv, 4))
		abort();
	while (off < size) {
		const char *err = NULL;
		size_t need = 0;
		long n = resp_parse((const char *)data + off, size - off, &lim, &cmd, &err, &need);

		if (n < 0) {
			if (!err)
				abort(); /* an error always has its message */
			break;
		}
		if (n == 0) {
			if (need && need <= size - off)
				abort(); /* "need more" while the bytes are there */
			break;
		}
		if ((size_t)n > size - off)
			abort();
		if (cmd.argc && kv_exec(kv, &cmd, &out) == KV_EXEC_QUIT)
			break;
		sbuf_reset(&out);
		off += (size_t)n;
	}
	sbuf_free(&out);
	resp_cmd_free(&cmd);
	return 0;
}

#ifdef FUZZ_REPLAY
int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (!f) {
			perror(argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	printf("replayed %d input(s)\n", argc - 1);
	return 0;
}
#endif
