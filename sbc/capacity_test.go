package sbc_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// geometryStore has a geometry and no data: enough for READ CAPACITY on
// stores too large to hold in memory.
type geometryStore struct {
	size          int64
	blockSize     int
	physBlockSize int
}

var errNoData = errors.New("geometryStore holds no data")

func (s *geometryStore) ReadAt([]byte, int64) error        { return errNoData }
func (s *geometryStore) WriteAt([]byte, int64, bool) error { return errNoData }
func (s *geometryStore) Sync() error                       { return nil }
func (s *geometryStore) Size() int64                       { return s.size }
func (s *geometryStore) BlockSize() int                    { return s.blockSize }
func (s *geometryStore) PhysicalBlockSize() int            { return s.physBlockSize }
func (s *geometryStore) Close() error                      { return nil }

var _ backstore.PhysicalBlockSizer = (*geometryStore)(nil)

func TestReadCapacity(t *testing.T) {
	cases := []struct {
		name       string
		store      *geometryStore
		want10LBA  uint32
		want16LBA  uint64
		wantLBPPBE byte
	}{
		{"512 bytes", &geometryStore{size: 1000 * 512, blockSize: 512, physBlockSize: 512}, 999, 999, 0},
		{"4096 bytes", &geometryStore{size: 1000 * 4096, blockSize: 4096, physBlockSize: 4096}, 999, 999, 0},
		{"512e", &geometryStore{size: 1 << 30, blockSize: 512, physBlockSize: 4096}, 1<<21 - 1, 1<<21 - 1, 3},
		{"physical size not a power-of-two multiple", &geometryStore{size: 3 << 20, blockSize: 512, physBlockSize: 1536}, 6143, 6143, 0},
		{"last LBA FFFFFFFEh", &geometryStore{size: 0xFFFFFFFF * 512, blockSize: 512, physBlockSize: 512}, 0xFFFFFFFE, 0xFFFFFFFE, 0},
		{"last LBA FFFFFFFFh", &geometryStore{size: 0x100000000 * 512, blockSize: 512, physBlockSize: 512}, 0xFFFFFFFF, 0xFFFFFFFF, 0},
		{"beyond 32 bits", &geometryStore{size: 0x300000000 * 4096, blockSize: 4096, physBlockSize: 4096}, 0xFFFFFFFF, 0x2FFFFFFFF, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBench(t, c.store, benchConfig{})

			rc := b.run(readCapacity10CDB(0, false), nil)
			requireGood(t, rc)
			require.Len(t, rc.DataIn, 8)
			assert.Equal(t, c.want10LBA, binary.BigEndian.Uint32(rc.DataIn[0:]))
			assert.Equal(t, uint32(c.store.blockSize), binary.BigEndian.Uint32(rc.DataIn[4:]))

			rc = b.run(readCapacity16CDB(0, 32, false), nil)
			requireGood(t, rc)
			require.Len(t, rc.DataIn, 32)
			want := make([]byte, 32)
			binary.BigEndian.PutUint64(want[0:], c.want16LBA)
			binary.BigEndian.PutUint32(want[8:], uint32(c.store.blockSize))
			want[13] = c.wantLBPPBE
			assert.Equal(t, want, rc.DataIn, "P_TYPE, PROT_EN, LBPME, LBPRZ and the lowest aligned LBA are zero")
		})
	}
}

func TestReadCapacityFields(t *testing.T) {
	b, _ := newMemoryBench(t, 100, 512, benchConfig{})
	full := b.run(readCapacity16CDB(0, 32, false), nil)
	requireGood(t, full)

	t.Run("allocation length", func(t *testing.T) {
		for _, n := range []uint32{0, 1, 8, 12, 31, 32, 33, 1 << 20} {
			c := b.run(readCapacity16CDB(0, n, false), nil)
			requireGood(t, c)
			assert.Equal(t, full.DataIn[:min(int(n), 32)], c.DataIn, "allocation length %d", n)
		}
	})
	t.Run("PMI", func(t *testing.T) {
		// PMI set: the last LBA, for any LBA up to it.
		for _, lba := range []uint32{0, 50, 99} {
			c := b.run(readCapacity10CDB(lba, true), nil)
			requireGood(t, c)
			assert.Equal(t, uint32(99), binary.BigEndian.Uint32(c.DataIn))
			c = b.run(readCapacity16CDB(uint64(lba), 32, true), nil)
			requireGood(t, c)
			assert.Equal(t, uint64(99), binary.BigEndian.Uint64(c.DataIn))
		}
		requireSense(t, b.run(readCapacity10CDB(100, true), nil), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
		requireSense(t, b.run(readCapacity16CDB(1<<40, 32, true), nil), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
		// PMI clear: the LBA must be zero.
		s := requireSense(t, b.run(readCapacity10CDB(1, false), nil), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)
		requireFieldPointer(t, s, 2, -1)
		s = requireSense(t, b.run(readCapacity16CDB(1, 32, false), nil), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)
		requireFieldPointer(t, s, 2, -1)
	})
}
