package spc_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
	"github.com/odxtgt/odxtgt/spc"
)

// Third-party copy operation codes and service actions (SPC-4 tables
// in 6.3-6.5 and 6.18), spelled out independently of the package.
const (
	xcOpOut            = 0x83
	xcOpIn             = 0x84
	xcSALID1           = 0x00
	xcSALID4           = 0x01
	xcSAAbort          = 0x1C
	xcSAStatusLID1     = 0x00
	xcSAOperatingParms = 0x03
	xcSAFailureDetails = 0x04
	xcSAStatusLID4     = 0x05
	xcBlock            = 512
)

var xcSerials atomic.Uint64

// xcEnv is logical units served by spc's commands with a copy manager,
// reached from one I_T nexus. (The copies need no block commands: they
// reach the media through internal tasks. Leaving sbc out also keeps
// this test independent of sbc.Commands' signature.)
type xcEnv struct {
	t      *testing.T
	m      *rod.Manager
	table  *scsi.Table
	lus    []*scsi.LU
	stores []backstore.Store
	serial []string
	nexus  *scsi.Nexus
}

func xcLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newXCEnv serves the stores (64 KiB memory stores when none are given
// for a slot) and consumes the power-on unit attentions.
func newXCEnv(t *testing.T, stores ...backstore.Store) *xcEnv {
	e := &xcEnv{t: t, m: rod.NewManager(rod.Config{Logger: xcLogger()})}
	table, err := scsi.NewTable(spc.Commands(spc.Options{Copy: e.m}))
	require.NoError(t, err)
	e.table = table
	lus := map[uint64]*scsi.LU{}
	for i, s := range stores {
		serial := fmt.Sprintf("%016x", 0xC0FFEE00000+xcSerials.Add(1))
		data := xcPattern(int(s.Size()), byte(i+1))
		require.NoError(t, s.WriteAt(data, 0, false))
		lu := scsi.NewLU(scsi.LUConfig{
			Identity: scsi.Identity{Name: fmt.Sprintf("disk%d", i), Vendor: spc.DefaultVendor, Product: "xcopy", Revision: spc.DefaultRevision, Serial: serial},
			Store:    s, Table: table, Logger: xcLogger(), Events: e.m,
		})
		e.lus, e.stores, e.serial = append(e.lus, lu), append(e.stores, s), append(e.serial, serial)
		lus[uint64(i)] = lu
	}
	e.nexus = scsi.NewNexus(scsi.Nexus{InitiatorPort: "iqn.2025-01.test:xc,i,0x1", TargetPort: "iqn.2025-01.test:tgt,t,0x1", TargetName: "iqn.2025-01.test:tgt"},
		lus, scsi.NewAbsentLU(table, xcLogger()))
	for i := range e.lus {
		e.do(i, []byte{0x00, 0, 0, 0, 0, 0}, nil)
	}
	return e
}

func xcMem(blocks int) backstore.Store { return backstore.NewMemory(int64(blocks)*xcBlock, xcBlock) }

func xcPattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7) ^ seed ^ byte(i>>9)
	}
	return p
}

// do submits one command to LUN lun and waits for it.
func (e *xcEnv) do(lun int, cdb, dataOut []byte) *scsi.Command {
	c := &scsi.Command{CDB: cdb, LUN: uint64(lun), Nexus: e.nexus, Attr: scsi.TaskSimple, DataOut: dataOut, ExpectedIn: 1 << 20}
	done := make(chan struct{})
	scsi.Submit(c, func(*scsi.Command) { close(done) })
	<-done
	return c
}

func (e *xcEnv) good(c *scsi.Command) {
	e.t.Helper()
	if c.Status != scsi.StatusGood {
		s, _ := scsi.ParseSense(c.Sense)
		require.FailNow(e.t, "command failed", "CDB % x: status %v, sense %v", c.CDB, c.Status, s)
	}
}

func (e *xcEnv) sense(c *scsi.Command, key scsi.SenseKey, code scsi.ASC) *scsi.Sense {
	e.t.Helper()
	require.Equal(e.t, scsi.StatusCheckCondition, c.Status, "CDB % x", c.CDB)
	s, err := scsi.ParseSense(c.Sense)
	require.NoError(e.t, err)
	require.Equal(e.t, key, s.Key, "%v", s)
	require.Equal(e.t, code, s.Code, "%v", s)
	return s
}

func (e *xcEnv) contents(i int) []byte {
	b := make([]byte, e.stores[i].Size())
	require.NoError(e.t, e.stores[i].ReadAt(b, 0))
	return b
}

// cscd is an identification CSCD descriptor (SPC-4 6.4.5.6) naming LU i
// by its NAA designator, block device type, DISK BLOCK LENGTH 512.
func (e *xcEnv) cscd(i int) []byte {
	d := make([]byte, 32)
	d[0] = 0xE4
	d[4], d[5], d[7] = 0x01, 0x03, 16 // binary, LU association, NAA
	naa := scsi.NAADesignator(e.serial[i])
	copy(d[8:], naa[:])
	d[30] = xcBlock >> 8
	return d
}

