/* replay.c - runs a libFuzzer target over saved inputs, without libFuzzer.
 *
 * Usage: replay PATH...  where each PATH is a file or a directory (its
 * regular files, not recursive, in name order; dot files skipped). Each
 * input is copied into a buffer of exactly its size, so a sanitizer sees
 * any read past the end, and handed to LLVMFuzzerTestOneInput. Prints TAP;
 * a crash in the target ends the run, which the harness reports.
 * Generic: link it with any one fuzz target.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (64u * 1024u * 1024u)

struct list {
	char **v;
	size_t n, cap;
};

static void die(const char *what)
{
	fprintf(stderr, "replay: %s\n", what);
	exit(2);
}

static void list_add(struct list *l, char *path)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (!l->v)
			die("out of memory");
	}
	l->v[l->n++] = path;
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (!p)
		die("out of memory");
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static char *dup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		die("out of memory");
	return p;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_dir(struct list *l, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t first = l->n;

	if (!d) {
		list_add(l, dup(dir)); /* reported as unreadable below */
		return;
	}
	while ((de = readdir(d))) {
		char *p;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		p = join(dir, de->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
			list_add(l, p);
		else
			free(p);
	}
	closedir(d);
	qsort(l->v + first, l->n - first, sizeof(*l->v), by_name);
}

/* Reads the whole file into an exactly sized buffer (NULL when empty). */
static int slurp(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rbe");
	uint8_t *buf = NULL;
	long n;

	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0 ||
	    (unsigned long)n > REPLAY_MAX_INPUT) {
		fclose(f);
		return -EFBIG;
	}
	if (n > 0) {
		buf = malloc((size_t)n);
		if (!buf)
			die("out of memory");
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			fclose(f);
			return -EIO;
		}
	}
	fclose(f);
	*out = buf;
	*len = (size_t)n;
	return 0;
}

int main(int argc, char **argv)
{
	struct list l = {0};
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			add_dir(&l, argv[i]);
		else
			list_add(&l, dup(argv[i]));
	}
	printf("1..%zu\n", l.n);
	for (size_t i = 0; i < l.n; i++) {
		uint8_t *data = NULL;
		size_t len = 0;
		int r = slurp(l.v[i], &data, &len);

		if (r < 0) {
			printf("not ok %zu - %s # %s\n", i + 1, l.v[i], strerror(-r));
			failed = 1;
		} else {
			fflush(stdout); /* a crash should not eat earlier lines */
			LLVMFuzzerTestOneInput(data, len);
			printf("ok %zu - %s\n", i + 1, l.v[i]);
		}
		free(data);
		free(l.v[i]);
	}
	free(l.v);
	return failed;
}
