package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/internal/scratchfs"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestServeTokenSurvivesRestart: with tokens.key_file, a point-in-time
// token made on a file system with reflinks outlives a restart of the
// target: a host that read it before is served the data of the moment of
// POPULATE TOKEN by the next process, from a new session. Without the key
// file the next process has a key of its own, under which the token does
// not verify (23h/05h, as any token it did not make).
func TestServeTokenSurvivesRestart(t *testing.T) {
	mnt, whyNot := scratchfs.Mount(t, scratchfs.XFSReflink)
	if mnt == "" {
		t.Skip(whyNot)
	}
	for _, withKey := range []bool{true, false} {
		t.Run(fmt.Sprintf("key_file=%v", withKey), func(t *testing.T) {
			dir, err := os.MkdirTemp(mnt, "restart")
			require.NoError(t, err)
			const iqn = "iqn.2025-01.io.odxtgt:restart"
			yaml := fmt.Sprintf("backstores:\n  - {name: vol, type: file, path: %s, size: 32MiB}\n"+
				"targets:\n  - iqn: %s\n    portals: [\"127.0.0.1:0\"]\n    luns: [{lun: 0, backstore: vol}]\n",
				filepath.Join(dir, "vol.img"), iqn)
			if withKey {
				key := filepath.Join(dir, "token.key")
				require.NoError(t, os.WriteFile(key, bytes.Repeat([]byte{0x42}, 32), 0o600))
				yaml += "tokens:\n  key_file: " + key + "\n"
			}
			o := &serveOptions{configPath: writeConfig(t, t.TempDir(), yaml), logFormat: "text", logLevel: "info"}

			first := startServe(t, o)
			h := newWinHost(t)
			s := winDial(t, first.addr, "iqn.2025-01.test:host-a", iqn, 0)
			src := []extent{{0, 2048}}
			winWriteBlocks(t, s, 0, 0, randomBytes(2048*512), 512)
			old := readExtents(t, s, 0, src, 512)
			tok, n := h.offloadRead(s, 0, src)
			require.Equal(t, uint64(2048), n)
			winWriteBlocks(t, s, 0, 0, make([]byte, 2048*512), 512) // the source changes
			s.Close()
			require.NoError(t, first.stop())

			second := startServe(t, o)
			s = winDial(t, second.addr, "iqn.2025-01.test:host-b", iqn, 0)
			res := h.offloadWrite(s, 0, tok, 0, false, []extent{{8192, 2048}})
			if !withKey {
				requireTokenError(t, res, scsi.ASC(0x2305))
				return
			}
			require.Nil(t, res.sense, "%v", res.sense)
			require.False(t, res.truncated)
			assert.Equal(t, old, readExtents(t, s, 0, []extent{{8192, 2048}}, 512), "the data of the moment of POPULATE TOKEN")
		})
	}
}
