-- Series packs keep the dimensions of their series in a blob (series.go, version 2), which the
-- packs holding exactly those series — those of the write that created them: a fresh store's
-- first commit, a new view's — use as their dims blob too, so that a write stores its new
-- series' dimensions once instead of twice. Version 1 series packs (dims NULL) hold them inline.
-- A blob a series pack refers to is never deleted.
ALTER TABLE series_packs ADD COLUMN dims INTEGER;
CREATE INDEX series_packs_dims ON series_packs (dims);
