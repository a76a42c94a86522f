package mrt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/netledger/netledger/internal/testenv"
)

// record builds one MRT record.
func record(typ, sub uint16, body []byte) []byte {
	b := make([]byte, 12, 12+len(body))
	binary.BigEndian.PutUint32(b, 1027381055)
	binary.BigEndian.PutUint16(b[4:], typ)
	binary.BigEndian.PutUint16(b[6:], sub)
	binary.BigEndian.PutUint32(b[8:], uint32(len(body)))
	return append(b, body...)
}

// FuzzDecode feeds arbitrary bytes to the reader, the dumper (-m and -M) and the route
// walker: they must end with records or an error, never panic or loop.
func FuzzDecode(f *testing.F) {
	// Hand-made seeds: a TABLE_DUMP v1 route, a BGP4MP state change, a BGP4MP_AS4 update.
	td := []byte{0, 0, 0, 1, 10, 0, 0, 0, 8, 1, 0, 0, 0, 0, 192, 0, 2, 1, 0xfd, 0xe8,
		0, 14, 0x40, 1, 1, 0, 0x40, 2, 4, 2, 1, 0xfd, 0xe8, 0x40, 3, 4, 192, 0, 2, 1}
	f.Add(record(TypeTableDump, 1, td))
	f.Add(record(TypeBGP4MP, SubStateChange, []byte{0xfd, 0xe8, 0, 1, 0, 0, 0, 1, 192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 0, 6}))
	upd := []byte{0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 1, 192, 0, 2, 1, 192, 0, 2, 2}
	upd = append(upd, bytes.Repeat([]byte{0xff}, 16)...)
	msg := []byte{0, 0, 0, 20, 0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8, 0x40, 3, 4, 192, 0, 2, 1, 24, 198, 51, 100}
	upd = append(upd, 0, byte(19+len(msg)), 2)
	upd = append(upd, msg...)
	f.Add(record(TypeBGP4MP, SubMessageAS4, upd))
	// Real samples.
	for _, pat := range []string{"peers/bgp/*.mrt", "mrt/mrtparse/samples/*_bgp", "mrt/mrtparse/samples/*_rib*"} {
		m, _ := filepath.Glob(filepath.Join(testenv.TestdataDir(), pat))
		for _, file := range m {
			if data, err := os.ReadFile(file); err == nil && len(data) < 16<<10 {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mode := range []Mode{ModeOneLine, ModeShort} {
			r, err := NewReader(bytes.NewReader(data))
			if err != nil {
				return
			}
			d := NewDumper(io.Discard, mode)
			if err := d.Dump(r); err != nil {
				var me *Error
				if !errors.As(err, &me) {
					t.Fatalf("error %v is not an *mrt.Error", err)
				}
				if me.Offset < 0 || me.Offset > int64(len(data)) {
					t.Fatalf("offset %d outside the %d-byte input", me.Offset, len(data))
				}
			}
		}
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		_ = r.Routes(func(rt *Route) error {
			if rt.Kind != State && !rt.Prefix.IsValid() {
				t.Fatalf("invalid prefix in a route: %+v", rt)
			}
			return nil
		})
	})
}
