/* handlers.c - one exec_handle_<msg> per message the executor accepts
 * from an authenticated orchestrator. The table at the bottom is the whole
 * policy: a message without a row is refused, and listener.c has already
 * checked direction and state against proto/messages.h before anything
 * here runs. The handshake (CHALLENGE, HELLO, AUTH) is listener.c's and
 * proto/handshake.c's; exec_hello_info says what it tells the peer. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "executor.h"
#include "log.h"
#include "loop.h"
#include "plugin.h"
#include "secret.h"
#include "util.h"
#include "version.h"

void exec_hello_info(struct executor *ex, struct proto_hello_reply *r, struct proto_str *caps,
		     uint64_t **handles, uint8_t **ids)
{
	size_t n = 0;
	bool more;

	caps[n++] = proto_str_c("mcp-stdio");
	caps[n++] = proto_str_c("root-resolve");
	caps[n++] = proto_str_c("http-relay");
	memset(r, 0, sizeof(*r));
	r->executor_id = proto_str_c(ex->opts.id);
	r->executor_version = proto_str_c(TANDEM_VERSION);
	r->capabilities.items = caps;
	r->capabilities.n = (uint32_t)n;
	r->max_frame = PROTO_MAX_FRAME;
	r->max_processes = ex->opts.max_procs;
	r->live_handles.n = (uint32_t)procs_detached(ex, handles, ids, &more);
	if (more) {
		r->live_more = true;
		PROTO_MARK(r, hello_reply, live_more);
		log_info("more detached servers than a HELLO reply lists (%u): the rest are "
			 "re-attached by identity", PROTO_MAX_LIVE);
	}
	r->live_handles.items = *handles;
	r->live_ids.ptr = (const char *)*ids;
	r->live_ids.len = r->live_handles.n * PROTO_ID_LEN;
	if (r->live_handles.n) {
		PROTO_MARK(r, hello_reply, live_ids);
		log_info("%u detached server(s) reported for a re-attach", r->live_handles.n);
	}
	PROTO_MARK(r, hello_reply, executor_version);
	PROTO_MARK(r, hello_reply, capabilities);
	PROTO_MARK(r, hello_reply, max_frame);
	PROTO_MARK(r, hello_reply, max_processes);
	PROTO_MARK(r, hello_reply, live_handles);
}

static void exec_handle_ping(struct executor *ex, struct proto_msg *m)
{
	struct proto_ping_reply r = { .stamp = m->u.ping.stamp };

	PROTO_MARK(&r, ping_reply, stamp);
	listener_send(ex, PROTO_PING, PROTO_REPLY, m->env.id, &r);
}

/* Copies an optional string member into field `tag` of r. */
static void opt_str(struct proto_root_resolve_reply *r, struct proto_str *field, unsigned tag,
		    json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	if (v) {
		*field = proto_str_c(v);
		PROTO_SET(r, tag);
	}
}

static int32_t resolve_status(int r)
{
	switch (r) {
	case -ENOENT: return PROTO_E_NOT_FOUND;
	case -EACCES: return PROTO_E_DENIED;
	case -ENOTDIR:
	case -ENAMETOOLONG:
	case -EINVAL: return PROTO_E_BAD_REQUEST;
	default: return PROTO_E_IO;
	}
}

static void exec_handle_root_resolve(struct executor *ex, struct proto_msg *m)
{
	const struct proto_root_resolve_body *b = &m->u.root_resolve;
	_cleanup_free_ char *id = proto_str_dup(b->root_id), *path = proto_str_dup(b->path),
			    *env = proto_str_dup(b->environment_id);
	_cleanup_free_ char *servers = NULL, *invalid = NULL;
	_cleanup_free_ struct proto_str *warns = NULL;
	struct plugin_opts o = {
		.allow_prefixes = ex->opts.root_allow,
		.n_allow = ex->opts.n_root_allow,
		.environment_id = env,
		.environment_is_local = b->environment_is_local,
		.max_file_bytes = EXEC_MAX_PLUGIN_FILE,
	};
	struct proto_root_resolve_reply r = { 0 };
	char reason[1024];
	json_t *out = NULL, *w;
	int ret;

	ret = plugin_resolve(&o, id, path, &out, reason, sizeof(reason));
	if (ret < 0) {
		log_info("root '%s' (%s): %s", id, path, reason);
		listener_send_error(ex, PROTO_ROOT_RESOLVE, m->env.id, resolve_status(ret), "%s",
				    reason);
		return;
	}
	r.path = proto_str_c(json_string_value(json_object_get(out, "path")));
	r.is_plugin = json_is_true(json_object_get(out, "is_plugin"));
	opt_str(&r, &r.name, PROTO_TAG_root_resolve_reply_name, out, "name");
	opt_str(&r, &r.version, PROTO_TAG_root_resolve_reply_version, out, "version");
	opt_str(&r, &r.display_name, PROTO_TAG_root_resolve_reply_display_name, out, "display_name");
	opt_str(&r, &r.description, PROTO_TAG_root_resolve_reply_description, out, "description");
	servers = json_dumps(json_object_get(out, "servers"), JSON_COMPACT);
	invalid = json_dumps(json_object_get(out, "invalid"), JSON_COMPACT);
	r.servers = proto_str_c(servers);
	r.invalid = proto_str_c(invalid);
	w = json_object_get(out, "warnings");
	warns = xcalloc(json_array_size(w) + 1, sizeof(*warns));
	for (size_t i = 0; i < json_array_size(w) && i < PROTO_MAX_LIST; i++)
		warns[r.warnings.n++] = proto_str_c(json_string_value(json_array_get(w, i)));
	r.warnings.items = warns;
	PROTO_MARK(&r, root_resolve_reply, invalid);
	PROTO_MARK(&r, root_resolve_reply, warnings);
	log_info("root '%s' (%s): %s, %zu server(s), %zu invalid", id, path,
		 r.is_plugin ? "plugin" : "not a plugin",
		 json_array_size(json_object_get(out, "servers")),
		 json_array_size(json_object_get(out, "invalid")));
	if (listener_send(ex, PROTO_ROOT_RESOLVE, PROTO_REPLY, m->env.id, &r) == -EINVAL)
		listener_send_error(ex, PROTO_ROOT_RESOLVE, m->env.id, PROTO_E_LIMIT,
				    "plugin metadata exceeds the protocol limits");
	json_decref(out);
}

