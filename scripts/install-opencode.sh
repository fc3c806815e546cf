#!/usr/bin/env bash
# Installs the opencode CLI binary (`opencode serve`, the alternative SDK server of
# `SdkLauncher::opencode`) into the project-local, git-ignored .tools/opencode/ and links it
# as .tools/opencode/bin/opencode, where the opencode tests look for it (after
# GASTOWN_OPENCODE_BIN).
#
# Why the platform package and not `opencode-ai`: the wrapper package picks and downloads
# its platform binary in a postinstall step; `opencode-linux-x64` ships the binary itself
# (the same choice as scripts/install-kilo.sh).
#
# Idempotent: exits at once when the pinned version is already installed.
# Usage: scripts/install-opencode.sh
set -euo pipefail

# Pinned: the version this project checked (ARCHITECTURE.md, *Sources*).
exec "$(dirname -- "${BASH_SOURCE[0]}")/install-npm-binary.sh" opencode 1.18.34 opencode-linux-x64