// seg02 is a block to block segment descriptor (SPC-4 6.4.6.5).
func seg02(src, dst uint16, blocks uint16, srcLBA, dstLBA uint64) []byte {
	d := make([]byte, 28)
	d[0] = 0x02
	binary.BigEndian.PutUint16(d[2:], 0x18)
	binary.BigEndian.PutUint16(d[4:], src)
	binary.BigEndian.PutUint16(d[6:], dst)
	binary.BigEndian.PutUint16(d[10:], blocks)
	binary.BigEndian.PutUint64(d[12:], srcLBA)
	binary.BigEndian.PutUint64(d[20:], dstLBA)
	return d
}

// lid1List is an EXTENDED COPY (LID1) parameter list (SPC-4 6.4.3).
func lid1List(id byte, usage byte, cscds, segs [][]byte) []byte {
	c, s := bytes.Join(cscds, nil), bytes.Join(segs, nil)
	h := make([]byte, 16)
	h[0], h[1] = id, usage<<3
	binary.BigEndian.PutUint16(h[2:], uint16(len(c)))
	binary.BigEndian.PutUint32(h[8:], uint32(len(s)))
	return append(append(h, c...), s...)
}

// lid4List is an EXTENDED COPY (LID4) parameter list (SPC-4 6.5.3).
func lid4List(id uint32, usage byte, immed bool, cscds, segs [][]byte) []byte {
	c, s := bytes.Join(cscds, nil), bytes.Join(segs, nil)
	h := make([]byte, 48)
	h[0], h[1] = 0x01, usage<<3
	if immed {
		h[15] = 0x01
	}
	binary.BigEndian.PutUint32(h[20:], id)
	binary.BigEndian.PutUint16(h[42:], uint16(len(c)))
	binary.BigEndian.PutUint16(h[44:], uint16(len(s)))
	return append(append(h, c...), s...)
}

func xcopyCDB(sa byte, n int) []byte {
	c := make([]byte, 16)
	c[0], c[1] = xcOpOut, sa
	binary.BigEndian.PutUint32(c[10:], uint32(n))
	return c
}

func abortCDB(id uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = xcOpOut, xcSAAbort
	binary.BigEndian.PutUint32(c[2:], id)
	return c
}

// resultsCDB is RECEIVE COPY RESULTS with service action sa: a one-byte
// list identifier for the LID1 service actions, four bytes for LID4.
func resultsCDB(sa byte, id uint32, alloc uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = xcOpIn, sa
	if sa == xcSAStatusLID4 {
		binary.BigEndian.PutUint32(c[2:], id)
	} else {
		c[2] = byte(id)
	}
	binary.BigEndian.PutUint32(c[10:], alloc)
	return c
}

func (e *xcEnv) xcopy(lun int, lid4 bool, list []byte) *scsi.Command {
	sa := byte(xcSALID1)
	if lid4 {
		sa = xcSALID4
	}
	return e.do(lun, xcopyCDB(sa, len(list)), list)
}

// lid4Status reads RECEIVE COPY STATUS (LID4) and checks its framing.
func (e *xcEnv) lid4Status(id uint32) []byte {
	e.t.Helper()
	c := e.do(0, resultsCDB(xcSAStatusLID4, id, 1024), nil)
	e.good(c)
	b := c.DataIn
	require.GreaterOrEqual(e.t, len(b), 32)
	require.Equal(e.t, len(b)-4, int(binary.BigEndian.Uint32(b)), "AVAILABLE DATA")
	require.Equal(e.t, int(b[13]), len(b)-32, "LENGTH OF THE SENSE DATA FIELD")
	require.Equal(e.t, b[13], b[14], "SENSE DATA LENGTH")
	return b
}

// blockWrites makes the first write, clone or copy into f wait until
// release is closed; started is closed when it begins.
func blockWrites(f *backstore.Fault) (started, release chan struct{}) {
	started, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.Inject(func(op backstore.Op) error {
		switch op.Kind {
		case backstore.OpWrite, backstore.OpClone, backstore.OpCopy:
			once.Do(func() {
				close(started)
				<-release
			})
		}
		return nil
	})
	return started, release
}

func TestXcopyLID1(t *testing.T) {
	e := newXCEnv(t, xcMem(128), xcMem(128))
	want := e.contents(1)
	copy(want[10*xcBlock:], e.contents(0)[5*xcBlock:13*xcBlock])
	list := lid1List(3, 0, [][]byte{e.cscd(0), e.cscd(1)}, [][]byte{seg02(0, 1, 8, 5, 10)})
	e.good(e.xcopy(0, false, list))
	require.True(t, bytes.Equal(want, e.contents(1)), "copied")

	// RECEIVE COPY STATUS (LID1) (SPC-4 6.18.2) of the held list.
	c := e.do(0, resultsCDB(xcSAStatusLID1, 3, 0xFF), nil)
	e.good(c)
	require.Equal(t, []byte{0, 0, 0, 8, 0x01, 0, 1, 0x00, 0, 0, 0x10, 0}, c.DataIn, "completed, 1 segment, 4096 bytes")
	// Reading a completed list's status released it.
	s := e.sense(e.do(0, resultsCDB(xcSAStatusLID1, 3, 0xFF), nil), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)
	require.Equal(t, []byte{0xC0, 0, 2}, s.SenseKeySpecific[:])
	// The allocation length truncates.
	e.good(e.xcopy(0, false, list))
	c = e.do(0, resultsCDB(xcSAStatusLID1, 3, 5), nil)
	e.good(c)
	require.Equal(t, []byte{0, 0, 0, 8, 0x01}, c.DataIn)
}

