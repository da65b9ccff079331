package scsi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/odxtgt/odxtgt/internal/durable"
)

// The persistent reservation state file. While APTPL is in effect (the
// last REGISTER, REGISTER AND IGNORE EXISTING KEY or REGISTER AND MOVE
// that took effect had APTPL set, SPC-4 5.12.4) every change of the
// registrations or the reservation is written to it before the command
// completes: to a temporary file in the same directory, fsynced, renamed
// over the old file, and the directory fsynced, so after a crash the file
// holds either the old state or the new one. When APTPL goes to zero, and
// after CLEAR, the file is removed. At start RestoreReservations reads it
// back; a file that cannot be read or does not hold a valid state is an
// error naming it, never ignored.
//
// The file is JSON:
//
//	{"version": 1, "serial": "<unit serial number>", "generation": 7,
//	 "type": 5,
//	 "registrations": [{"key": "00000000000000ab", "initiator": "iqn...",
//	   "isid": "400001370000", "target_port": "iqn...,t,0x0001",
//	   "relative_port": 1, "all_target_ports": false, "holder": true}]}
//
// "type" is 0 without a persistent reservation; "holder" marks the holder
// of a reservation that is not of an all registrants type; "isid" is
// empty for a registration made for an initiator device (TransportID
// format 00b). The serial ties the file to its logical unit: a file
// written for another unit is refused.

const reservationFileVersion = 1

type savedReservations struct {
	Version       int                 `json:"version"`
	Serial        string              `json:"serial"`
	Generation    uint32              `json:"generation"`
	Type          ReservationType     `json:"type"`
	Registrations []savedRegistration `json:"registrations"`
}

type savedRegistration struct {
	Key            string `json:"key"` // 16 hex digits
	Initiator      string `json:"initiator"`
	ISID           string `json:"isid"`
	TargetPort     string `json:"target_port"`
	RelativePort   uint16 `json:"relative_port"`
	AllTargetPorts bool   `json:"all_target_ports"`
	Holder         bool   `json:"holder"`
}

// persist brings the state file in line with next, the state about to
// replace old.
func (lu *LU) persist(old, next *prState) error {
	switch {
	case next.aptpl:
		return lu.saveReservations(next)
	case old.aptpl && lu.prFile != "":
		return durable.Remove(lu.prFile)
	}
	return nil
}

func (lu *LU) saveReservations(p *prState) error {
	s := savedReservations{Version: reservationFileVersion, Serial: lu.Identity.Serial, Generation: p.generation, Type: p.typ,
		Registrations: []savedRegistration{}}
	for _, r := range p.regs {
		s.Registrations = append(s.Registrations, savedRegistration{
			Key: fmt.Sprintf("%016x", r.Key), Initiator: r.Initiator.Name, ISID: r.Initiator.ISID,
			TargetPort: r.TargetPort, RelativePort: r.RelativePortID, AllTargetPorts: r.AllTargetPorts, Holder: r.holder,
		})
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(lu.prFile, append(data, '\n'))
}

// RestoreReservations reads the persistent reservation state file, if
// LUConfig.ReservationFile names one and it exists, and makes it the
// logical unit's state with APTPL in effect. It is called once, before
// the logical unit serves commands; the error names the file.
func (lu *LU) RestoreReservations() error {
	if lu.prFile == "" {
		return nil
	}
	removeTornUpdates(lu.prFile, lu.Log)
	data, err := os.ReadFile(lu.prFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("persistent reservation state %s: %w", lu.prFile, err)
	}
	p, err := decodeReservations(data, lu.Identity.Serial)
	if err != nil {
		return fmt.Errorf("persistent reservation state %s: %w (remove the file to drop the saved registrations)", lu.prFile, err)
	}
	lu.prMu.Lock()
	defer lu.prMu.Unlock()
	lu.resv.Store(&resvState{pr: p})
	lu.Log.Info("persistent reservations restored", "file", lu.prFile, "registrations", len(p.regs),
		"type", p.typ.String(), "generation", p.generation)
	return nil
}

// removeTornUpdates removes the temporary files durable.WriteFile left
// beside path when the process died before renaming one over it: the
// state file is the old one, whole, and the temporary file of no use.
func removeTornUpdates(path string, log *slog.Logger) {
	base := filepath.Base(path)
	temps, err := durable.Temps(filepath.Dir(path), func(name string) bool { return name == base })
	if err != nil {
		return // no directory: nothing saved yet
	}
	for _, t := range temps {
		if err := os.Remove(t); err != nil {
			log.Warn("cannot remove a temporary persistent reservation state file", "file", t, "err", err)
		}
	}
}

var (
	hexKey  = regexp.MustCompile(`^[0-9a-f]{16}$`)
	hexISID = regexp.MustCompile(`^[0-9a-f]{12}$`)
)

// decodeReservations parses and checks a state file.
func decodeReservations(data []byte, serial string) (*prState, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s savedReservations
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("not a valid state file: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not a valid state file: data after the JSON object")
	}
	if s.Version != reservationFileVersion {
		return nil, fmt.Errorf("version %d, expected %d", s.Version, reservationFileVersion)
	}
	if s.Serial != serial {
		return nil, fmt.Errorf("written for the logical unit with serial %q, this one has %q", s.Serial, serial)
	}
	if s.Type != 0 && !s.Type.Valid() {
		return nil, fmt.Errorf("invalid reservation type %d", s.Type)
	}
	if len(s.Registrations) > maxRegistrations {
		return nil, fmt.Errorf("%d registrations, at most %d", len(s.Registrations), maxRegistrations)
	}
	p := &prState{generation: s.Generation, typ: s.Type, aptpl: true}
	holders := 0
	for i, sr := range s.Registrations {
		where := "registration " + strconv.Itoa(i)
		if !hexKey.MatchString(sr.Key) {
			return nil, fmt.Errorf("%s: key %q is not 16 lowercase hex digits", where, sr.Key)
		}
		key, _ := strconv.ParseUint(sr.Key, 16, 64)
		if key == 0 {
			return nil, fmt.Errorf("%s: key is zero", where)
		}
		if sr.Initiator == "" || len(sr.Initiator) > 223 || sr.TargetPort == "" {
			return nil, fmt.Errorf("%s: needs an initiator name of at most 223 bytes and a target port", where)
		}
		if sr.ISID != "" && !hexISID.MatchString(sr.ISID) {
			return nil, fmt.Errorf("%s: ISID %q is not 12 lowercase hex digits", where, sr.ISID)
		}
		r := Registration{Key: key, Initiator: TransportID{Name: sr.Initiator, ISID: sr.ISID}, TargetPort: sr.TargetPort,
			RelativePortID: sr.RelativePort, AllTargetPorts: sr.AllTargetPorts, holder: sr.Holder}
		for j := range p.regs {
			if p.regs[j].sameRegistrant(&r) {
				return nil, fmt.Errorf("%s: the same I_T nexus as registration %d", where, j)
			}
		}
		if sr.Holder {
			holders++
		}
		p.regs = append(p.regs, r)
	}
	switch {
	case s.Type == 0 && holders > 0:
		return nil, errors.New("a registration holds a reservation but there is none")
	case s.Type != 0 && len(p.regs) == 0:
		return nil, errors.New("a reservation without registrations")
	case s.Type.AllRegistrants() && holders > 0:
		return nil, errors.New("an all registrants reservation with a single holder")
	case s.Type != 0 && !s.Type.AllRegistrants() && holders != 1:
		return nil, fmt.Errorf("a %s reservation with %d holders", s.Type, holders)
	}
	return p, nil
}
