#!/bin/sh
# /init of the conformance guest (PID 1, runs from the initramfs).
#
# It mounts the kernel file systems, loads the virtio-9p modules, mounts the
# two host shares (odxin: read-only inputs, odxout: results) and hands over
# to odxin/linuxvm/guest-boot.sh, which lives on the share so that changing it
# does not rebuild the guest. Whatever happens, the guest powers off at the
# end; the host reads the exit code from odxout/exit-code.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run

poweroff_now() {
	sync
	umount /odxout 2>/dev/null
	echo o >/proc/sysrq-trigger
	sleep 10
	exit 1 # PID 1 exiting panics; panic=-1 and -no-reboot end QEMU.
}

for m in virtio_pci 9pnet_virtio 9p; do
	modprobe "$m" || echo "guest-init: modprobe $m failed"
done
opts=trans=virtio,version=9p2000.L,msize=262144,cache=none
if ! mount -t 9p -o "$opts,ro" odxin /odxin || ! mount -t 9p -o "$opts" odxout /odxout; then
	echo "guest-init: cannot mount the 9p shares odxin/odxout"
	poweroff_now
fi

/bin/bash /odxin/linuxvm/guest-boot.sh
rc=$?
echo "$rc" >/odxout/exit-code
echo "guest-init: exit code $rc"
poweroff_now
