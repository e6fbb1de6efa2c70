/* spawner_int.h - what the orchestrator's side of the spawner (spawner.c)
 * and the spawner process (spawner_proc.c) share: the messages between them
 * and their encoding (spawner_wire.c). See spawner.h for the design.
 *
 * One message per datagram on a SOCK_SEQPACKET socketpair. A message is a
 * u32 type, a u32 id, then its fields in the order listed below: u32 and
 * i32 in host order (both ends are the same binary), a string as a u32
 * length, the bytes and a NUL (no NUL inside). Descriptors travel as
 * SCM_RIGHTS with the message that names them.
 *
 *   orchestrator -> spawner (id: echoed in the answer)
 *   ALLOW           str program                       setup only; answer
 *   REMOVE_AT_EXIT  str path                          setup only; answer
 *   SEAL                                              setup only; answer
 *   START           str program, str cwd ("" none), u32 flags, u32 argc,
 *                   argc x str, u32 envc, envc x str, u32 nfds,
 *                   nfds x (i32 child_fd, i32 source: SPW_FD_PASSED, the
 *                   next SCM_RIGHTS descriptor, or SPW_FD_DEVNULL); answer
 *   STOP            u32 pid, u32 grace_ms                 no answer
 *   spawner -> orchestrator
 *   ANSWER          i32 result (START: the pid; else 0; or -errno),
 *                   str message (why, when result < 0)
 *   EXITED          u32 pid, i32 wstatus (as from waitpid)   id 0
 */
#ifndef TANDEM_SPAWNER_INT_H
#define TANDEM_SPAWNER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum spw_type {
	SPW_ALLOW = 1,
	SPW_REMOVE_AT_EXIT,
	SPW_SEAL,
	SPW_START,
	SPW_STOP,
	SPW_ANSWER,
	SPW_EXITED,
};

#define SPW_FD_PASSED (-1)
#define SPW_FD_DEVNULL (-2)

#define SPW_MSG_MAX (256u * 1024u) /* bytes in one message */
#define SPW_STRS_MAX 4096u         /* argv or envp entries */
#define SPW_FDS_MAX 16u            /* descriptors with one message (SPAWNPROC_MAX_FDS) */
#define SPW_ALLOW_MAX 64u          /* programs allowed */
#define SPW_REMOVE_MAX 8u          /* paths removed at exit */
#define SPW_CHILDREN_MAX 1024u     /* processes alive at once */
#define SPW_ANSWER_MS 10000        /* an answer takes at most this long */

/* A message being built; grows as needed (bounded by SPW_MSG_MAX at send). */
struct spw_out {
	uint8_t *p;
	size_t len, cap;
};

/* A message being read: every get checks the bounds; after a failed get
 * `bad` is set and later gets return 0 / NULL. */
struct spw_in {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

void spw_begin(struct spw_out *o, enum spw_type type, uint32_t id);
void spw_put_u32(struct spw_out *o, uint32_t v);
void spw_put_i32(struct spw_out *o, int32_t v);
void spw_put_str(struct spw_out *o, const char *s);
void spw_out_free(struct spw_out *o);

uint32_t spw_get_u32(struct spw_in *in);
int32_t spw_get_i32(struct spw_in *in);
/* A pointer into the message, NUL-terminated; NULL when malformed. */
const char *spw_get_str(struct spw_in *in);
/* True when every byte was read and nothing was malformed. */
bool spw_done(const struct spw_in *in);

/* Sends o with fds (n <= SPW_FDS_MAX) as one datagram; blocks. 0 or -errno
 * (-EMSGSIZE over SPW_MSG_MAX). */
int spw_send(int sock, const struct spw_out *o, const int *fds, size_t n);
/* Receives one datagram into buf (SPW_MSG_MAX bytes) and the descriptors
 * that came with it (made close-on-exec; at most SPW_FDS_MAX, extra ones
 * closed and reported as -EBADMSG). Returns the length, 0 at EOF, or
 * -errno (-EAGAIN with dontwait and nothing there, -EMSGSIZE for a
 * truncated message). The caller owns the descriptors even on error. */
long spw_recv(int sock, uint8_t *buf, int *fds, size_t *n_fds, bool dontwait);
/* Starts reading a received message: its type and id. */
void spw_in_init(struct spw_in *in, const uint8_t *buf, size_t len, uint32_t *type,
		 uint32_t *id);

/* The spawner process (spawner_proc.c): serves `sock` until the
 * orchestrator's end closes, then stops its children and exits. */
_Noreturn void spawner_proc_main(int sock);

#endif
