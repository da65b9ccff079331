#!/usr/bin/env bash
# build-guest.sh builds the cached conformance guest and prints its directory.
#
# The guest is a Debian root filesystem (debootstrap minbase plus the iSCSI
# initiator, LIO's targetcli and the SCSI tools) with the Debian kernel's
# modules that the scenarios need, packed as an uncompressed initramfs
# (decompressing is slow under TCG). The result goes to
#   $LINUXVM_CACHE/guest-<key>/{vmlinuz,initramfs.cpio,kernel-version}
# where <key> hashes every input (see linuxvm_guest_key in common.sh), so a
# second run with the same inputs only prints the directory.
#
# Usage: build-guest.sh [--force]
# Needs root (debootstrap, chroot) and the Debian mirror.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

force=0
[ "${1:-}" = --force ] && force=1

key=$(linuxvm_guest_key)
out="$LINUXVM_CACHE/guest-$key"
if [ $force -eq 0 ] && [ -s "$out/initramfs.cpio" ] && [ -s "$out/vmlinuz" ]; then
	echo "$out"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || linuxvm_die "building the guest needs root (debootstrap and chroot)"
linuxvm_host_tools
command -v dpkg-deb >/dev/null || linuxvm_die "dpkg-deb is missing"

mkdir -p "$LINUXVM_CACHE"
exec 9>"$LINUXVM_CACHE/build.lock"
flock 9
# Another build may have finished while this one waited for the lock.
if [ $force -eq 0 ] && [ -s "$out/initramfs.cpio" ] && [ -s "$out/vmlinuz" ]; then
	echo "$out"
	exit 0
fi

start=$(date +%s)
work="$LINUXVM_CACHE/work"
root="$work/root"
debs="$LINUXVM_CACHE/debs"

unmount_chroot() {
	local m
	for m in var/cache/apt/archives dev/pts dev sys proc; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
	done
	return 0
}
trap unmount_chroot EXIT

unmount_chroot
rm -rf "$work"
mkdir -p "$root" "$debs"

linuxvm_log "debootstrap $GUEST_SUITE (minbase) from $GUEST_MIRROR"
debootstrap --variant=minbase --cache-dir="$debs" "$GUEST_SUITE" "$root" "$GUEST_MIRROR" \
	>"$work/debootstrap.log" 2>&1 || {
	tail -n 30 "$work/debootstrap.log" >&2
	linuxvm_die "debootstrap failed (log: $work/debootstrap.log)"
}

mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount --bind "$debs" "$root/var/cache/apt/archives"
# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
printf 'deb %s %s main\n' "$GUEST_MIRROR" "$GUEST_SUITE" >"$root/etc/apt/sources.list"

in_root() { LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"; }

linuxvm_log "installing ${GUEST_PACKAGES[*]}"
in_root apt-get update -qq >"$work/apt.log" 2>&1 || {
	tail -n 30 "$work/apt.log" >&2
	linuxvm_die "apt-get update in the guest root failed"
}
in_root apt-get install -y -q --no-install-recommends "${GUEST_PACKAGES[@]}" >>"$work/apt.log" 2>&1 || {
	tail -n 30 "$work/apt.log" >&2
	linuxvm_die "apt-get install in the guest root failed (log: $work/apt.log)"
}

# The kernel: the package linux-image-amd64 points at, unpacked beside the
# root so that only the needed modules go into the initramfs.
kpkg=$(in_root apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || linuxvm_die "cannot resolve linux-image-amd64 to a kernel package"
linuxvm_log "kernel package $kpkg"
mkdir -p "$root/tmp/kdeb"
in_root sh -c "cd /tmp/kdeb && apt-get download -q $kpkg" >>"$work/apt.log" 2>&1 ||
	linuxvm_die "downloading $kpkg failed"
kx="$work/kernel"
mkdir -p "$kx"
dpkg-deb -x "$root"/tmp/kdeb/*.deb "$kx"
rm -rf "$root/tmp/kdeb"
kver=$(ls "$kx/lib/modules")
[ -f "$kx/boot/vmlinuz-$kver" ] || linuxvm_die "no vmlinuz-$kver in $kpkg"
depmod -b "$kx" "$kver"

mods=()
for m in "${GUEST_MODULES[@]}"; do
	deps=$(modprobe -d "$kx" -S "$kver" --show-depends "$m" 2>&1) ||
		linuxvm_die "module $m not found in $kpkg: $deps"
	while read -r kind path _; do
		[ "$kind" = insmod ] && mods+=("${path#"$kx"}")
	done <<<"$deps"
done
kmods="$root/lib/modules/$kver"
rm -rf "$root/lib/modules"
mkdir -p "$kmods"
for f in modules.order modules.builtin modules.builtin.modinfo; do
	[ -f "$kx/lib/modules/$kver/$f" ] && cp "$kx/lib/modules/$kver/$f" "$kmods/"
done
printf '%s\n' "${mods[@]}" | sort -u | while read -r p; do
	mkdir -p "$root$(dirname "$p")"
	cp "$kx$p" "$root$p"
done
depmod -b "$root" "$kver"
linuxvm_log "$(printf '%s\n' "${mods[@]}" | sort -u | wc -l) kernel modules copied"

# Guest configuration: a fixed initiator name, the init, no package caches.
echo "InitiatorName=iqn.2025-01.io.odxtgt:guest" >"$root/etc/iscsi/initiatorname.iscsi"
echo odxtgt-guest >"$root/etc/hostname"
printf '127.0.0.1 localhost odxtgt-guest\n' >"$root/etc/hosts"
in_root dbus-uuidgen --ensure=/etc/machine-id
in_root dpkg-query -W -f '${Package} ${Version}\n' >"$work/packages.txt"
install -m 755 "$LINUXVM_DIR/guest-init.sh" "$root/init"
mkdir -p "$root/odxin" "$root/odxout"

unmount_chroot
rm -f "$root/usr/sbin/policy-rc.d"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
	"$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale \
	"$root"/var/log/*.log "${root:?}"/boot
mkdir -p "$root/var/lib/apt/lists/partial"

linuxvm_log "packing the initramfs"
stage="$LINUXVM_CACHE/guest-$key.tmp"
rm -rf "$stage"
mkdir -p "$stage"
(cd "$root" && find . -mount -print0 | cpio --null -o -H newc --quiet) >"$stage/initramfs.cpio"
cp "$kx/boot/vmlinuz-$kver" "$stage/vmlinuz"
echo "$kver" >"$stage/kernel-version"
mv "$work/packages.txt" "$stage/packages.txt"
rm -rf "$out"
mv "$stage" "$out"
rm -rf "$work"

# Keep only this guest: older ones are dead weight.
for d in "$LINUXVM_CACHE"/guest-* "$LINUXVM_CACHE"/kvm-probe-*; do
	[ -e "$d" ] || continue
	case $d in "$out" | *-"guest-$key") ;; *) rm -rf "$d" ;; esac
done
linuxvm_log "guest $key built in $(($(date +%s) - start))s: kernel $kver, initramfs $(du -m "$out/initramfs.cpio" | cut -f1) MiB"
echo "$out"
