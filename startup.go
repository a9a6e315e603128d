package rwsplit

import (
	"errors"
	"fmt"

	"github.com/rwsplit/rwsplit/internal/connerr"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// startupCheck returns the error db.Use fails with when the checker's
// first round showed a misconfiguration: a replica's (startupError), or
// the primary's, whose sample the checker's user may not take (a missing
// privilege). It names the replica, or the primary as primaryName.
func startupCheck(c *lagcheck.Checker, primaryName string) error {
	st := c.Status()
	for _, s := range st {
		if err := startupError(s.Name, s.LastErr); err != nil {
			return err
		}
	}
	for _, s := range st {
		if fix := misconfiguration(s.PrimaryErr); fix != "" {
			return fmt.Errorf("%w: primary %q: %s: %w", ErrConfig, primaryName, fix, s.PrimaryErr)
		}
	}
	return nil
}

// startupError returns the error db.Use fails with when err, met while
// opening or first checking replica name, shows a misconfiguration that
// waiting cannot fix; nil otherwise. It wraps ErrConfig and err.
func startupError(name string, err error) error {
	fix := misconfiguration(err)
	if fix == "" {
		return nil
	}
	return fmt.Errorf("%w: replica %q: %s: %w", ErrConfig, name, fix, err)
}

// misconfiguration says what is wrong with a replica's configuration, and
// how to fix it, if err means one; "" otherwise.
func misconfiguration(err error) string {
	const (
		auth    = "authentication failed; check the user and password in its DSN"
		unknown = "the database does not exist; check the database name in its DSN"
	)
	if err == nil {
		return ""
	}
	switch {
	case errors.Is(err, lagcheck.ErrNotReplica):
		return "the server is not a replica; check that its DSN names a replica, not the primary (or a replica since promoted)"
	case errors.Is(err, lagcheck.ErrPrivilege):
		return "its user lacks a privilege the lag checker needs"
	}
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		switch state.SQLState() {
		case "28P01", "28000": // invalid_password, invalid_authorization_specification
			return auth
		case "3D000": // invalid_catalog_name
			return unknown
		}
	}
	if my, ok := connerr.AsMySQL(err); ok {
		switch my.Number {
		case 1045, 1698: // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
			return auth
		case 1044: // ER_DBACCESS_DENIED_ERROR
			return "the user may not use the database; check the database name in its DSN, or grant access"
		case 1049: // ER_BAD_DB_ERROR
			return unknown
		}
	}
	return ""
}
