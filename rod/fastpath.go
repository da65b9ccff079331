package rod

import (
	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// errNotSupported is what a fast path returns for a pair of stores or a
// range it cannot handle.
var errNotSupported = backstore.ErrNotSupported

// offloaders are the fast paths in the order a copy tries them: a clone
// shares the blocks (reflink), copy_file_range lets the kernel move them.
var offloaders = []offloader{
	{
		count: func(c *pathCounts) *uint64 { return &c.clone },
		copy: func(dst, src *scsi.LU, dstOff, srcOff, n int64, fua bool) error {
			return backstore.CloneRange(dst.Store, dstOff, src.Store, srcOff, n, fua)
		},
	},
	{
		count: func(c *pathCounts) *uint64 { return &c.copyRange },
		copy: func(dst, src *scsi.LU, dstOff, srcOff, n int64, fua bool) error {
			return backstore.CopyRange(dst.Store, dstOff, src.Store, srcOff, n, fua)
		},
	},
}
