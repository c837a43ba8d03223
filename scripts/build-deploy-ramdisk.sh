#!/usr/bin/env bash
# Builds the Stratus deploy ramdisk from Debian's packages, nothing else: a bootable ISO (isolinux,
# hybrid so it also boots as a disk) with Debian's cloud kernel and a busybox initramfs
# (lib/debian-initramfs.sh), for servers booted from virtual media through their BMC (Redfish).
#
# The protocol. isolinux.cfg (stored uncompressed) ends its APPEND line with `stratus.deploy=`
# and a placeholder of exactly 200 `_` bytes, which occurs exactly once in the ISO's bytes. The
# control plane serves the ISO with those 200 bytes replaced by the server's deploy URL padded
# with spaces to 200 bytes (e.g. `http://10.0.2.2:8080/internal/v1/deploy/TOKEN`; plain http,
# no spaces in it). The ramdisk's init loads the virtio (and IDE) modules, brings up the first
# ethernet NIC with DHCP, takes the URL from /proc/cmdline and
#   1. GET URL/task: the body's first line is `deploy` or `clean`;
#   2. deploy: GET URL/image, a raw disk image with its Content-Length, written to the first
#      disk (/dev/vda, else /dev/sda, else /dev/nvme0n1) and checked: HTTP 200, bytes written =
#      Content-Length; then sync.
#      clean: zeroes the first MiB of every partition and the first and last MiB of the disk
#      (the MBR, both GPT copies, the file systems' superblocks); then sync;
#   3. POST URL/result with a text/plain body `ok` or `failed: REASON` (e.g. `image fetch
#      answered HTTP 404`, `short image: got N of M bytes`, `no disk found`, `task fetch
#      failed`); the control plane answers 204;
#   4. poweroff -f.
# Every step goes to the console (ttyS0, 115200) as a `stratus-deploy: ` line. Without a URL
# (the placeholder left as it is) it only says so and powers off. HTTP is spoken through
# busybox's nc (busybox's wget cannot say how much it wrote, and the test guest saw it crash):
# `nc -e` hands the connection itself to a script that reads the headers byte by byte with the
# shell's `read` and copies the body with dd to the disk in 32 MiB chunks, each counted (it
# passes through a file in RAM), with a progress line every 10%. (A pipe behind nc instead
# made the copy ~6x slower under TCG: 15 MB/s against ~80 MB/s.)
#
# The ISO is cached under a name that carries the hash of this script and its helper: it is
# rebuilt only when missing or when either changed.
#
# usage: scripts/build-deploy-ramdisk.sh [OUT_DIR]   (default target/deploy-ramdisk); prints the
# ISO's absolute path
set -euo pipefail
script=$(readlink -f "$0")
cd "$(dirname "$script")/.."
lib="$(dirname "$script")/lib/debian-initramfs.sh"
# shellcheck source=lib/debian-initramfs.sh
. "$lib"
out=${1:-target/deploy-ramdisk}
version=$(cat "$script" "$lib" | sha256sum | cut -c1-12)
iso="$out/stratus-deploy-ramdisk-$version.iso"
if [ -f "$iso" ]; then
  readlink -f "$iso"
  exit 0
fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

debian_tools xorriso isolinux syslinux-common cpio
debian_kernel_busybox "$work"
# Load order matters: each module after the ones it needs. NVMe is built into the kernel; AHCI
# is not in the cloud kernel at all, IDE (ata_piix, the `pc` machine's) is.
debian_initramfs "$work" "virtio_ring virtio failover net_failover virtio_pci_modern_dev
  virtio_pci_legacy_dev virtio_pci virtio_net virtio_blk scsi_common scsi_mod sd_mod virtio_scsi
  libata ata_piix"
