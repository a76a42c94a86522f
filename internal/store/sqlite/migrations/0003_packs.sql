-- Packs: the points of one view at one hourly or daily interval start (and, level 3, the sums
-- of the daily points of a week since the epoch), encoded column-wise in
-- blobs (pack.go) — the series ids and metrics in data, their dimensions in dims, read only for
-- series a query has not met yet — so that a query over many intervals reads a few blobs
-- instead of millions of rows. A pack is written once its interval is over; writing to the interval again deletes
-- it and marks the interval dirty until it is packed again.
CREATE TABLE packs (
	level INTEGER NOT NULL,
	start INTEGER NOT NULL,
	view  TEXT    NOT NULL,
	data  BLOB    NOT NULL,
	dims  BLOB    NOT NULL,
	UNIQUE (view, level, start)
);

CREATE TABLE dirty (
	level INTEGER NOT NULL,
	start INTEGER NOT NULL,
	view  TEXT    NOT NULL,
	PRIMARY KEY (level, start, view)
) WITHOUT ROWID;

-- Points written before packs existed are packed by the next write.
INSERT INTO dirty (level, start, view)
	SELECT DISTINCT 1, p.start, s.view FROM points_hour p JOIN series s ON s.id = p.sid;
INSERT INTO dirty (level, start, view)
	SELECT DISTINCT 2, p.start, s.view FROM points_day p JOIN series s ON s.id = p.sid;
INSERT INTO dirty (level, start, view)
	SELECT DISTINCT 3, p.start - p.start % 604800, s.view FROM points_day p JOIN series s ON s.id = p.sid;
