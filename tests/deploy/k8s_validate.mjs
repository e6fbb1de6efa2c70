// k8s_validate.mjs - validates Kubernetes objects offline against the API
// schemas of the npm package kubernetes-models (its compiled validators:
// types, required fields, enums, formats), and then strictly: every field
// must be one the API defines (kubernetes-models' own validators allow
// unknown fields, which is how a misspelt `contaners:` slips through), which
// this script checks against the package's declared interfaces (*.d.ts).
//
//   node k8s_validate.mjs < objects.json      (a JSON array of objects)
//
// Prints one line per problem ("Kind/name: path: message") and exits 1 when
// there is any, 0 otherwise. Run with kubernetes-models resolvable from the
// working directory (node_modules there, or a link to it).
import { readFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(join(process.cwd(), "x.js"));
const pkgDir = dirname(require.resolve("kubernetes-models/package.json"));

function modulePath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  return group ? `${group}/${version}/${kind}` : `${version}/${kind}`;
}

// ---- strict fields, from the .d.ts interfaces ------------------------------------

const ifaceCache = new Map();

function resolveDts(fromFile, spec) {
  let p;
  if (spec.startsWith(".")) p = resolve(dirname(fromFile), spec);
  else {
    // a sibling package (@kubernetes-models/apimachinery/...)
    p = join(dirname(dirname(pkgDir)), spec);
  }
  p = p.replace(/\.js$/, "");
  return existsSync(p + ".d.ts") ? p + ".d.ts" : null;
}

// {props: {name: typeText}, imports: {Ident: file}} of a file's interface.
function iface(file) {
  if (ifaceCache.has(file)) return ifaceCache.get(file);
  const text = readFileSync(file, "utf8");
  const imports = {};
  for (const m of text.matchAll(/import \{([^}]*)\} from "([^"]+)"/g))
    for (const id of m[1].split(",").map((s) => s.trim()).filter(Boolean))
      imports[id] = resolveDts(file, m[2]);
  const body = text.match(/export interface \w+[^{]*\{([\s\S]*?)\n\}/);
  let props = null;
  if (body) {
    props = {};
    const noComments = body[1].replace(/\/\*\*[\s\S]*?\*\//g, "");
    for (const m of noComments.matchAll(/^\s*"([^"]+)"\??: ([^;]+);/gm)) props[m[1]] = m[2];
  }
  const r = { props, imports, file };
  ifaceCache.set(file, r);
  return r;
}

// The interface file a property type refers to, or null for a leaf.
function typeFile(owner, typeText) {
  const t = typeText.trim().replace(/^Array<(.+)>$/, "$1").replace(/\[\]$/, "");
  return /^\w+$/.test(t) && owner.imports[t] ? owner.imports[t] : null;
}

function strict(data, file, path, out) {
  if (!file || data === null || typeof data !== "object") return;
  const it = iface(file);
  if (!it.props) return;
  if (Array.isArray(data)) {
    data.forEach((d, i) => strict(d, file, `${path}[${i}]`, out));
    return;
  }
  for (const [k, v] of Object.entries(data)) {
    if (!(k in it.props)) {
      out.push(`${path}.${k}: unknown field`);
      continue;
    }
    strict(v, typeFile(it, it.props[k]), `${path}.${k}`, out);
  }
}

// ---- main -------------------------------------------------------------------------

const objs = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
for (const o of objs) {
  const name = `${o.kind}/${o.metadata?.name}`;
  const mod = modulePath(o.apiVersion, o.kind);
  let Cls;
  try {
    const m = await import(pathToFileURL(join(pkgDir, mod + ".js")).href);
    Cls = m[o.kind];
  } catch (e) {
    problems.push(`${name}: no schema for ${o.apiVersion} ${o.kind}`);
    continue;
  }
  try {
    new Cls(o).validate();
  } catch (e) {
    problems.push(`${name}: ${e.message}`);
  }
  const out = [];
  strict(o, join(pkgDir, mod + ".d.ts"), "", out);
  for (const p of out) problems.push(`${name}: ${p}`);
}
for (const p of problems) console.log(p);
console.log(`# ${objs.length} objects, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