func TestXcopyLID4(t *testing.T) {
	for _, immed := range []bool{false, true} {
		t.Run(fmt.Sprintf("IMMED=%v", immed), func(t *testing.T) {
			e := newXCEnv(t, xcMem(4096), xcMem(4096))
			want := e.contents(1)
			copy(want[100*xcBlock:], e.contents(0)[0:2000*xcBlock])
			copy(want[3000*xcBlock:], e.contents(1)[7*xcBlock:9*xcBlock])
			const id = 0x01020304
			list := lid4List(id, 0, immed, [][]byte{e.cscd(0), e.cscd(1)}, [][]byte{seg02(0, 1, 2000, 0, 100), seg02(1, 1, 2, 7, 3000)})
			e.good(e.xcopy(0, true, list))
			var b []byte
			deadline := time.Now().Add(10 * time.Second)
			for {
				b = e.lid4Status(id)
				require.Equal(t, byte(xcSALID4), b[4]&0x1F, "RESPONSE TO SERVICE ACTION")
				if b[5] != 0x12 {
					break
				}
				require.True(t, immed, "only an IMMED copy runs in the background")
				require.NotZero(t, binary.BigEndian.Uint32(b[8:]), "ESTIMATED STATUS UPDATE DELAY")
				require.True(t, time.Now().Before(deadline), "the copy never completed")
				time.Sleep(time.Millisecond)
			}
			require.Equal(t, byte(0x01), b[5]&0x7F, "COPY OPERATION STATUS: completed without errors")
			require.Equal(t, byte(scsi.StatusGood), b[12], "EXTENDED COPY COMPLETION STATUS")
			require.Equal(t, byte(0x00), b[15], "TRANSFER COUNT UNITS: bytes")
			require.Equal(t, uint64(2002*xcBlock), binary.BigEndian.Uint64(b[16:]), "TRANSFER COUNT")
			require.Equal(t, uint16(2), binary.BigEndian.Uint16(b[24:]), "SEGMENTS PROCESSED")
			require.Len(t, b, 32, "no sense data")
			require.True(t, bytes.Equal(want, e.contents(1)), "copied")
			// Released once read.
			e.sense(e.do(0, resultsCDB(xcSAStatusLID4, id, 1024), nil), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)
			require.Zero(t, e.m.Running())
		})
	}
}

func TestXcopyParameterListLength(t *testing.T) {
	e := newXCEnv(t, xcMem(64))
	before := e.contents(0)
	for _, sa := range []byte{xcSALID1, xcSALID4} {
		// SPC-4 6.4.1: zero is not an error and copies nothing.
		e.good(e.do(0, xcopyCDB(sa, 0), nil))
		// Longer than the lists the copy manager takes.
		for _, n := range []int{48 + rod.MaxDescriptorListLength + rod.InlineDataLimit + 1, 1 << 24, 0xFFFFFFFF} {
			e.sense(e.do(0, xcopyCDB(sa, n), nil), scsi.IllegalRequest, scsi.ASCParameterListLengthError)
		}
		// A list shorter than its header.
		e.sense(e.do(0, xcopyCDB(sa, 8), make([]byte, 8)), scsi.IllegalRequest, scsi.ASCParameterListLengthError)
	}
	// A list with the most descriptors is taken: 64 CSCDs and 256
	// segments.
	var cscds, segs [][]byte
	for range rod.MaxCSCDs {
		cscds = append(cscds, e.cscd(0))
	}
	for range rod.MaxSegments {
		segs = append(segs, seg02(0, 0, 0, 0, 0))
	}
	list := lid4List(1, 2, false, cscds, segs)
	e.good(e.xcopy(0, true, list))
	require.True(t, bytes.Equal(before, e.contents(0)), "nothing written")
}

