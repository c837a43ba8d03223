#!/usr/bin/env bash
# Builds the Stratus test guest from Debian's packages, nothing else: a raw disk image that boots
# the way a cloud image does (SeaBIOS -> SYSLINUX on a FAT partition -> Debian's cloud kernel and
# a busybox initramfs). Its init
#   - prints "stratus-guest: booted" and the boot count it keeps on its own disk (a marker in the
#     unused gap before the first partition, so it survives a stop/start of a persistent disk),
#   - brings up the network and reads its metadata from http://169.254.169.254 with
#     `Metadata-Flavor: Google`, printing each answer between markers on the serial console,
#   - shows that the same request without the header is refused,
#   - takes its address by DHCP (a Stratus network, or QEMU's user-mode network), prints it,
#     and accepts TCP connections on port 7,
#   - when its metadata has `probe-host-port` = a port, tries a TCP connection to that port of
#     the host (user-mode networking's 169.254.169.2, which would be the host's loopback) and
#     prints whether it got through; `probe-ping` and `probe-tcp` (comma-separated addresses,
#     `address:port`) likewise ping and connect; `probe-spoof` = `fake>target` pings target
#     from a forged source address,
#   - powers off when its metadata has `poweroff` = `now`, and otherwise idles.
# The kernel, busybox, the modules and /init's first lines come from lib/debian-initramfs.sh.
# The image is cached under a name that carries the hash of this script and that helper: it is
# rebuilt only when missing or when either changed.
#
# usage: scripts/build-test-guest.sh [OUT_DIR]   (default target/test-guest); prints the image's
# absolute path
set -euo pipefail
script=$(readlink -f "$0")
cd "$(dirname "$script")/.."
out=${1:-target/test-guest}
lib="$(dirname "$script")/lib/debian-initramfs.sh"
# shellcheck source=lib/debian-initramfs.sh
. "$lib"
version=$(cat "$script" "$lib" | sha256sum | cut -c1-12)
image="$out/stratus-test-guest-$version.raw"
if [ -f "$image" ]; then
  readlink -f "$image"
  exit 0
fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

debian_tools syslinux syslinux-common mtools dosfstools fdisk cpio
debian_kernel_busybox "$work"

# Load order matters: each module after the ones it needs. NVMe is built into the kernel.
debian_initramfs "$work" "virtio_ring virtio failover net_failover virtio_pci_modern_dev
  virtio_pci_legacy_dev virtio_pci virtio_net virtio_blk scsi_common scsi_mod sd_mod virtio_scsi"
initrd="$work/initrd"
cat >> "$initrd/init" <<'INIT'
echo "stratus-guest: booted"

# The boot disk: whichever SCSI, NVMe or virtio disk holds this image's FAT partition
# (labelled STRATUS, at sector 2048).
disk=""
for i in 1 2 3 4 5 6 7 8 9 10; do
  for d in /dev/sd? /dev/nvme?n? /dev/vd?; do
    [ -b "$d" ] || continue
    if dd if="$d" bs=512 skip=2048 count=1 2>/dev/null | grep -q STRATUS; then
      disk=$d
      break 2
    fi
  done
  usleep 500000
done
echo "stratus-guest: boot disk ${disk:-none}"