static void exec_handle_mcp_start(struct executor *ex, struct proto_msg *m)
{
	struct proto_mcp_start_reply r = { 0 };
	const char *sandbox = NULL;
	int32_t status;
	char err[512];

	if (procs_start(ex, &m->u.mcp_start, &r.handle, &r.pid, &sandbox, &status, err,
			sizeof(err)) < 0) {
		log_warn("cannot start server '%.*s': %s", (int)MIN(m->u.mcp_start.server_name.len, 128u),
			 m->u.mcp_start.server_name.ptr, err);
		listener_send_error(ex, PROTO_MCP_START, m->env.id, status, "%s", err);
		return;
	}
	PROTO_MARK(&r, mcp_start_reply, pid);
	r.sandbox = proto_str_c(sandbox);
	PROTO_MARK(&r, mcp_start_reply, sandbox);
	listener_send(ex, PROTO_MCP_START, PROTO_REPLY, m->env.id, &r);
}

static void exec_handle_mcp_stop(struct executor *ex, struct proto_msg *m)
{
	struct proto_mcp_stop_reply r = { 0 };

	if (procs_stop(ex, m->u.mcp_stop.handle) < 0) {
		listener_send_error(ex, PROTO_MCP_STOP, m->env.id, PROTO_E_NOT_FOUND,
				    "no process with handle %llu",
				    (unsigned long long)m->u.mcp_stop.handle);
		return;
	}
	listener_send(ex, PROTO_MCP_STOP, PROTO_REPLY, m->env.id, &r);
}

/* MCP_SEND is an event (no reply on the hot path); a failure becomes an
 * MCP_EXITED so the orchestrator fails the calls waiting on that process
 * instead of waiting for their timeouts.
 *
 * A request whose deadline passed before it got here (it waited in a
 * replay buffer through a cut) is never written: the orchestrator told
 * its client it failed. MCP_EXPIRED says so. One still in time carries its
 * deadline, in our clock, to the stdin queue (child.h). */
static bool expired(struct executor *ex, const struct proto_mcp_send_body *b,
		    uint64_t *local_deadline)
{
	uint64_t now = listener_peer_clock_ms(ex);
	char why[200];

	*local_deadline = 0;
	if (!PROTO_HAS_FIELD(b, mcp_send_body, deadline_ms) || !b->call_id)
		return false;
	if (now < b->deadline_ms) {
		*local_deadline = loop_now_ms(ex->loop) + (b->deadline_ms - now);
		return false;
	}
	snprintf(why, sizeof(why), "its deadline passed %llu ms before it reached the executor",
		 (unsigned long long)(now - b->deadline_ms));
	procs_report_expired(ex, b->handle, b->call_id, why);
	return true;
}

static void exec_handle_mcp_send(struct executor *ex, struct proto_msg *m)
{
	const struct proto_mcp_send_body *b = &m->u.mcp_send;
	struct proto_mcp_exited_body ev = { .handle = b->handle, .exit_code = -1 };
	uint64_t deadline;
	int r;

	if (expired(ex, b, &deadline))
		return;
	r = procs_send(ex, b->handle, b->data.ptr, b->data.len,
		       PROTO_HAS_FIELD(b, mcp_send_body, call_id) ? b->call_id : 0, deadline);

	if (r == 0 || r == -EPIPE) /* -EPIPE: it is exiting; MCP_EXITED follows */
		return;
	if (r == -ENOENT) {
		ev.reason = proto_str_c("no such process on this executor");
		PROTO_MARK(&ev, mcp_exited_body, exit_code);
		listener_send(ex, PROTO_MCP_EXITED, PROTO_EVENT, 0, &ev);
		return;
	}
	procs_fail(ex, b->handle, r == -ENOBUFS
				      ? "stdin backlog over its bound: the server stopped reading"
				      : "cannot write to the server's stdin");
}

