-- Delta packs (packwrite.go): every level — the views' base interval, hourly, daily and weekly —
-- is stored as packs only. A write appends, per view, level and interval start it touches, one
-- pack holding that write's sums per series; queries add up all the packs of an interval.
-- An interval's packs are merged into one (compacted) by the write that finds them over
-- (ended before the newest interval it writes) or holding maxDeltas packs; dirty lists the
-- intervals holding several packs, with their end (until). res: the points' resolution in
-- seconds (the base interval; 3600 and 86400 for hours, and days and weeks). data and dims
-- are ids of blobs: the packs a write makes at the four levels mostly hold the same series
-- (all of them dims), and the same sums (an interval of the base within one hour, day and week:
-- every commit in real time), so equal blobs are stored once. A blob no pack refers to is
-- deleted with the last pack that did.
DROP TABLE dirty;
DROP TABLE packs;
CREATE TABLE blobs (
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
CREATE TABLE packs (
	level INTEGER NOT NULL,
	start INTEGER NOT NULL,
	view  TEXT    NOT NULL,
	res   INTEGER NOT NULL,
	data  INTEGER NOT NULL,
	dims  INTEGER NOT NULL
);
CREATE INDEX packs_interval ON packs (level, view, start);
CREATE INDEX packs_data ON packs (data);
CREATE INDEX packs_dims ON packs (dims);
CREATE TABLE dirty (
	level INTEGER NOT NULL,
	start INTEGER NOT NULL,
	view  TEXT    NOT NULL,
	until INTEGER NOT NULL,
	PRIMARY KEY (level, start, view)
) WITHOUT ROWID;
-- Series packs (series.go): the keys of the series a write created, ids first to first + n - 1.
CREATE TABLE series_packs (
	first INTEGER PRIMARY KEY,
	n     INTEGER NOT NULL,
	data  BLOB    NOT NULL
);
-- Then (migrate.go) the series and the points of the old tables are converted into packs and
-- the tables dropped.
