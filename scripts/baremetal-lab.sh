#!/usr/bin/env bash
# The bare-metal test lab: "servers" that are libvirt domains (QEMU under TCG) and a Redfish BMC
# for them, sushy-emulator (sushy-tools, libvirt driver), the way Ironic and Metal3 CI test bare
# metal. See /work/shared/notes/baremetal-here.md. Subcommands (results on stdout, progress on
# stderr; each one is idempotent and quick when already done):
#
#   install
#       Debian packages (libvirt without libvirt-daemon-system, ISO tools, busybox-static), the
#       users, groups, directories and /etc/libvirt/qemu.conf libvirtd needs, virtlogd and
#       libvirtd started when not running, the `default` storage pool, and a venv with
#       sushy-tools and libvirt-python cached in $STRATUS_BM_VENV
#       (default /var/cache/stratus-test/sushy-venv). Prints nothing on stdout.
#   server NAME UUID SERIAL_LOG DISK_PATH [DISK_MB=3072] [MEM_MB=768]
#       Defines (does not start) the domain NAME with that UUID: type qemu (TCG, never KVM),
#       machine pc (SeaBIOS), 1 vCPU, MEM_MB of RAM, an empty sparse raw virtio disk at DISK_PATH
#       (created when missing, kept when present), a virtio NIC on QEMU's user-mode network (the
#       server gets 10.0.2.15 by DHCP and reaches the host's loopback at 10.0.2.2), and its
#       serial console appended to SERIAL_LOG (Redfish has no console). No CD drive: the
#       emulator adds an IDE one (hdc) when media is inserted, and removes it on eject. A domain
#       that already exists with that name and UUID is left as it is. Prints `uuid=UUID` and
#       `mac=MAC` (the NIC's, as Redfish's EthernetInterfaces show it).
#   emulator PORT USER PASSWORD WORKDIR
#       Starts sushy-emulator on 127.0.0.1:PORT for qemu:///system with HTTP basic auth
#       (USER/PASSWORD, a bcrypt htpasswd file in WORKDIR), detached, logging to
#       WORKDIR/emulator.log; waits until /redfish/v1/ answers and prints its pid. When the one
#       started earlier with this WORKDIR still runs on PORT, prints its pid again.
#   remove NAME
#       Destroys and undefines the domain, deletes its disks, and deletes the volumes the
#       emulator left in the `default` pool for it (ejected virtual media).
set -euo pipefail
# shellcheck source=lib/debian-initramfs.sh
. "$(dirname "$(readlink -f "$0")")/lib/debian-initramfs.sh"   # debian_tools

venv=${STRATUS_BM_VENV:-/var/cache/stratus-test/sushy-venv}
uri=qemu:///system
pool_dir=/var/lib/libvirt/images
# The venv's content; a change rebuilds it.
requirements="sushy-tools==2.2.0 libvirt-python==12.8.0"

log() { echo "baremetal-lab: $*" >&2; }
die() { echo "baremetal-lab: error: $*" >&2; exit 1; }
virsh() { command virsh -q -c "$uri" "$@"; }

# install, server and remove change what all servers share (packages, daemons, pools): one at
# a time, for tests that run in parallel.
lock() {
  mkdir -p /var/cache/stratus-test
  exec 9>/var/cache/stratus-test/baremetal-lab.lock
  flock 9
}

