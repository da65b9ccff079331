// Package config loads, validates and writes odxtgt's LUN map, a YAML file
// describing backstores (where data lives) and iSCSI targets (who may reach
// which logical unit through which portal), and imports the saveconfig.json
// of a Linux LIO target made with targetcli-fb.
//
// From the rest of odxtgt the package uses only scsi's designator
// derivation, to refuse serials two units would share; cmd/odxtgt turns a Config
// into stores, logical units and portals. Parsing never touches the file
// system: whether files and devices exist is checked when they are opened.
//
// # Errors
//
// Parse and Load report every problem at once, as Errors, one per line:
//
//	line 12: targets[0].luns[1].backstore: unknown backstore "dsik0"
//	line 3: backstores[0].size: invalid size "10Gb": unknown unit "Gb" (...)
//	line 7: backstores[1].colour: unknown key (expected one of: ...)
//
// Unknown keys, keys given twice, values of the wrong YAML type (write
// strings that look like numbers or booleans in quotes), YAML aliases and
// multiple documents are all errors.
//
// # YAML reference
//
//	backstores:                # list; a backstore may be mapped by several targets
//	  - name: disk0            # required, unique, [A-Za-z0-9_.-]{1,128}
//	    type: file             # required: file | block | memory
//	    path: /var/lib/odxtgt/disk0.img
//	                           # file, block: required, absolute, not shared with
//	                           # another backstore; memory: not allowed
//	    size: 10GiB            # bytes, > 0, a multiple of block_size. An integer,
//	                           # or digits with a unit: B, KiB, MiB, GiB, TiB (K, M,
//	                           # G, T mean the same), KB, MB, GB, TB (powers of 10).
//	                           # file: optional; a missing file is created sparse
//	                           #   with this size, an existing one must have it;
//	                           #   without size the file must exist.
//	                           # memory: required. block: not allowed (the device
//	                           #   has its own size).
//	    block_size: 512        # 512 (default) or 4096
//	    physical_block_size: 4096
//	                           # file only: the physical block size to report
//	                           # (READ CAPACITY (16) exponent, Block Limits
//	                           # granularities); a power of two from block_size
//	                           # to 65536. Default: block_size, as LIO fileio.
//	    serial: "..."          # unit serial number (VPD page 80h), also the seed of
//	                           # the NAA designator: printable ASCII, at most 254
//	                           # characters, unique. Default: DefaultSerial(name),
//	                           # the first 16 bytes of SHA-256("odxtgt:" + name)
//	                           # with RFC 9562 version 8 / variant bits, as lowercase
//	                           # hex 8-4-4-4-12 - stable across restarts.
//	                           # The designators derived from it must be unique
//	                           # too: the NAA one keeps only the serial's first 25
//	                           # hex digits (so "vol_x" and "vol_y", which have
//	                           # none, clash), the T10 vendor ID one is
//	                           # "<product>:<serial>" cut to 246 bytes.
//	    product: "..."         # INQUIRY product identification, printable ASCII,
//	                           # at most 16 characters. Default: name cut to 16.
//	    readonly: false        # write protect the logical unit
//	    write_cache: true      # WCE of the caching mode page (default true)
//	    direct: false          # block only: open the device with O_DIRECT
//
//	targets:                   # list, at least one
//	  - iqn: iqn.2025-01.io.odxtgt:t1
//	                           # required, unique iSCSI name in normalized form
//	                           # (RFC 7143 §4.2.7): iqn.yyyy-mm.reversed.domain[:x],
//	                           # eui.<16 hex>, naa.<16 or 32 hex>; lowercase
//	                           # a-z 0-9 - . : only, at most 223 bytes
//	    alias: "Test target"   # optional TargetAlias, UTF-8, at most 255 bytes
//
//	    # Short form: one portal group, tag 1, given inline.
//	    portals: ["127.0.0.1:3260", "[::1]:3260", "0.0.0.0"]
//	                           # at least one; IPv4 or IPv6 address (IPv6 in
//	                           # brackets when a port follows), port 0..65535,
//	                           # default 3260. A portal may serve several targets
//	                           # but only one portal group of a target.
//	    luns:                  # optional
//	      - {lun: 0, backstore: disk0}
//	                           # lun 0..16383, unique in the portal group;
//	                           # backstore must be defined above
//	    auth:                  # optional: CHAP required from every initiator
//	      chap_user: u         # required in auth; 1..255 bytes
//	      chap_secret: s       # required in auth; 12..255 bytes (RFC 7143 §9.2.1)
//	      mutual_user: mu      # optional pair: the target's answer when the
//	      mutual_secret: ms    # initiator asks for mutual CHAP; the secret must
//	                           # not be used anywhere as a chap_secret
//	    acls:                  # optional; absent = any initiator may log in and
//	                           # sees every LUN (demo mode); must not be empty
//	      - initiator: iqn.1994-05.com.redhat:abc
//	                           # required, unique in the portal group
//	        luns: [0]          # optional; absent = every LUN of the portal group;
//	                           # each must be one of its luns
//	        auth: {...}        # optional; replaces the portal group's auth for
//	                           # this initiator
//
//	    # Long form, instead of portals/luns/auth/acls (mixing is an error):
//	    tpgs:
//	      - tag: 1             # required, 1..65535, unique in the target
//	        portals: [...]
//	        luns: [...]
//	        auth: {...}
//	        acls: [...]
//
//	copy:                      # optional: the copy manager (EXTENDED COPY)
//	  cross_target: false      # true lets a copy reach the LUNs of every target
//	                           # served here; default: only the LUNs mapped to
//	                           # the I_T nexus that sent the command
//
//	tokens:                    # optional: ROD tokens (POPULATE TOKEN, WRITE USING TOKEN)
//	  scope: any               # who may use a token: any (default; Windows passes
//	                           # tokens between hosts), target, initiator
//	  snapshot_dir: /var/lib/odxtgt/snapshots
//	                           # absolute; point-in-time data of block backstores
//	                           # (default: memory). File backstores keep theirs in
//	                           # a .odxtgt-snapshots folder beside the file, where
//	                           # clones work. Left-over files are removed at start.
//	  snapshot_space: 1GiB     # the most all snapshots preserve (default 1 GiB);
//	                           # past it the token losing data is revoked, never
//	                           # the write
//	  default_timeout: 60      # seconds of inactivity a token lives by default
//	  max_timeout: 600         # the most POPULATE TOKEN may ask for, 1..86400
//	  write_budget: 2          # seconds one WRITE USING TOKEN may work (fractions
//	                           # allowed: 0.5); then it stops at a block boundary
//	                           # with COPY ABORTED, COPY TARGET DEVICE DATA UNDERRUN
//	                           # and INFORMATION = blocks written, and Windows goes
//	                           # on from there. More than 0, at most 3.5: Windows
//	                           # gives each command 4 s
//	  max_tokens: 1024         # ROD tokens alive at once, 1..16384; past it
//	                           # POPULATE TOKEN ends with INSUFFICIENT RESOURCES.
//	                           # A token of a file backstore may keep a snapshot
//	                           # file open
//	  key_file: /etc/odxtgt/token.key
//	                           # absolute; at least 32 secret bytes, mode 0600,
//	                           # owned by the user odxtgt runs as
//	                           # (head -c 32 /dev/urandom). Tokens are signed with
//	                           # it, and those needing no copy-on-write (access
//	                           # upon reference, or point-in-time on a reflink
//	                           # file system) survive a restart, kill -9 too.
//	                           # Default: a random key per process.
//
//	limits:                    # optional: what initiators can make the target hold
//	  max_connections: 1024    # connections at once, logging in or logged in
//	  max_connections_per_ip: 64
//	  login_timeout: 15        # seconds from accept to full feature phase
//	  nop_interval: 30         # seconds idle before a NOP-In ping
//	  nop_timeout: 30          # seconds the ping may go unanswered
//	  send_timeout: 30         # seconds a socket write may make no progress
//	  data_out_timeout: 30     # seconds a write may wait for its data
//	  send_queue: 1MiB         # PDUs queued for a connection before it is not read
//	  data_in: 64MiB           # data-in the running commands of a connection hold
//	  data_out_budget: 512MiB  # data-out buffered for all connections
//	  session_data_out_budget: 128MiB    # at most, per session
//	  initiator_data_out_budget: 256MiB  # at most, per initiator name
//	                           # budgets at least 8MiB; a write beyond its share
//	                           # ends with TASK SET FULL, which initiators retry
//
//	reservations:              # optional: persistent reservations (PERSISTENT RESERVE OUT)
//	  state_dir: /var/lib/odxtgt/pr
//	                           # absolute; where registrations and the reservation
//	                           # of each file and block backstore are kept while an
//	                           # initiator asks them to persist across a restart
//	                           # (APTPL): <state_dir>/<name>.pr.json. Default: a file
//	                           # backstore's beside it, <dir>/.odxtgt-pr/<name>.json;
//	                           # block backstores then cannot persist them (REPORT
//	                           # CAPABILITIES: PTPL_C 0, APTPL refused). Memory
//	                           # backstores never do. The file is read at start: one
//	                           # that cannot be read or is not valid stops odxtgt
//	                           # with its path; it is removed when APTPL goes to 0.
//
//	metrics:                   # optional: Prometheus metrics and a health check
//	  listen: "127.0.0.1:9469" # IP address and optional port (default 9469; 0 picks
//	                           # a free one, logged) of an HTTP endpoint serving
//	                           # /metrics (Prometheus text format) and /healthz (200
//	                           # when every portal accepts a TCP connection, else
//	                           # 503 with the reason). Absent: no endpoint. Must not
//	                           # be a portal's address. The endpoint has no
//	                           # authentication: keep it on loopback or a
//	                           # management network.
//
// # Migrating from LIO
//
// ImportLIO reads /etc/target/saveconfig.json and returns an equivalent
// Config plus warnings for everything that could not be carried over; the
// storage objects' wwn becomes the backstore serial so that initiators see
// the same logical unit identity after the migration. Marshal writes the
// result as YAML.
package config
