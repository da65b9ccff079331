package metrics

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
)

// ServerStats is what the transport collector reads: an *iscsi.Server.
type ServerStats interface{ Stats() iscsi.Stats }

// CopyStats is what the copy collector reads: a *rod.Manager.
type CopyStats interface{ Stats() rod.Stats }

// LU is one logical unit whose counters are exported under its name.
type LU struct {
	// Name is the backstore name, the value of the lu label.
	Name string
	// Stats gives the command counters: a *scsi.LU.
	Stats interface{ Stats() scsi.LUStats }
	// Snapshots, if set, gives the bytes its ROD token snapshots hold: a
	// *rod.Protected.
	Snapshots interface{ SnapshotBytes() int64 }
}

// Sources are the parts of a running target that metrics are read from;
// a nil field exports nothing for it.
type Sources struct {
	Server ServerStats
	Copies CopyStats
	// LUs returns the logical units served at the time of a scrape (a
	// reload adds and removes some).
	LUs func() []LU
}

// NewRegistry returns a registry with collectors for every source, plus
// the Go runtime and process collectors.
func NewRegistry(src Sources) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.Server != nil {
		reg.MustRegister(NewServerCollector(src.Server))
	}
	if src.Copies != nil {
		reg.MustRegister(NewCopyCollector(src.Copies))
	}
	if src.LUs != nil {
		reg.MustRegister(NewLUCollector(src.LUs))
	}
	return reg
}

const namespace = "odxtgt"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

// MaxSessionSeries bounds the (target, initiator) pairs of
// odxtgt_sessions: when there are more, the first MaxSessionSeries-1 in
// name order keep their series and the others are summed per target under
// initiator OtherInitiators.
const MaxSessionSeries = 256

// OtherInitiators is the initiator label of the sessions past
// MaxSessionSeries.
const OtherInitiators = "_other"

// serverCollector exports iscsi.Stats.
type serverCollector struct {
	src                                                     ServerStats
	connections, sessions, discovery                        *prometheus.Desc
	connsRefused, loginsRefused, loginTimeouts, nopTimeouts *prometheus.Desc
	dataOutUsed, dataOutLimit, dataOutRefused               *prometheus.Desc
}

// NewServerCollector returns the collector of an iSCSI server's
// connections, sessions and transport counters.
func NewServerCollector(src ServerStats) prometheus.Collector {
	return &serverCollector{
		src:          src,
		connections:  desc("connections", "Open iSCSI connections, by phase (login or full_feature).", "phase"),
		sessions:     desc("sessions", "Logged-in normal sessions (each has one connection), by target and initiator name.", "target", "initiator"),
		discovery:    desc("discovery_sessions", "Logged-in discovery sessions."),
		connsRefused: desc("connections_refused_total", "Connections closed at accept for max_connections or max_connections_per_ip."),
		loginsRefused: desc("logins_refused_total", "Logins ended with a failure Login Response, by status class and detail (RFC 7143 11.13.5).",
			"class", "detail"),
		loginTimeouts:  desc("login_timeouts_total", "Logins that did not reach full feature phase within login_timeout."),
		nopTimeouts:    desc("nop_timeouts_total", "Connections dropped because a NOP-In ping went unanswered for nop_timeout."),
		dataOutUsed:    desc("data_out_buffered_bytes", "Data-out buffered for all connections, counted against data_out_budget."),
		dataOutLimit:   desc("data_out_budget_bytes", "The data-out budget shared by all connections."),
		dataOutRefused: desc("data_out_refused_total", "Commands ended with TASK SET FULL because their data-out did not fit the budget."),
	}
}

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connections, c.sessions, c.discovery, c.connsRefused, c.loginsRefused,
		c.loginTimeouts, c.nopTimeouts, c.dataOutUsed, c.dataOutLimit, c.dataOutRefused} {
		ch <- d
	}
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.connections, float64(s.LoggingIn), "login")
	gauge(c.connections, float64(s.FullFeature), "full_feature")
	for k, n := range sessionSeries(s.Sessions) {
		gauge(c.sessions, float64(n), k.Target, k.Initiator)
	}
	gauge(c.discovery, float64(s.DiscoverySessions))
	counter(c.connsRefused, s.ConnectionsRefused)
	for st, n := range s.LoginsRefused {
		counter(c.loginsRefused, n, loginClass(st), loginDetail(st))
	}
	counter(c.loginTimeouts, s.LoginTimeouts)
	counter(c.nopTimeouts, s.NOPTimeouts)
	gauge(c.dataOutUsed, float64(s.DataOutUsed))
	gauge(c.dataOutLimit, float64(s.DataOutLimit))
	counter(c.dataOutRefused, s.DataOutRefused)
}

