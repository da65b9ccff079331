package iscsi

import (
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

func TestNegotiationResults(t *testing.T) {
	for _, tc := range []struct {
		key, offer, want string
		discovery        bool
		also             []string // other keys in the same request
	}{
		{key: "HeaderDigest", offer: "CRC32C,None", want: "CRC32C"},
		{key: "HeaderDigest", offer: "None,CRC32C", want: "None"},
		{key: "HeaderDigest", offer: "MD5", want: ValueReject},
		{key: "DataDigest", offer: "SHA1,CRC32C", want: "CRC32C"},
		{key: "DataDigest", offer: "CRC32C,,None", want: ValueReject},
		{key: "MaxConnections", offer: "4", want: "1"},
		{key: "MaxConnections", offer: "0", want: ValueReject},
		{key: "InitialR2T", offer: "Yes", want: "Yes"},
		{key: "InitialR2T", offer: "No", want: "No"},
		{key: "InitialR2T", offer: "maybe", want: ValueReject},
		{key: "ImmediateData", offer: "Yes", want: "Yes"},
		{key: "ImmediateData", offer: "No", want: "No"},
		{key: "MaxBurstLength", offer: "16776192", want: "1048576"},
		{key: "MaxBurstLength", offer: "0x1000", want: "4096"},
		{key: "MaxBurstLength", offer: "511", want: ValueReject},
		{key: "MaxBurstLength", offer: "16777216", want: ValueReject},
		{key: "FirstBurstLength", offer: "65536", want: "65536"},
		{key: "FirstBurstLength", offer: "1048576", want: "262144"},
		{key: "FirstBurstLength", offer: "65536", want: "8192", also: []string{"MaxBurstLength", "8192"}},
		{key: "FirstBurstLength", offer: "65536", want: ValueIrrelevant, also: []string{"InitialR2T", "Yes", "ImmediateData", "No"}},
		{key: "DefaultTime2Wait", offer: "0", want: "2"},
		{key: "DefaultTime2Wait", offer: "10", want: "10"},
		{key: "DefaultTime2Wait", offer: "3601", want: ValueReject},
		{key: "DefaultTime2Retain", offer: "0", want: "0"},
		{key: "DefaultTime2Retain", offer: "60", want: "20"},
		{key: "MaxOutstandingR2T", offer: "1", want: "1"},
		{key: "MaxOutstandingR2T", offer: "64", want: "16"},
		{key: "DataPDUInOrder", offer: "No", want: "Yes"},
		{key: "DataSequenceInOrder", offer: "No", want: "Yes"},
		{key: "ErrorRecoveryLevel", offer: "2", want: "0"},
		{key: "ErrorRecoveryLevel", offer: "3", want: ValueReject},
		{key: "iSCSIProtocolLevel", offer: "2", want: "1"},
		{key: "TaskReporting", offer: "FastAbort,RFC3720", want: "RFC3720"},
		{key: "TaskReporting", offer: "FastAbort", want: ValueReject},
		{key: "IFMarker", offer: "Yes", want: "No"},
		{key: "OFMarker", offer: "No", want: "No"},
		{key: "OFMarkInt", offer: "1~65535", want: ValueReject},
		{key: "IFMarkInt", offer: "2048", want: ValueReject},
		{key: "X-org.example.Thing", offer: "1", want: ValueNotUnderstood},
		{key: "X#Thing", offer: "1", want: ValueNotUnderstood},
		{key: "NoSuchKey", offer: "1", want: ValueNotUnderstood},
		{key: "TargetAlias", offer: "me", want: ValueReject},
		{key: "SendTargets", offer: "All", want: ValueIrrelevant},
		{key: "MaxBurstLength", offer: "4096", want: ValueIrrelevant, discovery: true},
		{key: "InitialR2T", offer: "No", want: ValueIrrelevant, discovery: true},
		{key: "MaxOutstandingR2T", offer: "2", want: ValueIrrelevant, discovery: true},
		{key: "ErrorRecoveryLevel", offer: "0", want: "0", discovery: true},
		{key: "HeaderDigest", offer: "CRC32C", want: "CRC32C", discovery: true},
	} {
		t.Run(tc.key+"="+tc.offer, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTester(t)
				keys := normalKeys()
				if tc.discovery {
					keys = kv("InitiatorName", testInitiator, "SessionType", "Discovery")
				}
				keys = append(keys, kv(tc.also...)...)
				keys.Add(tc.key, tc.offer)
				p, resp := tt.loginStep(stageOperational, stageFullFeature, true, keys)
				require.Equal(t, LoginSuccess, loginStatus(p))
				got, ok := resp.Get(tc.key)
				require.True(t, ok, "no answer for %s in %v", tc.key, resp)
				assert.Equal(t, tc.want, got)
			})
		})
	}
}

