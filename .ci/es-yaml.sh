#!/usr/bin/env bash
# Builds the Elasticsearch-API emulator, starts it on a free port and runs the shared YAML REST
# conformance kit against it. Exits with the runner's exit code. Extra arguments go to the runner
# (e.g. `--filter search/ -v`).
set -euo pipefail

root="$(git rev-parse --show-toplevel)"
shared="${RECON_SHARED_DIR:-$root/../shared}"
runner="$shared/tools/es-yaml-run"
if [[ ! -x "$runner" && ! -f "$runner" ]]; then
    echo "es-yaml: skipped, $runner not found (the shared kit sits beside the checkout)" >&2
    exit 0
fi

cd "$root"
cargo build --quiet -p recon-es-emulator --bin recon-es-emulator
bin="${CARGO_TARGET_DIR:-$root/target}/debug/recon-es-emulator"

out="$(mktemp)"
"$bin" --listen 127.0.0.1:0 >"$out" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"' EXIT

url=""
for _ in $(seq 1 100); do
    url="$(head -n 1 "$out" 2>/dev/null || true)"
    [[ -n "$url" ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "es-yaml: the emulator exited before printing its address" >&2
        exit 2
    fi
    sleep 0.1
done
if [[ -z "$url" ]]; then
    echo "es-yaml: the emulator did not print its address" >&2
    exit 2
fi

set +e
python3 "$runner" --url "$url" "$@"
status=$?
set -e
exit "$status"
