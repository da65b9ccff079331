package rod

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// FuzzParseParams feeds arbitrary parameter lists to the parser. It must
// never panic; a list it accepts respects the limits the copy manager
// reports, and re-encoding the result parses back to the same thing.
// Failures are well-formed ILLEGAL REQUEST sense data.
func FuzzParseParams(f *testing.F) {
	for _, lay := range layouts {
		for _, p := range goodParams(lay.lid4) {
			f.Add(encodeParams(p), lay.lid4)
		}
		for _, c := range paramErrors {
			if c.only == "" || c.only == lay.name() {
				f.Add(c.build(lay, errBase(lay.lid4)), lay.lid4)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, lid4 bool) {
		keep := append([]byte{}, data...)
		p, s := ParseParams(data, lid4)
		require.True(t, bytes.Equal(keep, data), "the parser must not write to its input")
		if s != nil {
			require.Nil(t, p)
			require.Equal(t, scsi.IllegalRequest, s.Key, "%v", s)
			require.Contains(t, []scsi.ASC{
				scsi.ASCParameterListLengthError, scsi.ASCInvalidFieldInParameterList,
				scsi.ASCTooManyTargetDescriptors, scsi.ASCTooManySegmentDescriptors,
				scsi.ASCUnsupportedTargetDescriptor, scsi.ASCUnsupportedSegmentDescriptor,
			}, s.Code, "%v", s)
			if s.HasSKS() {
				require.Zero(t, s.SenseKeySpecific[0]&0x40, "field pointers point into the parameter list")
				require.Less(t, int(s.SenseKeySpecific[1])<<8|int(s.SenseKeySpecific[2]), max(len(data), 1))
			}
			return
		}
		require.NotNil(t, p)
		require.Equal(t, lid4, p.LID4)
		require.LessOrEqual(t, len(p.CSCDs), MaxCSCDs)
		require.LessOrEqual(t, len(p.Segments), MaxSegments)
		require.NotEqual(t, ListIDUsage(1), p.Usage)
		if p.Usage == UsageNone {
			require.Zero(t, p.ListID)
		}
		if !lid4 {
			require.False(t, p.Immed)
			require.LessOrEqual(t, p.ListID, uint32(0xFF))
		}
		end := 0
		for _, c := range p.CSCDs {
			require.LessOrEqual(t, len(c.Designator.Value), 20)
			require.Less(t, c.BlockLength, uint32(1<<24))
			require.Equal(t, c.ROD != nil, data[c.Offset] == CSCDROD)
			require.Contains(t, []byte{CSCDIdentification, CSCDROD}, data[c.Offset])
			end = c.Offset + cscdLen
		}
		for _, sg := range p.Segments {
			n, ok := segmentLength[sg.Type]
			require.True(t, ok, "segment type %02xh", sg.Type)
			require.Equal(t, sg.Type, data[sg.Offset])
			end = sg.Offset + 4 + n
		}
		require.LessOrEqual(t, end, len(data))
		require.LessOrEqual(t, end-map[bool]int{false: lid1HeaderLen, true: lid4HeaderLen}[lid4], MaxDescriptorListLength)

		// Round trip through the test encoder: the canonical layout of
		// the result parses to the same result, offsets included.
		again, s := ParseParams(encodeParams(p), lid4)
		require.Nil(t, s, "re-parse: %v", s)
		if d := paramsDiff(p, again); d != "" {
			t.Fatalf("round trip differs: %s", d)
		}
	})
}

// paramsDiff names the first difference between two parsed lists, or
// returns "". (A require.Equal diff of lists of hundreds of descriptors
// takes the fuzzer minutes to print.)
func paramsDiff(a, b *Params) string {
	ha, hb := *a, *b
	ha.CSCDs, ha.Segments, hb.CSCDs, hb.Segments = nil, nil, nil, nil
	switch {
	case !reflect.DeepEqual(ha, hb):
		return fmt.Sprintf("header %+v, then %+v", ha, hb)
	case len(a.CSCDs) != len(b.CSCDs) || len(a.Segments) != len(b.Segments):
		return fmt.Sprintf("%d CSCDs and %d segments, then %d and %d", len(a.CSCDs), len(a.Segments), len(b.CSCDs), len(b.Segments))
	}
	for i := range a.CSCDs {
		if !reflect.DeepEqual(a.CSCDs[i], b.CSCDs[i]) {
			return fmt.Sprintf("CSCD %d: %+v, then %+v", i, a.CSCDs[i], b.CSCDs[i])
		}
	}
	for i := range a.Segments {
		if a.Segments[i] != b.Segments[i] {
			return fmt.Sprintf("segment %d: %+v, then %+v", i, a.Segments[i], b.Segments[i])
		}
	}
	return ""
}
