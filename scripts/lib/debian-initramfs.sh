# shellcheck shell=bash
# Sourced (not run) by the scripts that build a guest or a ramdisk from Debian's packages only:
# Debian's cloud kernel and a busybox initramfs whose /init loads the kernel modules it is given.
#
#   debian_tools PKG...             installs those of these Debian packages that are missing
#                                   (with $DEBIAN_APT_OPTS, e.g. --no-install-recommends)
#   debian_kernel_busybox WORK      downloads the cloud kernel (the version linux-image-cloud-amd64
#                                   depends on) and busybox-static, unpacks them into WORK/root,
#                                   copies the kernel to WORK/vmlinuz; sets `kver`
#   debian_initramfs WORK MODULES   makes the initramfs tree WORK/initrd: busybox, the modules'
#                                   .ko files, /etc/udhcpc.script (udhcpc's hook: sets the address,
#                                   the default route and the MTU), and the first lines of /init
#                                   (busybox's applets, /proc, /sys, /dev, the modules loaded in
#                                   the order given: each after the ones it needs); the caller
#                                   appends the rest of /init
#   debian_initramfs_pack WORK      packs WORK/initrd into WORK/initrd.gz
#
# The scripts that source this carry its hash in the names of what they cache.

debian_tools() {
  local missing="" p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "installing$missing" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${DEBIAN_APT_OPTS:-} $missing >&2
  fi
}

debian_kernel_busybox() {
  local work=$1 kernel_pkg deb
  kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  if [ -z "$kernel_pkg" ]; then
    apt-get update -qq >&2
    kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  fi
  (cd "$work" && apt-get download -qq "$kernel_pkg" busybox-static >&2)
  mkdir -p "$work/root"
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
  kver=${kernel_pkg#linux-image-}
  cp "$work/root/boot/vmlinuz-$kver" "$work/vmlinuz"
}

debian_initramfs() {
  local work=$1 modules=$2 initrd="$1/initrd" m
  mkdir -p "$initrd"/{bin,dev,etc,proc,sys,lib/modules}
  cp "$work/root/bin/busybox" "$initrd/bin/busybox"
  for m in $modules; do
    find "$work/root/lib/modules/$kver" -name "$m.ko*" -exec cp {} "$initrd/lib/modules/" \;
  done
  cat > "$initrd/etc/udhcpc.script" <<'DHCP'
#!/bin/sh
prefix() { # dotted netmask -> prefix length
  n=0; for o in $(echo "$1" | tr . ' '); do
    while [ "$o" -gt 0 ]; do n=$((n + (o & 1))); o=$((o >> 1)); done
  done; echo $n
}
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-$(prefix "$subnet")}" dev "$interface"
    [ -z "$router" ] || ip route add default via "${router%% *}" dev "$interface"
    [ -z "$mtu" ] || ip link set dev "$interface" mtu "$mtu"
    ;;
esac
DHCP
  chmod +x "$initrd/etc/udhcpc.script"
  { echo '#!/bin/busybox sh'; echo "modules=\"$(echo $modules)\""; } > "$initrd/init"
  cat >> "$initrd/init" <<'INIT'
/bin/busybox --install -s /bin
mount -t proc proc /proc
# The kernel's boot messages stay on the console (they show where a boot stalls); from here on
# only its warnings and worse, so they never land in the middle of what /init prints.
echo 4 > /proc/sys/kernel/printk
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in $modules; do
  for f in /lib/modules/$m.ko*; do [ -e "$f" ] && insmod "$f" 2>/dev/null; done
done
INIT
  chmod +x "$initrd/init"
}

debian_initramfs_pack() {
  (cd "$1/initrd" && find . | cpio -o -H newc 2>/dev/null | gzip -9) > "$1/initrd.gz"
}
