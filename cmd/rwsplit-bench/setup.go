package main

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	gmysql "gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
)

// flavor is what differs between PostgreSQL and MariaDB here.
type flavor struct {
	name     string                          // "PostgreSQL", "MariaDB"
	open     func(dsn string) gorm.Dialector // the GORM dialector
	portExpr string                          // SQL for the server's own port
}

var (
	pgFlavor    = flavor{"PostgreSQL", postgres.Open, "inet_server_port()"}
	mariaFlavor = flavor{"MariaDB", gmysql.Open, "@@port"}
)

// node is one server as the benchmark reaches it.
type node struct {
	name string
	dsn  string // possibly through a proxy
	port int    // the server's own port (what portExpr returns)
}

// topology is a primary and its replicas.
type topology struct {
	f        flavor
	primary  node
	replicas []node
}

// nameOf returns the node whose server port is port.
func (t *topology) nameOf(port int) string {
	if port == t.primary.port {
		return t.primary.name
	}
	for _, r := range t.replicas {
		if r.port == port {
			return r.name
		}
	}
	return "port " + strconv.Itoa(port)
}

func pgNode(n *testdb.PGNode, via *testdb.Proxy) node {
	dsn := n.DSN()
	if via != nil {
		dsn = strings.Replace(dsn, "port="+strconv.Itoa(n.Port), "port="+strconv.Itoa(via.Port()), 1)
	}
	return node{name: n.Name, dsn: dsn, port: n.Port}
}

func mariaNode(n *testdb.MariaNode, via *testdb.Proxy) node {
	cfg := n.Config()
	if via != nil {
		cfg.Addr = via.Addr()
	}
	cfg.ParseTime = true
	return node{name: n.Name, dsn: cfg.FormatDSN(), port: n.Port}
}

// setup is one of the configurations compared: a *gorm.DB on the primary,
// with or without a plugin.
type setup struct {
	name   string
	db     *gorm.DB
	plugin *rwsplit.Plugin        // rwsplit's, or nil
	dbr    *dbresolver.DBResolver // dbresolver's, or nil
}

func (s *setup) close() {
	if s.plugin != nil {
		s.plugin.Close()
	}
	if s.dbr != nil {
		// dbresolver has no Close: close the replica pools it opened.
		_ = s.dbr.Call(func(pool gorm.ConnPool) error {
			if db, ok := pool.(*sql.DB); ok {
				db.Close()
			}
			return nil
		})
	}
	if d, err := s.db.DB(); err == nil {
		d.Close()
	}
}

func gormConfig() *gorm.Config { return &gorm.Config{Logger: logger.Discard} }

// openPlain is plain GORM on the primary: no plugin, every statement there.
func openPlain(t *topology) (*setup, error) {
	db, err := gorm.Open(t.f.open(t.primary.dsn), gormConfig())
	if err != nil {
		return nil, err
	}
	return &setup{name: "plain GORM", db: db}, nil
}

// openDirect is plain GORM on one server.
func openDirect(f flavor, n node) (*setup, error) {
	db, err := gorm.Open(f.open(n.dsn), gormConfig())
	if err != nil {
		return nil, err
	}
	return &setup{name: "plain GORM on " + n.name, db: db}, nil
}

// openDBResolver is GORM with dbresolver over every replica, set up as its
// README does: its default (random) policy.
func openDBResolver(t *topology, replicas []node) (*setup, error) {
	db, err := gorm.Open(t.f.open(t.primary.dsn), gormConfig())
	if err != nil {
		return nil, err
	}
	var ds []gorm.Dialector
	for _, r := range replicas {
		ds = append(ds, t.f.open(r.dsn))
	}
	r := dbresolver.Register(dbresolver.Config{Replicas: ds})
	if err := db.Use(r); err != nil {
		return nil, err
	}
	return &setup{name: "dbresolver", db: db, dbr: r}, nil
}

// openRWSplit is GORM with rwsplit over the replicas; cfg.Replicas is
// filled in.
func openRWSplit(t *topology, replicas []node, cfg rwsplit.Config) (*setup, error) {
	db, err := gorm.Open(t.f.open(t.primary.dsn), gormConfig())
	if err != nil {
		return nil, err
	}
	cfg.Replicas = nil
	for _, r := range replicas {
		cfg.Replicas = append(cfg.Replicas, rwsplit.Replica{Name: r.name, Dialector: t.f.open(r.dsn)})
	}
	p := rwsplit.New(cfg)
	if err := db.Use(p); err != nil {
		if d, e := db.DB(); e == nil {
			d.Close()
		}
		return nil, err
	}
	return &setup{name: "rwsplit", db: db, plugin: p}, nil
}

// waitEligible waits until every replica of s's rwsplit serves reads.
func waitEligible(ctx context.Context, s *setup, within time.Duration) error {
	if s.plugin == nil {
		return nil
	}
	deadline := time.Now().Add(within)
	for {
		st := s.plugin.Stats()
		ok := true
		for _, r := range st.Replicas {
			ok = ok && r.Eligible
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rwsplit: replicas not all eligible after %v: %+v", within, st.Replicas)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
