/* plugin.c - see plugin.h.
 *
 * Order of work: turn the argument into a path, canonicalize it, check the
 * allow list, open the root without following symlinks, then read at most
 * two small files (manifest, server file) through descriptors opened below
 * the root's (pathfd.h: no path is checked and then used) and hand each
 * server entry to mcpcfg. Nothing is cached here: the
 * orchestrator caches resolved roots for a thread's life.
 */
#include "plugin.h"

#include "mcpcfg.h"
#include "pathfd.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>

/* Manifest locations, in search order. */
static const char *const manifest_paths[] = {
	".codex-plugin/plugin.json",
	".claude-plugin/plugin.json",
};

struct resolve {
	const struct plugin_opts *o;
	char root[PATH_MAX]; /* canonical */
	int rootfd;          /* O_PATH, opened without following symlinks */
	json_t *res;         /* the result under construction */
	json_t *servers, *invalid, *warnings; /* its lists, attached last */
	char *reason;
	size_t reasonlen;
};

__attribute__((format(printf, 3, 4))) static int fail(char *reason,
						       size_t reasonlen,
						       const char *fmt, ...)
{
	va_list ap;

	if (reasonlen) {
		va_start(ap, fmt);
		vsnprintf(reason, reasonlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

#define rfail(rs, ...) fail((rs)->reason, (rs)->reasonlen, __VA_ARGS__)

/* JSON string of s, backing off a character split by a truncating
 * snprintf: json_string() refuses invalid UTF-8. */
static json_t *json_string_prefix(const char *s)
{
	size_t len = strlen(s);
	json_t *j;

	while (!(j = json_stringn(s, len)) && len > 0)
		len--;
	return j ? j : json_string("");
}

static bool has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")); p += 2)
		if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return true;
	return false;
}

/* Percent-decodes s into a new string; NULL on a bad escape or a %00. */
static char *percent_decode(const char *s)
{
	char *out = xmalloc(strlen(s) + 1), *w = out;

	for (; *s; s++) {
		int hi, lo;

		if (*s != '%') {
			*w++ = *s;
			continue;
		}
		hi = hexval(s[1]);
		lo = hi < 0 ? -1 : hexval(s[2]);
		if (lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		*w++ = (char)(hi << 4 | lo);
		s += 2;
	}
	*w = '\0';
	return out;
}

/* file:///p, file://localhost/p, file:/p -> /p (decoded). */
static int path_from_uri(const char *uri, char **out, char *reason,
			 size_t reasonlen)
{
	const char *p = uri + strlen("file:");

	if (!strncmp(p, "//", 2)) {
		const char *host = p + 2;
		size_t hostlen = strcspn(host, "/");

		if (hostlen && !(hostlen == 9 && !strncasecmp(host, "localhost", 9)))
			return fail(reason, reasonlen,
				    "file URI names a host other than "
				    "localhost");
		p = host + hostlen;
	}
	if (*p != '/')
		return fail(reason, reasonlen, "file URI has no absolute path");
	if (strpbrk(p, "?#"))
		return fail(reason, reasonlen,
			    "file URI must not have a query or fragment");
	*out = percent_decode(p);
	if (!*out)
		return fail(reason, reasonlen,
			    "file URI has a bad percent escape");
	return 0;
}

static int path_from_arg(const char *arg, char **out, char *reason,
			 size_t reasonlen)
{
	if (!strncasecmp(arg, "file:", 5))
		return path_from_uri(arg, out, reason, reasonlen);
	if (arg[0] != '/')
		return fail(reason, reasonlen,
			    "root path must be absolute or a file: URI");
	*out = xstrdup(arg);
	return 0;
}

static bool allowed(const struct plugin_opts *o, const char *path)
{
	if (o->n_allow == 0)
		return true;
	for (size_t i = 0; i < o->n_allow; i++)
		if (mcpcfg_path_within(o->allow_prefixes[i], path))
			return true;
	return false;
}

/* Canonicalizes path into rs->root, checks it, and opens it as rs->rootfd
 * without following any symlink, so that the directory checked is the one
 * every later open starts from. A path the allow list would refuse gets
 * -EACCES even when it does not exist, so that the answer does not tell
 * whether it exists. */
static int canonical_root(struct resolve *rs, const char *path)
{
	struct stat st;
	int err;

	if (strlen(path) >= PATH_MAX) {
		rfail(rs, "root path is longer than %d bytes", PATH_MAX - 1);
		return -ENAMETOOLONG;
	}
	if (!realpath(path, rs->root)) {
		err = errno;
		if (!allowed(rs->o, path) || (rs->o->n_allow && has_dotdot(path)))
			err = EACCES;
		rfail(rs, "root '%s': %s", path,
		      err == EACCES ? "outside the allowed roots or not "
				      "accessible" : strerror(err));
		return err == ENOENT || err == ENOTDIR || err == EACCES ||
				       err == ENAMETOOLONG ? -err : -EINVAL;
	}
	if (!allowed(rs->o, rs->root)) {
		rfail(rs, "root '%s' is outside the allowed roots", rs->root);
		return -EACCES;
	}
	rs->rootfd = pathfd_open_nosymlinks(rs->root, O_PATH | O_DIRECTORY);
	if (rs->rootfd == -ENOTDIR || (rs->rootfd >= 0 && (fstat(rs->rootfd, &st) < 0 ||
							   !S_ISDIR(st.st_mode)))) {
		rfail(rs, "root '%s' is not a directory", rs->root);
		return -ENOTDIR;
	}
	if (rs->rootfd < 0) {
		/* A component turned into a symlink since realpath(): refuse
		 * rather than follow it. */
		rfail(rs, "root '%s' changed while it was being resolved: %s", rs->root,
		      strerror(-rs->rootfd));
		return -EINVAL;
	}
	return 0;
}

/* Reads the open regular file fd (size from fstat) and parses it. */
static int parse_fd(struct resolve *rs, int fd, const char *shown,
		    json_t **out)
{
	size_t max = rs->o->max_file_bytes ? rs->o->max_file_bytes
					   : PLUGIN_FILE_MAX_DEFAULT;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got = 0;
	json_error_t jerr;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return rfail(rs, "%s is not a regular file", shown);
	if ((uintmax_t)st.st_size > max)
		return rfail(rs, "%s is larger than %zu bytes", shown, max);
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return rfail(rs, "%s: %s", shown, strerror(errno));
		if (r == 0)
			break; /* shrank under us: parse what is there */
		got += (size_t)r;
	}
	*out = json_loadb(buf, got, JSON_REJECT_DUPLICATES, &jerr);
	if (!*out)
		return rfail(rs, "%s:%d:%d: %s", shown, jerr.line, jerr.column,
			     jerr.text);
	return 0;
}

/* Loads <root>/<rel> as JSON, opened below the root's descriptor in one
 * resolution (pathfd.h): symlinks inside the root are followed, one that
 * leads out of it is refused, and a path swapped between check and use
 * cannot exist because there is no separate check. Returns -ENOENT
 * (nothing written to reason) when the file does not exist, -EINVAL with
 * a reason naming the file otherwise. */
static int load_json(struct resolve *rs, const char *rel, json_t **out)
{
	_cleanup_free_ char *shown = xasprintf("%s/%s", rs->root, rel);
	_cleanup_close_ int fd = -1;

	/* O_NONBLOCK: opening a FIFO must not hang the executor. */
	fd = pathfd_open_beneath(rs->rootfd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK);
	if (fd == -ENOENT || fd == -ENOTDIR)
		return -ENOENT;
	if (fd == -EXDEV || fd == -ELOOP)
		return rfail(rs, "%s resolves outside the plugin root", shown);
	if (fd < 0)
		return rfail(rs, "%s: %s", shown, strerror(-fd));
	return parse_fd(rs, fd, shown, out);
}

/* Copies the optional manifest string `key` to the result as `as`. */
static int copy_meta(struct resolve *rs, json_t *obj, const char *key,
		     const char *as, const char *shown)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) > PLUGIN_META_MAX)
		return rfail(rs, "%s: '%s' must be a string of at most %d bytes",
			     shown, key, PLUGIN_META_MAX);
	json_object_set(rs->res, as, v);
	return 0;
}

