package sqlclass

import "testing"

var benchTables = []struct {
	name string
	sql  string
}{
	{"gorm-first-pg", `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`},
	{"gorm-joins-mysql", "SELECT `users`.`id`,`Company`.`id` AS `Company__id` FROM `users` LEFT JOIN `companies` `Company` ON `users`.`company_id` = `Company`.`id`"},
	{"gorm-save-pg", `UPDATE "users" SET "name"=$1,"updated_at"=$2 WHERE "id" = $3`},
	{"writing-cte", `WITH d AS (DELETE FROM t WHERE created_at < $1 RETURNING *) INSERT INTO archive SELECT * FROM d`},
	{"long-select-comments", benchStatements[2].sql},
}

func BenchmarkWriteTables(b *testing.B) {
	for _, bb := range benchTables {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.sql)))
			dst := make([]string, 0, 8)
			for b.Loop() {
				dst, _ = WriteTables(bb.sql, dst[:0])
			}
		})
	}
}

func BenchmarkReadTables(b *testing.B) {
	for _, bb := range benchTables {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.sql)))
			dst := make([]string, 0, 8)
			for b.Loop() {
				dst, _ = ReadTables(bb.sql, dst[:0])
			}
		})
	}
}

func BenchmarkBaseTable(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		BaseTable(`"public"."users" AS "u"`)
	}
}
