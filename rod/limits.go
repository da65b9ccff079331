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
	// MaxInlineDataLength is MAXIMUM INLINE DATA LENGTH, which SPC-4
	// 7.8.17.5 requires to be zero for a copy manager without the
	// inline-to-stream segment (04h).
	MaxInlineDataLength = 0
	// InlineDataLimit is the inline data the parser takes all the same:
	// room for the ROD tokens of eight ROD CSCD descriptors, which carry
	// their tokens there (SPC-4 6.4.5.9), the only use the copy manager
	// has for inline data.
	InlineDataLimit = 8 * TokenLength
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
	CSCDROD                   = 0xFE
)

// ImplementedDescriptors lists the implemented descriptor type codes.
var ImplementedDescriptors = []byte{SegmentBlockToBlock, SegmentVerifyCSCD, SegmentBlockToBlockOffset, CSCDIdentification, CSCDROD}

// CSCD descriptor IDs with a meaning of their own (SPC-4 table 148);
// 0000h to maxCSCDIndex name the descriptors of the list by position.
const (
	maxCSCDIndex = 0x07FF
	// CSCDTokenLU, only as the ROD PRODUCER CSCD DESCRIPTOR ID of a ROD
	// CSCD descriptor, names the copy manager of the logical unit the
	// token itself names; in a segment descriptor it names nothing.
	CSCDTokenLU = 0xF800
	// CSCDThisLU names the logical unit that received the command.
	CSCDThisLU = 0xFFFF
)

// SupportedCSCDIDs are the CSCD descriptor IDs besides list positions the
// copy manager takes, for the Supported CSCD IDs descriptor of the
// Third-party Copy VPD page (SPC-4 7.8.17.6), in ascending order.
var SupportedCSCDIDs = []uint16{CSCDTokenLU, CSCDThisLU}