static int manifest_meta(struct resolve *rs, json_t *man, const char *shown)
{
	json_t *iface = json_object_get(man, "interface");

	if (copy_meta(rs, man, "name", "name", shown) < 0 ||
	    copy_meta(rs, man, "version", "version", shown) < 0 ||
	    copy_meta(rs, man, "description", "description", shown) < 0 ||
	    copy_meta(rs, man, "displayName", "display_name", shown) < 0)
		return -EINVAL;
	if (iface && !json_is_object(iface))
		return rfail(rs, "%s: 'interface' must be an object", shown);
	/* Codex puts it under interface; a top-level one wins. */
	if (iface && !json_object_get(rs->res, "display_name"))
		return copy_meta(rs, iface, "displayName", "display_name",
				 shown);
	return 0;
}

__attribute__((format(printf, 2, 3))) static void warn(struct resolve *rs,
						       const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(rs->warnings, json_string_prefix(buf));
}

/* The server map of a server file, wrapped or bare; borrowed from doc. */
static int unwrap(struct resolve *rs, json_t *doc, const char *shown,
		  json_t **map)
{
	json_t *inner = json_object_get(doc, "mcpServers");
	const char *k;
	json_t *v;

	if (!json_is_object(doc))
		return rfail(rs, "%s: expected {\"mcpServers\": {...}} or "
				 "{name: config}", shown);
	if (!inner) {
		*map = doc;
		return 0;
	}
	if (!json_is_object(inner))
		return rfail(rs, "%s: 'mcpServers' must be an object", shown);
	json_object_foreach(doc, k, v)
		if (strcmp(k, "mcpServers") != 0)
			warn(rs, "%s: ignoring top-level key '%s'", shown, k);
	*map = inner;
	return 0;
}

