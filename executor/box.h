/* box.h - the sandbox each stdio MCP server runs in (issue 18, item 2).
 *
 * A plugin server is boxed by default: Landlock (common/sandbox.h) with
 * read+execute on its plugin root, the system directories and its
 * program; read on a curated part of /etc and /proc; read-write on a
 * private directory (mode 0700, created here, removed at stop, its HOME and
 * TMPDIR unless the config sets them) and /dev/null and friends; nothing
 * else. no_new_privs; RLIMIT_NOFILE and RLIMIT_AS; a pids cgroup per server
 * where one can be created (the process limit; RLIMIT_NPROC counts every
 * process of the user and is not applied). Config (tandem extensions,
 * common/mcpcfg.h): sandbox = "off" opts out; sandbox.read / sandbox.write
 * grant paths inside the root, or outside it under an executor
 * --sandbox-allow directory; sandbox.max_open_files / max_processes /
 * max_memory_mb; network = false adds a network namespace of its own (or
 * the server is refused when the executor cannot create one).
 *
 * A server outside any plugin root (config.toml) runs unboxed unless its
 * config has a sandbox table. Without Landlock in the kernel servers run
 * unboxed with a warning, unless --require-sandbox. box_describe() is what
 * MCP_START's reply says (mcpServerStatus/list shows it, later).
 */
#ifndef TANDEM_BOX_H
#define TANDEM_BOX_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct executor;
struct box;
struct spawnproc_hook;

#define BOX_DEFAULT_OPEN_FILES 4096u
#define BOX_DEFAULT_PROCESSES 256u
/* Address space: Node reserves ~1 GiB at start. A sanitizer build runs
 * servers built the same way, and ASan reserves terabytes of shadow: no
 * default limit there (a config's max_memory_mb still applies). */
#if defined(__SANITIZE_ADDRESS__)
#define BOX_DEFAULT_MEMORY_MB 0u
#else
#define BOX_DEFAULT_MEMORY_MB 8192u
#endif

struct box_req {
	const char *name;	  /* the server, for messages */
	const char *root;	  /* canonical plugin root, or NULL */
	int root_fd;		  /* O_PATH of root, or -1 */
	int cwd_fd;		  /* the server's cwd */
	const char *command;	  /* as configured */
	const char *const *envp;  /* the server's environment (PATH finds the program) */
	json_t *policy;		  /* {sandbox?, network?} (borrowed), or NULL */
	bool policy_given;	  /* policy came from MCP_START (else from our resolution) */
};

/* Executor-wide: Landlock ABI, network namespaces, the private directories'
 * base, the pids cgroup. Logs what it found. */
void box_init(struct executor *ex);
void box_fini(struct executor *ex);

/* Prepares the box of one server. 0, or -errno with *status and a reason
 * (a path outside the allowed ones, network = false impossible, ...). */
int box_new(struct executor *ex, const struct box_req *req, struct box **out, int32_t *status,
	    char *err, size_t errlen);

const struct spawnproc_hook *box_hook(struct box *b);
unsigned long box_namespaces(const struct box *b); /* CLONE_NEWNET or 0 */
const char *box_home(const struct box *b);	    /* private directory, or NULL */
bool box_landlocked(const struct box *b);
/* "landlock ABI 7, ...", or "off: <why>". */
const char *box_describe(const struct box *b);

/* Removes the private directory and the cgroup. Accepts NULL. */
void box_free(struct box *b);

#endif
