#!/usr/bin/env bash
# Runs the whole Stratus test suite: formatting, lints, and every test of the workspace.
# Everything the tests need is installed or started from here, so this is all a fresh
# Debian machine with the Rust toolchain needs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real-VM tests need QEMU from Debian's packages. Naming qemu-utils at the same version keeps a
# matching qemu-img (installing qemu-system-x86 alone can remove a newer qemu-utils).
if ! command -v qemu-system-x86_64 >/dev/null 2>&1 || ! command -v qemu-img >/dev/null 2>&1; then
  echo "== installing QEMU"
  apt-get update -qq
  version=$(apt-cache madison qemu-system-x86 | awk 'NR==1 {print $3}')
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades \
    qemu-system-x86 "qemu-utils=$version" >/dev/null
fi

# The PostgreSQL tests start throwaway servers of their own with initdb and pg_ctl from
# Debian's postgresql package (as the package's `postgres` user when run as root).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! id postgres >/dev/null 2>&1; then
  echo "== installing PostgreSQL"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# Bridged guests' networks: bridges and namespaces (iproute2), anti-spoofing and NAT (nftables),
# DHCP (dnsmasq).
if ! command -v nft >/dev/null 2>&1 || ! command -v dnsmasq >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
  echo "== installing iproute2, nftables, dnsmasq"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 nftables dnsmasq-base >/dev/null
fi

echo "== building the test guest"
STRATUS_TEST_GUEST=$(bash scripts/build-test-guest.sh)
export STRATUS_TEST_GUEST

# A cloud-init guest reached with `stratus instances ssh` needs the debian-12 image (built
# from Debian's packages with mmdebstrap, cached) and an ssh client.
echo "== building the debian-12 image"
STRATUS_TEST_DEBIAN=$(bash scripts/build-debian-image.sh)
export STRATUS_TEST_DEBIAN
# Bare metal is tested against servers that are libvirt domains with the Redfish emulator
# sushy-emulator as their BMC (libvirt and sushy-tools installed here), deployed with the deploy
# ramdisk built from Debian's packages.
echo "== preparing the bare-metal lab and the deploy ramdisk"
bash scripts/baremetal-lab.sh install
STRATUS_TEST_RAMDISK=$(bash scripts/build-deploy-ramdisk.sh)
export STRATUS_TEST_RAMDISK
if ! command -v ssh >/dev/null 2>&1; then
  echo "== installing openssh-client"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked

# schemathesis (pinned in tests/schemathesis/requirements.txt) against a fresh region's
# /openapi.json with every check: any 5xx or undocumented schema violation fails the run.
echo "== schemathesis"
cargo build --locked -q -p stratus
bash scripts/schemathesis.sh target/debug/stratus

# Browser tests of the web console: Debian's Chromium driven by playwright-core (pinned in
# tests/browser/package-lock.json). Screenshots of every page land in target/browser-artifacts/.
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "== browser tests"
(cd tests/browser && npm ci --no-audit --no-fund --silent)
node --test tests/browser/