// TestXcopyFailure fails a held LID1 list in its second segment, then
// reads RECEIVE COPY STATUS (LID1) and RECEIVE COPY FAILURE DETAILS, and
// a LID4 list, then RECEIVE COPY STATUS (LID4) with its sense data.
func TestXcopyFailure(t *testing.T) {
	for _, dsense := range []bool{false, true} {
		t.Run(fmt.Sprintf("D_SENSE=%v", dsense), func(t *testing.T) {
			dst := backstore.NewFault(xcMem(64))
			e := newXCEnv(t, xcMem(64), dst)
			e.lus[0].UpdateMode(e.nexus, func(m *scsi.ModeState) { m.DSense = dsense })
			dst.FailRange(backstore.OpWrite, 32*xcBlock, xcBlock, syscall.EIO)
			dst.FailRange(backstore.OpClone, 32*xcBlock, xcBlock, syscall.EIO)
			dst.FailRange(backstore.OpCopy, 32*xcBlock, xcBlock, syscall.EIO)
			segs := [][]byte{seg02(0, 1, 4, 0, 0), seg02(0, 1, 4, 8, 30), seg02(0, 1, 4, 16, 50)}
			list := lid1List(9, 0, [][]byte{e.cscd(0), e.cscd(1)}, segs)
			c := e.xcopy(0, false, list)
			s := e.sense(c, scsi.CopyAborted, scsi.ASCThirdPartyDeviceFailure)
			require.Equal(t, uint64(1), s.CommandSpecific, "segment 1 failed")
			require.Equal(t, []byte{0x80, 0, 16 + 32}, s.SenseKeySpecific[:], "segment pointer to the destination's CSCD descriptor")
			if dsense {
				require.NotNil(t, s.Forwarded)
				require.Equal(t, byte(scsi.ForwardedFromDestination), s.Forwarded.Source)
				dev, err := scsi.ParseSense(s.Forwarded.Sense)
				require.NoError(t, err)
				require.Equal(t, scsi.MediumError, dev.Key)
				require.Equal(t, scsi.ASCWriteError, dev.Code)
				require.Equal(t, byte(0x72), s.Forwarded.Sense[0])
			} else {
				// Fixed format (SPC-4 5.17.7.4 e): the second byte of
				// COMMAND-SPECIFIC INFORMATION locates the destination's
				// status byte, its sense data follows, and the segment
				// number keeps the third and fourth bytes.
				b := c.Sense
				require.Equal(t, byte(0x70), b[0])
				require.Equal(t, byte(len(b)-8), b[7], "ADDITIONAL SENSE LENGTH")
				require.Equal(t, []byte{0, 18, 0, 1}, b[8:12], "offsets and segment number")
				require.Equal(t, byte(scsi.StatusCheckCondition), b[18], "the destination's status")
				dev, err := scsi.ParseSense(b[19:])
				require.NoError(t, err)
				require.Equal(t, scsi.MediumError, dev.Key)
				require.Equal(t, scsi.ASCWriteError, dev.Code)
				require.Equal(t, byte(0x70), b[19]&0x7F, "in the format D_SENSE selects")
				require.Equal(t, int(b[19+7])+8, len(b)-19, "nothing after it")
				require.NotNil(t, s.Forwarded)
				require.Equal(t, byte(scsi.ForwardedFromDestination), s.Forwarded.Source)
				require.Equal(t, b[19:], s.Forwarded.Sense)
			}

			// RECEIVE COPY FAILURE DETAILS (SPC-4 6.18.3).
			c = e.do(0, resultsCDB(xcSAFailureDetails, 9, 1024), nil)
			e.good(c)
			b := c.DataIn
			require.GreaterOrEqual(t, len(b), 60)
			require.Equal(t, len(b)-4, int(binary.BigEndian.Uint32(b)), "AVAILABLE DATA")
			require.Equal(t, make([]byte, 52), b[4:56], "reserved")
			require.Equal(t, byte(scsi.StatusCheckCondition), b[56], "COPY COMMAND STATUS")
			require.Equal(t, len(b)-60, int(binary.BigEndian.Uint16(b[58:])), "SENSE DATA LENGTH")
			require.Equal(t, c.DataIn[60:], b[60:])
			got, err := scsi.ParseSense(b[60:])
			require.NoError(t, err)
			require.Equal(t, s.Error(), got.Error(), "the command's sense data")
			// Reading the details released the list.
			e.sense(e.do(0, resultsCDB(xcSAFailureDetails, 9, 1024), nil), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)

			// A list that completed has no failure details.
			e.good(e.xcopy(0, false, lid1List(10, 0, [][]byte{e.cscd(0), e.cscd(1)}, segs[:1])))
			c = e.do(0, resultsCDB(xcSAFailureDetails, 10, 1024), nil)
			e.good(c)
			require.Equal(t, []byte{0, 0, 0, 0}, c.DataIn)

			// LID1 status of a failed list: completed with error, one
			// segment, 2048 bytes.
			e.sense(e.xcopy(0, false, lid1List(11, 0, [][]byte{e.cscd(0), e.cscd(1)}, segs)), scsi.CopyAborted, scsi.ASCThirdPartyDeviceFailure)
			c = e.do(0, resultsCDB(xcSAStatusLID1, 11, 1024), nil)
			e.good(c)
			require.Equal(t, []byte{0, 0, 0, 8, 0x02, 0, 1, 0, 0, 0, 0x08, 0}, c.DataIn)

			// LID4: 02h with the sense data.
			e.sense(e.xcopy(0, true, lid4List(0x10000, 0, false, [][]byte{e.cscd(0), e.cscd(1)}, segs)), scsi.CopyAborted, scsi.ASCThirdPartyDeviceFailure)
			b = e.lid4Status(0x10000)
			require.Equal(t, byte(0x02), b[5]&0x7F, "completed with errors")
			require.Equal(t, byte(scsi.StatusCheckCondition), b[12])
			require.Equal(t, uint64(4*xcBlock), binary.BigEndian.Uint64(b[16:]))
			require.Equal(t, uint16(1), binary.BigEndian.Uint16(b[24:]))
			got, err = scsi.ParseSense(b[32:])
			require.NoError(t, err)
			require.Equal(t, scsi.CopyAborted, got.Key)
			require.Equal(t, uint64(1), got.CommandSpecific)
			require.Equal(t, dsense, b[32] == 0x72)
			require.NotNil(t, got.Forwarded, "the destination's sense, in either format")
			require.Equal(t, byte(scsi.ForwardedFromDestination), got.Forwarded.Source)
		})
	}
}

