package lagcheck

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		give Config
		want Config
	}{
		{
			name: "zero",
			give: Config{},
			want: Config{Interval: 250 * ms, Timeout: 250 * ms, MaxLag: time.Second, ReadmitLag: 500 * ms, EvictAfter: 2, ReadmitAfter: 3},
		},
		{
			name: "timeout follows interval",
			give: Config{Interval: 100 * ms},
			want: Config{Interval: 100 * ms, Timeout: 100 * ms, MaxLag: time.Second, ReadmitLag: 500 * ms, EvictAfter: 2, ReadmitAfter: 3},
		},
		{
			name: "readmit lag follows max lag",
			give: Config{MaxLag: 3 * time.Second},
			want: Config{Interval: 250 * ms, Timeout: 250 * ms, MaxLag: 3 * time.Second, ReadmitLag: 1500 * ms, EvictAfter: 2, ReadmitAfter: 3},
		},
		{
			name: "interval follows a short max lag",
			give: Config{MaxLag: 100 * ms},
			want: Config{Interval: 25 * ms, Timeout: 25 * ms, MaxLag: 100 * ms, ReadmitLag: 50 * ms, EvictAfter: 2, ReadmitAfter: 3},
		},
		{
			name: "interval from max lag is at most 250ms",
			give: Config{MaxLag: 10 * time.Second},
			want: Config{Interval: 250 * ms, Timeout: 250 * ms, MaxLag: 10 * time.Second, ReadmitLag: 5 * time.Second, EvictAfter: 2, ReadmitAfter: 3},
		},
		{
			name: "interval from max lag is at least 1ms",
			give: Config{MaxLag: 2 * ms},
			want: Config{Interval: ms, Timeout: ms, MaxLag: 2 * ms, ReadmitLag: ms, EvictAfter: 2, ReadmitAfter: 3},
		},
		{
			name: "all set",
			give: Config{Interval: 50 * ms, Timeout: 20 * ms, MaxLag: 400 * ms, ReadmitLag: 100 * ms, EvictAfter: 1, ReadmitAfter: 5},
			want: Config{Interval: 50 * ms, Timeout: 20 * ms, MaxLag: 400 * ms, ReadmitLag: 100 * ms, EvictAfter: 1, ReadmitAfter: 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.give.withDefaults()
			if err != nil {
				t.Fatalf("withDefaults() error %v", err)
			}
			if numbers(got) != numbers(tt.want) {
				t.Errorf("withDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHeartbeatDefaults(t *testing.T) {
	tests := []struct {
		name string
		give Heartbeat
		want Heartbeat
	}{
		{name: "zero", give: Heartbeat{}, want: Heartbeat{Table: "rwsplit_heartbeat", ID: 1}},
		{name: "all set", give: Heartbeat{Table: "ops.hb", ID: 7, SkipCreate: true}, want: Heartbeat{Table: "ops.hb", ID: 7, SkipCreate: true}},
		{name: "read-only zero", give: Heartbeat{ReadOnly: true}, want: Heartbeat{Table: "heartbeat", ReadOnly: true}},
		{name: "read-only all set", give: Heartbeat{Table: "percona.heartbeat", ReadOnly: true, ServerID: 12}, want: Heartbeat{Table: "percona.heartbeat", ReadOnly: true, ServerID: 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			give := tt.give
			got := defaulted(t, Config{Heartbeat: &give}).Heartbeat
			if *got != tt.want {
				t.Errorf("Heartbeat = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// numbers returns c's durations and counts, the comparable part of a Config.
func numbers(c Config) [6]int64 {
	return [6]int64{int64(c.Interval), int64(c.Timeout), int64(c.MaxLag), int64(c.ReadmitLag), int64(c.EvictAfter), int64(c.ReadmitAfter)}
}

// defaulted returns cfg.withDefaults(), failing the test on an error.
func defaulted(t testing.TB, cfg Config) Config {
	t.Helper()
	d, err := cfg.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults(%+v): %v", cfg, err)
	}
	return d
}

func TestCheckerConfig(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		give Config
		want Config
	}{
		{name: "zero", give: Config{}, want: Config{Interval: 250 * ms, Timeout: 250 * ms, MaxLag: time.Second, ReadmitLag: 500 * ms, EvictAfter: 2, ReadmitAfter: 3}},
		{name: "max lag set", give: Config{MaxLag: 3 * time.Second}, want: Config{Interval: 250 * ms, Timeout: 250 * ms, MaxLag: 3 * time.Second, ReadmitLag: 1500 * ms, EvictAfter: 2, ReadmitAfter: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.give, "postgres", openMock(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.Config(); numbers(got) != numbers(tt.want) {
				t.Errorf("Config() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCheckerConfigHeartbeatIsACopy(t *testing.T) {
	c, err := New(Config{Heartbeat: &Heartbeat{}}, "postgres", openMock(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Config().Heartbeat.Table = "changed"
	if got := c.Config().Heartbeat.Table; got != "rwsplit_heartbeat" {
		t.Errorf("Config().Heartbeat.Table = %q after changing a copy, want rwsplit_heartbeat", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		give    Config
		wantErr string // "" for valid
	}{
		{name: "zero", give: Config{}},
		{name: "negative interval", give: Config{Interval: -1}, wantErr: "Interval is negative"},
		{name: "sub-millisecond interval", give: Config{Interval: time.Microsecond}, wantErr: "below 1ms"},
		{name: "negative timeout", give: Config{Timeout: -time.Second}, wantErr: "Timeout is negative"},
		{name: "negative max lag", give: Config{MaxLag: -time.Second}, wantErr: "MaxLag is negative"},
		{name: "negative readmit lag", give: Config{ReadmitLag: -time.Second}, wantErr: "ReadmitLag is negative"},
		{name: "readmit lag above max lag", give: Config{MaxLag: time.Second, ReadmitLag: 2 * time.Second}, wantErr: "ReadmitLag 2s is above MaxLag 1s"},
		{name: "readmit lag above default max lag", give: Config{ReadmitLag: 1500 * time.Millisecond}, wantErr: "above MaxLag 1s"},
		{name: "readmit lag equal to max lag", give: Config{MaxLag: time.Second, ReadmitLag: time.Second}},
		{name: "max lag below interval", give: Config{Interval: 250 * time.Millisecond, MaxLag: 100 * time.Millisecond}, wantErr: "MaxLag 100ms is not above Interval 250ms"},
		{name: "max lag equal to interval", give: Config{Interval: time.Second, MaxLag: time.Second}, wantErr: "MaxLag 1s is not above Interval 1s"},
		{name: "interval at or above the default max lag", give: Config{Interval: 2 * time.Second}, wantErr: "MaxLag 1s is not above Interval 2s"},
		{name: "max lag just above interval", give: Config{Interval: 100 * time.Millisecond, MaxLag: 101 * time.Millisecond}},
		{name: "max lag of 1ms: no interval fits", give: Config{MaxLag: time.Millisecond}, wantErr: "MaxLag 1ms is not above Interval 1ms"},
		{name: "short max lag, interval left zero", give: Config{MaxLag: 100 * time.Millisecond}},
		{name: "negative evict after", give: Config{EvictAfter: -1}, wantErr: "EvictAfter is negative"},
		{name: "negative readmit after", give: Config{ReadmitAfter: -2}, wantErr: "ReadmitAfter is negative"},
		{name: "heartbeat default table", give: Config{Heartbeat: &Heartbeat{}}},
		{name: "heartbeat schema table", give: Config{Heartbeat: &Heartbeat{Table: "ops.rw_hb1"}}},
		{name: "heartbeat injection", give: Config{Heartbeat: &Heartbeat{Table: "hb; DROP TABLE users"}}, wantErr: "Heartbeat.Table"},
		{name: "heartbeat three parts", give: Config{Heartbeat: &Heartbeat{Table: "a.b.c"}}, wantErr: "Heartbeat.Table"},
		{name: "heartbeat leading digit", give: Config{Heartbeat: &Heartbeat{Table: "1hb"}}, wantErr: "Heartbeat.Table"},
		{name: "heartbeat empty part", give: Config{Heartbeat: &Heartbeat{Table: "ops."}}, wantErr: "Heartbeat.Table"},
		{name: "read-only heartbeat", give: Config{Heartbeat: &Heartbeat{ReadOnly: true, ServerID: 1}}},
		{name: "read-only heartbeat with a row to write", give: Config{Heartbeat: &Heartbeat{ReadOnly: true, ID: 3}}, wantErr: "Heartbeat.ID 3 is the row a writing heartbeat writes"},
		{name: "server id without read-only", give: Config{Heartbeat: &Heartbeat{ServerID: 3}}, wantErr: "Heartbeat.ServerID 3 is read only with ReadOnly"},
		{name: "negative server id", give: Config{Heartbeat: &Heartbeat{ReadOnly: true, ServerID: -1}}, wantErr: "Heartbeat.ServerID is negative"},
		{name: "read-only heartbeat injection", give: Config{Heartbeat: &Heartbeat{ReadOnly: true, Table: "hb WHERE 1=1; --"}}, wantErr: "Heartbeat.Table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want ErrConfig containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	db := openMock(t)
	tests := []struct {
		name     string
		cfg      Config
		dialect  string
		primary  bool
		replicas []Target
		wantErr  string
	}{
		{name: "bad config", cfg: Config{MaxLag: -1}, dialect: "postgres", primary: true, wantErr: "MaxLag is negative"},
		{name: "nil primary", dialect: "postgres", wantErr: "nil primary"},
		{name: "nil replica", dialect: "postgres", primary: true, replicas: []Target{{Name: "r1"}}, wantErr: `replica 0 ("r1") has a nil`},
		{name: "unknown dialect", dialect: "sqlite", primary: true, wantErr: `no probe for dialect "sqlite"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var primary = db
			if !tt.primary {
				primary = nil
			}
			c, err := New(tt.cfg, tt.dialect, primary, tt.replicas)
			if c != nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New() = %v, %v; want ErrConfig containing %q", c, err, tt.wantErr)
			}
		})
	}
}

func TestProbeFor(t *testing.T) {
	custom := &fakeProbe{}
	tests := []struct {
		name          string
		cfg           Config
		dialect       string
		wantProbe     string
		wantPositions string
	}{
		{name: "postgres", dialect: "postgres", wantProbe: "lagcheck.postgresProbe", wantPositions: "lagcheck.postgresProbe"},
		{name: "mysql detects", dialect: "mysql", wantProbe: "*lagcheck.mysqlAuto", wantPositions: "*lagcheck.mysqlAuto"},
		{name: "mariadb", dialect: "mariadb", wantProbe: "lagcheck.mariaProbe", wantPositions: "lagcheck.mariaProbe"},
		{name: "heartbeat added", cfg: Config{Heartbeat: &Heartbeat{}}, dialect: "postgres", wantProbe: "lagcheck.withHeartbeat", wantPositions: "lagcheck.postgresProbe"},
		{name: "heartbeat alone", cfg: Config{Heartbeat: &Heartbeat{}}, dialect: "sqlite", wantProbe: "*lagcheck.heartbeat", wantPositions: "<nil>"},
		{name: "read-only heartbeat added", cfg: Config{Heartbeat: &Heartbeat{ReadOnly: true}}, dialect: "mysql", wantProbe: "lagcheck.withHeartbeat", wantPositions: "*lagcheck.mysqlAuto"},
		{name: "read-only heartbeat alone", cfg: Config{Heartbeat: &Heartbeat{ReadOnly: true}}, dialect: "sqlite", wantProbe: "*lagcheck.readOnlyHeartbeat", wantPositions: "<nil>"},
		{name: "custom probe", cfg: Config{Probe: custom}, dialect: "postgres", wantProbe: "*lagcheck.fakeProbe", wantPositions: "lagcheck.postgresProbe"},
		{name: "custom probe unknown dialect", cfg: Config{Probe: custom}, dialect: "sqlite", wantProbe: "*lagcheck.fakeProbe", wantPositions: "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probe, positions, err := probeFor(defaulted(t, tt.cfg), tt.dialect)
			if err != nil {
				t.Fatal(err)
			}
			if got, gotPos := typeName(probe), typeName(positions); got != tt.wantProbe || gotPos != tt.wantPositions {
				t.Errorf("probeFor = %s, %s; want %s, %s", got, gotPos, tt.wantProbe, tt.wantPositions)
			}
		})
	}
}
