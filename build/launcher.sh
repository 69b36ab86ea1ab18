#!/bin/sh
# @NAME@ launcher (from the iscm-edge package): runs lib/@NAME@.mjs with the
# gateway's Node.js (>= 18). ISCM_NODE names another node binary.
# The real path is resolved first, so a running process keeps the files of its
# own version when /opt/iscm-edge is switched to another one.
self=$(readlink -f "$0") || exit 70
lib=$(dirname "$(dirname "$self")")/lib
node=${ISCM_NODE:-node}
if ! command -v "$node" >/dev/null 2>&1; then
  echo "@NAME@: Node.js not found (\"$node\"): install Node.js >= 18 (Debian: apt-get install nodejs) or set ISCM_NODE=/path/to/node" >&2
  exit 127
fi
# Gateways are small. A 4 MiB young generation (V8's default grows to 16 MiB
# per semi-space) and two malloc arenas with large buffers mapped on their own
# (returned to the system when freed) cut the light node's private memory
# (~85 → ~60 MB at 10k events/s, npm run bench -- node) for ~20 ms/s more
# GC at that rate. ISCM_NODE_OPTIONS replaces the V8 flag; the malloc
# settings stay as the environment sets them.
: "${MALLOC_ARENA_MAX:=2}"
: "${MALLOC_MMAP_THRESHOLD_:=131072}"
export MALLOC_ARENA_MAX MALLOC_MMAP_THRESHOLD_
# shellcheck disable=SC2086 # ISCM_NODE_OPTIONS is a list of flags
exec "$node" ${ISCM_NODE_OPTIONS---max-semi-space-size=4} "$lib/@NAME@.mjs" "$@"