// TestXcopyRunningStatus reads RECEIVE COPY STATUS while copies run: a
// foreground one (11h, and LID1 in progress) and a background one (12h),
// then aborts the background one with COPY OPERATION ABORT (60h).
func TestXcopyRunningStatus(t *testing.T) {
	dst := backstore.NewFault(xcMem(256))
	e := newXCEnv(t, xcMem(256), dst)
	before := e.contents(1)
	started, release := blockWrites(dst)
	list := lid4List(77, 0, false, [][]byte{e.cscd(0), e.cscd(1)}, [][]byte{seg02(0, 1, 8, 0, 0), seg02(0, 1, 8, 8, 8)})
	fg := make(chan *scsi.Command)
	go func() { fg <- e.xcopy(0, true, list) }()
	<-started
	b := e.lid4Status(77)
	require.Equal(t, byte(0x11), b[5]&0x7F, "in progress in the foreground")
	require.Equal(t, byte(xcSALID4), b[4])
	c := e.do(0, resultsCDB(xcSAStatusLID1, 77, 1024), nil)
	e.good(c)
	require.Equal(t, byte(0x00), c.DataIn[4], "LID1: in progress")
	// A second list with the identifier in use is OPERATION IN PROGRESS.
	e.sense(e.xcopy(0, true, list), scsi.IllegalRequest, scsi.ASCOperationInProgress)
	close(release)
	e.good(<-fg)
	require.Equal(t, byte(0x01), e.lid4Status(77)[5])

	// In the background.
	dst.Reset()
	started, release = blockWrites(dst)
	list = lid4List(78, 0, true, [][]byte{e.cscd(0), e.cscd(1)}, [][]byte{seg02(0, 1, 8, 0, 100), seg02(0, 1, 8, 8, 108)})
	e.good(e.xcopy(0, true, list))
	<-started
	b = e.lid4Status(78)
	require.Equal(t, byte(0x12), b[5]&0x7F, "in progress in the background")
	require.Zero(t, b[12])
	e.good(e.do(0, abortCDB(78), nil))
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for b[5] == 0x12 {
		require.True(t, time.Now().Before(deadline))
		time.Sleep(time.Millisecond)
		b = e.lid4Status(78)
	}
	require.Equal(t, byte(0x60), b[5]&0x7F, "operation terminated")
	require.Equal(t, uint16(1), binary.BigEndian.Uint16(b[24:]), "the stuck segment completed, no other")
	after := e.contents(1)
	require.True(t, bytes.Equal(before[108*xcBlock:116*xcBlock], after[108*xcBlock:116*xcBlock]), "the second segment was not written")
	require.Zero(t, e.m.Running())

	// An identifier with no copy, and one whose copy completed.
	s := e.sense(e.do(0, abortCDB(12345), nil), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)
	require.Equal(t, []byte{0xC0, 0, 2}, s.SenseKeySpecific[:], "field pointer to the LIST IDENTIFIER")
	e.good(e.xcopy(0, true, lid4List(79, 0, false, [][]byte{e.cscd(0), e.cscd(1)}, [][]byte{seg02(0, 1, 1, 0, 200)})))
	e.sense(e.do(0, abortCDB(79), nil), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)
	require.Equal(t, byte(0x01), e.lid4Status(79)[5], "a failed abort leaves the status alone")
}

// TestXcopyImmedEndsWithNexus: a background copy does not outlive the I_T
// nexus that sent it.
func TestXcopyImmedEndsWithNexus(t *testing.T) {
	dst := backstore.NewFault(xcMem(256))
	e := newXCEnv(t, xcMem(256), dst)
	before := e.contents(1)
	started, release := blockWrites(dst)
	list := lid4List(5, 0, true, [][]byte{e.cscd(0), e.cscd(1)}, [][]byte{seg02(0, 1, 8, 0, 0), seg02(0, 1, 8, 8, 8), seg02(0, 1, 8, 16, 16)})
	e.good(e.xcopy(0, true, list))
	<-started
	ended := make(chan struct{})
	go func() { e.nexus.End(); close(ended) }()
	time.Sleep(10 * time.Millisecond)
	close(release)
	<-ended
	deadline := time.Now().Add(10 * time.Second)
	for e.m.Running() != 0 {
		require.True(t, time.Now().Before(deadline), "the copy outlived its nexus")
		time.Sleep(time.Millisecond)
	}
	after := e.contents(1)
	require.True(t, bytes.Equal(before[8*xcBlock:], after[8*xcBlock:]), "nothing after the stuck segment was written")
}

