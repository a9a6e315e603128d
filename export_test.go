package rwsplit

import (
	"time"

	"gorm.io/gorm"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit/lagcheck"
)

// FreshProbe reports every replica caught up, for fakedb replicas (see
// freshProbe).
var FreshProbe lagcheck.Probe = freshProbe{}

// StopUserStore stops the prepared-statement store GORM keeps for db's
// PrepareStmt sessions (made by gorm.Open with PrepareStmt, or by the first
// such Session; made here if there is none), so that a test leaves no
// goroutine behind. That store is the user's: rwsplit never stops it.
func StopUserStore(db *gorm.DB) bool {
	s, ok := db.Session(&gorm.Session{PrepareStmt: true}).Statement.ConnPool.(*gorm.PreparedStmtDB)
	return ok && stopStore(s)
}

// SetWatchEvery sets how often the plugin looks for the conditions it logs
// on their own (see watch), and returns a func that restores it.
func SetWatchEvery(d time.Duration) (restore func()) {
	old := watchEvery
	watchEvery = d
	return func() { watchEvery = old }
}

// StopResolverStores stops the prepared-statement stores dbresolver made
// for r's replicas (GORM v1.31.2 has no way to stop them), so that a
// benchmark of plain dbresolver leaves no goroutine behind.
func StopResolverStores(r *dbresolver.DBResolver) {
	for _, s := range resolverStores(r) {
		stopStore(s)
	}
}