// sessionSeries counts sessions by target and initiator, bounded as
// MaxSessionSeries says.
func sessionSeries(sessions []iscsi.SessionInfo) map[iscsi.SessionInfo]int {
	counts := map[iscsi.SessionInfo]int{}
	for _, s := range sessions {
		counts[s]++
	}
	if len(counts) <= MaxSessionSeries {
		return counts
	}
	keys := make([]iscsi.SessionInfo, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b iscsi.SessionInfo) int {
		return cmp.Or(cmp.Compare(a.Target, b.Target), cmp.Compare(a.Initiator, b.Initiator))
	})
	out := map[iscsi.SessionInfo]int{}
	for i, k := range keys {
		if i >= MaxSessionSeries-1 { // one series left for the rest
			out[iscsi.SessionInfo{Target: k.Target, Initiator: OtherInitiators}] += counts[k]
			continue
		}
		out[k] = counts[k]
	}
	return out
}

// loginClass names the Status-Class of a login status.
func loginClass(s iscsi.LoginStatus) string {
	switch s.Class() {
	case 1:
		return "redirect"
	case 2:
		return "initiator_error"
	case 3:
		return "target_error"
	}
	return fmt.Sprintf("0x%02x", s.Class())
}

// loginDetail names the Status-Detail of a login status in snake case
// ("authentication_failure"), or gives it in hex when it has no name.
func loginDetail(s iscsi.LoginStatus) string {
	if n := s.Name(); n != "" {
		return snake(n)
	}
	return fmt.Sprintf("0x%02x", s.Detail())
}

