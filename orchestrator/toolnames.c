/* toolnames.c - see toolnames.h. */
#include "toolnames.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "log.h"
#include "srv.h"
#include "util.h"

struct toolent {
	char *ns;     /* as the model sees it */
	char *name;
	char *server; /* raw */
	char *tool;
};

struct toolmap {
	struct toolent *v;
	size_t n, cap;
};

void toolnames_sanitize(const char *in, char *out)
{
	for (; *in; in++, out++) {
		char c = *in;

		*out = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '_')
			       ? c
			       : '_';
	}
	*out = '\0';
}

/* First 12 hex digits of SHA-1(server "/" tool). */
static void identity_hash(const char *server, const char *tool, char out[13])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
	EVP_DigestUpdate(ctx, server, strlen(server));
	EVP_DigestUpdate(ctx, "/", 1);
	EVP_DigestUpdate(ctx, tool, strlen(tool));
	EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
	for (int i = 0; i < 6; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static bool taken(const struct toolmap *m, const char *ns, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].ns, ns) == 0 && strcmp(m->v[i].name, name) == 0)
			return true;
	return false;
}

/* The namespace for a server: mcp__<sanitized>, shortened with a hash when
 * it leaves no room for a tool name. */
static char *make_ns(const char *server)
{
	char *s = xmalloc(strlen(server) + 1), hash[13];
	char *ns;

	toolnames_sanitize(server, s);
	ns = xasprintf(TOOLNAMES_NS_PREFIX "%s", s);
	if (strlen(ns) > TOOLNAMES_MAX / 2) {
		identity_hash(server, "", hash);
		ns[TOOLNAMES_MAX / 2 - 13] = '\0';
		free(s);
		s = ns;
		ns = xasprintf("%s_%s", s, hash);
	}
	free(s);
	return ns;
}

static char *make_name(const struct toolmap *m, const char *ns, const char *server,
		       const char *tool)
{
	size_t room = TOOLNAMES_MAX - 2 - strlen(ns);
	char *name = xmalloc(strlen(tool) + 14), hash[13];

	toolnames_sanitize(tool, name);
	if (strlen(name) <= room && !taken(m, ns, name))
		return name;
	identity_hash(server, tool, hash);
	if (strlen(name) > room - 13)
		name[room - 13] = '\0';
	strcat(name, "_");
	strcat(name, hash);
	if (taken(m, ns, name)) {
		free(name);
		return NULL;
	}
	return name;
}

static void add_entry(struct toolmap *m, const char *ns, char *name, const char *server,
		      const char *tool)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 16;
		m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
	}
	m->v[m->n].ns = xstrdup(ns);
	m->v[m->n].name = name;
	m->v[m->n].server = xstrdup(server);
	m->v[m->n++].tool = xstrdup(tool);
}

static json_t *function_of(json_t *t, const char *name)
{
	json_t *schema = json_object_get(t, "inputSchema");
	const char *desc = json_string_value(json_object_get(t, "description"));

	return json_pack("{s:s, s:s, s:s, s:b, s:O}", "type", "function", "name", name,
			 "description", desc ? desc : "", "strict", 0, "parameters",
			 json_is_object(schema) ? schema : json_pack("{s:s}", "type", "object"));
}

/* Namespace objects by namespace name, created on first use. */
static json_t *ns_object(json_t *tools, const char *ns, const char *server)
{
	json_t *o;
	size_t i;

	json_array_foreach(tools, i, o)
		if (strcmp(json_string_value(json_object_get(o, "name")), ns) == 0)
			return json_object_get(o, "tools");
	o = json_pack("{s:s, s:s, s:s+, s:[]}", "type", "namespace", "name", ns, "description",
		      "Tools of the MCP server ", server, "tools");
	json_array_append_new(tools, o);
	return json_object_get(o, "tools");
}

struct toolmap *toolmap_new(void) { return xcalloc(1, sizeof(struct toolmap)); }

/* The map holds each server's namespace once per tool: computing it per
 * tool keeps toolmap_add free of per-server state. */
static ssize_t toolmap_add(struct toolmap *m, const char *server, const char *tool)
{
	char *ns = make_ns(server);
	char *name = make_name(m, ns, server, tool);

	if (!name) {
		free(ns);
		return -1;
	}
	add_entry(m, ns, name, server, tool);
	free(ns);
	return (ssize_t)m->n - 1;
}

/* One name in one space: the namespace part is empty in a flat map, so
 * taken() compares whole names. */
ssize_t toolmap_add_flat(struct toolmap *m, const char *server, const char *tool)
{
	char *ns = make_ns(server), *t = xmalloc(strlen(tool) + 1), hash[13];
	char *name, *cut;

	toolnames_sanitize(tool, t);
	name = xasprintf("%s__%s", ns + strlen(TOOLNAMES_NS_PREFIX), t);
	free(ns);
	free(t);
	if (strlen(name) > TOOLNAMES_MAX || taken(m, "", name)) {
		identity_hash(server, tool, hash);
		if (strlen(name) > TOOLNAMES_MAX - 13)
			name[TOOLNAMES_MAX - 13] = '\0';
		cut = name;
		name = xasprintf("%s_%s", cut, hash);
		free(cut);
		if (taken(m, "", name)) {
			free(name);
			return -1;
		}
	}
	add_entry(m, "", name, server, tool);
	return (ssize_t)m->n - 1;
}

void toolmap_entry(const struct toolmap *m, size_t i, const char **ns, const char **name,
		   const char **server, const char **tool)
{
	*ns = m->v[i].ns;
	*name = m->v[i].name;
	*server = m->v[i].server;
	*tool = m->v[i].tool;
}

json_t *toolnames_build(struct srv *const *srvs, size_t n, struct toolmap **map)
{
	struct toolmap *m = toolmap_new();
	json_t *tools = json_array();

	for (size_t i = 0; i < n; i++) {
		const char *server = srv_name(srvs[i]);
		json_t *list = srv_tools(srvs[i]), *t;
		size_t j;

		json_array_foreach(list, j, t) {
			const char *raw = json_string_value(json_object_get(t, "name"));
			ssize_t k = raw ? toolmap_add(m, server, raw) : -1;

			if (k < 0) {
				log_warn("tool '%s' of server '%s' has no unique name for the model; "
					 "left out", raw ? raw : "?", server);
				continue;
			}
			json_array_append_new(ns_object(tools, m->v[k].ns, server),
					      function_of(t, m->v[k].name));
		}
		json_decref(list);
	}
	*map = m;
	return tools;
}

bool toolmap_lookup(const struct toolmap *m, const char *ns, const char *name, const char **server,
		    const char **tool)
{
	for (size_t i = 0; i < m->n; i++) {
		/* Some models send the qualified name in `name` alone. */
		bool hit = ns ? strcmp(m->v[i].ns, ns) == 0 && strcmp(m->v[i].name, name) == 0
			      : strncmp(name, m->v[i].ns, strlen(m->v[i].ns)) == 0 &&
					strcmp(name + strlen(m->v[i].ns) +
						       (name[strlen(m->v[i].ns)] == '_' ? 2 : 0),
					       m->v[i].name) == 0;

		if (hit) {
			*server = m->v[i].server;
			*tool = m->v[i].tool;
			return true;
		}
	}
	return false;
}

size_t toolmap_count(const struct toolmap *m) { return m->n; }

struct toolmap *toolmap_free(struct toolmap *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].ns);
		free(m->v[i].name);
		free(m->v[i].server);
		free(m->v[i].tool);
	}
	free(m->v);
	free(m);
	return NULL;
}
