package stress

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// The lock blocks are raced for by every session with COMPARE AND WRITE.
// A lock block holds (round, winner): all zeroes is round 0; round r+1 is
// written by the one session whose COMPARE AND WRITE of (r, w) → (r+1,
// itself) succeeded. The whole block is derived from (round, winner), so a
// torn block does not decode.
type lockState struct {
	mu sync.Mutex
	// winners[b][r] is the session that won round r of block b, from
	// its GOOD status; seen[b][r] the winner a read showed.
	winners []map[uint64]int
	seen    []map[uint64]int
}

func newLockState(n int) *lockState {
	l := &lockState{}
	for range n {
		l.winners = append(l.winners, map[uint64]int{})
		l.seen = append(l.seen, map[uint64]int{})
	}
	return l
}

var lockMagic = []byte("odxtgt-stress-lock\x00")

func encodeLock(round uint64, winner int) []byte {
	b := make([]byte, BlockSize)
	if round == 0 {
		return b
	}
	copy(b, lockMagic)
	binary.BigEndian.PutUint64(b[24:], round)
	binary.BigEndian.PutUint32(b[32:], uint32(winner))
	x := round*0x9E3779B97F4A7C15 ^ uint64(winner)
	for i := 40; i+8 <= BlockSize; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.BigEndian.PutUint64(b[i:], x)
	}
	return b
}

func decodeLock(b []byte) (round uint64, winner int, ok bool) {
	if len(b) != BlockSize {
		return 0, 0, false
	}
	if bytes.Equal(b, make([]byte, BlockSize)) {
		return 0, 0, true
	}
	round, winner = binary.BigEndian.Uint64(b[24:]), int(binary.BigEndian.Uint32(b[32:]))
	return round, winner, round != 0 && bytes.Equal(b, encodeLock(round, winner))
}

// observe records that a read of block b showed (round, winner).
func (l *lockState) observe(b int, round uint64, winner int) error {
	if round == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.seen[b][round]; ok && w != winner {
		return fmt.Errorf("round %d read with winner %d and with winner %d", round, w, winner)
	}
	l.seen[b][round] = winner
	if w, ok := l.winners[b][round]; ok && w != winner {
		return fmt.Errorf("round %d was won by session %d but the block names session %d", round, w, winner)
	}
	return nil
}

func (l *lockState) readLock(ctx context.Context, s *session, b int) (uint64, int, error) {
	lu := s.r.lus[0]
	got, err := s.readBlocks(ctx, lu, uint64(b), 1, true)
	if err != nil {
		return 0, 0, err
	}
	round, winner, ok := decodeLock(got)
	if !ok {
		return 0, 0, s.fail(lu, uint64(b), true, "lock block torn or foreign: %q", printable(got[:48]))
	}
	if err := l.observe(b, round, winner); err != nil {
		return 0, 0, s.fail(lu, uint64(b), true, "lock block: %v", err)
	}
	return round, winner, nil
}

// round reads a lock block and tries to win its next round.
func (l *lockState) round(ctx context.Context, s *session) error {
	b := s.rng.IntN(len(l.winners))
	lu := s.r.lus[0]
	round, winner, err := l.readLock(ctx, s, b)
	if err != nil {
		return err
	}
	data := append(encodeLock(round, winner), encodeLock(round+1, s.id)...)
	resp, err := s.command(ctx, initiator.Request{LUN: lu.num, CDB: cawCDB(uint64(b)), DataOut: data})
	if err != nil {
		return err
	}
	switch {
	case resp.Status == scsi.StatusGood:
		s.stats.LockWins++
		l.mu.Lock()
		w, dup := l.winners[b][round+1]
		l.winners[b][round+1] = s.id
		seen, seenOK := l.seen[b][round+1]
		l.mu.Unlock()
		if dup {
			return s.fail(lu, uint64(b), true, "round %d of lock block won twice, by sessions %d and %d", round+1, w, s.id)
		}
		if seenOK && seen != s.id {
			return s.fail(lu, uint64(b), true, "won round %d of lock block, which a read showed won by session %d", round+1, seen)
		}
		return nil
	case resp.Status == scsi.StatusCheckCondition && resp.Sense != nil && resp.Sense.Key == scsi.Miscompare:
		s.stats.LockLosses++
		// Someone else won round+1 (or later): the block must have moved on.
		now, _, err := l.readLock(ctx, s, b)
		if err != nil {
			return err
		}
		if now <= round {
			return s.fail(lu, uint64(b), true, "COMPARE AND WRITE of round %d miscompared, but the block is still at round %d", round, now)
		}
		return nil
	}
	return s.fail(lu, uint64(b), true, "COMPARE AND WRITE on a lock block: %s", senseString(resp))
}

// final checks each lock block's history: rounds 1..last all have one
// winner, and what the block shows now is the last round's winner.
func (l *lockState) final(ctx context.Context, s *session) error {
	s.opn++
	s.op = OpCompareAndWriteLock
	for b := range l.winners {
		round, winner, err := l.readLock(ctx, s, b)
		if err != nil {
			return err
		}
		l.mu.Lock()
		n := uint64(len(l.winners[b]))
		w, ok := l.winners[b][round]
		l.mu.Unlock()
		if n != round {
			return s.fail(s.r.lus[0], uint64(b), true, "lock block at round %d after %d winning COMPARE AND WRITEs", round, n)
		}
		if round > 0 && (!ok || w != winner) {
			return s.fail(s.r.lus[0], uint64(b), true, "lock block names session %d for round %d, won by %d", winner, round, w)
		}
	}
	return nil
}
