#!/usr/bin/env bash
# Runs gastown's whole test suite on this machine, installing what the tests need first:
# the pinned kilo and opencode binaries (scripts/install-kilo.sh, scripts/install-opencode.sh,
# into .tools/) and a Docker Engine
# (scripts/ensure-docker.sh: Debian's docker.io + busybox-static, dockerd started if none
# answers). Extra arguments go to `cargo test`.
#
# Tests that need kilo, opencode or Docker skip with a message when those are absent, unless
# GASTOWN_REQUIRE_KILO=1 / GASTOWN_REQUIRE_OPENCODE=1 / GASTOWN_REQUIRE_DOCKER=1 make them
# mandatory (.ci/run sets all three).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || { echo "test.sh: cargo not found (install Rust via rustup)" >&2; exit 1; }
command -v git >/dev/null 2>&1 || { echo "test.sh: git not found" >&2; exit 1; }

scripts/install-kilo.sh
scripts/install-opencode.sh
scripts/ensure-docker.sh

cargo test --workspace "$@"