static void exec_handle_mcp_note(struct executor *ex, struct proto_msg *m)
{
	const struct proto_mcp_note_body *b = &m->u.mcp_note;
	int r = procs_note(ex, b->handle, b->note.ptr, b->note.len);

	if (r == -EMSGSIZE)
		log_warn("process %llu: a note of %u bytes is over the %u-byte bound: not kept",
			 (unsigned long long)b->handle, b->note.len, PROTO_MAX_NOTE);
}

/* MCP_CANCEL overtakes the request it names if it still waits for stdin:
 * then it is never written, and MCP_EXPIRED tells the orchestrator so. */
static void exec_handle_mcp_cancel(struct executor *ex, struct proto_msg *m)
{
	const struct proto_mcp_cancel_body *b = &m->u.mcp_cancel;
	char why[300];

	if (!procs_withdraw(ex, b->handle, b->call_id))
		return; /* the server has it: notifications/cancelled follows */
	snprintf(why, sizeof(why), "cancelled while it waited for the server to read its stdin%s%.*s",
		 b->reason.len ? ": " : "", (int)MIN(b->reason.len, 200u),
		 b->reason.len ? b->reason.ptr : "");
	procs_report_expired(ex, b->handle, b->call_id, why);
}

static void exec_handle_mcp_attach(struct executor *ex, struct proto_msg *m)
{
	const struct proto_mcp_attach_body *b = &m->u.mcp_attach;
	struct proto_mcp_attach_reply r = { 0 };
	uint64_t handle = b->handle;

	if (!PROTO_HAS_FIELD(b, mcp_attach_body, handle)) {
		/* a server the HELLO reply left out (live_more): by identity */
		if (!PROTO_HAS_FIELD(b, mcp_attach_body, identity) || b->identity.len != PROTO_ID_LEN) {
			listener_send_error(ex, PROTO_MCP_ATTACH, m->env.id, PROTO_E_BAD_REQUEST,
					    "MCP_ATTACH needs a handle or a %u-byte identity",
					    PROTO_ID_LEN);
			return;
		}
		if (procs_find_detached(ex, (const uint8_t *)b->identity.ptr, &handle) < 0) {
			listener_send_error(ex, PROTO_MCP_ATTACH, m->env.id, PROTO_E_NOT_FOUND,
					    "no detached process with that identity");
			return;
		}
	}
	if (procs_attach(ex, handle, &r.pid, &r.dropped_lines, &r.note) < 0) {
		listener_send_error(ex, PROTO_MCP_ATTACH, m->env.id, PROTO_E_NOT_FOUND,
				    "no detached process with handle %llu", (unsigned long long)handle);
		return;
	}
	r.handle = handle;
	r.present = PROTO_ALL_mcp_attach_reply;
	listener_send(ex, PROTO_MCP_ATTACH, PROTO_REPLY, m->env.id, &r);
	procs_flush_held(ex, handle);
}

static void exec_handle_http_request(struct executor *ex, struct proto_msg *m)
{
	httprelay_request(ex, &m->u.http_request);
}

static void exec_handle_http_abort(struct executor *ex, struct proto_msg *m)
{
	httprelay_abort(ex, m->u.http_abort.req_id);
}

typedef void (*exec_handler)(struct executor *ex, struct proto_msg *m);

static const struct {
	uint16_t type;
	exec_handler fn;
} handlers[] = {
	{ PROTO_PING, exec_handle_ping },
	{ PROTO_ROOT_RESOLVE, exec_handle_root_resolve },
	{ PROTO_MCP_START, exec_handle_mcp_start },
	{ PROTO_MCP_STOP, exec_handle_mcp_stop },
	{ PROTO_MCP_SEND, exec_handle_mcp_send },
	{ PROTO_MCP_ATTACH, exec_handle_mcp_attach },
	{ PROTO_MCP_CANCEL, exec_handle_mcp_cancel },
	{ PROTO_MCP_NOTE, exec_handle_mcp_note },
	{ PROTO_HTTP_REQUEST, exec_handle_http_request },
	{ PROTO_HTTP_ABORT, exec_handle_http_abort },
};

void exec_dispatch(struct executor *ex, struct proto_msg *m)
{
	for (size_t i = 0; i < ARRAY_SIZE(handlers); i++) {
		if (handlers[i].type == m->env.type) {
			handlers[i].fn(ex, m);
			return;
		}
	}
	if (m->env.kind == PROTO_REQUEST)
		listener_send_error(ex, m->env.type, m->env.id, PROTO_E_UNSUPPORTED,
				    "%s is not implemented by this executor", m->def->name);
}
