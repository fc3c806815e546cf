#!/usr/bin/env bash
# Installs the kilo CLI binary (the SDK server gastown drives, DESIGN.md §7) into the
# project-local, git-ignored .tools/kilo/ and links it as .tools/kilo/bin/kilo, where
# `gastown_core::kilo::locate` looks for it.
#
# Why the platform package and not `@kilocode/cli`: the wrapper package downloads its binary
# in a postinstall step that fails here; `@kilocode/cli-linux-x64` ships the binary itself.
#
# Idempotent: exits at once when the pinned version is already installed.
# Usage: scripts/install-kilo.sh
set -euo pipefail

# Pinned to match gastown_core::kilo::KILO_VERSION.
readonly KILO_VERSION="7.7.9"
readonly PACKAGE="@kilocode/cli-linux-x64"

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd -- "${script_dir}/.." && pwd -P)"
prefix="${repo_root}/.tools/kilo"
link="${prefix}/bin/kilo"
target="${prefix}/node_modules/${PACKAGE}/bin/kilo"

die() {
    echo "install-kilo: $*" >&2
    exit 1
}

installed_version() {
    # Prints nothing (and succeeds) when the link is missing or the binary does not run.
    if [[ -x "${link}" ]]; then
        "${link}" --version 2>/dev/null | tr -d '[:space:]' || true
    fi
}

if [[ "$(installed_version)" == "${KILO_VERSION}" ]]; then
    echo "kilo ${KILO_VERSION} already installed at ${link}"
    exit 0
fi

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) die "only linux x86_64 is supported (the ${PACKAGE} package); got $(uname -s)-$(uname -m)" ;;
esac

if ! command -v npm >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "install-kilo: npm not found; installing Debian's nodejs and npm with apt-get" >&2
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
    else
        die "npm is not installed; install Node.js and npm (e.g. 'sudo apt-get install nodejs npm') and rerun"
    fi
fi

mkdir -p "${prefix}/bin"
echo "install-kilo: installing ${PACKAGE}@${KILO_VERSION} into ${prefix}" >&2
npm install --prefix "${prefix}" --no-save --no-audit --no-fund --no-package-lock \
    "${PACKAGE}@${KILO_VERSION}" >&2

[[ -x "${target}" ]] || die "npm finished but ${target} is missing or not executable"
# Relative, so the link survives moving or copying the checkout.
ln -sfn "../node_modules/${PACKAGE}/bin/kilo" "${link}"

got="$(installed_version)"
[[ "${got}" == "${KILO_VERSION}" ]] ||
    die "installed binary reports version '${got}', expected ${KILO_VERSION}"

echo "${link}"
