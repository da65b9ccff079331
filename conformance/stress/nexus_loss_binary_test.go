package stress

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestCopyNexusLossBinary is TestCopyNexusLoss against the real binary,
// on file LUs (the destination written through, so that each chunk of a
// copy is a copy_file_range and an fdatasync): the connection of a
// running copy is dropped, logged out or reinstated as soon as its first
// chunk is on the destination. With no way to hold the copy there, it
// may be aborted anywhere or have finished; either way the destination
// must hold a prefix of the copy (in the order the chunks are written),
// block by block, and nothing outside its range; a foreground copy that
// answered must have written it all; the same ISID must see I_T NEXUS
// LOSS OCCURRED and no list; and, once every session is gone and the
// tokens expired, the target's goroutines (from /metrics) and open files
// must be back to where they were.
func TestCopyNexusLossBinary(t *testing.T) {
	dir := t.TempDir()
	r := &lossRig{t: t, chunk: 2048} // chunks of 1 MiB
	r.srcData = stampedBlocks("source", r.copyBlocks(), 5)
	r.oldData = stampedBlocks("old destination", r.dstBlocks(), 6)
	srcPath, dstPath := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	if err := os.WriteFile(srcPath, r.srcData, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dstPath, r.oldData, 0o644); err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(dstPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	r.readDst = func(p []byte, off int64) error { _, err := dst.ReadAt(p, off); return err }
	r.writeDst = func(p []byte, off int64) error { _, err := dst.WriteAt(p, off); return err }
	srv, err := StartServer(odxtgtBin, dir, fmt.Sprintf(`
backstores:
  - {name: src, type: file, path: %s, size: %d, block_size: 512}
  - {name: dst, type: file, path: %s, size: %d, block_size: 512, write_cache: false}
targets:
  - iqn: %s
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: src}, {lun: 1, backstore: dst}]
metrics:
  listen: "127.0.0.1:0"
`, srcPath, r.copyBlocks()*BlockSize, dstPath, r.dstBlocks()*BlockSize, stressTarget))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	metrics := metricsURL(t, srv)
	r.addr = srv.Addr
	r.discover()
	r.warmUp()
	waitFor(t, "the warm-up's token to expire", func() bool { return scrape(t, metrics, "odxtgt_rod_tokens") == 0 })
	goroutines0 := settledMetric(t, metrics, "go_goroutines")
	fds0, err := srv.OpenFiles()
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		kind  copyKind
		immed bool
		end   nexusEnd
		lun   uint64
	}{
		{copyLID1, false, endDrop, 0},
		{copyLID4, false, endLogout, 1},
		{copyLID4, false, endReinstate, 0},
		{copyLID4, true, endDrop, 1},
		{copyLID4, true, endReinstate, 0},
		{copyWUT, false, endDrop, 1},
		{copyWUT, true, endLogout, 1},
		{copyWUT, true, endDrop, 1},
	}
	cut := 0
	for i, c := range cases {
		name := fmt.Sprintf("%s/immed=%v/%s", [...]string{"LID1", "LID4", "WUT"}[c.kind], c.immed, c.end)
		t.Run(name, func(t *testing.T) {
			if copied := r.runBinaryCase(t, metrics, i, c.kind, c.immed, c.end, c.lun); copied < r.copyBlocks() {
				cut++
			}
		})
	}
	t.Logf("%d of %d copies were cut short by the loss of their nexus (the rest finished before it)", cut, len(cases))

	deadline := time.Now().Add(tokenTimeout*time.Second + 10*time.Second)
	for {
		g := scrape(t, metrics, "go_goroutines")
		fds, err := srv.OpenFiles()
		if err != nil {
			t.Fatal(err)
		}
		if g <= goroutines0 && fds <= fds0 {
			t.Logf("target after the cases: %v goroutines (%v before), %d open files (%d before)", g, goroutines0, fds, fds0)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("target after the cases: %v goroutines (%v before), %d open files (%d before)", g, goroutines0, fds, fds0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, w := range srv.Warnings() {
		if !expectedWarning(w) {
			t.Errorf("target log: %s", w)
		}
	}
}

// runBinaryCase is one case of TestCopyNexusLossBinary; it returns how
// many blocks of the copy reached the destination.
func (r *lossRig) runBinaryCase(t *testing.T, metrics string, i int, kind copyKind, immed bool, end nexusEnd, lun uint64) int {
	isid := [6]byte{0x80, 0xd7, 0x30, 0, 0, byte(i)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.writeDst(r.oldData, 0); err != nil {
		t.Fatal(err)
	}
	a := r.login(t, isid)
	defer a.Close()
	r.unitAttentions(t, a, 0)
	r.unitAttentions(t, a, 1)
	id := uint32(0x40 + i)
	req := r.copyRequest(t, a, i, kind, immed, lun, id)
	var pending *initiator.Pending
	var err error
	if immed {
		if resp := r.do(t, a, req); resp.Status != scsi.StatusGood {
			t.Fatalf("the copy with IMMED: %s", senseString(resp))
		}
	} else if pending, err = a.Start(ctx, req); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !r.chunkDone(0); {
		if time.Now().After(deadline) {
			t.Fatal("the first chunk of the copy is not on the destination after 20 s")
		}
		time.Sleep(time.Millisecond)
	}
	b := r.endNexus(ctx, t, a, isid, end)
	defer b.Close()
	answered := false
	if pending != nil {
		if resp, err := pending.Wait(ctx); err == nil {
			if resp.Status != scsi.StatusGood {
				t.Fatalf("the copy whose nexus ended: %s", senseString(resp))
			}
			answered = true // it finished before the loss
		}
	}
	for l := range uint64(2) {
		if uas := r.unitAttentions(t, b, l); len(uas) != 1 || uas[0] != scsi.ASCITNexusLossOccurred {
			t.Errorf("LUN %d after the %v: unit attentions %v, want I_T NEXUS LOSS OCCURRED (29h/07h)", l, end, uas)
		}
	}
	resp := r.listStatus(t, b, kind, lun, id)
	if resp.Status != scsi.StatusCheckCondition || resp.Sense == nil || resp.Sense.Key != scsi.IllegalRequest || resp.Sense.Code != scsi.ASCInvalidFieldInCDB {
		t.Errorf("status of list %d after the %v: %s % x, want ILLEGAL REQUEST, INVALID FIELD IN CDB", id, end, senseString(resp), resp.DataIn)
	}
	for deadline := time.Now().Add(20 * time.Second); scrape(t, metrics, "odxtgt_copies_running") != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("copies still run 20 s after the %v", end)
		}
		time.Sleep(5 * time.Millisecond)
	}
	copied := r.copiedPrefix(t)
	if answered && copied != r.copyBlocks() {
		t.Errorf("the copy answered GOOD, but only %d of its %d blocks are on the destination", copied, r.copyBlocks())
	}
	t.Logf("%d of %d blocks copied", copied, r.copyBlocks())
	if err := b.Logout(ctx, 0); err != nil {
		t.Fatal(err)
	}
	return copied
}

// copiedPrefix checks that the destination holds its old data outside
// the copy's range and, inside it, the source's data up to some block and
// its old data after it (the chunks are written in order, each whole or
// not at all), and returns that block.
func (r *lossRig) copiedPrefix(t *testing.T) int {
	t.Helper()
	got := make([]byte, len(r.oldData))
	if err := r.readDst(got, 0); err != nil {
		t.Fatal(err)
	}
	copied := -1 // blocks of the copy's range holding the source's data, once the first old one is found
	for blk := range r.dstBlocks() {
		g := got[blk*BlockSize : (blk+1)*BlockSize]
		old := r.oldData[blk*BlockSize : (blk+1)*BlockSize]
		o := blk - r.dstStart()
		if o < 0 || o >= r.copyBlocks() {
			if !bytes.Equal(g, old) {
				t.Fatalf("destination block %d, outside the copy's range %d+%d, changed: %q…", blk, r.dstStart(), r.copyBlocks(), printable(g[:32]))
			}
			continue
		}
		src := r.srcData[o*BlockSize : (o+1)*BlockSize]
		switch {
		case copied < 0 && bytes.Equal(g, src):
		case bytes.Equal(g, old):
			if copied < 0 {
				copied = o
			}
		case bytes.Equal(g, src):
			t.Fatalf("destination block %d holds the source's data after block %d of the copy, which holds its old data", blk, r.dstStart()+copied)
		default:
			t.Fatalf("destination block %d holds neither its old nor the source's data: %q…", blk, printable(g[:32]))
		}
	}
	if copied < 0 {
		return r.copyBlocks()
	}
	return copied
}

// metricsURL returns the address of the target's /metrics, from its log.
func metricsURL(t *testing.T, srv *Server) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(srv.Log()))
	for sc.Scan() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "serving metrics" && rec.Addr != "" {
			return "http://" + rec.Addr + "/metrics"
		}
	}
	t.Fatalf("the target logged no metrics address:\n%s", srv.Log())
	return ""
}

// scrape returns the value of an unlabelled metric, fetched on a
// connection of its own (a kept-alive one would hold a goroutine of the
// target).
func scrape(t *testing.T, url, name string) float64 {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return v
		}
	}
	t.Fatalf("%s is not in %s", name, url)
	return 0
}

// settledMetric returns a metric once it has stayed the same for a while
// (or two seconds have passed).
func settledMetric(t *testing.T, url, name string) float64 {
	v, same := scrape(t, url, name), 0
	for deadline := time.Now().Add(2 * time.Second); same < 5 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if w := scrape(t, url, name); w == v {
			same++
		} else {
			v, same = w, 0
		}
	}
	return v
}