func TestXcopyOperatingParametersMatchVPD(t *testing.T) {
	e := newXCEnv(t, xcMem(64))
	c := e.do(0, resultsCDB(xcSAOperatingParms, 0, 1024), nil)
	e.good(c)
	op := c.DataIn
	require.GreaterOrEqual(t, len(op), 44)
	require.Equal(t, len(op)-4, int(binary.BigEndian.Uint32(op)), "AVAILABLE DATA")
	require.Equal(t, len(op)-44, int(op[43]), "IMPLEMENTED DESCRIPTOR LIST LENGTH")
	require.Equal(t, []byte{0x02, 0x07, 0x0A, 0xE4, 0xFE}, op[44:], "implemented descriptor type codes")

	c = e.do(0, []byte{0x12, 0x01, 0x8F, 0xFF, 0xFF, 0x00}, nil)
	e.good(c)
	page := c.DataIn
	require.Equal(t, byte(0x8F), page[1])
	require.Equal(t, len(page)-4, int(binary.BigEndian.Uint16(page[2:])), "PAGE LENGTH")
	descs := map[uint16][]byte{}
	var order []uint16
	for p := 4; p < len(page); {
		require.LessOrEqual(t, p+4, len(page))
		typ, n := binary.BigEndian.Uint16(page[p:]), int(binary.BigEndian.Uint16(page[p+2:]))
		require.Zero(t, n%4, "descriptor %04xh length is a multiple of 4", typ)
		require.LessOrEqual(t, p+4+n, len(page), "descriptor %04xh overruns the page", typ)
		descs[typ] = page[p+4 : p+4+n]
		order = append(order, typ)
		p += 4 + n
	}
	// The EXTENDED COPY descriptors come in this order (others, for ROD
	// tokens, may come between them).
	var ours []uint16
	for _, typ := range order {
		if slices.Contains([]uint16{0x0001, 0x0004, 0x0008, 0x000C, 0x8001}, typ) {
			ours = append(ours, typ)
		}
	}
	require.Equal(t, []uint16{0x0001, 0x0004, 0x0008, 0x000C, 0x8001}, ours)

	// Supported Commands: exactly the registered service actions of 83h
	// and 84h, among them those of EXTENDED COPY.
	sc := descs[0x0001]
	list := sc[1 : 1+int(sc[0])]
	got := map[byte][]byte{}
	for p := 0; p < len(list); {
		op, n := list[p], int(list[p+1])
		got[op] = list[p+2 : p+2+n]
		p += 2 + n
	}
	require.Equal(t, xcRegistered(e.table), got)
	require.Equal(t, make([]byte, len(sc)-1-len(list)), sc[1+len(list):], "pad")
	xcRequireCopySAs(t, got)

	// Parameter Data (0004h) and General Copy Operations (8001h) agree
	// with RECEIVE COPY OPERATING PARAMETERS.
	pd := descs[0x0004]
	require.Len(t, pd, 0x1C)
	require.Equal(t, op[8:10], pd[4:6], "MAXIMUM CSCD DESCRIPTOR COUNT")
	require.Equal(t, op[10:12], pd[6:8], "MAXIMUM SEGMENT DESCRIPTOR COUNT")
	require.Equal(t, op[12:16], pd[8:12], "MAXIMUM DESCRIPTOR LIST LENGTH")
	require.Equal(t, op[20:24], pd[12:16], "MAXIMUM INLINE DATA LENGTH")
	require.Equal(t, uint16(rod.MaxCSCDs), binary.BigEndian.Uint16(op[8:]))
	require.Equal(t, uint16(rod.MaxSegments), binary.BigEndian.Uint16(op[10:]))
	require.Equal(t, uint32(rod.MaxDescriptorListLength), binary.BigEndian.Uint32(op[12:]))
	require.Equal(t, uint32(rod.MaxSegmentLength), binary.BigEndian.Uint32(op[16:]))

	sd := descs[0x0008]
	require.Equal(t, op[44:], sd[1:1+int(sd[0])], "supported descriptor type codes")

	require.Equal(t, []byte{0x00, 0x04, 0xF8, 0x00, 0xFF, 0xFF, 0, 0}, descs[0x000C], "CSCD IDs F800h and FFFFh, padded")

	gco := descs[0x8001]
	require.Len(t, gco, 0x20)
	require.Equal(t, uint32(binary.BigEndian.Uint16(op[34:])), binary.BigEndian.Uint32(gco[0:]), "TOTAL CONCURRENT COPIES")
	require.Equal(t, uint32(op[36]), binary.BigEndian.Uint32(gco[4:]), "MAXIMUM IDENTIFIED CONCURRENT COPIES")
	require.Equal(t, op[16:20], gco[8:12], "MAXIMUM SEGMENT LENGTH")
	require.Equal(t, op[37], gco[12], "DATA SEGMENT GRANULARITY")
	require.Equal(t, op[38], gco[13], "INLINE DATA GRANULARITY")
}

