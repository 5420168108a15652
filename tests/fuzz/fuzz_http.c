/*
 * libFuzzer harness for http_server's request path: the bytes go through http_parser with http_server's own
 * callbacks (examples/http_server.c is included whole, its main renamed, so the static functions are the real
 * ones), requests are answered as the connection loop answers them, parser errors get their error reply, and the
 * replies are written to a socketpair outside any fiber (the fiber I/O calls then make the plain system calls).
 * Files are served from a temporary root with one file and one directory. Each reply must start with a status
 * line.
 *
 *   tests/fuzz/run.sh builds it with clang -fsanitize=fuzzer,address,undefined; with FUZZ_REPLAY defined it is a
 *   plain program that replays the files given as arguments (ctest: test_fuzz_http_replay).
 */
#define main http_server_main
#include "../../examples/http_server.c"
#undef main

#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sv[2] = { -1, -1 };
static struct http_server fz_hs = { .root_fd = -1, .max_body = 4096 };
static char root[] = "/tmp/fuzz_http.XXXXXX";

static void fuzz_cleanup(void)
{
	char path[64];

	snprintf(path, sizeof(path), "%s/a.txt", root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dir", root);
	rmdir(path);
	rmdir(root);
}

static void fuzz_init(void)
{
	char path[64];
	FILE *f;

	if (!mkdtemp(root) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		abort();
	atexit(fuzz_cleanup);
	snprintf(path, sizeof(path), "%s/a.txt", root);
	f = fopen(path, "w");
	if (!f)
		abort();
	fputs("file a\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/dir", root);
	mkdir(path, 0755);
	fz_hs.root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fz_hs.root_fd < 0)
		abort();
}

/* Read back what the server wrote; every reply it wrote starts with a status line. */
static void drain(void)
{
	static char buf[1 << 16];
	bool first = true;
	ssize_t n;

	while ((n = recv(sv[1], buf, sizeof(buf), 0)) > 0) {
		if (first && (n < 9 || memcmp(buf, "HTTP/1.1 ", 9)))
			abort();
		first = false;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srv_conn sc = { .fd = -1 };
	struct conn *c;
	size_t off = 0;

	if (sv[0] < 0)
		fuzz_init();
	sc.fd = sv[0];
	c = calloc(1, sizeof(*c));
	if (!c)
		return 0;
	c->sc = &sc;
	c->hs = &fz_hs;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	/* two reads' worth, split where the input says (its first byte), as a connection may see it */
	while (off < size && !c->closing) {
		size_t chunk = size - off;

		if (off == 0 && size > 1)
			chunk = 1 + data[0] % (size - 1);
		http_parser_execute(&c->parser, &settings, (const char *)data + off, chunk);
		off += chunk;
		if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
			if (c->error_status != -1 &&
			    !(c->closing && HTTP_PARSER_ERRNO(&c->parser) == HPE_CB_message_complete)) {
				c->closing = true;
				reply_error(c, error_status(c), NULL);
			}
			break;
		}
		if (c->parser.upgrade)
			break;
	}
	flush_out(c);
	drain();
	sbuf_free(&c->in);
	sbuf_free(&c->out);
	sbuf_free(&c->body);
	free(c);
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
