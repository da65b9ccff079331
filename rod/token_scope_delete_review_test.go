package rod

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewOutOfScopeDelTknDeletesToken: with tokens.scope target or
// initiator, a nexus outside the token's scope is refused (INVALID TOKEN
// OPERATION, REMOTE ROD TOKEN USAGE NOT SUPPORTED), but WriteUsingToken
// registers the release of the token, with DEL_TKN, before it checks the
// scope: the refused command still deletes the token, and its owner's
// next WRITE USING TOKEN fails with TOKEN DELETED. Whoever sees a token
// on the wire can destroy it for everyone the scope was meant to allow.
func TestReviewOutOfScopeDelTknDeletesToken(t *testing.T) {
	for _, scope := range []Scope{ScopeInitiator, ScopeTarget} {
		r := newODXRig(t, TokenConfig{Scope: scope}, 1024, 1024)
		tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 8)})
		require.Nil(t, s)
		outsider := scsi.NewNexus(scsi.Nexus{InitiatorName: "iqn.2025-01.test:mallory", InitiatorPort: "iqn.2025-01.test:mallory,i,0x9",
			TargetName: "iqn.2025-01.test:other", TargetPort: "iqn.2025-01.test:other,t,0x1"}, map[uint64]*scsi.LU{1: r.lus[1]}, nil)
		_, s = r.wut(outsider, 1, &WUTParams{Token: tok, DelTkn: true, Ranges: ranges(0, 8)})
		wantSense(t, s, scsi.IllegalRequest, ascTokenRemoteUsage)
		_, s = r.wut(r.nexus, 1, &WUTParams{Token: tok, Ranges: ranges(0, 8)})
		require.Nil(t, s, "scope %d: the owner's WRITE USING TOKEN after an out-of-scope nexus's refused DEL_TKN: %v", scope, s)
	}
}