// xcRegistered returns the service actions the table has for 83h and
// 84h, ascending.
func xcRegistered(t *scsi.Table) map[byte][]byte {
	m := map[byte][]byte{}
	for _, d := range t.All() {
		if d.Opcode == 0x83 || d.Opcode == 0x84 {
			m[d.Opcode] = append(m[d.Opcode], byte(d.ServiceAction))
		}
	}
	for _, sas := range m {
		slices.Sort(sas)
	}
	return m
}

// xcRequireCopySAs checks that the EXTENDED COPY and RECEIVE COPY
// RESULTS service actions are all there.
func xcRequireCopySAs(t *testing.T, got map[byte][]byte) {
	t.Helper()
	for _, sa := range []byte{0x00, 0x01, 0x1C} {
		require.Contains(t, got[0x83], sa, "83h/%02xh", sa)
	}
	for _, sa := range []byte{0x00, 0x03, 0x04, 0x05} {
		require.Contains(t, got[0x84], sa, "84h/%02xh", sa)
	}
}

func TestXcopyInquiry3PC(t *testing.T) {
	for _, withCopy := range []bool{false, true} {
		var opts spc.Options
		if withCopy {
			opts.Copy = rod.NewManager(rod.Config{Logger: xcLogger()})
		}
		table, err := scsi.NewTable(spc.Commands(opts))
		require.NoError(t, err)
		lu := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "d", Serial: "1234"}, Store: xcMem(64), Table: table, Logger: xcLogger()})
		n := scsi.NewNexus(scsi.Nexus{InitiatorPort: "i", TargetPort: "t"}, map[uint64]*scsi.LU{0: lu}, scsi.NewAbsentLU(table, xcLogger()))
		e := &xcEnv{t: t, nexus: n, table: table}
		e.do(0, []byte{0x00, 0, 0, 0, 0, 0}, nil) // the power-on unit attention
		c := e.do(0, []byte{0x12, 0, 0, 0, 0xFF, 0}, nil)
		e.good(c)
		require.Equal(t, withCopy, c.DataIn[5]&0x08 != 0, "3PC with a copy manager %v", withCopy)
		// The Third-party Copy VPD page is listed only with one.
		c = e.do(0, []byte{0x12, 0x01, 0x00, 0, 0xFF, 0}, nil)
		e.good(c)
		require.Equal(t, withCopy, slices.Contains(c.DataIn[4:], 0x8F))
		if !withCopy {
			e.sense(e.do(0, xcopyCDB(0, 0), nil), scsi.IllegalRequest, scsi.ASCInvalidCommandOperationCode)
		}
	}
}

