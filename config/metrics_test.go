package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseMetrics(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	require.NoError(t, err)
	assert.Equal(t, Metrics{}, cfg.Metrics, "off by default")

	for in, want := range map[string]string{
		`"127.0.0.1:9469"`: "127.0.0.1:9469",
		`127.0.0.1`:        "127.0.0.1:9469",
		`"[::1]"`:          "[::1]:9469",
		`"::1"`:            "[::1]:9469",
		`"[::1]:0"`:        "[::1]:0",
		`"0.0.0.0:8080"`:   "0.0.0.0:8080",
	} {
		cfg, err := Parse([]byte(minimal + "metrics:\n  listen: " + in + "\n"))
		require.NoError(t, err, in)
		assert.Equal(t, Metrics{Listen: want}, cfg.Metrics, in)
		out, err := cfg.Marshal()
		require.NoError(t, err)
		again, err := Parse(out)
		require.NoError(t, err, "Marshal output:\n%s", out)
		assert.Equal(t, cfg.Metrics, again.Metrics, in)
	}

	bad := func(src string) error { _, err := Parse([]byte(minimal + src)); return err }
	requireErrors(t, bad("metrics:\n  listen: localhost:9469\n"),
		[]wantErr{{10, "metrics.listen", `invalid listen address "localhost:9469"`}})
	requireErrors(t, bad("metrics:\n  listen: \"127.0.0.1:99999\"\n"),
		[]wantErr{{10, "metrics.listen", "invalid listen address"}})
	requireErrors(t, bad("metrics:\n  listen: 9469\n"),
		[]wantErr{{10, "metrics.listen", "must be a string"}})
	requireErrors(t, bad("metrics:\n  listn: 127.0.0.1\n"),
		[]wantErr{{10, "metrics.listn", `did you mean "listen"?`}})
	requireErrors(t, bad("metrics:\n  listen: 127.0.0.1\n  path: /m\n"),
		[]wantErr{{11, "metrics.path", "unknown key"}})
	requireErrors(t, bad("metrics: 127.0.0.1\n"),
		[]wantErr{{9, "metrics", "must be a mapping"}})
	// The portal of minimal is 127.0.0.1:3260.
	requireErrors(t, bad("metrics:\n  listen: 127.0.0.1:3260\n"),
		[]wantErr{{10, "metrics.listen", "is also portal 127.0.0.1:3260 of iqn.2025-01.io.odxtgt:t"}})
}

func TestValidateMetrics(t *testing.T) {
	cfg := Default("/srv")
	cfg.Metrics.Listen = "127.0.0.1"
	requireErrors(t, cfg.Validate(), []wantErr{{0, "metrics.listen", `not in canonical form "127.0.0.1:9469"`}})
	cfg.Metrics.Listen = "0.0.0.0:3260"
	requireErrors(t, cfg.Validate(), []wantErr{{0, "metrics.listen", "is also portal 127.0.0.1:3260"}})
	cfg.Metrics.Listen = "127.0.0.1:0"
	require.NoError(t, cfg.Validate())
}
