package daemon

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts the environment variables that override configuration keys.
const EnvPrefix = "NETLEDGER_"

// ApplyEnv overrides scalar configuration keys from environment variables (entries of
// os.Environ()). The variable of a key is NETLEDGER_ followed by its YAML path with the
// levels joined by "_", upper-cased: data_dir is NETLEDGER_DATA_DIR, report.listen is
// NETLEDGER_REPORT_LISTEN, report.v1.secret is NETLEDGER_REPORT_V1_SECRET,
// spool.sync_interval is NETLEDGER_SPOOL_SYNC_INTERVAL (durations as "100ms"; "7d" is not
// accepted: use "168h"). Lists and maps are not overridable. NETLEDGER_ variables naming no key
// are returned, for the caller to warn about (a typo should not go unnoticed, but other tools
// use the prefix too, e.g. NETLEDGER_TESTDATA).
func ApplyEnv(cfg *Config, environ []string) (unknown []string, err error) {
	known := map[string]reflect.Value{}
	collectScalars(reflect.ValueOf(cfg).Elem(), "", known)
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		key, ok := strings.CutPrefix(name, EnvPrefix)
		if !ok {
			continue
		}
		v, ok := known[key]
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		if err := setScalar(v, value); err != nil {
			return unknown, fmt.Errorf("cannot use %s: %w", name, err)
		}
	}
	return unknown, nil
}

// EnvNames returns the environment variables ApplyEnv understands, for documentation.
func EnvNames() []string {
	known := map[string]reflect.Value{}
	cfg := DefaultConfig()
	collectScalars(reflect.ValueOf(&cfg).Elem(), "", known)
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, EnvPrefix+k)
	}
	return names
}

var durationType = reflect.TypeFor[time.Duration]()

func collectScalars(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		name := prefix + strings.ToUpper(tag)
		fv := v.Field(i)
		switch {
		case f.Type == durationType:
			out[name] = fv
		case fv.Kind() == reflect.Struct:
			collectScalars(fv, name+"_", out)
		case fv.Kind() == reflect.String || fv.Kind() == reflect.Bool ||
			(fv.Kind() >= reflect.Int && fv.Kind() <= reflect.Uint64) ||
			fv.Kind() == reflect.Float64:
			out[name] = fv
		}
	}
}

func setScalar(v reflect.Value, s string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	}
	return nil
}