func TestXcopyReportSupportedOpcodes(t *testing.T) {
	e := newXCEnv(t, xcMem(64))
	cdb := []byte{0xA3, 0x0C, 0x00, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0}
	c := e.do(0, cdb, nil)
	e.good(c)
	b := c.DataIn
	require.Equal(t, len(b)-4, int(binary.BigEndian.Uint32(b)))
	got := map[byte][]byte{}
	for p := 4; p+8 <= len(b); p += 8 {
		if op := b[p]; op == 0x83 || op == 0x84 {
			require.NotZero(t, b[p+5]&0x01, "SERVACTV")
			require.Equal(t, uint16(16), binary.BigEndian.Uint16(b[p+6:]), "CDB LENGTH")
			sa := binary.BigEndian.Uint16(b[p+2:])
			require.Less(t, sa, uint16(0x20))
			got[op] = append(got[op], byte(sa))
		}
	}
	require.Equal(t, xcRegistered(e.table), got)
	xcRequireCopySAs(t, got)

	// One command: the usage data of EXTENDED COPY (LID4) has the
	// PARAMETER LIST LENGTH, that of RECEIVE COPY STATUS (LID4) the four
	// bytes of list identifier.
	for _, c := range []struct {
		op, sa byte
		usage  []byte
	}{
		{0x83, 0x01, []byte{0x83, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0}},
		{0x83, 0x1C, []byte{0x83, 0x1C, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{0x84, 0x00, []byte{0x84, 0x00, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0}},
		{0x84, 0x03, []byte{0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0}},
		{0x84, 0x05, []byte{0x84, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0}},
	} {
		cdb := []byte{0xA3, 0x0C, 0x02, c.op, 0, c.sa, 0, 0, 0xFF, 0xFF, 0, 0}
		r := e.do(0, cdb, nil)
		e.good(r)
		require.Equal(t, byte(0x03), r.DataIn[1]&0x07, "supported")
		require.Equal(t, c.usage, r.DataIn[4:], "%02xh/%02xh", c.op, c.sa)
	}
}

// TestXcopyAbortTask aborts a foreground EXTENDED COPY with ABORT TASK
// while its first write is stuck: the command ends aborted (the
// transport sends nothing), no later segment is written, and the held
// list reports 60h.
func TestXcopyAbortTask(t *testing.T) {
	dst := backstore.NewFault(xcMem(256))
	e := newXCEnv(t, xcMem(256), dst)
	before := e.contents(1)
	started, release := blockWrites(dst)
	list := lid4List(0xABCD, 0, false, [][]byte{e.cscd(0), e.cscd(1)}, [][]byte{seg02(0, 1, 8, 0, 0), seg02(0, 1, 8, 8, 8)})
	c := &scsi.Command{CDB: xcopyCDB(xcSALID4, len(list)), Tag: 42, Nexus: e.nexus, Attr: scsi.TaskSimple, DataOut: list}
	done := make(chan struct{})
	scsi.Submit(c, func(*scsi.Command) { close(done) })
	<-started
	aborted := make(chan bool)
	go func() { aborted <- e.lus[0].AbortTask(e.nexus, 42) }()
	time.Sleep(10 * time.Millisecond)
	close(release)
	require.True(t, <-aborted, "ABORT TASK found the command")
	<-done
	require.True(t, c.Aborted)
	b := e.lid4Status(0xABCD)
	require.Equal(t, byte(0x60), b[5]&0x7F, "operation terminated")
	require.Equal(t, byte(scsi.StatusTaskAborted), b[12])
	require.True(t, bytes.Equal(before[8*xcBlock:], e.contents(1)[8*xcBlock:]), "nothing after the stuck segment was written")
	require.Zero(t, e.m.Running())
}

// TestXcopyImmedReservationConflict: a background copy (IMMED) into a
// logical unit another initiator holds with WRITE EXCLUSIVE has no command
// left to end with RESERVATION CONFLICT, so its status records COPY
// ABORTED, THIRD PARTY DEVICE FAILURE with the destination's RESERVATION
// CONFLICT forwarded (status 18h, no sense data), and nothing is written.
func TestXcopyImmedReservationConflict(t *testing.T) {
	e := newXCEnv(t, xcMem(64), xcMem(64))
	e.lus[0].UpdateMode(e.nexus, func(m *scsi.ModeState) { m.DSense = true })
	holder := scsi.NewNexus(scsi.Nexus{InitiatorPort: "iqn.2025-01.test:holder,i,0x2", TargetPort: e.nexus.TargetPort, TargetName: e.nexus.TargetName},
		map[uint64]*scsi.LU{1: e.lus[1]}, scsi.NewAbsentLU(e.table, xcLogger()))
	prout := func(sa, typ byte, key, sark uint64) {
		p := make([]byte, 24)
		binary.BigEndian.PutUint64(p, key)
		binary.BigEndian.PutUint64(p[8:], sark)
		c := &scsi.Command{CDB: []byte{0x5F, sa, typ, 0, 0, 0, 0, 0, 24, 0}, LUN: 1, Nexus: holder, Attr: scsi.TaskSimple, DataOut: p}
		done := make(chan struct{})
		scsi.Submit(c, func(*scsi.Command) { close(done) })
		<-done
		if c.Status == scsi.StatusCheckCondition { // the power-on unit attention
			done = make(chan struct{})
			c.Status, c.Sense = scsi.StatusGood, nil
			scsi.Submit(c, func(*scsi.Command) { close(done) })
			<-done
		}
		require.Equal(t, scsi.StatusGood, c.Status)
	}
	prout(0x00, 0, 0, 0xAB)    // REGISTER
	prout(0x01, 0x01, 0xAB, 0) // RESERVE, WRITE EXCLUSIVE
	before := e.contents(1)

	const id = 0x0BADC0DE
	list := lid4List(id, 0, true, [][]byte{e.cscd(0), e.cscd(1)}, [][]byte{seg02(0, 1, 8, 0, 0)})
	e.good(e.xcopy(0, true, list))
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b = e.lid4Status(id)
		if b[5] != 0x12 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the copy never completed")
	}
	require.Equal(t, byte(0x02), b[5]&0x7F, "COPY OPERATION STATUS: completed with errors")
	require.Equal(t, byte(scsi.StatusCheckCondition), b[12], "EXTENDED COPY COMPLETION STATUS")
	s, err := scsi.ParseSense(b[32:])
	require.NoError(t, err)
	require.Equal(t, scsi.CopyAborted, s.Key)
	require.Equal(t, scsi.ASCThirdPartyDeviceFailure, s.Code)
	require.NotNil(t, s.Forwarded, "%v", s)
	require.Equal(t, byte(scsi.ForwardedFromDestination), s.Forwarded.Source)
	require.Equal(t, scsi.StatusReservationConflict, s.Forwarded.Status)
	require.Empty(t, s.Forwarded.Sense)
	require.Equal(t, before, e.contents(1), "nothing written")
}
