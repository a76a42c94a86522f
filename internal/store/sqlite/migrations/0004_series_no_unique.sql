-- The writer keeps every series' key and id in memory (write.go: loaded at its first write,
-- topped up from the ids above the highest it knows at the start of each write transaction,
-- which also sees series another process added), so the 15-column UNIQUE index that kept keys
-- unique costs more than it serves: on a fresh store it was the larger part of each commit.
-- Rebuild the table without it; ids and rows are kept as they are.
CREATE TABLE series_new (
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
	port      INTEGER NOT NULL
);
INSERT INTO series_new (id, view, collector, router, class, prefix, path, peer_as, origin_as, asn, country,
	region, proto, src_group, dst_group, port)
	SELECT id, view, collector, router, class, prefix, path, peer_as, origin_as, asn, country,
	region, proto, src_group, dst_group, port FROM series ORDER BY id;
DROP TABLE series;
ALTER TABLE series_new RENAME TO series;
