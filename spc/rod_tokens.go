package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
)

// Service actions of the third-party copy IN operation code that report
// on ROD tokens (SPC-4 6.19, 6.20).
const (
	saRODTokenInformation = 0x07
	saReportAllRODTokens  = 0x08
	// POPULATE TOKEN and WRITE USING TOKEN, as RESPONSE TO SERVICE ACTION.
	saPopulateToken = 0x10
	// COPY OPERATION STATUS 03h: the ROD token represents fewer blocks
	// than asked for (SPC-4 6.18.6; Windows reads it as "completed with
	// residual data" and goes on with the rest).
	lid4CompletedPartial = 0x03
	// transferCountBlocks is TRANSFER COUNT UNITS F1h: logical blocks.
	transferCountBlocks = 0xF1
)

func tokenInfoCommands(m *rod.Manager) []scsi.CommandDesc {
	in := func(name string, sa byte, h scsi.Handler, idBytes bool) scsi.CommandDesc {
		usage := []byte{0xFF, sa, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, control}
		if idBytes {
			usage[2], usage[3], usage[4], usage[5] = 0xFF, 0xFF, 0xFF, 0xFF
		}
		return scsi.CommandDesc{
			Name: name, Opcode: opThirdPartyCopyIn, ServiceAction: uint16(sa), HasServiceAction: true,
			Usage: usage, Direction: scsi.DirIn, Handler: h,
			NominalTimeout: nominalTimeout, RecommendedTimeout: recommendedTimeout,
		}
	}
	return []scsi.CommandDesc{
		in("RECEIVE ROD TOKEN INFORMATION", saRODTokenInformation, rodTokenInformation(m), true),
		in("REPORT ALL ROD TOKENS", saReportAllRODTokens, reportAllRODTokens(m), false),
	}
}

// rodTokenInformation is RECEIVE ROD TOKEN INFORMATION (SPC-4 6.19): the
// RECEIVE COPY STATUS (LID4) data of a list with the transfer count in
// logical blocks (units F1h, which Windows requires), followed by the ROD
// token descriptors: after a POPULATE TOKEN that completed, one of 514
// bytes, two reserved bytes and the token. Reading a completed list
// releases it.
func rodTokenInformation(m *rod.Manager) scsi.Handler {
	return func(cmd *scsi.Command) error {
		id, alloc := copyResultsCDB(cmd.CDB, true)
		p, ok := m.Status(cmd.Nexus, cmd.LU(), id, true)
		if !ok {
			return noSuchList(id)
		}
		b := lid4Status(p, cmd.LU().Mode().DSense)
		if p.ServiceAction == saPopulateToken || p.ServiceAction == saPopulateToken+1 {
			b[15] = transferCountBlocks
			binary.BigEndian.PutUint64(b[16:], p.Blocks)
			binary.BigEndian.PutUint16(b[24:], 0) // SEGMENTS PROCESSED: none, there are no segments
			if p.Done && p.Status == scsi.StatusGood && p.Partial {
				b[5] = lid4CompletedPartial
			}
		}
		var desc []byte
		if p.Done && p.Token != nil && p.Status == scsi.StatusGood {
			desc = make([]byte, 2, 2+rod.TokenLength)
			desc = append(desc, p.Token[:]...)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(desc)))
		b = append(b, desc...)
		binary.BigEndian.PutUint32(b, uint32(len(b)-4))
		cmd.SetDataIn(b, alloc)
		return nil
	}
}

// rodManagementTokenLength is the length of a ROD management token: the
// first 96 bytes of a ROD token, up to and including its ROD token type
// specific data (SPC-4 6.20.2; FreeBSD CTL sends them, ddptctl reads them).
const rodManagementTokenLength = 96

// reportAllRODTokens is REPORT ALL ROD TOKENS (SPC-4 6.20): a ROD
// management token for each live token this I_T nexus made through this
// logical unit.
func reportAllRODTokens(m *rod.Manager) scsi.Handler {
	return func(cmd *scsi.Command) error {
		alloc := int(binary.BigEndian.Uint32(cmd.CDB[10:]))
		toks := m.TokensOf(cmd.Nexus, cmd.LU())
		b := make([]byte, 8, 8+len(toks)*rodManagementTokenLength)
		for _, t := range toks {
			b = append(b, t[:rodManagementTokenLength]...)
		}
		binary.BigEndian.PutUint32(b, uint32(len(b)-4))
		cmd.SetDataIn(b, alloc)
		return nil
	}
}

