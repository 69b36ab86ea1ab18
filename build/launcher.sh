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
exec "$node" "$lib/@NAME@.mjs" "$@"