func TestLoginDeclarations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		p, resp := tt.loginStep(stageSecurity, stageOperational, true, append(normalKeys(), kv("AuthMethod", "None")...))
		require.Equal(t, LoginSuccess, loginStatus(p))
		assert.Equal(t, byte(loginFlagTransit|stageOperational), p.Flags())
		assert.Zero(t, p.Uint16(offTSIH), "no TSIH before the final response")
		m := resp.Map()
		assert.Equal(t, "None", m["AuthMethod"])
		assert.Equal(t, "1", m["TargetPortalGroupTag"])
		assert.Equal(t, "test target", m["TargetAlias"])
		_, declared := m["MaxRecvDataSegmentLength"]
		assert.False(t, declared, "declared in the operational stage")

		p, resp = tt.loginStep(stageOperational, stageFullFeature, true, opKeys())
		require.Equal(t, LoginSuccess, loginStatus(p))
		assert.Equal(t, byte(loginFlagTransit|stageOperational<<2|stageFullFeature), p.Flags())
		assert.NotZero(t, p.Uint16(offTSIH))
		v, _ := resp.Get("MaxRecvDataSegmentLength")
		assert.Equal(t, "262144", v)
		tt.enterFFP(resp)
		tt.clearUA()
	})
}

func TestLoginContinuation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		text := append(normalKeys(), opKeys()...).Encode()
		first := tt.loginPDU(stageOperational, 0, false, nil)
		first.BHS[1] |= loginFlagContinue
		first.Data = text[:20]
		tt.send(first)
		p := tt.recv()
		require.Equal(t, OpLoginResp, p.Opcode())
		assert.Empty(t, p.Data)
		tt.statSN = p.Uint32(OffStatSN) + 1
		rest := tt.loginPDU(stageOperational, stageFullFeature, true, nil)
		rest.Data = text[20:]
		tt.send(rest)
		p = tt.want(OpLoginResp)
		require.Equal(t, LoginSuccess, loginStatus(p))
		assert.NotZero(t, p.Uint16(offTSIH))
	})
}

func TestLoginFailures(t *testing.T) {
	onlyOther := func(c *Config) {
		c.Targets[0].TPGs[0].ACLs = []ACL{{Initiator: "iqn.2024-01.org.odxtgt:other"}}
	}
	withCHAP := func(c *Config) { c.Targets[0].TPGs[0].Auth = &CHAP{User: "u", Secret: "secretsecret1"} }
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		pdu  func(tt *tester) *PDU
		want LoginStatus
	}{
		{"no InitiatorName", nil, func(tt *tester) *PDU {
			return tt.loginPDU(stageOperational, stageFullFeature, true, kv("TargetName", testTarget))
		}, LoginMissingParameter},
		{"InitiatorName longer than 223 bytes once lowercased", nil, func(tt *tester) *PDU {
			// 222 bytes as sent; U+023A lowercases to three bytes.
			name := "iqn." + strings.Repeat("\u023a", 109)
			return tt.loginPDU(stageOperational, stageFullFeature, true, kv("InitiatorName", name, "TargetName", testTarget))
		}, LoginInitiatorError},
		{"no TargetName", nil, func(tt *tester) *PDU {
			return tt.loginPDU(stageOperational, stageFullFeature, true, kv("InitiatorName", testInitiator))
		}, LoginMissingParameter},
		{"unknown target", nil, func(tt *tester) *PDU {
			return tt.loginPDU(stageOperational, stageFullFeature, true, kv("InitiatorName", testInitiator, "TargetName", "iqn.2024-01.org.odxtgt:none"))
		}, LoginNotFound},
		{"not in the ACL", onlyOther, func(tt *tester) *PDU {
			return tt.loginPDU(stageOperational, stageFullFeature, true, normalKeys())
		}, LoginAuthorizationFailure},
		{"unsupported version", nil, func(tt *tester) *PDU {
			p := tt.loginPDU(stageOperational, stageFullFeature, true, normalKeys())
			p.BHS[2], p.BHS[3] = 2, 1
			return p
		}, LoginUnsupportedVersion},
		{"unknown session type", nil, func(tt *tester) *PDU {
			return tt.loginPDU(stageOperational, stageFullFeature, true, kv("InitiatorName", testInitiator, "SessionType", "Other"))
		}, LoginSessionTypeUnsupp},
		{"unknown TSIH", nil, func(tt *tester) *PDU {
			tt.tsih = 77
			return tt.loginPDU(stageOperational, stageFullFeature, true, normalKeys())
		}, LoginSessionDoesNotExist},
		{"T and C", nil, func(tt *tester) *PDU {
			p := tt.loginPDU(stageOperational, stageFullFeature, true, normalKeys())
			p.BHS[1] |= loginFlagContinue
			return p
		}, LoginInitiatorError},
		{"backwards transition", nil, func(tt *tester) *PDU {
			return tt.loginPDU(stageOperational, stageSecurity, true, normalKeys())
		}, LoginInitiatorError},
		{"reserved stage", nil, func(tt *tester) *PDU {
			return tt.loginPDU(2, stageFullFeature, true, normalKeys())
		}, LoginInitiatorError},
		{"malformed text", nil, func(tt *tester) *PDU {
			p := tt.loginPDU(stageOperational, stageFullFeature, true, nil)
			p.Data = []byte("InitiatorName\x00")
			return p
		}, LoginInitiatorError},
		{"bad MaxRecvDataSegmentLength", nil, func(tt *tester) *PDU {
			return tt.loginPDU(stageOperational, stageFullFeature, true, append(normalKeys(), kv("MaxRecvDataSegmentLength", "100")...))
		}, LoginInitiatorError},
		{"CHAP required, security stage skipped", withCHAP, func(tt *tester) *PDU {
			return tt.loginPDU(stageOperational, stageFullFeature, true, normalKeys())
		}, LoginAuthFailure},
		{"CHAP required, None offered", withCHAP, func(tt *tester) *PDU {
			return tt.loginPDU(stageSecurity, stageOperational, true, append(normalKeys(), kv("AuthMethod", "None")...))
		}, LoginAuthFailure},
		{"security key in the operational stage", nil, func(tt *tester) *PDU {
			return tt.loginPDU(stageOperational, stageFullFeature, true, append(normalKeys(), kv("AuthMethod", "None")...))
		}, LoginInvalidDuringLogin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mods []func(*Config)
				if tc.mod != nil {
					mods = append(mods, tc.mod)
				}
				tt := newTester(t, mods...)
				tt.send(tc.pdu(tt))
				p := tt.want(OpLoginResp)
				assert.Equal(t, tc.want, loginStatus(p))
				tt.wantClosed()
			})
		})
	}
}

func TestLoginRepeatedKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		p, _ := tt.loginStep(stageOperational, 0, false, append(normalKeys(), kv("MaxBurstLength", "4096")...))
		require.Equal(t, LoginSuccess, loginStatus(p))
		p, _ = tt.loginStep(stageOperational, stageFullFeature, true, kv("MaxBurstLength", "8192"))
		assert.Equal(t, LoginInitiatorError, loginStatus(p))
		tt.wantClosed()
	})
}

func TestLoginNeedsLoginPDU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.ping(true, nil)
		tt.wantClosed()
	})
}

func TestLoginTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		// Half a login, then silence: the target gives up.
		p, _ := tt.loginStep(stageSecurity, 0, false, normalKeys())
		require.Equal(t, LoginSuccess, loginStatus(p))
		tt.wantClosed()
	})
}

func TestConnectionAddRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		o := tt.second(1)
		o.tsih = tt.tsih
		o.send(o.loginPDU(stageOperational, stageFullFeature, true, normalKeys()))
		assert.Equal(t, LoginTooManyConnections, loginStatus(o.want(OpLoginResp)))
	})
}

// chapLogin runs the security stage with CHAP; secret is what the
// initiator uses, mutual asks the target to prove itself.
func chapLogin(tt *tester, alg CHAPAlgorithm, user, secret string, mutual bool) (*PDU, TextKeys) {
	t := tt.t
	p, resp := tt.loginStep(stageSecurity, stageOperational, true, append(normalKeys(), kv("AuthMethod", "CHAP,None")...))
	require.Equal(t, LoginSuccess, loginStatus(p))
	require.Zero(t, p.Flags()&loginFlagTransit, "no transit before authentication")
	v, _ := resp.Get("AuthMethod")
	require.Equal(t, "CHAP", v)
	p, resp = tt.loginStep(stageSecurity, stageOperational, true, kv("CHAP_A", FormatNumber(uint64(alg))))
	require.Equal(t, LoginSuccess, loginStatus(p))
	m := resp.Map()
	require.Equal(t, FormatNumber(uint64(alg)), m["CHAP_A"])
	id, err := ParseCHAPIdentifier(m["CHAP_I"])
	require.NoError(t, err)
	challenge, err := ParseCHAPBinary(m["CHAP_C"])
	require.NoError(t, err)
	answer, err := CHAPResponse(alg, id, []byte(secret), challenge)
	require.NoError(t, err)
	keys := kv("CHAP_N", user, "CHAP_R", EncodeHex(answer))
	if mutual {
		keys = append(keys, kv("CHAP_I", "17", "CHAP_C", EncodeBase64([]byte("initiator challenge!")))...)
	}
	return tt.loginStep(stageSecurity, stageOperational, true, keys)
}

