package sbc_test

import (
	"testing"

	"github.com/odxtgt/odxtgt/scsi"
)

// BenchmarkRead4K measures one 4 KiB READ (10) through scsi.Submit, the
// dispatcher and the memory store, with a pooled data-in buffer as a
// transport provides.
func BenchmarkRead4K(b *testing.B) {
	const bs, blocks = 512, 1 << 15
	bn, _ := newMemoryBench(b, blocks, bs, benchConfig{})
	buf := make([]byte, 4096)
	alloc := func(n int) []byte { return buf[:n] }
	done := make(chan struct{}, 1)
	finish := func(*scsi.Command) { done <- struct{}{} }
	lba := uint32(0)
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		c := &scsi.Command{CDB: cdb10(opRead10, 0, lba, 8), Nexus: bn.nexus, Attr: scsi.TaskSimple, ExpectedIn: 4096, Alloc: alloc}
		scsi.Submit(c, finish)
		<-done
		if c.Status != scsi.StatusGood {
			b.Fatalf("READ (10) at LBA %d: %v", lba, c.Status)
		}
		lba = (lba + 8) % blocks
	}
}
