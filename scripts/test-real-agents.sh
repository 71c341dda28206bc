#!/usr/bin/env bash
# The real-agent suite in one command: install the pinned CLIs (skipped when
# already there), then run tests/real_agents.rs for them against the fake
# provider APIs on loopback.
#
#   scripts/test-real-agents.sh            # all five: claude codex gemini opencode aider
#   scripts/test-real-agents.sh claude codex
#
# Extra arguments for cargo test go after `--`:
#   scripts/test-real-agents.sh claude -- --nocapture
#
# The tests are #[ignore]d (a plain `cargo test` lists them as ignored, not
# passed): this runs them with `--ignored`, each agent's name a test-name
# filter (`claude` also picks the claude-print template's tests).
set -euo pipefail
cd "$(dirname "$0")/.."

agents=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  agents+=("$1")
  shift
done
[ "${1:-}" != "--" ] || shift
[ ${#agents[@]} -gt 0 ] || agents=(all)

scripts/install-real-agents.sh "${agents[@]}"
filters=()
for agent in "${agents[@]}"; do
  [ "$agent" = all ] && { filters=(); break; }
  filters+=("$agent")
done
echo "test-real-agents: cargo test --locked --test real_agents -- --ignored ${filters[*]-} $*"
cargo test --locked --test real_agents -- --ignored ${filters[@]+"${filters[@]}"} "$@"
