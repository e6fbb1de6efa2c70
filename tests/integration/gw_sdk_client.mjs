// gw_sdk_client.mjs - a real MCP client for the gateway tests: the official
// TypeScript SDK's Client over StreamableHTTPClientTransport (from the npm
// peers in $TANDEM_NPM_PEERS), driven by test_gateway.py.
//
//   node gw_sdk_client.mjs URL [TOKEN_FILE]
//
// Reads one JSON command per line on stdin and prints one JSON line per
// result ({"ok": ...} or {"error": "..."}); notifications the server sends
// are printed as {"event": METHOD} when they arrive. Commands:
//   {"op": "list"}                               -> tool names
//   {"op": "call", "name": N, "args": {...}}     -> the CallToolResult
//   {"op": "calls", "name": N, "n": 1000, "inflight": 8}
//        -> {"ok": {"n": calls, "wrong": answers not echoing their message}}
//   {"op": "progress", "name": N, "args": {...}} -> {"ok": {"result", "progress": [...]}}
//   {"op": "cancel", "name": N, "args": {...}, "after_progress": 1}
//        -> aborts the call after that many progress notifications;
//           {"ok": {"aborted": true, "progress": n}} when it was refused as aborted
//   {"op": "prompts"} / {"op": "resources"} / {"op": "read", "uri": U}
//   {"op": "close"}                              -> DELETE the session, exit
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import path from "node:path";

const peers = process.env.TANDEM_NPM_PEERS;
const sdk = path.join(peers, "node_modules/@modelcontextprotocol/sdk/dist/esm");
const { Client } = await import(path.join(sdk, "client/index.js"));
const { StreamableHTTPClientTransport } = await import(path.join(sdk, "client/streamableHttp.js"));
const types = await import(path.join(sdk, "types.js"));

const [url, tokenFile] = process.argv.slice(2);
const headers = {};
if (tokenFile)
	headers.Authorization = "Bearer " + readFileSync(tokenFile, "utf8").trim();

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client({ name: "tandem-gw-test", version: "1.0.0" });
for (const schema of [types.ToolListChangedNotificationSchema,
	types.ResourceListChangedNotificationSchema, types.PromptListChangedNotificationSchema])
	client.setNotificationHandler(schema, (n) => out({ event: n.method }));

try {
	await client.connect(transport);
	out({ ok: { sessionId: transport.sessionId, server: client.getServerVersion(),
		protocol: transport.protocolVersion } });
} catch (e) {
	out({ error: String(e) });
	process.exit(1);
}

async function calls(c) {
	let next = 0, wrong = 0;
	const worker = async () => {
		while (next < c.n) {
			const i = next++;
			const msg = `m${i}`;
			const r = await client.callTool({ name: c.name, arguments: { message: msg } });
			if (r.content?.[0]?.text !== msg && !JSON.stringify(r).includes(msg))
				wrong++;
		}
	};
	await Promise.all(Array.from({ length: c.inflight || 1 }, worker));
	return { n: c.n, wrong };
}

async function progress(c) {
	const seen = [];
	const result = await client.callTool({ name: c.name, arguments: c.args }, undefined, {
		onprogress: (p) => seen.push(p), timeout: 60000 });
	return { result, progress: seen };
}

async function cancel(c) {
	const ac = new AbortController();
	let n = 0;
	try {
		await client.callTool({ name: c.name, arguments: c.args }, undefined, {
			signal: ac.signal, timeout: 60000,
			onprogress: () => { if (++n >= (c.after_progress || 1)) ac.abort("test cancels"); } });
		return { aborted: false, progress: n };
	} catch (e) {
		return { aborted: ac.signal.aborted, progress: n, message: String(e) };
	}
}

const ops = {
	list: async () => (await client.listTools()).tools.map((t) => t.name),
	tools: async () => (await client.listTools()).tools,
	call: async (c) => client.callTool({ name: c.name, arguments: c.args || {} }),
	calls,
	progress,
	cancel,
	prompts: async () => (await client.listPrompts()).prompts.map((p) => p.name),
	prompt: async (c) => client.getPrompt({ name: c.name, arguments: c.args || {} }),
	resources: async () => (await client.listResources()).resources.map((r) => r.uri),
	read: async (c) => client.readResource({ uri: c.uri }),
	ping: async () => client.ping(),
	close: async () => { await transport.terminateSession(); await client.close(); return true; },
};

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
	if (!line.trim())
		continue;
	const c = JSON.parse(line);
	try {
		out({ ok: await ops[c.op](c) });
	} catch (e) {
		out({ error: String(e && e.message ? e.message : e) });
	}
	if (c.op === "close")
		break;
}
process.exit(0);