// Third-party copy descriptor types of ROD tokens (SPC-4 table 589).
const (
	tpcBlockDeviceRODLimits = 0x0000
	tpcRODTokenFeatures     = 0x0106
	tpcSupportedRODTypes    = 0x0108
)

// blockDeviceRODLimits is the Block Device ROD Token Limits descriptor
// (SBC-3 6.6.7), which Windows requires as the first descriptor of the
// page (it reads 255 bytes and looks at nothing else). Counts are in
// logical blocks of lu.
func blockDeviceRODLimits(m *rod.Manager, lu *scsi.LU) []byte {
	bs := uint64(lu.Store.BlockSize())
	def, most := m.TokenTimeouts()
	b := make([]byte, 0x20)
	binary.BigEndian.PutUint16(b[6:], rod.MaxRangeDescriptors)
	binary.BigEndian.PutUint32(b[8:], uint32(most.Seconds()))
	binary.BigEndian.PutUint32(b[12:], uint32(def.Seconds()))
	binary.BigEndian.PutUint64(b[16:], rod.MaxTokenBytes/bs)        // MAXIMUM TOKEN TRANSFER SIZE
	binary.BigEndian.PutUint64(b[24:], rod.OptimalTransferBytes/bs) // OPTIMAL TRANSFER COUNT
	return b
}

// rodTokenFeatures is the ROD Token Features descriptor (SPC-4 7.8.17.7)
// with its block device type specific features: tokens are valid only in
// this process (no remote tokens) and live while used within their
// inactivity timeout.
func rodTokenFeatures(m *rod.Manager) []byte {
	_, most := m.TokenTimeouts()
	b := make([]byte, 44, 44+48)
	binary.BigEndian.PutUint32(b[12:], 1)                          // MINIMUM TOKEN LIFETIME
	binary.BigEndian.PutUint32(b[16:], 0xFFFFFFFF)                 // MAXIMUM TOKEN LIFETIME: while in use
	binary.BigEndian.PutUint32(b[20:], uint32(most.Seconds()))     // MAXIMUM TOKEN INACTIVITY TIMEOUT
	binary.BigEndian.PutUint16(b[42:], 48)                         // TYPE SPECIFIC FEATURES LENGTH
	blk := make([]byte, 48)                                        // block device ROD token features
	binary.BigEndian.PutUint16(blk[2:], 44)                        // DESCRIPTOR LENGTH
	binary.BigEndian.PutUint64(blk[8:], rod.MaxTokenBytes)         // MAXIMUM BYTES IN BLOCK ROD
	binary.BigEndian.PutUint64(blk[16:], rod.OptimalTransferBytes) // OPTIMAL BYTES IN BLOCK ROD TRANSFER
	binary.BigEndian.PutUint64(blk[24:], rod.MaxTokenBytes)        // OPTIMAL BYTES TO TOKEN PER SEGMENT
	binary.BigEndian.PutUint64(blk[32:], rod.OptimalTransferBytes) // OPTIMAL BYTES FROM TOKEN PER SEGMENT
	return append(b, blk...)
}

// supportedRODTypes is the Supported ROD Types descriptor (SPC-4
// 7.8.17.8): every type POPULATE TOKEN makes (TOKEN OUT) and WRITE USING
// TOKEN and the ROD CSCD descriptors of EXTENDED COPY take (TOKEN IN), the
// point-in-time default preferred. ECPY_INT is zero for all: EXTENDED
// COPY populates no RODs of its own.
func supportedRODTypes() []byte {
	types := []struct {
		rodType    uint32
		flags      byte
		preference uint16
	}{
		{rod.RODTypeAccessUponReference, 0x03, 1},
		{rod.RODTypePointInTime, 0x03, 3},
		{rod.RODTypePointInTimeChange, 0x03, 2},
		{rod.RODTypeBlockZero, 0x02, 0},
	}
	b := make([]byte, 4, 4+64*len(types))
	binary.BigEndian.PutUint16(b[2:], uint16(64*len(types)))
	for _, t := range types {
		d := make([]byte, 64)
		binary.BigEndian.PutUint32(d, t.rodType)
		d[4] = t.flags
		binary.BigEndian.PutUint16(d[6:], t.preference)
		b = append(b, d...)
	}
	return b
}
