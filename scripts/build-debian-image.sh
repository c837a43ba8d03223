#!/usr/bin/env bash
# Builds `debian-12`, a cloud image made from Debian's packages the way Debian's own cloud
# images are: bookworm with the cloud kernel, cloud-init (NoCloud: its seed disk or
# http://169.254.169.254/nocloud/), openssh-server, sudo and growpart, on a raw disk that
# SeaBIOS boots through SYSLINUX:
#   - partition 1: FAT (label DEBBOOT) with SYSLINUX, the kernel and the initramfs;
#   - partition 2: ext4 (label debian-root) holding the system, grown to the disk by
#     cloud-init's growpart at first boot.
# cloud-init makes the default user `debian` (sudo without password) with the instance's
# ssh-keys, makes the ssh host keys (the image has none; sshd makes its own when cloud-init
# did not run), and brings up the first NIC with DHCP. The console is the serial port.
#
# The image is cached under a name that carries this script's hash: it is rebuilt only when
# missing or when this script changed. Progress goes to stderr as `progress: N%` lines.
#
# usage: scripts/build-debian-image.sh [OUT_DIR]   (default target/images); prints the image's
# absolute path
set -euo pipefail
script=$(readlink -f "$0")
cd "$(dirname "$script")/.."
out=${1:-target/images}
version=$(sha256sum "$script" | cut -c1-12)
image="$out/debian-12-$version.raw"
if [ -f "$image" ]; then
  readlink -f "$image"
  exit 0
fi
mkdir -p "$out"
# The work happens inside OUT_DIR, so a build cut short (killed with its region) leaves nothing
# elsewhere, and the next build clears it away.
rm -rf "$out"/.build.*
work=$(mktemp -d -p "$out" .build.XXXXXX)
trap 'rm -rf "$work"' EXIT
progress() { echo "progress: $1%" >&2; }

tools="mmdebstrap syslinux syslinux-common mtools dosfstools fdisk e2fsprogs"
missing=""
for p in $tools; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "installing$missing" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
fi
progress 5

packages="linux-image-cloud-amd64,initramfs-tools,systemd-sysv,udev,cloud-init,cloud-guest-utils,\
openssh-server,sudo,ifupdown,isc-dhcp-client,iproute2,iputils-ping,netbase,procps,less"
rootfs="$work/rootfs"
mmdebstrap --quiet --variant=minbase --include="$packages" \
  --customize-hook='echo "LABEL=debian-root / ext4 defaults,errors=remount-ro 0 1" > "$1/etc/fstab"' \
  --customize-hook='echo debian > "$1/etc/hostname"' \
  --customize-hook='printf "auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n" > "$1/etc/network/interfaces"' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  --customize-hook='mkdir -p "$1/etc/systemd/system/ssh.service.d" && printf "[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n" > "$1/etc/systemd/system/ssh.service.d/host-keys.conf"' \
  --customize-hook='truncate -s 0 "$1/etc/machine-id"' \
  bookworm "$rootfs" >&2
progress 70

kernel=$(ls "$rootfs"/boot/vmlinuz-* | head -n1)
initrd=$(ls "$rootfs"/boot/initrd.img-* | head -n1)
boot_mb=128
root_mb=$(( $(du -sm "$rootfs" | cut -f1) * 13 / 10 + 256 ))
disk_mb=$(( 1 + boot_mb + root_mb ))

mkfs.fat -n DEBBOOT -C "$work/boot.img" $(( boot_mb * 1024 )) >/dev/null
syslinux --install "$work/boot.img"
cat > "$work/syslinux.cfg" <<'CFG'
DEFAULT debian
TIMEOUT 1
PROMPT 0
LABEL debian
  KERNEL /vmlinuz
  APPEND initrd=/initrd.img root=LABEL=debian-root ro console=tty0 console=ttyS0,115200
CFG
mcopy -i "$work/boot.img" "$work/syslinux.cfg" ::/syslinux.cfg
mcopy -i "$work/boot.img" "$kernel" ::/vmlinuz
mcopy -i "$work/boot.img" "$initrd" ::/initrd.img
progress 80

mke2fs -q -t ext4 -L debian-root -d "$rootfs" "$work/root.img" "${root_mb}M" >&2
progress 90

raw="$work/disk.raw"
truncate -s "${disk_mb}M" "$raw"
sfdisk -q "$raw" <<EOF
label: dos
start=2048, size=$(( boot_mb * 2048 )), type=c, bootable
start=$(( 2048 + boot_mb * 2048 )), type=83
EOF
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$raw" conv=notrunc bs=440 count=1 status=none
dd if="$work/boot.img" of="$raw" bs=1M seek=1 conv=notrunc status=none
dd if="$work/root.img" of="$raw" bs=1M seek=$(( 1 + boot_mb )) conv=notrunc status=none
rm -f "$out"/debian-12-*.raw   # images of former versions of this script
mv "$raw" "$image"
progress 100
readlink -f "$image"
