#!/usr/bin/env bash
# Installs the opencode CLI binary (`opencode serve`, the alternative SDK server of
# `SdkLauncher::opencode`) into the project-local, git-ignored .tools/opencode/ and links it
# as .tools/opencode/bin/opencode, where `gastown_core::opencode::locate` looks for it.
#
# Why the platform package and not `opencode-ai`: the wrapper package picks and downloads
# its platform binary in a postinstall step; `opencode-linux-x64` ships the binary itself
# (the same choice as scripts/install-kilo.sh).
#
# Idempotent: exits at once when the pinned version is already installed.
# Usage: scripts/install-opencode.sh
set -euo pipefail

# Pinned to match gastown_core::opencode::OPENCODE_VERSION.
readonly OPENCODE_VERSION="1.18.34"
readonly PACKAGE="opencode-linux-x64"

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd -- "${script_dir}/.." && pwd -P)"
prefix="${repo_root}/.tools/opencode"
link="${prefix}/bin/opencode"
target="${prefix}/node_modules/${PACKAGE}/bin/opencode"

die() {
    echo "install-opencode: $*" >&2
    exit 1
}

installed_version() {
    # Prints nothing (and succeeds) when the link is missing or the binary does not run.
    if [[ -x "${link}" ]]; then
        "${link}" --version 2>/dev/null | tr -d '[:space:]' || true
    fi
}

if [[ "$(installed_version)" == "${OPENCODE_VERSION}" ]]; then
    echo "opencode ${OPENCODE_VERSION} already installed at ${link}"
    exit 0
fi

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) die "only linux x86_64 is supported (the ${PACKAGE} package); got $(uname -s)-$(uname -m)" ;;
esac

if ! command -v npm >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "install-opencode: npm not found; installing Debian's nodejs and npm with apt-get" >&2
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
    else
        die "npm is not installed; install Node.js and npm (e.g. 'sudo apt-get install nodejs npm') and rerun"
    fi
fi

mkdir -p "${prefix}/bin"
echo "install-opencode: installing ${PACKAGE}@${OPENCODE_VERSION} into ${prefix}" >&2
npm install --prefix "${prefix}" --no-save --no-audit --no-fund --no-package-lock \
    "${PACKAGE}@${OPENCODE_VERSION}" >&2

[[ -x "${target}" ]] || die "npm finished but ${target} is missing or not executable"
# Relative, so the link survives moving or copying the checkout.
ln -sfn "../node_modules/${PACKAGE}/bin/opencode" "${link}"

got="$(installed_version)"
[[ "${got}" == "${OPENCODE_VERSION}" ]] ||
    die "installed binary reports version '${got}', expected ${OPENCODE_VERSION}"

echo "${link}"
