-- Series: one row per (view, collector, dimensions); points refer to it by id.
-- prefix: the address bytes (4 or 16) followed by the prefix length; empty for the unrouted
-- bucket. src_group, dst_group: the address bytes (4 or 16), empty when unset.
CREATE TABLE series (
	id        INTEGER PRIMARY KEY,
	view      TEXT    NOT NULL,
	collector TEXT    NOT NULL,
	router    TEXT    NOT NULL,
	class     TEXT    NOT NULL,
	prefix    BLOB    NOT NULL,
	path      TEXT    NOT NULL,
	peer_as   INTEGER NOT NULL,
	origin_as INTEGER NOT NULL,
	asn       INTEGER NOT NULL,
	country   TEXT    NOT NULL,
	region    TEXT    NOT NULL,
	proto     INTEGER NOT NULL,
	src_group BLOB    NOT NULL,
	dst_group BLOB    NOT NULL,
	port      INTEGER NOT NULL,
	UNIQUE (view, collector, router, class, prefix, path, peer_as, origin_as, asn, country,
		region, proto, src_group, dst_group, port)
);

-- Points at the base interval (res: its length in seconds), hourly and daily. start: unix
-- seconds of the interval start (UTC).
CREATE TABLE points_base (
	start       INTEGER NOT NULL,
	sid         INTEGER NOT NULL,
	res         INTEGER NOT NULL,
	requests    INTEGER NOT NULL,
	bytes       INTEGER NOT NULL,
	bytes_in    INTEGER NOT NULL,
	packets     INTEGER NOT NULL,
	packets_in  INTEGER NOT NULL,
	retransmits INTEGER NOT NULL,
	duration    INTEGER NOT NULL,
	rtt_sum     INTEGER NOT NULL,
	rtt_count   INTEGER NOT NULL,
	conns       INTEGER NOT NULL,
	open_conns  INTEGER NOT NULL,
	PRIMARY KEY (start, sid)
) WITHOUT ROWID;

CREATE TABLE points_hour (
	start       INTEGER NOT NULL,
	sid         INTEGER NOT NULL,
	requests    INTEGER NOT NULL,
	bytes       INTEGER NOT NULL,
	bytes_in    INTEGER NOT NULL,
	packets     INTEGER NOT NULL,
	packets_in  INTEGER NOT NULL,
	retransmits INTEGER NOT NULL,
	duration    INTEGER NOT NULL,
	rtt_sum     INTEGER NOT NULL,
	rtt_count   INTEGER NOT NULL,
	conns       INTEGER NOT NULL,
	open_conns  INTEGER NOT NULL,
	PRIMARY KEY (start, sid)
) WITHOUT ROWID;

CREATE TABLE points_day (
	start       INTEGER NOT NULL,
	sid         INTEGER NOT NULL,
	requests    INTEGER NOT NULL,
	bytes       INTEGER NOT NULL,
	bytes_in    INTEGER NOT NULL,
	packets     INTEGER NOT NULL,
	packets_in  INTEGER NOT NULL,
	retransmits INTEGER NOT NULL,
	duration    INTEGER NOT NULL,
	rtt_sum     INTEGER NOT NULL,
	rtt_count   INTEGER NOT NULL,
	conns       INTEGER NOT NULL,
	open_conns  INTEGER NOT NULL,
	PRIMARY KEY (start, sid)
) WITHOUT ROWID;

-- Spool positions of the consumers, saved in the transaction of their rows.
CREATE TABLE positions (
	consumer TEXT PRIMARY KEY,
	segment  INTEGER NOT NULL,
	offset   INTEGER NOT NULL
);
