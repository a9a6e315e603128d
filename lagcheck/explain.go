package lagcheck

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

// explained wraps the Checker's probe so that its errors say what they
// mean and how to fix them: a query the server refused for want of a
// privilege becomes ErrPrivilege naming the GRANT, and ErrNotReplica from
// a replica that an earlier probe saw replicate becomes ErrPromoted.
type explained struct {
	Probe
	hb *Heartbeat // nil without a heartbeat

	mu         sync.Mutex
	replicated map[int]bool // by target index: a probe saw the server replicate
}

func explain(p Probe, hb *Heartbeat) *explained {
	return &explained{Probe: p, hb: hb, replicated: map[int]bool{}}
}

func (e *explained) Primary(ctx context.Context, db DB) (Position, error) {
	pos, err := e.Probe.Primary(ctx, db)
	return pos, e.privilege(ctx, db, err, false)
}

// primarySample is Primary, also reading the commit position when the
// probe samples commits (samplesCommits); zero otherwise.
func (e *explained) primarySample(ctx context.Context, db DB) (pos, commit Position, err error) {
	if cs, ok := e.Probe.(commitSampler); ok && samplesCommits(e.Probe) {
		pos, commit, err = cs.primarySample(ctx, db)
	} else {
		pos, err = e.Probe.Primary(ctx, db)
	}
	return pos, commit, e.privilege(ctx, db, err, false)
}

func (e *explained) Replica(ctx context.Context, db DB, primary Position) (Replay, error) {
	r, err := e.Probe.Replica(ctx, db, primary)
	return r, e.role(targetIndex(ctx), e.privilege(ctx, db, err, true))
}

// role remembers which replicas were seen replicating (the probe passed,
// or found replication configured but stopped), and turns a later
// ErrNotReplica of such a replica into ErrPromoted.
func (e *explained) role(i int, err error) error {
	if i < 0 {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err == nil, errors.Is(err, ErrReplicationStopped):
		e.replicated[i] = true
	case errors.Is(err, ErrNotReplica) && e.replicated[i]:
		return promotedError{err}
	}
	return err
}

// promotedError is an ErrNotReplica error that is also ErrPromoted.
type promotedError struct{ err error }

func (e promotedError) Error() string {
	return ErrPromoted.Error() + " (an earlier probe saw it replicate): " + strings.TrimPrefix(e.err.Error(), "lagcheck: ")
}

func (e promotedError) Unwrap() error        { return e.err }
func (e promotedError) Is(target error) bool { return target == ErrPromoted }

// privilege returns err as ErrPrivilege, naming the GRANT, if the server
// refused a query of the probe for want of a privilege; err otherwise.
// replica says which side ran it. The user is asked of the server, on q.
func (e *explained) privilege(ctx context.Context, q Querier, err error, replica bool) error {
	if err == nil {
		return nil
	}
	fix := grantFor(err, replica, e.hb)
	if fix == nil {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrPrivilege, fix(currentUser(ctx, q, err)), err)
}

var (
	// PostgreSQL's 42501 text: "permission denied for function pg_last_wal_replay_lsn".
	pgDenied = regexp.MustCompile(`permission denied for (function|table|relation|schema) ([^\s(]+)`)
	// MySQL's and MariaDB's 1227 text: "Access denied; you need (at least
	// one of) the SUPER, SLAVE MONITOR privilege(s) for this operation".
	myNeeds = regexp.MustCompile(`the ([A-Z_ ,]+) privilege`)
	// MySQL's and MariaDB's 1142/1143 text: "UPDATE command denied to user
	// 'u'@'h' for table `test`.`rwsplit_heartbeat`" (1143: "... for column
	// 'id' in table 'rwsplit_heartbeat'").
	myCommand = regexp.MustCompile("^(\\w+) command denied .* table ([`'][^ ]+)$")
)

