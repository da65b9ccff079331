package spc_test

import (
	"testing"
	"time"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// rvSubmit submits one command with a task attribute and returns a
// channel closed when it has ended.
func rvSubmit(e *xcEnv, lun int, attr scsi.TaskAttr, cdb, dataOut []byte) (*scsi.Command, chan struct{}) {
	c := &scsi.Command{CDB: cdb, LUN: uint64(lun), Nexus: e.nexus, Attr: attr, DataOut: dataOut, ExpectedIn: 1 << 20}
	done := make(chan struct{})
	scsi.Submit(c, func(*scsi.Command) { close(done) })
	return c, done
}

// TestReviewXcopyCrossLUTaskSetDeadlock: scsi.RunInternal lets an
// internal task skip the task set of its own command's logical unit only;
// on the other logical unit of a copy it enters as a new SIMPLE task and
// so waits for every HEAD OF QUEUE or ORDERED task that arrived there
// after the copy command did. Two foreground copies in opposite
// directions, received on different logical units, then wait for each
// other through those tasks: each copy's next internal task waits for a
// task that waits for the other copy. Nothing ends until a task
// management function; meanwhile every later SIMPLE command of either
// logical unit, from any initiator, waits behind the HEAD OF QUEUE
// copies (or the ORDERED tasks): both logical units are frozen.
func TestReviewXcopyCrossLUTaskSetDeadlock(t *testing.T) {
	for _, variant := range []string{"HEAD OF QUEUE copies", "SIMPLE copies and ORDERED tasks"} {
		t.Run(variant, func(t *testing.T) {
			a, b := backstore.NewFault(xcMem(256)), backstore.NewFault(xcMem(256))
			e := newXCEnv(t, a, b)
			startedA, releaseA := blockWrites(a)
			attr := scsi.TaskHeadOfQueue
			if variant != "HEAD OF QUEUE copies" {
				attr = scsi.TaskSimple
			}
			// X, received on LUN 0: 0 -> 0 (stuck on its first write),
			// then 0 -> 1.
			xl := lid1List(1, 0, [][]byte{e.cscd(0), e.cscd(1)}, [][]byte{seg02(0, 0, 8, 0, 100), seg02(0, 1, 8, 0, 0)})
			x, xDone := rvSubmit(e, 0, attr, xcopyCDB(xcSALID1, len(xl)), xl)
			<-startedA
			// Y, received on LUN 1: 1 -> 1, then 1 -> 0.
			var y *scsi.Command
			var yDone chan struct{}
			yl := lid1List(2, 0, [][]byte{e.cscd(0), e.cscd(1)}, [][]byte{seg02(1, 1, 8, 0, 100), seg02(1, 0, 8, 0, 200)})
			if attr == scsi.TaskHeadOfQueue {
				y, yDone = rvSubmit(e, 1, attr, xcopyCDB(xcSALID1, len(yl)), yl)
			} else {
				startedB, releaseB := blockWrites(b)
				y, yDone = rvSubmit(e, 1, attr, xcopyCDB(xcSALID1, len(yl)), yl)
				<-startedB
				// An ORDERED command on each logical unit (any initiator
				// may send one; SAM-5 makes it wait for the copy there).
				rvSubmit(e, 0, scsi.TaskOrdered, []byte{0, 0, 0, 0, 0, 0}, nil)
				rvSubmit(e, 1, scsi.TaskOrdered, []byte{0, 0, 0, 0, 0, 0}, nil)
				time.Sleep(50 * time.Millisecond)
				close(releaseB)
			}
			time.Sleep(50 * time.Millisecond)
			close(releaseA)

			// A plain SIMPLE command from the host afterwards.
			_, turDone := rvSubmit(e, 0, scsi.TaskSimple, []byte{0, 0, 0, 0, 0, 0}, nil)
			deadline := time.After(3 * time.Second)
			for _, w := range []struct {
				name string
				done chan struct{}
			}{{"copy X", xDone}, {"copy Y", yDone}, {"TEST UNIT READY", turDone}} {
				select {
				case <-w.done:
				case <-deadline:
					// Unstick them before failing, so the test ends.
					e.lus[0].AbortTaskSet(e.nexus)
					e.lus[1].AbortTaskSet(e.nexus)
					<-xDone
					<-yDone
					t.Fatalf("deadlock: %s never ended: X's internal task on LUN 1 waits for a task "+
						"that waits for Y, Y's internal task on LUN 0 waits for a task that waits for X", w.name)
				}
			}
			e.good(x)
			e.good(y)
		})
	}
}
