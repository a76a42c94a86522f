package spool

import (
	"testing"
	"time"
)

func TestSegments(t *testing.T) {
	cfg := testConfig(t)
	before := time.Now()
	s := mustOpen(t, cfg)
	defer s.Close()
	recs := genRecords(1, 10)
	if err := s.Append(recs[:5]); err != nil {
		t.Fatal(err)
	}
	s.Sync()
	mid := time.Now()
	if err := s.maintain(mid.Add(cfg.SegmentAge)); err != nil { // seal by age
		t.Fatal(err)
	}
	if err := s.Append(recs[5:]); err != nil {
		t.Fatal(err)
	}
	s.Sync()
	segs, err := s.Segments()
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 || segs[0].Number != 1 || segs[1].Number != 2 {
		t.Fatalf("segments %+v", segs)
	}
	if segs[0].Created.Before(before.Add(-time.Second)) || segs[0].Created.After(mid) || segs[1].Created.Before(segs[0].Created) {
		t.Errorf("creation times %v %v (opened %v)", segs[0].Created, segs[1].Created, before)
	}
	if segs[0].Size <= headerSize || segs[1].Size <= headerSize {
		t.Errorf("sizes %+v", segs)
	}
	got, _ := readAll(t, s, SegmentStart(2), 3)
	diffRecords(t, got, recs[5:])
}