# Boot count, kept in sector 1000 of the boot disk (inside the gap before the partition).
marker=$(dd if="$disk" bs=512 skip=1000 count=1 2>/dev/null | tr -d '\000' | head -c 64)
case "$marker" in
  stratus-boots=*) boots=$(( ${marker#stratus-boots=} + 1 )) ;;
  *) boots=1 ;;
esac
printf 'stratus-boots=%s' "$boots" | dd of="$disk" bs=512 seek=1000 count=1 conv=notrunc,sync 2>/dev/null
sync
echo "stratus-guest: boot number $boots (marker on disk)"

ip link set lo up
ip link set eth0 up
# DHCP: a Stratus network's dnsmasq, or QEMU's user-mode network (169.254.169.15 via .2).
mkdir -p /tmp
if udhcpc -i eth0 -n -q -t 6 -T 1 -s /etc/udhcpc.script >/dev/null 2>&1; then
  echo "stratus-guest: address $(ip -4 addr show eth0 | sed -n 's/.*inet \([0-9./]*\).*/\1/p')"
else
  echo "stratus-guest: no DHCP answer; assuming the user-mode network"
  ip addr add 169.254.169.15/24 dev eth0
  ip route add default via 169.254.169.2
fi
# Something to connect to: TCP port 7 accepts and closes.
(while true; do nc -l -p 7 </dev/null >/dev/null 2>&1; done) &
# busybox's static wget crashes here, so HTTP is spoken through nc.
http_get() { # PATH [HEADER-LINE]; prints the response, status line and headers included
  {
    printf 'GET %s HTTP/1.0\r\nHost: metadata.google.internal\r\n' "$1"
    [ -z "$2" ] || printf '%s\r\n' "$2"
    printf '\r\n'
  } | nc -w 90 169.254.169.254 80
}
md=/computeMetadata/v1
show() {
  echo "stratus-guest: begin $1"
  http_get "$md/$1" 'Metadata-Flavor: Google' | sed '1,/^\r*$/d'
  echo
  echo "stratus-guest: end $1"
}
show instance/id
show instance/hostname
show project/project-id
show instance/attributes/ssh-keys
show instance/attributes/user-data
if http_get "$md/instance/id" | head -n 1 | grep -q ' 200 '; then
  echo "stratus-guest: request without Metadata-Flavor was ACCEPTED"
else
  echo "stratus-guest: request without Metadata-Flavor was refused"
fi
# The NoCloud seed volume, if one is attached: FAT labelled CIDATA holding meta-data.
for d in /dev/vd?; do
  [ -b "$d" ] || continue
  if dd if="$d" bs=512 count=1 2>/dev/null | grep -q CIDATA; then
    echo "stratus-guest: seed $(dd if="$d" bs=65536 count=32 2>/dev/null | strings | grep '^instance-id:')"
  fi
done
attr() { # KEY: the attribute's value, or nothing when it has none
  http_get "$md/instance/attributes/$1" 'Metadata-Flavor: Google' > /tmp/attr
  head -n 1 /tmp/attr | grep -q ' 200 ' && sed '1,/^\r*$/d' /tmp/attr
}
for target in $(attr probe-ping | tr ',' ' '); do
  if ping -c 3 -W 2 "$target" >/dev/null 2>&1; then
    echo "stratus-guest: ping $target REACHABLE"
  else
    echo "stratus-guest: ping $target unreachable"
  fi
done
for target in $(attr probe-tcp | tr ',' ' '); do
  if echo probe | nc -w 3 "${target%:*}" "${target##*:}" >/dev/null 2>&1; then
    echo "stratus-guest: tcp $target REACHABLE"
  else
    echo "stratus-guest: tcp $target unreachable"
  fi
done
spoof=$(attr probe-spoof)
if [ -n "$spoof" ]; then
  fake=${spoof%%>*}; target=${spoof##*>}
  ip addr add "$fake/32" dev eth0
  if ping -c 3 -W 2 -I "$fake" "$target" >/dev/null 2>&1; then
    echo "stratus-guest: spoofed ping from $fake to $target REACHABLE"
  else
    echo "stratus-guest: spoofed ping from $fake to $target unreachable"
  fi
  ip addr del "$fake/32" dev eth0
fi
# probe-onlink = address:port: tries that port through the NIC's own link, bypassing the
# gateway (an address the guest was never given a route to).
onlink=$(attr probe-onlink)
if [ -n "$onlink" ]; then
  ip route add "${onlink%:*}/32" dev eth0
  if echo probe | nc -w 3 "${onlink%:*}" "${onlink##*:}" >/dev/null 2>&1; then
    echo "stratus-guest: on-link tcp $onlink REACHABLE"
  else
    echo "stratus-guest: on-link tcp $onlink unreachable"
  fi
  ip route del "${onlink%:*}/32" dev eth0
fi
port=$(attr probe-host-port)
case "$port" in
  ''|*[!0-9]*) ;;
  *)
    if echo probe | nc -w 5 169.254.169.2 "$port" >/dev/null 2>&1; then
      echo "stratus-guest: host port $port REACHABLE"
    else
      echo "stratus-guest: host port $port unreachable"
    fi
    ;;
esac
echo "stratus-guest: ready"
while true; do
  answer=$(http_get "$md/instance/attributes/poweroff?wait_for_change=true&timeout_sec=60" 'Metadata-Flavor: Google' | sed '1,/^\r*$/d')
  if [ "$answer" = now ]; then
    echo "stratus-guest: powering off"
    sync
    poweroff -f
  fi
  sleep 1
done
INIT
debian_initramfs_pack "$work"

cat > "$work/syslinux.cfg" <<'CFG'
DEFAULT linux
LABEL linux
  KERNEL /vmlinuz
  APPEND initrd=/initrd.gz console=ttyS0 panic=-1
CFG
disk="$work/disk.img"
truncate -s 64M "$disk"
echo 'start=2048, type=6, bootable' | sfdisk -q "$disk" >/dev/null
mkfs.fat -F 16 --offset 2048 -n STRATUS "$disk" $(( (64 * 1024 * 1024 - 1048576) / 1024 )) >/dev/null
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$disk" bs=440 count=1 conv=notrunc 2>/dev/null
syslinux --install --offset 1048576 "$disk"
for f in vmlinuz initrd.gz syslinux.cfg; do mcopy -i "$disk@@1048576" "$work/$f" ::/; done
mv "$disk" "$image"
readlink -f "$image"
