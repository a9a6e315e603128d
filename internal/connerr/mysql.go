package connerr

import (
	"reflect"
)

// MySQLError is what rwsplit reads of an error that a MySQL or MariaDB
// server reported: github.com/go-sql-driver/mysql's *MySQLError.
type MySQLError struct {
	Number  uint16 // the server's error number (ER_…)
	Message string
}

// mysqlErrorPkg and mysqlErrorName name the driver's error type.
// TestMySQLErrorType checks them against the driver itself.
const (
	mysqlErrorPkg  = "github.com/go-sql-driver/mysql"
	mysqlErrorName = "MySQLError"
)

// AsMySQL finds the first *mysql.MySQLError in err's chain (through
// Unwrap() error and Unwrap() []error, as errors.As does) and returns its
// number and message.
//
// It knows the type by its package path and name and reads its two fields
// by reflection, instead of errors.As with the driver's type, so that
// rwsplit does not link the MySQL driver into a program that does not use
// MySQL. It runs only on error paths.
func AsMySQL(err error) (MySQLError, bool) {
	for err != nil {
		if my, ok := mysqlFields(err); ok {
			return my, true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if my, ok := AsMySQL(e); ok {
					return my, true
				}
			}
			return MySQLError{}, false
		default:
			return MySQLError{}, false
		}
	}
	return MySQLError{}, false
}

// mysqlFields reads err itself, not its chain.
func mysqlFields(err error) (MySQLError, bool) {
	t := reflect.TypeOf(err)
	if t.Kind() != reflect.Pointer || t.Elem().Name() != mysqlErrorName || t.Elem().PkgPath() != mysqlErrorPkg {
		return MySQLError{}, false
	}
	v := reflect.ValueOf(err)
	if v.IsNil() {
		return MySQLError{}, false
	}
	v = v.Elem()
	num, msg := v.FieldByName("Number"), v.FieldByName("Message")
	if num.Kind() != reflect.Uint16 || msg.Kind() != reflect.String {
		return MySQLError{}, false
	}
	return MySQLError{Number: uint16(num.Uint()), Message: msg.String()}, true
}

// IsMySQL reports whether err's chain holds a MySQL or MariaDB server
// error numbered n.
func IsMySQL(err error, n uint16) bool {
	my, ok := AsMySQL(err)
	return ok && my.Number == n
}