/* "./x/y.json": relative, explicit, no way up. */
static int check_ref(struct resolve *rs, json_t *ref, const char *shown)
{
	const char *s = json_string_value(ref);

	if (json_string_length(ref) != strlen(s) || strlen(s) >= PATH_MAX)
		return rfail(rs, "%s: 'mcpServers' is not a usable path", shown);
	if (strncmp(s, "./", 2) != 0)
		return rfail(rs, "%s: 'mcpServers' path '%s' must start with "
				 "'./'", shown, s);
	if (has_dotdot(s))
		return rfail(rs, "%s: 'mcpServers' path '%s' must not contain "
				 "'..'", shown, s);
	return 0;
}

/* Loads the server file rel and stores its map in *map (new reference).
 * A missing file is no servers when it was only the default. */
static int load_server_file(struct resolve *rs, const char *rel,
			    bool must_exist, json_t **map)
{
	_cleanup_free_ char *shown = xasprintf("%s/%s", rs->root, rel);
	json_t *doc = NULL, *m = NULL;
	int r = load_json(rs, rel, &doc);

	if (r == -ENOENT && !must_exist)
		return 0;
	if (r == -ENOENT)
		return rfail(rs, "%s does not exist", shown);
	if (r < 0)
		return r;
	r = unwrap(rs, doc, shown, &m);
	if (r == 0)
		*map = json_incref(m);
	json_decref(doc);
	return r;
}

/* Finds the server map a manifest names (NULL manifest: none). *map is a
 * new reference or stays NULL when there are no servers. */
static int server_map(struct resolve *rs, json_t *man, const char *shown,
		      json_t **map)
{
	json_t *v = json_object_get(man, "mcpServers");

	if (!v)
		return load_server_file(rs, ".mcp.json", false, map);
	if (json_is_object(v)) {
		*map = json_incref(v);
		return 0;
	}
	if (!json_is_string(v))
		return rfail(rs, "%s: 'mcpServers' must be a './relative' path "
				 "or an object", shown);
	if (check_ref(rs, v, shown) < 0)
		return -EINVAL;
	return load_server_file(rs, json_string_value(v) + 2, true, map);
}

static void add_servers(struct resolve *rs, json_t *map)
{
	const struct plugin_opts *o = rs->o;
	struct mcpcfg_ctx ctx = {
		.from_plugin = true,
		.environment_id = o->environment_id ? o->environment_id
						    : "local",
		.environment_is_local = o->environment_is_local,
		.root = rs->root,
	};
	size_t seen = 0;
	const char *name;
	json_t *cfg;

	json_object_foreach(map, name, cfg) {
		char why[512], shown[2 * MCPCFG_NAME_MAX + 1];
		json_t *s;

		if (seen++ == PLUGIN_MAX_SERVERS) {
			warn(rs, "%zu servers beyond the limit of %d ignored",
			     json_object_size(map) - PLUGIN_MAX_SERVERS,
			     PLUGIN_MAX_SERVERS);
			break;
		}
		s = mcpcfg_normalize(name, cfg, &ctx, rs->warnings, why,
				     sizeof(why));
		if (s) {
			json_array_append_new(rs->servers, s);
			continue;
		}
		/* Bound what a hostile name costs on the wire. */
		snprintf(shown, sizeof(shown), "%s", name);
		json_array_append_new(rs->invalid,
				      json_pack("{s:o, s:o}", "name",
						json_string_prefix(shown),
						"reason",
						json_string_prefix(why)));
	}
}

/* Finds and reads the manifest. 0 with *man set, 0 with *man NULL when the
 * root is not a plugin, or -EINVAL. */
static int find_manifest(struct resolve *rs, json_t **man, const char **rel)
{
	for (size_t i = 0; i < ARRAY_SIZE(manifest_paths); i++) {
		int r = load_json(rs, manifest_paths[i], man);

		if (r == -ENOENT)
			continue;
		*rel = manifest_paths[i];
		return r;
	}
	*man = NULL;
	return 0;
}