// grantFor returns, for an error by which a server refused a probe's query
// for want of a privilege, the GRANT (of the user it is given) that fixes
// it; nil for any other error. replica says on which side the query ran;
// hb is the heartbeat's configuration, or nil.
func grantFor(err error, replica bool, hb *Heartbeat) func(user string) string {
	if my, ok := connerr.AsMySQL(err); ok {
		return mysqlGrant(my, replica, hb)
	}
	var state interface{ SQLState() string }
	if !errors.As(err, &state) || state.SQLState() != "42501" { // insufficient_privilege
		return nil
	}
	m := pgDenied.FindStringSubmatch(err.Error())
	if m == nil {
		return func(u string) string { return "GRANT the privilege the message below names TO " + u }
	}
	switch kind, name := m[1], m[2]; kind {
	case "function":
		return func(u string) string { return "GRANT EXECUTE ON FUNCTION " + name + " TO " + u }
	case "schema":
		if !replica && hb != nil && !hb.SkipCreate {
			return func(u string) string {
				return "GRANT CREATE ON SCHEMA " + name + " TO " + u + ", or create the heartbeat table yourself and set Heartbeat.SkipCreate"
			}
		}
		return func(u string) string { return "GRANT USAGE ON SCHEMA " + name + " TO " + u }
	default: // a table: only the heartbeat reads or writes one
		if hb != nil {
			name = hb.Table
		}
		return tableGrant(name, replica)
	}
}

// mysqlGrant is grantFor for MySQL and MariaDB.
func mysqlGrant(my connerr.MySQLError, replica bool, hb *Heartbeat) func(user string) string {
	switch my.Number {
	case 1227: // ER_SPECIFIC_ACCESS_DENIED_ERROR: SHOW SLAVE|REPLICA STATUS
		priv := "SLAVE MONITOR (MariaDB) or REPLICATION CLIENT (MySQL)"
		if m := myNeeds.FindStringSubmatch(my.Message); m != nil {
			for p := range strings.SplitSeq(m[1], ",") {
				if p = strings.TrimSpace(p); p != "" && p != "SUPER" {
					priv = p
					break
				}
			}
		}
		return func(u string) string { return "GRANT " + priv + " ON *.* TO " + u }
	case 1142, 1143: // ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR: the heartbeat table
		table := "the heartbeat table"
		if hb != nil {
			table = hb.Table
		}
		m := myCommand.FindStringSubmatch(my.Message)
		if m != nil && my.Number == 1142 && strings.HasPrefix(m[2], "`") {
			table = m[2] // MariaDB qualifies it with its database: `test`.`rwsplit_heartbeat`
		}
		if m != nil && m[1] == "CREATE" {
			return func(u string) string {
				return "GRANT CREATE ON " + table + " TO " + u + ", or create the heartbeat table yourself and set Heartbeat.SkipCreate"
			}
		}
		return tableGrant(table, replica)
	}
	return nil
}

// tableGrant is the GRANT the heartbeat needs on its table: SELECT on a
// replica; on the primary also INSERT and UPDATE (whose WHERE id = ...
// needs SELECT too).
func tableGrant(table string, replica bool) func(user string) string {
	privs := "SELECT, INSERT, UPDATE"
	if replica {
		privs = "SELECT"
	}
	return func(u string) string { return "GRANT " + privs + " ON " + table + " TO " + u }
}

// currentUser returns the account q is connected as, written as a GRANT
// names it: 'user'@'host' on MySQL and MariaDB (CURRENT_USER(), the
// account the server matched, not the client's host), a quoted identifier
// on PostgreSQL; "<the user in its DSN>" if the server does not say.
func currentUser(ctx context.Context, q Querier, err error) string {
	_, mysqlErr := connerr.AsMySQL(err)
	query := `SELECT quote_ident(current_user)`
	if mysqlErr {
		query = `SELECT CURRENT_USER()`
	}
	var u string
	if q == nil || q.QueryRowContext(ctx, query).Scan(&u) != nil || u == "" {
		return "<the user in its DSN>"
	}
	if mysqlErr {
		if i := strings.LastIndexByte(u, '@'); i >= 0 {
			return "'" + u[:i] + "'@'" + u[i+1:] + "'"
		}
	}
	return u
}
