package rwsplit_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/policy"
)

// pgWeightedCluster opens pg through rwsplit with the given replica
// weights, one per replica, and policy.
func pgWeightedCluster(t *testing.T, pg *testdb.PGCluster, weights []int, pol policy.Policy) *cluster {
	t.Helper()
	return pgOn(t, pg, clusterOpts{weights: weights, config: rwsplit.Config{Policy: pol}})
}

// TestPolicyDistribution checks how each policy shares sequential reads
// among three real replicas weighted 1:1:2, counting at the driver which
// node ran each read. Weighted is the only policy that uses Replica.Weight,
// so it must give 25/25/50 %; RoundRobin, Random and LeastInFlight are
// documented to ignore weights and, with one reader (nothing in flight
// when a read is picked, so LeastInFlight's two candidates always tie and
// it takes the first, uniform, draw), to share reads equally.
//
// P2C is not in the table: its documentation says that under light load
// the replica with the lowest average latency wins every draw it is in, so
// its shares among equal replicas are uneven by design and depend on
// measured latencies; there is no share to assert.
//
// Each share must be within ±3 percentage points. For Weighted and
// RoundRobin the schedule is exact, so any drift is a bug. For Random and
// LeastInFlight, 3 points is 4.0 standard deviations of a share of 1/3
// over 4000 reads: a correct policy fails about once in 5000 runs.
func TestPolicyDistribution(t *testing.T) {
	const (
		reads     = 4000
		tolerance = 0.03
		marker    = "policy_dist_probe"
	)
	weights := []int{1, 1, 2}
	nodes := []string{"replica1", "replica2", "replica3"}
	equal := []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}
	tests := []struct {
		name string
		give func() policy.Policy
		want []float64 // share of reads per replica, in the order of nodes
	}{
		{name: "weighted", give: policy.Weighted, want: []float64{0.25, 0.25, 0.5}},
		{name: "roundrobin", give: policy.RoundRobin, want: equal},
		{name: "random", give: policy.Random, want: equal},
		{name: "leastinflight", give: policy.LeastInFlight, want: equal},
	}
	pg := dbtest.Postgres(t, len(weights))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pgWeightedCluster(t, pg, weights, tt.give())
			c.takeRoutes()
			served := c.served(marker, func() {
				for range reads {
					var x int
					if err := c.DB.Raw("SELECT 1 AS " + marker).Scan(&x).Error; err != nil {
						t.Fatal(err)
					}
				}
			})
			routes := c.takeRoutes()

			if len(served) != reads || len(routes) != reads {
				t.Fatalf("%d reads: %d reached a node, %d were routed", reads, len(served), len(routes))
			}
			// The plugin's record must name the node that really ran each
			// read: reads are sequential, so the orders match.
			for i, r := range routes {
				if r.Node != served[i] || r.Reason != rwsplit.ReasonRead {
					t.Fatalf("read %d routed as %+v, but %s ran it", i, r, served[i])
				}
			}
			count := make(map[string]int)
			for _, n := range served {
				count[n]++
			}
			onReplicas := 0
			for _, n := range nodes {
				onReplicas += count[n]
			}
			if onReplicas != reads {
				t.Fatalf("reads ran on %v, want every one on %v", count, nodes)
			}
			for i, n := range nodes {
				got := float64(count[n]) / reads
				if math.Abs(got-tt.want[i]) > tolerance {
					t.Errorf("%s served %s of reads, want %s ± %.0f points (all: %v)",
						n, distPct(got), distPct(tt.want[i]), tolerance*100, count)
				}
			}
		})
	}
}

func distPct(share float64) string { return fmt.Sprintf("%.1f%%", share*100) }

// TestPrimaryShare: policy.PrimaryShare(RoundRobin, 0.25) over two real
// replicas puts 25% ± 3 points of 4000 sequential reads on the primary and
// splits the rest evenly, counted at the driver; each read the policy
// sent to the primary is routed as ReasonPolicyPrimary, in OnRoute and in
// Stats. 3 points is 4.4 standard deviations of a share of 1/4 over 4000
// reads.
func TestPrimaryShare(t *testing.T) {
	const (
		reads     = 4000
		tolerance = 0.03
		marker    = "primary_share_probe"
	)
	pol, err := policy.PrimaryShare(policy.RoundRobin(), 0.25)
	if err != nil {
		t.Fatal(err)
	}
	c := pgOn(t, dbtest.Postgres(t, 2), clusterOpts{config: rwsplit.Config{Policy: pol}})
	c.takeRoutes()
	served := c.served(marker, func() {
		for range reads {
			var x int
			if err := c.DB.Raw("SELECT 1 AS " + marker).Scan(&x).Error; err != nil {
				t.Fatal(err)
			}
		}
	})
	routes := c.takeRoutes()
	if len(served) != reads || len(routes) != reads {
		t.Fatalf("%d reads: %d reached a node, %d were routed", reads, len(served), len(routes))
	}
	counts := map[string]int{}
	for i, r := range routes {
		want := rwsplit.ReasonRead
		if served[i] == "primary" {
			want = rwsplit.ReasonPolicyPrimary
		}
		if r.Node != served[i] || r.Reason != want {
			t.Fatalf("read %d routed as %+v, but %s ran it", i, r, served[i])
		}
		counts[served[i]]++
	}
	for node, want := range map[string]float64{"primary": 0.25, "replica1": 0.375, "replica2": 0.375} {
		if got := float64(counts[node]) / reads; math.Abs(got-want) > tolerance {
			t.Errorf("%s served %s of reads, want %s ± %.0f points (all: %v)", node, distPct(got), distPct(want), tolerance*100, counts)
		}
	}
	if got := c.Plugin.Stats().Routes[rwsplit.ReasonPolicyPrimary]; got != uint64(counts["primary"]) {
		t.Errorf("Stats.Routes[policy-primary] = %d, the primary ran %d", got, counts["primary"])
	}
	t.Logf("4000 reads: primary %s, replica1 %s, replica2 %s; policy %q", distPct(float64(counts["primary"])/reads),
		distPct(float64(counts["replica1"])/reads), distPct(float64(counts["replica2"])/reads), c.Plugin.Stats().Policy)
}