// snake lowercases a name and joins its words with underscores, dropping
// other punctuation.
func snake(name string) string {
	var b strings.Builder
	for _, w := range strings.Fields(strings.ToLower(name)) {
		if b.Len() > 0 {
			b.WriteByte('_')
		}
		for _, r := range w {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

// luCollector exports the scsi.LUStats of every logical unit.
type luCollector struct {
	lus                             func() []LU
	commands, dataIn, dataOut, time *prometheus.Desc
	checks, snapshots               *prometheus.Desc
	bounds                          []float64 // scsi.LatencyBuckets in seconds
}

// NewLUCollector returns the collector of the command counters of the
// logical units lus returns at each scrape.
func NewLUCollector(lus func() []LU) prometheus.Collector {
	c := &luCollector{
		lus:      lus,
		commands: desc("scsi_commands_total", "SCSI commands completed or aborted, by logical unit and command class.", "lu", "class"),
		dataIn:   desc("scsi_data_in_bytes_total", "Data-in bytes SCSI commands produced, by logical unit and command class.", "lu", "class"),
		dataOut:  desc("scsi_data_out_bytes_total", "Data-out bytes SCSI commands received, by logical unit and command class.", "lu", "class"),
		time: desc("scsi_command_duration_seconds", "Time from submission to completion of SCSI commands, by logical unit and command class.",
			"lu", "class"),
		checks: desc("scsi_check_conditions_total", "SCSI commands ended with CHECK CONDITION, by logical unit, sense key and ASC/ASCQ.",
			"lu", "sense_key", "asc"),
		snapshots: desc("lu_snapshot_bytes", "Bytes the point-in-time snapshots of ROD tokens preserve for a logical unit.", "lu"),
	}
	for _, b := range scsi.LatencyBuckets {
		c.bounds = append(c.bounds, b.Seconds())
	}
	return c
}

func (c *luCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.commands, c.dataIn, c.dataOut, c.time, c.checks, c.snapshots} {
		ch <- d
	}
}

func (c *luCollector) Collect(ch chan<- prometheus.Metric) {
	for _, lu := range c.lus() {
		s := lu.Stats.Stats()
		for cl := range scsi.NumClasses {
			cs, class := &s.Classes[cl], cl.String()
			counter := func(d *prometheus.Desc, v uint64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lu.Name, class)
			}
			counter(c.commands, cs.Commands)
			counter(c.dataIn, cs.DataInBytes)
			counter(c.dataOut, cs.DataOutBytes)
			// Cumulative buckets; the count is their total, so the
			// histogram is consistent even when commands ended while
			// the snapshot was taken.
			buckets := make(map[float64]uint64, len(c.bounds))
			var total uint64
			for i, n := range cs.Latency {
				total += n
				if i < len(c.bounds) {
					buckets[c.bounds[i]] = total
				}
			}
			ch <- prometheus.MustNewConstHistogram(c.time, total, cs.LatencySum.Seconds(), buckets, lu.Name, class)
		}
		for code, n := range s.CheckConditions {
			ch <- prometheus.MustNewConstMetric(c.checks, prometheus.CounterValue, float64(n),
				lu.Name, snake(code.Key.String()), fmt.Sprintf("0x%04x", uint16(code.Code)))
		}
		if lu.Snapshots != nil {
			ch <- prometheus.MustNewConstMetric(c.snapshots, prometheus.GaugeValue, float64(lu.Snapshots.SnapshotBytes()), lu.Name)
		}
	}
}

// copyCollector exports rod.Stats.
type copyCollector struct {
	src                                   CopyStats
	running, finished, bytes, tokens      *prometheus.Desc
	snapshotSpaceUsed, snapshotSpaceLimit *prometheus.Desc
}

// NewCopyCollector returns the collector of a copy manager's counters.
func NewCopyCollector(src CopyStats) prometheus.Collector {
	return &copyCollector{
		src:     src,
		running: desc("copies_running", "Copy operations (EXTENDED COPY, POPULATE TOKEN, WRITE USING TOKEN) running."),
		finished: desc("copies_total", "Copy operations ended, by kind and result (good, failed, aborted).",
			"kind", "result"),
		bytes: desc("copy_bytes_total", "Bytes EXTENDED COPY and WRITE USING TOKEN wrote, by data path (clone, copy_file_range, buffered).",
			"path"),
		tokens:             desc("rod_tokens", "Live ROD tokens."),
		snapshotSpaceUsed:  desc("snapshot_space_used_bytes", "Bytes all point-in-time snapshots of ROD tokens preserve."),
		snapshotSpaceLimit: desc("snapshot_space_limit_bytes", "The most the point-in-time snapshots may preserve (tokens.snapshot_space)."),
	}
}

func (c *copyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.running, c.finished, c.bytes, c.tokens, c.snapshotSpaceUsed, c.snapshotSpaceLimit} {
		ch <- d
	}
}

func (c *copyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(c.running, float64(s.Running))
	for k := range rod.NumCopyKinds {
		for r := range rod.NumCopyResults {
			ch <- prometheus.MustNewConstMetric(c.finished, prometheus.CounterValue, float64(s.Finished[k][r]), k.String(), r.String())
		}
	}
	for p := range rod.NumCopyPaths {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.Bytes[p]), p.String())
	}
	gauge(c.tokens, float64(s.Tokens))
	gauge(c.snapshotSpaceUsed, float64(s.SnapshotSpaceUsed))
	gauge(c.snapshotSpaceLimit, float64(s.SnapshotSpaceLimit))
}
