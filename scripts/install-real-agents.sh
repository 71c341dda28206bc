#!/usr/bin/env bash
# Install pinned versions of the real agent CLIs that tests/real_agents.rs
# drives, into a cache under target/ (never into the user's HOME):
#
#   scripts/install-real-agents.sh [claude|codex|gemini|opencode|aider|all ...]
#
# With no argument: all five. Each agent gets its own directory
# target/real-agents/<agent>/ whose bin/ holds the program (npm packages are
# installed with `npm install -g --prefix DIR`, aider into a Python venv).
# An agent already installed at its pinned version is skipped, so the script
# is cheap to run before every test run. Override the cache with
# REAL_AGENTS_DIR=/some/dir (the tests honour the same variable).
set -euo pipefail

# The versions the tests and docs/real-agents-findings.md were checked with.
# Change a pin only together with a run of the real-agent suite.
CLAUDE_VERSION="2.1.197"    # @anthropic-ai/claude-code
CODEX_VERSION="0.171.0"     # @openai/codex
GEMINI_VERSION="0.61.0"     # @google/gemini-cli
OPENCODE_VERSION="1.18.33"  # opencode-ai
AIDER_VERSION="0.86.2"      # aider-chat (PyPI)

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${REAL_AGENTS_DIR:-$root/target/real-agents}"

say() { printf 'install-real-agents: %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$1" >&2
  [ $# -lt 2 ] || printf 'help: %s\n' "$2" >&2
  exit 1
}

# npm and pip write caches and logs under HOME by default: keep them in the
# cache directory so nothing lands in the user's home.
export npm_config_cache="$cache/.npm-cache"
export npm_config_update_notifier=false
export npm_config_fund=false
export npm_config_audit=false
export PIP_CACHE_DIR="$cache/.pip-cache"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Asking an agent for its version writes its state dirs (~/.codex,
# ~/.gemini, opencode's XDG dirs): run it with a scratch HOME.
probe_version() {
  local scratch="$cache/.probe-home"
  mkdir -p "$scratch"
  HOME="$scratch" XDG_CONFIG_HOME="$scratch/.config" XDG_CACHE_HOME="$scratch/.cache" \
    XDG_DATA_HOME="$scratch/.local/share" XDG_STATE_HOME="$scratch/.local/state" \
    "$@" --version </dev/null 2>/dev/null | head -n1 || true
}

# Version of an npm package installed under a prefix, or nothing.
npm_installed_version() {
  local prefix="$1" package="$2" manifest
  manifest="$prefix/lib/node_modules/$package/package.json"
  [ -f "$manifest" ] || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version || "")' "$manifest"
}

install_npm() {
  local agent="$1" package="$2" version="$3" program="$4"
  local prefix="$cache/$agent" have
  command -v npm >/dev/null 2>&1 ||
    die "npm is not installed (needed for $package)" "install Node.js 20+ and npm (Debian: apt-get install nodejs npm)"
  have="$(npm_installed_version "$prefix" "$package")"
  if [ "$have" = "$version" ] && [ -x "$prefix/bin/$program" ]; then
    say "$agent: $package@$version already installed in $prefix"
    return 0
  fi
  say "$agent: installing $package@$version into $prefix${have:+ (was $have)}"
  mkdir -p "$prefix"
  if ! npm install --global --prefix "$prefix" --no-audit --no-fund \
      --loglevel=error "$package@$version"; then
    die "npm could not install $package@$version into $prefix" \
      "check that the npm registry is reachable and retry: $0 $agent"
  fi
  [ -x "$prefix/bin/$program" ] ||
    die "$package@$version installed but $prefix/bin/$program is missing" \
      "remove $prefix and retry: $0 $agent"
  say "$agent: ok ($(probe_version "$prefix/bin/$program"))"
}

install_aider() {
  local prefix="$cache/aider" have=""
  command -v python3 >/dev/null 2>&1 ||
    die "python3 is not installed (needed for aider-chat)" "install Python 3.10-3.12 with the venv module (Debian: apt-get install python3-venv)"
  if [ -x "$prefix/bin/python" ]; then
    have="$("$prefix/bin/python" -c 'import importlib.metadata as m; print(m.version("aider-chat"))' 2>/dev/null || true)"
  fi
  if [ "$have" = "$AIDER_VERSION" ] && [ -x "$prefix/bin/aider" ]; then
    say "aider: aider-chat==$AIDER_VERSION already installed in $prefix"
    return 0
  fi
  say "aider: installing aider-chat==$AIDER_VERSION into a venv at $prefix${have:+ (was $have)}"
  if [ ! -x "$prefix/bin/python" ]; then
    python3 -m venv "$prefix" ||
      die "could not create a Python venv at $prefix" "install the venv module (Debian: apt-get install python3-venv) and retry: $0 aider"
  fi
  if ! "$prefix/bin/python" -m pip install --quiet "aider-chat==$AIDER_VERSION"; then
    die "pip could not install aider-chat==$AIDER_VERSION into $prefix" \
      "check that PyPI is reachable and that python3 is 3.10-3.12, then retry: $0 aider"
  fi
  [ -x "$prefix/bin/aider" ] ||
    die "aider-chat installed but $prefix/bin/aider is missing" "remove $prefix and retry: $0 aider"
  say "aider: ok ($(probe_version "$prefix/bin/aider"))"
}

install_one() {
  case "$1" in
    claude) install_npm claude @anthropic-ai/claude-code "$CLAUDE_VERSION" claude ;;
    codex) install_npm codex @openai/codex "$CODEX_VERSION" codex ;;
    gemini) install_npm gemini @google/gemini-cli "$GEMINI_VERSION" gemini ;;
    opencode) install_npm opencode opencode-ai "$OPENCODE_VERSION" opencode ;;
    aider) install_aider ;;
    *) die "unknown agent '$1'" "choose from: claude codex gemini opencode aider all" ;;
  esac
}

agents=("$@")
[ ${#agents[@]} -gt 0 ] || agents=(all)
selected=()
for agent in "${agents[@]}"; do
  if [ "$agent" = all ]; then
    selected+=(claude codex gemini opencode aider)
  else
    selected+=("$agent")
  fi
done

# Refuse a misspelt name before installing anything.
for agent in "${selected[@]}"; do
  case "$agent" in
    claude | codex | gemini | opencode | aider) ;;
    *) die "unknown agent '$agent'" "choose from: claude codex gemini opencode aider all" ;;
  esac
done

mkdir -p "$cache"
for agent in "${selected[@]}"; do
  install_one "$agent"
done
say "done: ${selected[*]} in $cache"
