# lib.sh - shared by deploy/local/{run,test,bench}: install what is missing,
# configure and build. Sourced, not executed.

TANDEM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Debian packages tandem needs to build and test. valgrind, strace, nodejs
# and npm serve the tests (valgrind lane, filesystem-less proof, real npm MCP
# peers); clang only the optional fuzz build.
TANDEM_BUILD_PKGS="gcc libc6-dev pkg-config meson ninja-build python3 libnng-dev libmsgpack-dev
 libcurl4-openssl-dev libssl-dev libjansson-dev libsodium-dev libwslay-dev check
 libmicrohttpd-dev libsqlite3-dev libseccomp-dev"
TANDEM_TEST_PKGS="valgrind strace procps openssl python3-prometheus-client python3-yaml tmux
 python3-jsonschema"
# Only for running the libFuzzer targets by hand (CODING_STYLE.md, "Tests"):
# ensure_packages $TANDEM_FUZZ_PKGS. The corpora replay without them.
TANDEM_FUZZ_PKGS="clang libclang-rt-14-dev"
# deploy/container/build and deploy/local/test --engine: the image is made
# with debootstrap and podman; podman 4.3 here runs with runc (crun refuses
# the hybrid cgroup layout) and catatonit for the pod infra container;
# netavark + aardvark-dns give pods DNS names.
TANDEM_CONTAINER_PKGS="debootstrap podman runc catatonit containernetworking-plugins
 iptables python3-yaml netavark aardvark-dns curl"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs the named packages that are not installed yet, non-interactively.
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing missing Debian packages: ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Node.js and npm for the real npm MCP peers: only when the commands are
# absent (a machine may carry a newer Node that bundles npm, which Debian's
# npm package conflicts with).
ensure_node() {
	command -v node >/dev/null && command -v npm >/dev/null && return 0
	ensure_packages nodejs npm
}

# Real MCP servers from the npm registry for the tests, pinned, installed
# once into a cache directory. Prints the directory, or nothing when the
# registry cannot be reached (those tests then report a loud SKIP).
# The MCP gateway's suites and benchmark add real clients: the official SDK
# (StreamableHTTPClientTransport), the Inspector's CLI, and supergateway as
# the gateway tandem's is measured against. The client-transport suite runs
# Codex's own `codex exec --remote` (@openai/codex).
TANDEM_NPM_PEER_PKGS="@modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/server-filesystem@2026.8.31 @modelcontextprotocol/sdk@1.32.2 @modelcontextprotocol/inspector@0.15.0 supergateway@3.4.3 @openai/codex@0.171.0"
ensure_npm_peers() {
	local dir="${XDG_CACHE_HOME:-$HOME/.cache}/tandem/npm-peers"
	local stamp="$dir/.installed-$(echo "$TANDEM_NPM_PEER_PKGS" | tr ' /@' '___')"
	if [ ! -f "$stamp" ]; then
		mkdir -p "$dir"
		say "installing npm test peers: $TANDEM_NPM_PEER_PKGS"
		if ! npm install --no-audit --no-fund --silent --prefix "$dir" $TANDEM_NPM_PEER_PKGS >&2; then
			say "SKIP: npm install failed (registry unreachable?): npm peer tests will be skipped"
			return 0
		fi
		touch "$stamp"
	fi
	echo "$dir"
}

# kubernetes-models from the npm registry, for the offline validation of
# deploy/k8s (tests/deploy/test_k8s.py). Prints the directory, or nothing
# when the registry cannot be reached (the suite then reports a loud SKIP).
TANDEM_K8S_MODELS_PKG="kubernetes-models@5.1.0"
ensure_npm_k8s_models() {
	local dir="${XDG_CACHE_HOME:-$HOME/.cache}/tandem/npm-k8s"
	local stamp="$dir/.installed-$(echo "$TANDEM_K8S_MODELS_PKG" | tr ' /@' '___')"
	if [ ! -f "$stamp" ]; then
		mkdir -p "$dir"
		say "installing $TANDEM_K8S_MODELS_PKG (Kubernetes schemas) from npm"
		if ! npm install --no-audit --no-fund --silent --prefix "$dir" \
			"$TANDEM_K8S_MODELS_PKG" >&2; then
			say "SKIP: npm install failed: the manifest validation will be skipped"
			return 0
		fi
		touch "$stamp"
	fi
	echo "$dir"
}

# configure_build DIR [meson options...]: sets up DIR once (or reconfigures
# when the options changed) and builds it.
configure_build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$TANDEM_SRC" "$@" >/dev/null
	else
		meson configure "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null || ninja -C "$dir"
}