# Shared by /init and /bin/stratus-image: console lines and HTTP/1.0.
cat > "$work/initrd/lib/stratus-deploy.sh" <<'LIB'
say() { echo "stratus-deploy: $*" > /dev/console; }
cr=$(printf '\r')
# request METHOD PATH [BODY]: prints the request for $base/PATH
request() {
  printf '%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: stratus-deploy\r\n' "$1" "$base$2" "$hostport"
  if [ $# -ge 3 ]; then
    printf 'Content-Type: text/plain\r\nContent-Length: %s\r\n\r\n%s' "${#3}" "$3"
  else
    printf '\r\n'
  fi
}
# Reads an answer's status line and headers from stdin, byte by byte (the shell's `read`
# never reads past a newline, so the body stays unread); sets status and length (the
# Content-Length, empty when absent).
read_head() {
  status=""; length=""
  IFS= read -r line || return 1
  line=${line%"$cr"}
  set -- $line
  status=${2:-}
  while IFS= read -r line; do
    line=${line%"$cr"}
    [ -n "$line" ] || return 0
    case "$line" in
      [Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]:*)
        length=$(echo "${line#*:}" | tr -dc 0-9) ;;
    esac
  done
  return 1
}
LIB

# Run by `nc -e`: stdin and stdout are the connection itself (a pipe behind nc costs ~6x the
# time under TCG). GETs the image and writes it to $disk in 32 MiB chunks, each read into RAM
# first so that what arrived is counted exactly; leaves `ok` or `failed: …` in /tmp/image-result.
cat > "$work/initrd/bin/stratus-image" <<'IMAGE'
#!/bin/sh
. /lib/stratus-deploy.sh
result() { echo "$1" > /tmp/image-result; rm -f /tmp/chunk; exit 0; }
request GET /image
read_head || result "failed: image fetch failed: no HTTP answer"
[ "$status" = 200 ] || result "failed: image fetch answered HTTP $status"
[ -n "$length" ] || result "failed: image fetch answered without Content-Length"
size=$(( $(cat /sys/block/${disk#/dev/}/size) * 512 ))
[ "$length" -le "$size" ] || result "failed: image of $length bytes does not fit $disk ($size bytes)"
say "writing $length bytes to $disk"
chunk=$((32 * 1048576)); written=0; last=-1
while [ "$written" -lt "$length" ]; do
  want=$((length - written)); [ "$want" -le "$chunk" ] || want=$chunk
  dd of=/tmp/chunk bs=1M iflag=count_bytes,fullblock count="$want" 2>/dev/null
  got=$(stat -c %s /tmp/chunk)
  if ! dd if=/tmp/chunk of="$disk" bs=1M oflag=seek_bytes seek="$written" conv=notrunc \
       2>/tmp/dd.err; then
    result "failed: writing $disk at byte $written: $(grep -v records /tmp/dd.err | head -n 1)"
  fi
  written=$((written + got))
  percent=$((written * 100 / length))
  if [ $((percent / 10)) -ne "$last" ] || [ "$got" -lt "$want" ]; then
    say "wrote $written of $length bytes ($percent%)"
    last=$((percent / 10))
  fi
  [ "$got" -eq "$want" ] || break
done
[ "$written" -eq "$length" ] || result "failed: short image: got $written of $length bytes"
sync
result ok
IMAGE
chmod +x "$work/initrd/bin/stratus-image"

cat >> "$work/initrd/init" <<'INIT'
. /lib/stratus-deploy.sh
say "booted ($(uname -r))"
mkdir -p /tmp

halt_now() {
  say "powering off"
  sync
  poweroff -f
  sleep 60
}

url=$(sed -n 's/.*stratus\.deploy=\([^ ]*\).*/\1/p' /proc/cmdline)
case "$url" in
  http://?*) url=${url%/} ;;
  ___*|'') say "no deploy URL on the kernel command line (stratus.deploy= was not filled in)"; halt_now ;;
  *) say "unsupported deploy URL: $url (plain http:// only)"; halt_now ;;
esac
hostport=${url#http://}
base=""
[ "$hostport" = "${hostport#*/}" ] || base=/${hostport#*/}
hostport=${hostport%%/*}
host=${hostport%:*}
port=80
[ "$hostport" = "$host" ] || port=${hostport##*:}
export base hostport
say "deploy URL $url"

ip link set lo up
nic=""
for _ in $(seq 1 40); do
  for d in /sys/class/net/*; do
    [ -e "$d/device" ] && [ "$(cat "$d/type")" = 1 ] || continue
    nic=${d##*/}
    break 2
  done
  usleep 250000
done
[ -n "$nic" ] || { say "failed: no ethernet NIC found"; halt_now; }
ip link set "$nic" up
say "DHCP on $nic ($(cat /sys/class/net/$nic/address))"
if ! udhcpc -i "$nic" -n -q -t 10 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1; then
  say "failed: no DHCP answer on $nic"
  halt_now
fi
say "address $(ip -4 addr show "$nic" | sed -n 's/.*inet \([0-9./]*\).*/\1/p')"

disk=""
for _ in $(seq 1 20); do
  for d in /dev/vda /dev/sda /dev/nvme0n1; do
    [ -b "$d" ] && [ "$(cat /sys/block/${d#/dev/}/size)" -gt 0 ] && { disk=$d; break 2; }
  done
  usleep 250000
done
export disk

task=""
for attempt in 1 2 3 4 5; do
  request GET /task | nc -w 10 "$host" "$port" > /tmp/task
  if { read_head && [ "$status" = 200 ]; } < /tmp/task; then
    task=$(sed '1,/^\r*$/d' /tmp/task | head -n 1 | tr -d '\r \t')
    break
  fi
  first=$(head -n 1 /tmp/task | tr -d '\r')
  say "task fetch failed (attempt $attempt: ${first:-no answer})"
  sleep 2
done
say "task ${task:-none}"

clean() { # destroys the partition tables and file system signatures of $disk
  name=${disk#/dev/}
  sectors=$(cat /sys/block/$name/size)
  for p in /sys/block/$name/$name*; do
    [ -e "$p/start" ] || continue
    say "zeroing the first MiB of ${p##*/}"
    dd if=/dev/zero of="$disk" bs=512 seek="$(cat "$p/start")" count=2048 conv=notrunc 2>/dev/null
  done
  say "zeroing the first and the last MiB of $disk"
  tail=$((sectors - 2048)); [ "$tail" -ge 0 ] || tail=0
  if dd if=/dev/zero of="$disk" bs=512 count=2048 conv=notrunc 2>/dev/null &&
     dd if=/dev/zero of="$disk" bs=512 seek="$tail" count=2048 conv=notrunc 2>/dev/null; then
    sync
    blockdev --rereadpt "$disk" 2>/dev/null
    result=ok
  else
    result="failed: writing $disk failed"
  fi
}

case "$task" in
  '') result="failed: task fetch failed" ;;
  deploy|clean)
    if [ -z "$disk" ]; then
      result="failed: no disk found"
    else
      say "$task on $disk ($(( $(cat /sys/block/${disk#/dev/}/size) / 2048 )) MiB)"
      if [ "$task" = clean ]; then
        clean
      else
        rm -f /tmp/image-result
        nc -w 10 "$host" "$port" -e /bin/stratus-image
        result=$(cat /tmp/image-result 2>/dev/null)
        [ -n "$result" ] || result="failed: image fetch failed: no connection to $hostport"
      fi
    fi
    ;;
  *) result="failed: unknown task '$task'" ;;
esac
say "result: $result"

for attempt in 1 2 3 4 5; do
  answer=$(request POST /result "$result" | nc -w 10 "$host" "$port" | head -n 1 | tr -d '\r')
  say "result posted: ${answer:-no answer}"
  case "$answer" in HTTP/*\ 2[0-9][0-9]*) break ;; esac
  sleep 2
done
halt_now
INIT
debian_initramfs_pack "$work"

mkdir -p "$work/iso/isolinux"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$work/iso/isolinux/"
cp "$work/vmlinuz" "$work/initrd.gz" "$work/iso/"
placeholder=$(printf '%200s' '' | tr ' ' _)
cat > "$work/iso/isolinux/isolinux.cfg" <<CFG
SERIAL 0 115200
DEFAULT deploy
PROMPT 0
TIMEOUT 0
LABEL deploy
  KERNEL /vmlinuz
  APPEND initrd=/initrd.gz console=tty0 console=ttyS0,115200 stratus.deploy=$placeholder
CFG
xorriso -as mkisofs -quiet -o "$work/deploy.iso" -V STRATUS_DEPLOY -J -r \
  -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
  -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin "$work/iso" >&2
count=$(grep -a -o "$placeholder" "$work/deploy.iso" | wc -l)
if [ "$count" != 1 ]; then
  echo "the placeholder occurs $count times in the ISO, not once" >&2
  exit 1
fi
rm -f "$out"/stratus-deploy-ramdisk-*.iso   # ISOs of former versions of this script
mv "$work/deploy.iso" "$iso"
readlink -f "$iso"
