#!/usr/bin/env bash
# Makes sure a Docker Engine answers on this machine, for gastown's Docker runtime and its
# tests. Idempotent: does nothing when `docker info` already answers.
#
# Otherwise (Debian/Ubuntu, as root): installs Debian's `docker.io` when `dockerd` is
# missing, and `busybox-static` (the static busybox the agent image is built from — nothing
# can be pulled from a registry here), then starts `dockerd` in the background, logging to
# $GASTOWN_DOCKERD_LOG (default /tmp/gastown-dockerd.log), and waits up to
# $GASTOWN_DOCKERD_WAIT_S seconds (default 60) for it to answer.
#
# Flags tried, in order: plain `dockerd`; then `--iptables=false --ip6tables=false` (sandboxes
# whose kernel lacks netfilter); then that plus `--storage-driver=vfs` (no overlayfs).
set -euo pipefail

LOG="${GASTOWN_DOCKERD_LOG:-/tmp/gastown-dockerd.log}"
WAIT_S="${GASTOWN_DOCKERD_WAIT_S:-60}"

say() { echo "ensure-docker: $*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root to run: $*"
        exit 1
    fi
}

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        say "no apt-get: install $* by hand"
        exit 1
    fi
    say "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# The agent image needs a *static* /bin/busybox: the image is FROM scratch, with no libc of
# its own beyond what kilo and git need.
busybox_static_ok() {
    [ -x /bin/busybox ] || return 1
    local out
    out="$(ldd /bin/busybox 2>&1 || true)" # ldd exits 1 on a static binary
    case "$out" in
        *"not a dynamic executable"* | *"statically linked"*) return 0 ;;
        *) return 1 ;;
    esac
}

ensure_busybox_static() {
    busybox_static_ok || apt_install busybox-static
}

# Starts dockerd with the given extra flags; returns 0 once `docker info` answers.
try_dockerd() {
    say "starting dockerd $* (log: $LOG)"
    {
        echo "=== $(date -u +%FT%TZ) dockerd $*"
    } >>"$LOG"
    # setsid: the engine must outlive the shell (and the CI step) that started it.
    as_root setsid nohup dockerd "$@" >>"$LOG" 2>&1 </dev/null &
    local pid=$!
    local waited=0
    while [ "$waited" -lt "$WAIT_S" ]; do
        if engine_answers; then
            say "engine answers (dockerd pid $pid)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd $* exited early"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "dockerd $* did not answer within ${WAIT_S}s; stopping it"
    as_root kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
}

main() {
    if command -v docker >/dev/null 2>&1 && engine_answers; then
        ensure_busybox_static
        exit 0
    fi

    local need=()
    command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
    busybox_static_ok || need+=(busybox-static)
    if [ "${#need[@]}" -gt 0 ]; then
        apt_install "${need[@]}"
    fi

    # A stale pid file from a dead dockerd makes the next one refuse to start.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        as_root rm -f /var/run/docker.pid
    fi

    if try_dockerd \
        || try_dockerd --iptables=false --ip6tables=false \
        || try_dockerd --iptables=false --ip6tables=false --storage-driver=vfs; then
        exit 0
    fi

    say "no Docker Engine could be started; last lines of $LOG:"
    tail -n 40 "$LOG" >&2 || true
    exit 1
}

main "$@"
