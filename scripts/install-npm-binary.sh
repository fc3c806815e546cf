#!/usr/bin/env bash
# Installs a pinned SDK server binary shipped as an npm platform package into the
# project-local, git-ignored .tools/NAME/ and links it as .tools/NAME/bin/NAME. Shared by
# scripts/install-kilo.sh and scripts/install-opencode.sh.
#
# Idempotent: exits at once when the pinned version is already installed (the binary's
# `--version` answers it). Installs Debian's nodejs and npm with apt-get when npm is
# missing and the script runs as root.
# Usage: scripts/install-npm-binary.sh NAME VERSION PACKAGE
set -euo pipefail

[[ $# -eq 3 ]] || { echo "usage: $0 NAME VERSION PACKAGE" >&2; exit 2; }
readonly NAME="$1" VERSION="$2" PACKAGE="$3"

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd -- "${script_dir}/.." && pwd -P)"
prefix="${repo_root}/.tools/${NAME}"
link="${prefix}/bin/${NAME}"
target="${prefix}/node_modules/${PACKAGE}/bin/${NAME}"

die() {
    echo "install-${NAME}: $*" >&2
    exit 1
}

installed_version() {
    # Prints nothing (and succeeds) when the link is missing or the binary does not run.
    if [[ -x "${link}" ]]; then
        "${link}" --version 2>/dev/null | tr -d '[:space:]' || true
    fi
}

if [[ "$(installed_version)" == "${VERSION}" ]]; then
    echo "${NAME} ${VERSION} already installed at ${link}"
    exit 0
fi

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) die "only linux x86_64 is supported (the ${PACKAGE} package); got $(uname -s)-$(uname -m)" ;;
esac

if ! command -v npm >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "install-${NAME}: npm not found; installing Debian's nodejs and npm with apt-get" >&2
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
    else
        die "npm is not installed; install Node.js and npm (e.g. 'sudo apt-get install nodejs npm') and rerun"
    fi
fi

mkdir -p "${prefix}/bin"
echo "install-${NAME}: installing ${PACKAGE}@${VERSION} into ${prefix}" >&2
npm install --prefix "${prefix}" --no-save --no-audit --no-fund --no-package-lock \
    "${PACKAGE}@${VERSION}" >&2

[[ -x "${target}" ]] || die "npm finished but ${target} is missing or not executable"
# Relative, so the link survives moving or copying the checkout.
ln -sfn "../node_modules/${PACKAGE}/bin/${NAME}" "${link}"

got="$(installed_version)"
[[ "${got}" == "${VERSION}" ]] ||
    die "installed binary reports version '${got}', expected ${VERSION}"

echo "${link}"
