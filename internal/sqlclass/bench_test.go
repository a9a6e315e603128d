package sqlclass

import "testing"

var benchStatements = []struct {
	name string
	sql  string
}{
	{"gorm-first-pg", `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`},
	{"gorm-first-mysql", "SELECT * FROM `users` WHERE `users`.`id` = ? AND `users`.`deleted_at` IS NULL ORDER BY `users`.`id` LIMIT 1"},
	{"long-select-comments", `/* report: monthly revenue by region (dashboard v2) */
WITH paid AS (
	-- only settled orders
	SELECT o.region_id, o.total, o.created_at
	FROM orders o
	JOIN payments p ON p.order_id = o.id AND p.status = 'settled'
	WHERE o.created_at >= $1 AND o.created_at < $2 /* half-open range */
)
SELECT r.name, date_trunc('month', paid.created_at) AS month, sum(paid.total) AS revenue,
       count(*) FILTER (WHERE paid.total > 100) AS large_orders
FROM paid JOIN regions r ON r.id = paid.region_id
GROUP BY r.name, month
ORDER BY month DESC, revenue DESC
LIMIT 100;`},
	{"raw-write", `UPDATE "users" SET "name"=$1,"updated_at"=$2 WHERE "id" = $3`},
	{"locking", `SELECT * FROM "jobs" WHERE "state" = $1 ORDER BY "id" LIMIT 1 FOR UPDATE SKIP LOCKED`},
	{"two-readings-jsonb", `SELECT data #>> '{a,b}' FROM docs WHERE id = $1`},
}

func BenchmarkClassify(b *testing.B) {
	f, err := NewFunctions("audit_log")
	if err != nil {
		b.Fatal(err)
	}
	for _, bb := range benchStatements {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.sql)))
			for b.Loop() {
				Classify(bb.sql, f)
			}
		})
	}
}
