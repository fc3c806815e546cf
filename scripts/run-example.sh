#!/usr/bin/env bash
# Runs the main example (examples/town/main.rs) on the local runtime, installing the
# pinned kilo binary into .tools/ first if needed. Extra arguments go to the example
# (e.g. --json, --rig PATH_OR_URL, --runtime docker, --prompt TEXT, --model provider/model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-kilo.sh >&2
for arg in "$@"; do
    if [ "$arg" = "docker" ] || [ "$arg" = "--runtime=docker" ]; then
        scripts/ensure-docker.sh
    fi
done
exec cargo run --example town -- "$@"