func TestCHAP(t *testing.T) {
	auth := &CHAP{User: "alice", Secret: "alice-secret-1", MutualUser: "target", MutualSecret: "target-secret-2"}
	for _, alg := range []CHAPAlgorithm{CHAPMD5, CHAPSHA1, CHAPSHA256, CHAPSHA3256} {
		for _, mutual := range []bool{false, true} {
			name := alg.String()
			if mutual {
				name += "/mutual"
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					tt := newTester(t, func(c *Config) { c.Targets[0].TPGs[0].Auth = auth })
					p, resp := chapLogin(tt, alg, auth.User, auth.Secret, mutual)
					require.Equal(t, LoginSuccess, loginStatus(p))
					require.NotZero(t, p.Flags()&loginFlagTransit)
					if mutual {
						m := resp.Map()
						assert.Equal(t, auth.MutualUser, m["CHAP_N"])
						want, err := CHAPResponse(alg, 17, []byte(auth.MutualSecret), []byte("initiator challenge!"))
						require.NoError(t, err)
						assert.Equal(t, EncodeHex(want), m["CHAP_R"])
					}
					tt.finishLogin(opKeys())
					tt.clearUA()
				})
			})
		}
		t.Run(alg.String()+"/wrong secret", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTester(t, func(c *Config) { c.Targets[0].TPGs[0].Auth = auth })
				p, _ := chapLogin(tt, alg, auth.User, "not-the-secret", false)
				assert.Equal(t, LoginAuthFailure, loginStatus(p))
				tt.wantClosed()
			})
		})
	}
	for _, tc := range []struct {
		name   string
		auth   *CHAP
		user   string
		mutual bool
	}{
		{"wrong user", auth, "mallory", false},
		{"mutual not configured", &CHAP{User: "alice", Secret: "alice-secret-1"}, "alice", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTester(t, func(c *Config) { c.Targets[0].TPGs[0].Auth = tc.auth })
				p, _ := chapLogin(tt, CHAPSHA256, tc.user, tc.auth.Secret, tc.mutual)
				assert.Equal(t, LoginAuthFailure, loginStatus(p))
			})
		})
	}
	t.Run("ACL overrides", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tt := newTester(t, func(c *Config) {
				c.Targets[0].TPGs[0].ACLs = []ACL{{Initiator: testInitiator, Auth: &CHAP{User: "bob", Secret: "bob-secret-123"}}}
			})
			p, _ := chapLogin(tt, CHAPMD5, "bob", "bob-secret-123", false)
			assert.Equal(t, LoginSuccess, loginStatus(p))
		})
	})
	t.Run("reflected challenge", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tt := newTester(t, func(c *Config) { c.Targets[0].TPGs[0].Auth = auth })
			tt.loginStep(stageSecurity, stageOperational, true, append(normalKeys(), kv("AuthMethod", "CHAP")...))
			_, resp := tt.loginStep(stageSecurity, stageOperational, true, kv("CHAP_A", "5"))
			m := resp.Map()
			id, _ := ParseCHAPIdentifier(m["CHAP_I"])
			challenge, _ := ParseCHAPBinary(m["CHAP_C"])
			answer, _ := CHAPResponse(CHAPMD5, id, []byte(auth.Secret), challenge)
			p, _ := tt.loginStep(stageSecurity, stageOperational, true,
				kv("CHAP_N", auth.User, "CHAP_R", EncodeHex(answer), "CHAP_I", m["CHAP_I"], "CHAP_C", m["CHAP_C"]))
			assert.Equal(t, LoginAuthFailure, loginStatus(p))
		})
	})
}

func TestSessionReinstatement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		tt.command([]byte{opSlow, 0, 0, 0, 0, 0}, cmdOpts{})
		synctest.Wait()

		again := tt.second(1) // same initiator name and ISID
		again.login(opKeys())
		// The old session is gone, its slow command aborted without a
		// response.
		tt.wantClosed()
		// The new session is the same I_T nexus, which was lost: its first
		// command reports I_T NEXUS LOSS OCCURRED (SAM-5 6.3.4), the next
		// one runs.
		itt := again.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
		r := again.wantResult(itt)
		require.Equal(t, scsi.StatusCheckCondition, r.status)
		assert.Equal(t, scsi.ASCITNexusLossOccurred, r.sense.Code)
		itt = again.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
		assert.Equal(t, scsi.StatusGood, again.wantResult(itt).status)
	})
}

func TestSeveralSessionsOfOneInitiator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newTester(t)
		a.loginDefault()
		b := a.second(2)
		b.loginDefault()
		data := pattern(testBlock, 4)
		itt := a.command(write10(1, 1), cmdOpts{write: true, edtl: testBlock, data: data})
		require.Equal(t, scsi.StatusGood, a.wantResult(itt).status)
		itt = b.command(read10(1, 1), cmdOpts{read: true, edtl: testBlock})
		r := b.wantResult(itt)
		require.Equal(t, scsi.StatusGood, r.status)
		assert.Equal(t, data, r.data)
	})
}
