package rwsplit

import (
	"reflect"
	"sync"
	"unsafe"

	"gorm.io/gorm"
	"gorm.io/plugin/dbresolver"
)

// dbresolver creates a prepared-statement store for the primary and for
// each replica when it initializes, with or without PrepareStmt, and GORM
// (v1.31) gives no way to stop the goroutine each store's LRU cache starts:
// LRU.Close is commented out in gorm.io/gorm/internal/lru. rwsplit owns
// those stores once it has made dbresolver create them, so Close stops
// them here, by reflection: it closes the LRU's done channel, which is what
// LRU.Close would do. Should GORM or dbresolver change the layout this
// relies on, nothing is stopped (the goroutines outlive Close, as before),
// and TestCloseLeavesNoGoroutine fails.

// resolverStores returns every prepared-statement store dbresolver made
// (its prepareStmtStore map). None of them is the user's own store.
func resolverStores(dr *dbresolver.DBResolver) []*gorm.PreparedStmtDB {
	if dr == nil {
		return nil
	}
	f := reflect.ValueOf(dr).Elem().FieldByName("prepareStmtStore")
	want := reflect.TypeFor[map[gorm.ConnPool]*gorm.PreparedStmtDB]()
	if !f.IsValid() || f.Type() != want {
		return nil
	}
	m := *(*map[gorm.ConnPool]*gorm.PreparedStmtDB)(unsafe.Pointer(f.UnsafeAddr()))
	out := make([]*gorm.PreparedStmtDB, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	return out
}

// stopStore closes the statements of s and stops its LRU's goroutine. It
// reports whether it found the goroutine's done channel; stopping a store
// twice is harmless.
func stopStore(s *gorm.PreparedStmtDB) bool {
	if s == nil || s.Stmts == nil {
		return false
	}
	s.Close()
	v := reflect.ValueOf(s.Stmts) // *stmt_store.lruStore
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	l := v.Elem().FieldByName("lru") // *lru.LRU[string, *stmt_store.Stmt]
	if !l.IsValid() || l.Kind() != reflect.Pointer || l.IsNil() || l.Elem().Kind() != reflect.Struct {
		return false
	}
	done, mu := l.Elem().FieldByName("done"), l.Elem().FieldByName("mu")
	if !done.IsValid() || done.Type() != reflect.TypeFor[chan struct{}]() ||
		!mu.IsValid() || mu.Type() != reflect.TypeFor[sync.RWMutex]() {
		return false
	}
	ch := *(*chan struct{})(unsafe.Pointer(done.UnsafeAddr()))
	lock := (*sync.RWMutex)(unsafe.Pointer(mu.UnsafeAddr()))
	// The body of the commented-out LRU.Close.
	lock.Lock()
	defer lock.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
	return true
}
