# shellcheck shell=bash disable=SC2034 # the settings are used by the scripts that source this
# Host-side settings shared by build-guest.sh and run.sh. Sourced, never run.
#
# Everything large (the root filesystem, the kernel, the initramfs, downloaded
# packages, run output) lives under LINUXVM_CACHE, outside the repository.

LINUXVM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$LINUXVM_DIR/../.." && pwd)
LINUXVM_CACHE=${ODXTGT_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/odxtgt}/linuxvm

# Guest distribution and the mirror it is bootstrapped from.
GUEST_SUITE=${ODXTGT_VM_SUITE:-bookworm}
GUEST_MIRROR=${ODXTGT_VM_MIRROR:-http://deb.debian.org/debian}

# Packages installed into the guest on top of debootstrap's minbase.
GUEST_PACKAGES=(
	open-iscsi sg3-utils ddpt lsscsi fio tgt dmsetup stress-ng
	targetcli-fb python3-rtslib-fb python3-configshell-fb python3-gi python3-dbus dbus
	e2fsprogs util-linux kmod iproute2 procps psmisc coreutils
)

# Kernel modules copied (with their dependencies) from the Debian kernel
# package. Nothing loads modules automatically in the guest: guest-init.sh
# loads the virtio-9p ones, guest-boot.sh the rest (targetcli-fb loads
# target_core_pscsi and target_core_user itself; the device-mapper ones,
# dm_mod with its error target and dm_flakey, are loaded by the scenario
# that uses them, which fails naming them when they are missing).
GUEST_MODULES=(
	virtio_pci 9pnet_virtio 9p configfs
	sd_mod sg iscsi_tcp target_core_mod target_core_file target_core_iblock
	iscsi_target_mod target_core_pscsi target_core_user ext4 loop crc32c_generic crc32c_intel
	dm_mod dm_flakey
)

# Host packages the harness needs, with the command that proves each is there.
HOST_PACKAGES=(qemu-system-x86 debootstrap cpio kmod)
HOST_COMMANDS=(qemu-system-x86_64 debootstrap cpio depmod)

linuxvm_log() { printf '[linuxvm] %s\n' "$*" >&2; }
linuxvm_die() { printf '[linuxvm] FATAL: %s\n' "$*" >&2; exit 1; }

# linuxvm_host_tools installs the host packages when one of their commands is
# missing, and fails naming what is still missing when that is impossible.
linuxvm_host_tools() {
	local missing=() i
	for i in "${!HOST_COMMANDS[@]}"; do
		command -v "${HOST_COMMANDS[$i]}" >/dev/null 2>&1 || missing+=("${HOST_PACKAGES[$i]}")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		linuxvm_log "installing host packages: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2 || linuxvm_log "apt-get update reported errors; trying the install anyway"
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
			linuxvm_log "apt-get install ${missing[*]} failed"
	fi
	missing=()
	for i in "${!HOST_COMMANDS[@]}"; do
		command -v "${HOST_COMMANDS[$i]}" >/dev/null 2>&1 || missing+=("${HOST_COMMANDS[$i]} (Debian package ${HOST_PACKAGES[$i]})")
	done
	[ ${#missing[@]} -eq 0 ] ||
		linuxvm_die "cannot run the Linux VM conformance suite: missing ${missing[*]}; install them as root with apt-get"
}

# linuxvm_guest_key prints a hash of everything that determines the guest
# image: the build script, the guest init and the settings above.
linuxvm_guest_key() {
	{
		cat "$LINUXVM_DIR/build-guest.sh" "$LINUXVM_DIR/guest-init.sh"
		printf '%s\n' "$GUEST_SUITE" "$GUEST_MIRROR" "${GUEST_PACKAGES[@]}" "${GUEST_MODULES[@]}"
	} | sha256sum | cut -c1-16
}
