#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh machine
# (Debian packages via apt-get when missing, npm packages), type-checks, and
# runs every suite. Extra arguments filter the test files (a regex on the path).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suites start for real: command -> package.
declare -A want=(
  [softhsm2-util]=softhsm2 [pkcs11-tool]=opensc [socat]=socat
  [mosquitto]=mosquitto [etcd]=etcd-server [etcdctl]=etcd-client
  [openssl]=openssl [swtpm]=swtpm [systemd-notify]=systemd
  # packages for gateway targets (build/package.ts) and their emulated suites (test/package/)
  [qemu-aarch64-static]=qemu-user-static [make]=make [python3]=python3
  [aarch64-linux-gnu-g++]=g++-aarch64-linux-gnu [arm-linux-gnueabihf-g++]=g++-arm-linux-gnueabihf
  [mips64el-linux-gnuabi64-g++]=g++-mips64el-linux-gnuabi64 [mipsel-linux-gnu-g++]=g++-mipsel-linux-gnu
)
# Libraries (no command to look for): package -> a file it installs.
declare -A libs=(
  [libtpm2-pkcs11-1]=/usr/lib/$(uname -m)-linux-gnu/pkcs11/libtpm2_pkcs11.so
  [libtss2-tcti-swtpm0]=/usr/lib/$(uname -m)-linux-gnu/libtss2-tcti-swtpm.so.0
)
missing=()
for cmd in "${!want[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}"); done
for pkg in "${!libs[@]}"; do [ -e "${libs[$pkg]}" ] || missing+=("$pkg"); done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "WARN: not root; cannot install ${missing[*]} (suites that need them will say SKIP)"
  fi
fi

# npm packages: install when node_modules is absent or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# Foreign-architecture roots for the emulated package suites (arm64 and
# mips64el Node, SoftHSM2): apt-get download + dpkg-deb -x into .cache/cross/,
# never apt-get install. Quick when already there; on failure those suites SKIP.
node --import tsx build/cross-sysroots.ts || true

echo "type-check (tsc --noEmit)"
npx tsc --noEmit -p .
node --import tsx test/run.ts "$@"
