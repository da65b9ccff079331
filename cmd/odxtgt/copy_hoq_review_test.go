package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// rvCopyList is a LID1 parameter list of n block to block segments of
// blocks blocks each from CSCD src to CSCD dst, walking up the first 16
// such extents of both LUNs, again and again.
func rvCopyList(listID byte, cscds [][]byte, src, dst uint16, n int, blocks uint16) []byte {
	c := bytes.Join(cscds, nil)
	var segs []byte
	for i := range n {
		seg := make([]byte, 28)
		seg[0] = 0x02
		binary.BigEndian.PutUint16(seg[2:], 0x18)
		binary.BigEndian.PutUint16(seg[4:], src)
		binary.BigEndian.PutUint16(seg[6:], dst)
		binary.BigEndian.PutUint16(seg[10:], blocks)
		binary.BigEndian.PutUint64(seg[12:], uint64(i%16)*uint64(blocks))
		binary.BigEndian.PutUint64(seg[20:], uint64(i%16)*uint64(blocks))
		segs = append(segs, seg...)
	}
	hdr := make([]byte, 16)
	hdr[0], hdr[1] = listID, 0x10
	binary.BigEndian.PutUint16(hdr[2:], uint16(len(c)))
	binary.BigEndian.PutUint32(hdr[8:], uint32(len(segs)))
	return bytes.Join([][]byte{hdr, c, segs}, nil)
}

// TestReviewServeHeadOfQueueCopiesHang: over iSCSI, two initiators each
// send one EXTENDED COPY with the HEAD OF QUEUE task attribute, one to
// LUN 0 copying 0 -> 1, the other to LUN 1 copying 1 -> 0. Each copy's
// internal task on the other LUN is a new SIMPLE task, which SAM-5 makes
// wait for the older HEAD OF QUEUE command there: the other copy. Neither
// ever completes, and every command sent to either LUN afterwards, by any
// initiator, waits behind them: a plain READ from a third host hangs.
func TestReviewServeHeadOfQueueCopiesHang(t *testing.T) {
	dir := t.TempDir()
	yaml := `
backstores:
  - {name: a, type: memory, size: 64MiB}
  - {name: b, type: memory, size: 64MiB}
targets:
  - iqn: iqn.2025-01.io.odxtgt:hoq
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: a}, {lun: 1, backstore: b}]
`
	st := startServe(t, &serveOptions{configPath: writeConfig(t, dir, yaml), logFormat: "text", logLevel: "error"})
	const iqn = "iqn.2025-01.io.odxtgt:hoq"
	dial := func(name string) *initiator.Session {
		s, err := initiator.Dial(context.Background(), st.addr, initiator.Config{InitiatorName: "iqn.2025-01.io.odxtgt:" + name, TargetName: iqn})
		require.NoError(t, err)
		for _, lun := range []uint64{0, 1} {
			command(t, s, initiator.Request{LUN: lun, CDB: make([]byte, 6)})
		}
		return s
	}
	one, two, three := dial("one"), dial("two"), dial("three")
	cscds := [][]byte{naaCSCD(t, one, 0), naaCSCD(t, one, 1)}
	// 48 segments of 4 MiB over the 64 MiB LUNs: long enough for the two
	// copies to overlap, short enough to finish on a loaded machine under
	// the race detector well inside the deadline, which only tells a hang.
	x := rvCopyList(1, cscds, 0, 1, 48, 8192)
	y := rvCopyList(2, cscds, 1, 0, 48, 8192)

	ctx, cancel := context.WithTimeout(context.Background(), 75*time.Second)
	defer cancel()
	type result struct {
		name string
		r    *initiator.Response
		err  error
	}
	results := make(chan result, 3)
	send := func(name string, s *initiator.Session, req initiator.Request) {
		go func() {
			r, err := s.Command(ctx, req)
			results <- result{name, r, err}
		}()
	}
	send("EXTENDED COPY 0 -> 1 (HEAD OF QUEUE, LUN 0)", one, initiator.Request{LUN: 0, CDB: xcopyCDB(len(x)), DataOut: x, Attr: scsi.TaskHeadOfQueue})
	send("EXTENDED COPY 1 -> 0 (HEAD OF QUEUE, LUN 1)", two, initiator.Request{LUN: 1, CDB: xcopyCDB(len(y)), DataOut: y, Attr: scsi.TaskHeadOfQueue})
	time.Sleep(500 * time.Millisecond)
	send("READ (10) of LUN 0 from a third host", three, initiator.Request{LUN: 0, CDB: rw10(0x28, 0, 8), ReadLen: 8 * 512})

	pending := map[string]bool{}
	for _, n := range []string{"EXTENDED COPY 0 -> 1 (HEAD OF QUEUE, LUN 0)", "EXTENDED COPY 1 -> 0 (HEAD OF QUEUE, LUN 1)", "READ (10) of LUN 0 from a third host"} {
		pending[n] = true
	}
	deadline := time.After(60 * time.Second)
wait:
	for len(pending) > 0 {
		select {
		case res := <-results:
			delete(pending, res.name)
			require.NoError(t, res.err, res.name)
			require.Equal(t, scsi.StatusGood, res.r.Status, "%s: %v", res.name, res.r.Sense)
		case <-deadline:
			break wait
		}
	}
	// Closing the sessions aborts their tasks, which ends any hang.
	cancel()
	one.Close()
	two.Close()
	three.Close()
	if len(pending) > 0 {
		var names []string
		for n := range pending {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Fatalf("deadlock: after 60 s these have not completed: %s", strings.Join(names, "; "))
	}
}
