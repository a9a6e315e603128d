package sqlclass

import (
	"errors"
	"fmt"
	"strings"
)

// ErrFunctionName is wrapped by the error NewFunctions returns for a name
// it cannot use.
var ErrFunctionName = errors.New("sqlclass: invalid function name")

// maxNameLen is the longest function name accepted (MySQL's limit;
// PostgreSQL's is 63).
const maxNameLen = 64

// Functions is an immutable set of SQL function names whose call sends a
// statement to the primary: functions that write, take locks, or read or
// change state kept per session or per server (sequences, advisory locks,
// LAST_INSERT_ID, ...). Names match case-insensitively.
//
// A call is a name followed by "(", quoted or not, with or without a
// qualifier: only the last component is compared, so nextval(...) and
// pg_catalog.nextval(...) both match nextval, and a called name longer
// than 63 bytes also matches when truncated, as PostgreSQL does.
//
// A nil *Functions is the built-in set. Functions is safe for concurrent
// use.
type Functions struct {
	names map[string]struct{} // lower-case last components
}

// builtinNames are the functions of PostgreSQL, MySQL and MariaDB whose
// call forces the primary, by exact name.
var builtinNames = [...]string{
	// Sequences (PostgreSQL, MariaDB): nextval/setval write; currval and
	// lastval read what nextval did earlier in the same session.
	"nextval", "setval", "currval", "lastval",
	// Transaction ids: assigning one is a write; fails on a standby.
	"txid_current", "txid_current_if_assigned",
	"pg_current_xact_id", "pg_current_xact_id_if_assigned",
	// WAL position and control: they error during recovery.
	"pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn",
	"pg_current_xlog_location", "pg_current_xlog_insert_location", "pg_current_xlog_flush_location",
	"pg_switch_wal", "pg_switch_xlog",
	"pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup",
	"pg_promote", "pg_wal_replay_pause", "pg_wal_replay_resume",
	"pg_drop_replication_slot", "pg_replication_slot_advance",
	"pg_copy_physical_replication_slot", "pg_copy_logical_replication_slot",
	// Session and server state.
	"set_config", "setseed", "pg_notify", "pg_export_snapshot",
	"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf",
	"pg_rotate_logfile", "pg_log_backend_memory_contexts",
	"pg_import_system_collations", "pg_stat_statements_reset",
	// Large objects through descriptors (lo_* are prefixes, below).
	"loread", "lowrite",
	// MySQL/MariaDB named locks: the lock lives on the server that took
	// it, so taking, releasing and inspecting all belong on the primary.
	"get_lock", "release_lock", "release_all_locks", "is_free_lock", "is_used_lock",
	"service_get_read_locks", "service_get_write_locks", "service_release_locks",
	// MySQL/MariaDB results of the previous statement on the connection.
	"last_insert_id", "row_count", "found_rows",
}

// builtinPrefixes are families of functions matched by prefix.
var builtinPrefixes = [...]string{
	"pg_advisory_",          // pg_advisory_lock, _xact_lock, _unlock, _unlock_all, *_shared
	"pg_try_advisory_",      // pg_try_advisory_lock, _xact_lock, *_shared
	"lo_",                   // lo_create, lo_import, lo_unlink, lo_put, lo_open, ... (lo_get too)
	"dblink",                // dblink, dblink_exec, dblink_connect, ...: remote side effects, session connections
	"pg_stat_reset",         // pg_stat_reset, pg_stat_reset_shared, ...
	"pg_create_",            // pg_create_restore_point, pg_create_*_replication_slot
	"pg_logical_",           // pg_logical_emit_message, pg_logical_slot_get_changes, ...
	"pg_replication_origin", // pg_replication_origin_create, _drop, _advance, _session_setup, ...
	"pg_file_",              // adminpack: pg_file_write, pg_file_rename, pg_file_unlink, ...
}

var builtin = Functions{names: func() map[string]struct{} {
	m := make(map[string]struct{}, len(builtinNames))
	for _, n := range builtinNames {
		m[n] = struct{}{}
	}
	return m
}()}

// NewFunctions returns the built-in set plus extra, names of functions of
// your own that write or keep session state (for example "audit_log" or
// "app.audit_log"). A name is one or more dot-separated parts, each an
// ASCII identifier (a letter or _, then letters, digits, _ or $) of at
// most 64 bytes; only the last part is kept (see Functions). NewFunctions
// returns an error wrapping ErrFunctionName for any other name.
func NewFunctions(extra ...string) (*Functions, error) {
	if len(extra) == 0 {
		return &builtin, nil
	}
	m := make(map[string]struct{}, len(builtin.names)+len(extra))
	for n := range builtin.names {
		m[n] = struct{}{}
	}
	for _, name := range extra {
		last, err := lastPart(name)
		if err != nil {
			return nil, err
		}
		m[strings.ToLower(last)] = struct{}{}
	}
	return &Functions{names: m}, nil
}

// lastPart validates a possibly qualified function name and returns its
// last part.
func lastPart(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty", ErrFunctionName)
	}
	parts := strings.Split(name, ".")
	for _, p := range parts {
		if err := checkIdent(p); err != nil {
			return "", fmt.Errorf("%w %q: %s", ErrFunctionName, name, err)
		}
	}
	return parts[len(parts)-1], nil
}

func checkIdent(p string) error {
	switch {
	case p == "":
		return errors.New("empty name part")
	case len(p) > maxNameLen:
		return fmt.Errorf("name part longer than %d bytes", maxNameLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' ||
			i > 0 && (c >= '0' && c <= '9' || c == '$')
		if !ok {
			return fmt.Errorf("invalid character %q at byte %d", c, i)
		}
	}
	return nil
}

// calls reports whether name, the last component of a called name, is in
// the set. name is compared case-insensitively without allocating.
//
// PostgreSQL truncates identifiers longer than 63 bytes to 63 (at a
// character boundary, so possibly to 60-62), so a longer name is also
// compared truncated.
func (f *Functions) calls(name string) bool {
	if f == nil {
		f = &builtin
	}
	if len(name) <= maxNameLen && f.has(name) {
		return true
	}
	for n := pgNameLen - 3; n <= pgNameLen && n < len(name); n++ {
		if f.has(name[:n]) {
			return true
		}
	}
	return false
}

// pgNameLen is PostgreSQL's identifier length limit (NAMEDATALEN - 1).
const pgNameLen = 63

// has reports whether name (at most maxNameLen bytes) is in the set or in
// a built-in family.
func (f *Functions) has(name string) bool {
	n := len(name)
	if n == 0 {
		return false
	}
	var b [maxNameLen]byte
	for i := 0; i < n; i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	lower := b[:n]
	if _, ok := f.names[string(lower)]; ok {
		return true
	}
	for _, p := range builtinPrefixes {
		if len(lower) >= len(p) && string(lower[:len(p)]) == p {
			return true
		}
	}
	return false
}
