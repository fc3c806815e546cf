#!/usr/bin/env bash
# Installs the kilo CLI binary (the SDK server gastown drives; ARCHITECTURE.md, *SDK server*)
# into the project-local, git-ignored .tools/kilo/ and links it as .tools/kilo/bin/kilo,
# where `gastown_core::kilo::locate` looks for it.
#
# Why the platform package and not `@kilocode/cli`: the wrapper package downloads its binary
# in a postinstall step that fails here; `@kilocode/cli-linux-x64` ships the binary itself.
#
# Idempotent: exits at once when the pinned version is already installed.
# Usage: scripts/install-kilo.sh
set -euo pipefail

# Pinned to match gastown_core::kilo::KILO_VERSION.
exec "$(dirname -- "${BASH_SOURCE[0]}")/install-npm-binary.sh" kilo 7.7.9 "@kilocode/cli-linux-x64"
