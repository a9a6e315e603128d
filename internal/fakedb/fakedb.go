// Package fakedb is a database/sql driver that answers every query from
// memory, without a network. Benchmarks use it to measure the cost of GORM
// and of routing plugins themselves: any difference between two runs over
// fakedb is CPU spent in Go, not in a server.
//
// It is not a database: every query returns the same row, and every exec
// reports one row affected. It must never stand in for a replica in a
// routing test.
package fakedb

import (
	"context"
	"database/sql/driver"
	"io"
	"sync/atomic"
)

// Connector is a driver.Connector whose connections answer every query with
// Row, under Columns. Its fields must not change after the first
// connection.
type Connector struct {
	Columns []string
	Row     []driver.Value
	// RowsErr, if set, is what reading a query's rows returns instead of
	// Row: the query itself succeeds, as when a server dies after it
	// answered and before the client read all of its reply.
	RowsErr error
	// Queries counts the statements run through the connector.
	Queries atomic.Int64
}

// Connect implements driver.Connector.
func (c *Connector) Connect(context.Context) (driver.Conn, error) { return &conn{c: c}, nil }

// Driver implements driver.Connector.
func (c *Connector) Driver() driver.Driver { return drv{c} }

type drv struct{ c *Connector }

func (d drv) Open(string) (driver.Conn, error) { return &conn{c: d.c}, nil }

type conn struct{ c *Connector }

var (
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

func (c *conn) Prepare(query string) (driver.Stmt, error) { return &stmt{c: c}, nil }
func (c *conn) PrepareContext(context.Context, string) (driver.Stmt, error) {
	return &stmt{c: c}, nil
}
func (c *conn) Close() error                                                 { return nil }
func (c *conn) Begin() (driver.Tx, error)                                    { return tx{}, nil }
func (c *conn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) { return tx{}, nil }
func (c *conn) Ping(context.Context) error                                   { return nil }
func (c *conn) CheckNamedValue(*driver.NamedValue) error                     { return nil }

func (c *conn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	c.c.Queries.Add(1)
	return &rows{c: c.c}, nil
}

func (c *conn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	c.c.Queries.Add(1)
	return result{}, nil
}

type stmt struct{ c *conn }

func (s *stmt) Close() error  { return nil }
func (s *stmt) NumInput() int { return -1 }
func (s *stmt) Exec([]driver.Value) (driver.Result, error) {
	s.c.c.Queries.Add(1)
	return result{}, nil
}
func (s *stmt) Query([]driver.Value) (driver.Rows, error) {
	s.c.c.Queries.Add(1)
	return &rows{c: s.c.c}, nil
}

type tx struct{}

func (tx) Commit() error   { return nil }
func (tx) Rollback() error { return nil }

type result struct{}

func (result) LastInsertId() (int64, error) { return 1, nil }
func (result) RowsAffected() (int64, error) { return 1, nil }

type rows struct {
	c    *Connector
	done bool
}

func (r *rows) Columns() []string { return r.c.Columns }
func (r *rows) Close() error      { return nil }
func (r *rows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	if r.c.RowsErr != nil {
		return r.c.RowsErr
	}
	copy(dest, r.c.Row)
	return nil
}
