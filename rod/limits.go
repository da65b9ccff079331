package rod

import "time"

// Copy manager limits, reported identically by RECEIVE COPY OPERATING
// PARAMETERS (SPC-4 6.18.4) and the Third-party Copy VPD page (SPC-4
// 7.8.17), and enforced by the parameter list parser.
const (
	// MaxCSCDs is MAXIMUM CSCD DESCRIPTOR COUNT.
	MaxCSCDs = 64
	// MaxSegments is MAXIMUM SEGMENT DESCRIPTOR COUNT.
	MaxSegments = 256
	// MaxDescriptorListLength is MAXIMUM DESCRIPTOR LIST LENGTH: the
	// CSCD and segment descriptor lists together, in bytes.
	MaxDescriptorListLength = 16 << 10
	// MaxSegmentLength is MAXIMUM SEGMENT LENGTH: the most bytes one
	// segment may write.
	MaxSegmentLength = 1 << 30
	// MaxInlineDataLength is MAXIMUM INLINE DATA LENGTH: odxtgt takes no
	// inline or embedded data.
	MaxInlineDataLength = 0
	// MaxConcurrentCopies is TOTAL CONCURRENT COPIES and MAXIMUM
	// IDENTIFIED CONCURRENT COPIES: the copies that may run at once in
	// the whole process.
	MaxConcurrentCopies = 255
)

// maxHeldLists bounds the completed lists a nexus keeps on one logical
// unit for RECEIVE COPY RESULTS; past it the oldest is dropped.
const maxHeldLists = 64

// DefaultHeldListTimeout is how long a completed list's status stays
// readable when nobody reads it.
const DefaultHeldListTimeout = 5 * time.Minute

// Descriptor type codes the copy manager implements, in the order the
// operating parameters list them (SPC-4 table 127 and 139).
const (
	SegmentBlockToBlock       = 0x02
	SegmentVerifyCSCD         = 0x07
	SegmentBlockToBlockOffset = 0x0A
	CSCDIdentification        = 0xE4
)

// ImplementedDescriptors lists the implemented descriptor type codes.
var ImplementedDescriptors = []byte{SegmentBlockToBlock, SegmentVerifyCSCD, SegmentBlockToBlockOffset, CSCDIdentification}

// CSCDThisLU is the CSCD descriptor ID that names the logical unit that
// received the command (SPC-4 table 122).
const CSCDThisLU = 0xFFFF
