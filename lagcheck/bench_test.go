package lagcheck

import (
	"testing"
)

// The per-read costs of the causal path: Position.Covers, and the Checker's
// lock-free State and Covers.

func BenchmarkPositionCovers(b *testing.B) {
	cases := []struct {
		name string
		p, q string
	}{
		{"lsn", "16/B374D848", "16/B374D000"},
		{"mariadb-1-domain", "0-1-100", "0-1-90"},
		{"mariadb-3-domains", "0-1-100,1-2-7,5-1-3", "0-1-90,5-1-3"},
		{"mysql-2-uuids", uuidA + ":1-100:102-110," + uuidB + ":1-5", uuidA + ":50-60:105," + uuidB + ":2"},
	}
	for _, c := range cases {
		p, q := mustParse(b, c.p), mustParse(b, c.q)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !p.Covers(q) {
					b.Fatal("not covered")
				}
			}
		})
	}
}

func BenchmarkChecker(b *testing.B) {
	c, err := New(Config{Probe: newFakeProbe()}, "postgres", openMock(b), []Target{{DB: openMock(b)}, {DB: openMock(b)}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.apply(c.replica(1), 0, Reading{Position: LSNPosition(1000), LagKnown: true})
	target := LSNPosition(900)
	b.Run("State", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = c.State(1)
			}
		})
	})
	b.Run("Covers", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !c.Covers(1, target) {
					b.Fatal("not covered")
				}
			}
		})
	})
}