/* Fills rs->res from the manifest and the servers it names. */
static int read_plugin(struct resolve *rs)
{
	json_t *man = NULL, *map = NULL;
	_cleanup_free_ char *shown = NULL;
	const char *rel = NULL;
	int r = find_manifest(rs, &man, &rel);

	if (r < 0 || !man)
		return r;
	shown = xasprintf("%s/%s", rs->root, rel);
	json_object_set_new(rs->res, "is_plugin", json_true());
	json_object_set_new(rs->res, "manifest_path", json_string_prefix(shown));
	if (!json_is_object(man))
		r = rfail(rs, "%s: the manifest must be a JSON object", shown);
	if (r == 0)
		r = manifest_meta(rs, man, shown);
	if (r == 0)
		r = server_map(rs, man, shown, &map);
	if (r == 0 && map)
		add_servers(rs, map);
	json_decref(map);
	json_decref(man);
	return r;
}

/* ---- roots resolved so far ---- */

struct known_root {
	char *root;
	json_t *boxes; /* {server name: {sandbox?, network?}} of its last resolution */
	uint64_t seq;  /* last resolution: the oldest is forgotten first */
};

static struct known_root known[PLUGIN_KNOWN_MAX];
static size_t n_known;
static uint64_t known_seq;

/* What the executor must know at MCP_START that only the plugin's files
 * say: each server's sandbox keys (mcpcfg.h). */
static json_t *box_keys(json_t *servers)
{
	json_t *boxes = json_object(), *s;
	size_t i;

	json_array_foreach(servers, i, s) {
		json_t *keep = json_object();

		if (json_object_get(s, "sandbox"))
			json_object_set(keep, "sandbox", json_object_get(s, "sandbox"));
		if (json_object_get(s, "network"))
			json_object_set(keep, "network", json_object_get(s, "network"));
		json_object_set_new(boxes, json_string_value(json_object_get(s, "name")), keep);
	}
	return boxes;
}

static void remember(const char *root, json_t *servers)
{
	struct known_root *k = NULL;

	for (size_t i = 0; i < n_known && !k; i++)
		if (strcmp(known[i].root, root) == 0)
			k = &known[i];
	if (!k && n_known < PLUGIN_KNOWN_MAX)
		k = &known[n_known++];
	if (!k) {
		k = &known[0];
		for (size_t i = 1; i < n_known; i++)
			if (known[i].seq < k->seq)
				k = &known[i];
	}
	if (!k->root || strcmp(k->root, root) != 0) {
		free(k->root);
		k->root = xstrdup(root);
	}
	json_decref(k->boxes);
	k->boxes = box_keys(servers);
	k->seq = ++known_seq;
}

const char *plugin_known_root(const char *path)
{
	const char *best = NULL;

	for (size_t i = 0; i < n_known; i++)
		if (mcpcfg_path_within(known[i].root, path) &&
		    (!best || strlen(known[i].root) > strlen(best)))
			best = known[i].root;
	return best;
}

json_t *plugin_known_server(const char *root, const char *name)
{
	for (size_t i = 0; i < n_known; i++)
		if (strcmp(known[i].root, root) == 0)
			return json_object_get(known[i].boxes, name);
	return NULL;
}

void plugin_forget_all(void)
{
	for (size_t i = 0; i < n_known; i++) {
		free(known[i].root);
		json_decref(known[i].boxes);
	}
	memset(known, 0, sizeof(known));
	n_known = 0;
}

int plugin_resolve(const struct plugin_opts *o, const char *root_id,
		   const char *root_path, json_t **out, char *reason,
		   size_t reasonlen)
{
	struct resolve rs = { .o = o, .rootfd = -1, .reason = reason, .reasonlen = reasonlen };
	_cleanup_free_ char *path = NULL;
	json_t *id, *canon;
	int r;

	if (!root_id || !*root_id || strlen(root_id) > PLUGIN_ROOT_ID_MAX ||
	    !(id = json_string(root_id)))
		return fail(reason, reasonlen,
			    "root id must be 1-%d bytes of UTF-8",
			    PLUGIN_ROOT_ID_MAX);
	r = root_path ? path_from_arg(root_path, &path, reason, reasonlen)
		      : fail(reason, reasonlen, "no root path");
	if (r == 0)
		r = canonical_root(&rs, path);
	if (r == 0 && !(canon = json_string(rs.root)))
		r = fail(reason, reasonlen, "root path is not valid UTF-8");
	if (r < 0) {
		safe_close(rs.rootfd);
		json_decref(id);
		return r;
	}
	rs.res = json_pack("{s:o, s:o, s:b}", "root_id", id, "path", canon,
			   "is_plugin", 0);
	rs.servers = json_array();
	rs.invalid = json_array();
	rs.warnings = json_array();
	r = read_plugin(&rs);
	safe_close(rs.rootfd);
	json_object_set_new(rs.res, "servers", rs.servers);
	json_object_set_new(rs.res, "invalid", rs.invalid);
	json_object_set_new(rs.res, "warnings", rs.warnings);
	if (r < 0) {
		json_decref(rs.res);
		return r;
	}
	remember(rs.root, rs.servers);
	*out = rs.res;
	return 0;
}
