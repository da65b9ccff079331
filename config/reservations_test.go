package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseReservations(t *testing.T) {
	src := minimal + "reservations:\n  state_dir: /var/lib/odxtgt/pr\n"
	cfg, err := Parse([]byte(src))
	require.NoError(t, err)
	assert.Equal(t, Reservations{StateDir: "/var/lib/odxtgt/pr"}, cfg.Reservations)
	out, err := cfg.Marshal()
	require.NoError(t, err)
	again, err := Parse(out)
	require.NoError(t, err)
	assert.Equal(t, cfg.Reservations, again.Reservations)

	// The line of the offending key, as every other error.
	requireErrors(t, func() error { _, err := Parse([]byte(minimal + "reservations:\n  state_dir: pr\n")); return err }(),
		[]wantErr{{10, "reservations.state_dir", "must be an absolute path"}})
	requireErrors(t, func() error { _, err := Parse([]byte(minimal + "reservations:\n  statedir: /x\n")); return err }(),
		[]wantErr{{10, "reservations.statedir", `did you mean "state_dir"?`}})
	requireErrors(t, func() error { _, err := Parse([]byte(minimal + "reservations:\n  state_dir: 3\n")); return err }(),
		[]wantErr{{10, "reservations.state_dir", "must be a string"}})
	requireErrors(t, func() error { _, err := Parse([]byte(minimal + "reservations: /x\n")); return err }(),
		[]wantErr{{9, "reservations", "must be a mapping"}})
}

func TestReservationFile(t *testing.T) {
	file := Backstore{Name: "disk0", Type: TypeFile, Path: "/srv/img/disk0.img"}
	block := Backstore{Name: "fast", Type: TypeBlock, Path: "/dev/nvme0n1"}
	mem := Backstore{Name: "scratch", Type: TypeMemory}

	c := &Config{}
	assert.Equal(t, "/srv/img/.odxtgt-pr/disk0.json", c.ReservationFile(&file), "beside the data")
	assert.Empty(t, c.ReservationFile(&block), "a block device has no directory of its own")
	assert.Empty(t, c.ReservationFile(&mem))

	c.Reservations.StateDir = "/var/lib/odxtgt/pr"
	assert.Equal(t, "/var/lib/odxtgt/pr/disk0.pr.json", c.ReservationFile(&file))
	assert.Equal(t, "/var/lib/odxtgt/pr/fast.pr.json", c.ReservationFile(&block))
	assert.Empty(t, c.ReservationFile(&mem), "memory backstores never persist")
}
