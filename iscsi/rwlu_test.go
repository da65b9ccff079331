package iscsi_test

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// newRWLU returns a memory logical unit of size bytes in 512-byte blocks
// that serves just READ (10), WRITE (10) and a bare INQUIRY: enough for the
// transport tests that talk to the target over TCP through the Go
// initiator, without the real command sets.
func newRWLU(t *testing.T, name string, size int64) (*scsi.LU, *scsi.LU) {
	t.Helper()
	const block = 512
	usage := func(n int) []byte { return bytes.Repeat([]byte{0xFF}, n) }
	extent := func(cdb []byte) (off int64, n int) {
		return int64(binary.BigEndian.Uint32(cdb[2:])) * block, int(binary.BigEndian.Uint16(cdb[7:])) * block
	}
	table, err := scsi.NewTable(scsi.CommandSet{Commands: []scsi.CommandDesc{
		{Name: "READ(10)", Opcode: 0x28, Usage: usage(10), Direction: scsi.DirIn,
			Handler: func(cmd *scsi.Command) error {
				off, n := extent(cmd.CDB)
				return cmd.LU().Store.ReadAt(cmd.AllocDataIn(n), off)
			}},
		{Name: "WRITE(10)", Opcode: 0x2A, Usage: usage(10), Direction: scsi.DirOut,
			Handler: func(cmd *scsi.Command) error {
				off, n := extent(cmd.CDB)
				data, err := cmd.TakeDataOut(n)
				if err != nil {
					return err
				}
				return cmd.LU().Store.WriteAt(data, off, false)
			}},
		{Name: "INQUIRY", Opcode: 0x12, Usage: usage(6), Flags: scsi.FlagIgnoresUA | scsi.FlagNoLU,
			Handler: func(cmd *scsi.Command) error { cmd.SetDataIn(make([]byte, 36), 36); return nil }},
	}})
	require.NoError(t, err)
	log := slog.New(slog.DiscardHandler)
	lu := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: name}, Store: backstore.NewMemory(size, block), Table: table, Logger: log})
	return lu, scsi.NewAbsentLU(table, log)
}
