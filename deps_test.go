package rwsplit_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRootDependencies: a program that imports only the root package
// compiles neither go-redis (stickiness/redisstore has the Redis store),
// the Prometheus client (rwsplitprom has the collector), OpenTelemetry
// (rwsplitotel has the span attributes), nor the MySQL driver (a MySQL
// user's program has it through gorm.io/driver/mysql; rwsplit reads its
// errors by shape, internal/connerr.AsMySQL).
func TestRootDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/rwsplit/rwsplit").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "redis") || strings.Contains(pkg, "prometheus") || strings.Contains(pkg, "opentelemetry") || strings.Contains(pkg, "go-sql-driver") {
			t.Errorf("the root package depends on %s", pkg)
		}
	}
}