alive() { # PIDFILE NAME: whether the process in PIDFILE runs and is NAME
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

cmd_install() {
  # Not libvirt-daemon-system: it pulls in ~50 packages and upgrades systemd. qemu-utils with
  # qemu-system-x86, or installing the latter removes a newer qemu-utils (no qemu-img left).
  DEBIAN_APT_OPTS=--no-install-recommends debian_tools libvirt-daemon libvirt-daemon-driver-qemu \
    libvirt-clients libvirt-dev pkg-config gcc python3-venv xorriso isolinux syslinux-common \
    busybox-static cpio qemu-system-x86 qemu-utils
  getent group kvm >/dev/null || groupadd --system kvm
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  id libvirt-qemu >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin \
      -g libvirt-qemu -G kvm libvirt-qemu
  mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu "$pool_dir" /var/cache/libvirt /etc/libvirt
  local conf='user = "root"
group = "root"
security_driver = "none"'
  if [ "$(cat /etc/libvirt/qemu.conf 2>/dev/null)" != "$conf" ]; then
    log "writing /etc/libvirt/qemu.conf"
    echo "$conf" > /etc/libvirt/qemu.conf
    if alive /run/libvirtd.pid libvirtd; then
      log "restarting libvirtd for its new configuration"
      kill "$(cat /run/libvirtd.pid)"
      for _ in $(seq 1 50); do alive /run/libvirtd.pid libvirtd || break; sleep 0.1; done
    fi
  fi
  if ! alive /run/virtlogd.pid virtlogd; then
    log "starting virtlogd"
    virtlogd -d -p /run/virtlogd.pid 9>&-   # daemons must not keep our lock
  fi
  if ! alive /run/libvirtd.pid libvirtd; then
    log "starting libvirtd"
    libvirtd -d -p /run/libvirtd.pid 9>&-
  fi
  local ok=""
  for _ in $(seq 1 100); do
    if virsh list >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || die "libvirtd does not answer on $uri"
  if ! virsh pool-info default >/dev/null 2>&1; then
    log "defining the storage pool default ($pool_dir)"
    virsh pool-define-as default dir --target "$pool_dir" >/dev/null
  fi
  if [ "$(virsh pool-info default | awk '/^State:/ {print $2}')" != running ]; then
    virsh pool-start default >/dev/null
  fi
  virsh pool-autostart default >/dev/null 2>&1 || true
  if [ "$(cat "$venv/stratus-requirements" 2>/dev/null)" != "$requirements" ] ||
     ! "$venv/bin/python" -c 'import libvirt, sushy_tools' >/dev/null 2>&1; then
    log "creating the venv $venv ($requirements)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check $requirements >&2
    echo "$requirements" > "$venv/stratus-requirements"
  fi
}

pool_of_dir() { # DIR: the storage pool whose target is DIR, if any
  local p
  for p in $(virsh pool-list --all --name); do
    if [ "$(virsh pool-dumpxml "$p" | sed -n 's:.*<path>\(.*\)</path>.*:\1:p' | head -n 1)" = "$1" ]; then
      echo "$p"
      return
    fi
  done
}

# The emulator shows a disk in SimpleStorage (with its CapacityBytes) only when libvirt knows
# the file as a volume of a storage pool: a disk's directory gets a pool `stratus-disks-HASH`
# unless a pool covers it already; `remove` drops that pool with the directory's last disk.
disk_pool() { # DIR: makes sure a running pool covers DIR and knows its files
  local dir=$1 pool p
  for p in $(virsh pool-list --all --name | grep '^stratus-disks-' || true); do
    if [ ! -d "$(virsh pool-dumpxml "$p" | sed -n 's:.*<path>\(.*\)</path>.*:\1:p' | head -n 1)" ]; then
      virsh pool-destroy "$p" >/dev/null 2>&1 || true
      virsh pool-undefine "$p" >/dev/null 2>&1 || true
    fi
  done
  pool=$(pool_of_dir "$dir")
  if [ -z "$pool" ]; then
    pool="stratus-disks-$(echo -n "$dir" | sha256sum | cut -c1-12)"
    virsh pool-define-as "$pool" dir --target "$dir" >/dev/null
  fi
  [ "$(virsh pool-info "$pool" | awk '/^State:/ {print $2}')" = running ] ||
    virsh pool-start "$pool" >/dev/null
  virsh pool-refresh "$pool" >/dev/null
}

cmd_server() {
  [ $# -ge 4 ] && [ $# -le 6 ] || die "usage: server NAME UUID SERIAL_LOG DISK_PATH [DISK_MB] [MEM_MB]"
  local name=$1 uuid=$2 serial_log disk mb=${5:-3072} mem=${6:-768} existing
  serial_log=$(realpath -m "$3")
  disk=$(realpath -m "$4")
  existing=$(virsh domuuid "$name" 2>/dev/null) || existing=""
  [ -z "$existing" ] || [ "$existing" = "$uuid" ] ||
    die "the domain $name exists with another UUID ($existing)"
  mkdir -p "$(dirname "$serial_log")" "$(dirname "$disk")"
  if [ ! -e "$disk" ]; then
    log "creating the empty disk $disk ($mb MiB)"
    truncate -s "${mb}M" "$disk"
  fi
  disk_pool "$(dirname "$disk")"
  if [ -z "$existing" ]; then
    log "defining the domain $name ($uuid)"
    virsh define /dev/stdin >/dev/null <<XML
<domain type='qemu'>
  <name>$name</name>
  <uuid>$uuid</uuid>
  <memory unit='MiB'>$mem</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <log file='$serial_log' append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
  </devices>
</domain>
XML
  fi
  echo "uuid=$uuid"
  echo "mac=$(virsh domiflist "$name" | awk '{print $NF; exit}')"
}

cmd_emulator() {
  [ $# -eq 4 ] || die "usage: emulator PORT USER PASSWORD WORKDIR"
  local port=$1 user=$2 password=$3 workdir pid
  workdir=$(realpath -m "$4")
  [ -x "$venv/bin/sushy-emulator" ] || die "no sushy-emulator in $venv: run install first"
  mkdir -p "$workdir/tmp" "$workdir/state"
  # sushy-tools takes an Apache htpasswd file whose entries must be bcrypt ($2y$, $2a$ or $2b$;
  # anything else is refused when it starts). Cost 4: it checks the password on every request.
  BM_USER=$user BM_PASSWORD=$password "$venv/bin/python" - "$workdir/htpasswd" <<'PY'
import bcrypt, os, sys
user, password = os.environ["BM_USER"], os.environ["BM_PASSWORD"].encode()
try:
    entry = open(sys.argv[1]).read().strip()
    if entry.startswith(user + ":") and bcrypt.checkpw(password, entry.split(":", 1)[1].encode()):
        sys.exit(0)
except (OSError, ValueError):
    pass
with open(sys.argv[1] + ".new", "w") as f:
    f.write("%s:%s\n" % (user, bcrypt.hashpw(password, bcrypt.gensalt(rounds=4)).decode()))
os.replace(sys.argv[1] + ".new", sys.argv[1])
PY
  cat > "$workdir/emulator.conf" <<CONF
SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = $port
SUSHY_EMULATOR_LIBVIRT_URI = '$uri'
SUSHY_EMULATOR_AUTH_FILE = '$workdir/htpasswd'
SUSHY_EMULATOR_STATE_DIR = '$workdir/state'
CONF
  if alive "$workdir/emulator.pid" sushy-emulator &&
     [ "$(cat "$workdir/emulator.port" 2>/dev/null)" != "$port" ]; then
    pid=$(cat "$workdir/emulator.pid")
    log "stopping the sushy-emulator of $workdir on another port (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if alive "$workdir/emulator.pid" sushy-emulator; then
    pid=$(cat "$workdir/emulator.pid")
  else
    log "starting sushy-emulator on 127.0.0.1:$port (log $workdir/emulator.log)"
    # Detached, and with no stdout/stderr of ours, so a caller reading our stdout gets its EOF.
    # Virtual media are downloaded to TMPDIR (a directory per image, left behind on eject).
    (cd "$workdir" && TMPDIR="$workdir/tmp" exec setsid "$venv/bin/sushy-emulator" \
       --config "$workdir/emulator.conf" --port "$port" \
       </dev/null >>"$workdir/emulator.log" 2>&1) &
    pid=$!
    echo "$pid" > "$workdir/emulator.pid"
    echo "$port" > "$workdir/emulator.port"
  fi
  local code=""
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$workdir/emulator.log" >&2; die "sushy-emulator exited"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/redfish/v1/" || true)
    [ "$code" = 200 ] && break
    sleep 0.2
  done
  [ "$code" = 200 ] || die "sushy-emulator does not answer on 127.0.0.1:$port"
  echo "$pid"
}

cmd_remove() {
  [ $# -eq 1 ] || die "usage: remove NAME"
  local name=$1 uuid disks d v
  uuid=$(virsh domuuid "$name" 2>/dev/null) || { log "no domain $name"; return 0; }
  disks=$(virsh domblklist "$name" --details | awk '$2 == "disk" {print $4}')
  virsh destroy "$name" >/dev/null 2>&1 || true
  virsh undefine "$name" >/dev/null
  log "removed the domain $name ($uuid)"
  for d in $disks; do
    rm -f "$d"
    log "deleted $d"
    local dir pool others
    dir=$(dirname "$d")
    pool=$(pool_of_dir "$dir")
    [ -n "$pool" ] || continue
    others=$(for n in $(virsh list --all --name); do virsh domblklist "$n" --details; done |
             awk -v dir="$dir/" '$2 == "disk" && index($4, dir) == 1' | head -n 1)
    if [ -z "$others" ] && [ "${pool#stratus-disks-}" != "$pool" ]; then
      virsh pool-destroy "$pool" >/dev/null 2>&1 || true
      virsh pool-undefine "$pool" >/dev/null 2>&1 || true
      log "removed the storage pool $pool ($dir)"
    else
      virsh pool-refresh "$pool" >/dev/null 2>&1 || true
    fi
  done
  # The emulator uploads each inserted image to the pool as NAME-ext-UUID.img and leaves it there.
  for v in $(virsh vol-list default 2>/dev/null | awk '{print $1}' | grep -e "-$uuid\.img\$" || true); do
    virsh vol-delete --pool default "$v" >/dev/null
    log "deleted the volume $v"
  done
}

case "${1:-}" in
  install) shift; lock; cmd_install "$@" ;;
  server) shift; lock; cmd_server "$@" ;;
  emulator) shift; cmd_emulator "$@" ;;
  remove) shift; lock; cmd_remove "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
