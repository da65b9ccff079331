// Package metrics exports odxtgt's counters in the Prometheus text format
// and answers health checks, over HTTP (YAML metrics.listen).
//
// The transport, the logical units and the copy manager know nothing of
// Prometheus: they keep plain atomic counters and hand out snapshots
// (iscsi.Server.Stats, scsi.LU.Stats, rod.Manager.Stats,
// rod.Protected.SnapshotBytes). The collectors here read those snapshots
// when /metrics is scraped, so nothing is counted twice and a command pays
// only for its own atomic additions. They are registered on a registry of
// their own, never on the process-wide default one.
//
// Labels are bounded: logical units by backstore name, commands by class
// (read, write, copy, token, other), never by opcode, LBA or task tag;
// initiator names appear only for sessions that are logged in: past
// MaxSessionSeries (target, initiator) pairs, the sessions of the pairs
// last in name order are summed, per target, under initiator
// OtherInitiators.
package metrics
