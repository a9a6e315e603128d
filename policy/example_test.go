package policy_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rwsplit/rwsplit/policy"
)

// zoneKey is the context key under which the caller's zone travels.
type zoneKey struct{}

// withZone returns a copy of ctx that carries the caller's zone, e.g. set
// by HTTP middleware from the load balancer's headers.
func withZone(ctx context.Context, zone string) context.Context {
	return context.WithValue(ctx, zoneKey{}, zone)
}

// zoneLocal is a custom policy: it sends a read to the replicas in the
// caller's zone, taking them in turn, and to all replicas in turn when the
// caller's zone has none or is unknown. A replica's zone is its Name up to
// the first "-".
type zoneLocal struct{}

func (zoneLocal) Name() string { return "zone-local" }

// NewPicker does the work once per change in the eligible set: it groups
// the replicas by zone, so that Pick only looks up a map.
func (zoneLocal) NewPicker(replicas []policy.Replica) policy.Picker {
	p := &zonePicker{zones: make(map[string]*rotation), all: new(rotation)}
	for i, r := range replicas {
		zone, _, _ := strings.Cut(r.Name, "-")
		if p.zones[zone] == nil {
			p.zones[zone] = new(rotation)
		}
		p.zones[zone].replicas = append(p.zones[zone].replicas, i)
		p.all.replicas = append(p.all.replicas, i)
	}
	return p
}

// zonePicker is immutable after NewPicker but for the atomic counters, so
// Pick is safe for concurrent use without a lock.
type zonePicker struct {
	zones map[string]*rotation
	all   *rotation
}

// rotation takes replicas in turn.
type rotation struct {
	replicas []int // indices into the slice given to NewPicker
	next     atomic.Uint64
}

func (p *zonePicker) Pick(ctx context.Context) int {
	zone, _ := ctx.Value(zoneKey{}).(string)
	r := p.zones[zone]
	if r == nil {
		r = p.all
	}
	if len(r.replicas) == 0 {
		return -1 // no eligible replica at all
	}
	return r.replicas[(r.next.Add(1)-1)%uint64(len(r.replicas))]
}

// A custom policy implements Policy and Picker. Give it to the plugin as
// Config.Policy; here the Picker is called directly, as the plugin does
// once per read.
func Example_customPolicy() {
	replicas := []policy.Replica{
		{Name: "eu-a", Weight: 1, Stats: new(policy.Stats)},
		{Name: "eu-b", Weight: 1, Stats: new(policy.Stats)},
		{Name: "us-a", Weight: 1, Stats: new(policy.Stats)},
	}
	var pol policy.Policy = zoneLocal{}
	picker := pol.NewPicker(replicas)
	for _, zone := range []string{"eu", "eu", "eu", "us", "us", "ap", "ap", "ap"} {
		i := picker.Pick(withZone(context.Background(), zone))
		fmt.Printf("%s caller → %s\n", zone, replicas[i].Name)
	}
	fmt.Println("no replica →", pol.NewPicker(nil).Pick(context.Background()))
	// Output:
	// eu caller → eu-a
	// eu caller → eu-b
	// eu caller → eu-a
	// us caller → us-a
	// us caller → us-a
	// ap caller → eu-a
	// ap caller → eu-b
	// ap caller → us-a
	// no replica → -1
}

// Smooth weighted round robin spreads the heavy replica's turns out.
func ExampleWeighted() {
	replicas := []policy.Replica{{Name: "a", Weight: 5}, {Name: "b", Weight: 1}, {Name: "c", Weight: 1}}
	picker := policy.Weighted().NewPicker(replicas)
	var seq []string
	for range 7 {
		seq = append(seq, replicas[picker.Pick(context.Background())].Name)
	}
	fmt.Println(strings.Join(seq, " "))
	// Output: a a b a c a a
}

// P2C steers reads away from a replica whose statements take longer. The
// plugin calls Start and Done around every statement; here one statement
// of 0.5ms is recorded on "fast" and one of 20ms on "slow" by moving the
// start token back.
func ExampleP2C() {
	replicas := []policy.Replica{
		{Name: "fast", Weight: 1, Stats: new(policy.Stats)},
		{Name: "slow", Weight: 1, Stats: new(policy.Stats)},
	}
	for i, took := range []time.Duration{500 * time.Microsecond, 20 * time.Millisecond} {
		s := replicas[i].Stats
		s.Done(s.Start()-int64(took), false)
	}
	// Probing "slow" again after a minute without news; the default is 1s.
	p2c, err := policy.P2C(policy.P2CConfig{ProbeInterval: time.Minute})
	if err != nil {
		panic(err)
	}
	picker := p2c.NewPicker(replicas)
	counts := make(map[string]int)
	for range 1000 {
		counts[replicas[picker.Pick(context.Background())].Name]++
	}
	fmt.Println(counts)
	// Output: map[fast:1000]
}
