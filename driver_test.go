package rwsplit

import (
	"reflect"
	"testing"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

func TestInheritDriverSettings(t *testing.T) {
	pgPrimary := postgres.New(postgres.Config{DSN: "host=p", PreferSimpleProtocol: true, WithoutReturning: true})
	myPrimary := mysql.New(mysql.Config{DSN: "u@tcp(p)/db", ServerVersion: "10.11.6-MariaDB", SkipInitializeWithVersion: true, DefaultStringSize: 191})

	tests := []struct {
		name    string
		primary gorm.Dialector
		replica gorm.Dialector
		want    any // the replica's resulting driver Config
		// mysqlDSN: the result carries the replica's parsed DSNConfig,
		// compared separately because it is a pointer.
		mysqlDSN bool
	}{
		{
			name:    "postgres Open inherits",
			primary: pgPrimary,
			replica: postgres.Open("host=r"),
			want:    postgres.Config{DSN: "host=r", PreferSimpleProtocol: true, WithoutReturning: true},
		},
		{
			name:    "postgres New keeps its own settings",
			primary: pgPrimary,
			replica: postgres.New(postgres.Config{DSN: "host=r", WithoutQuotingCheck: true}),
			want:    postgres.Config{DSN: "host=r", WithoutQuotingCheck: true},
		},
		{
			name:     "mysql Open inherits",
			primary:  myPrimary,
			replica:  mysql.Open("u@tcp(r)/db"),
			want:     mysql.Config{DSN: "u@tcp(r)/db", ServerVersion: "10.11.6-MariaDB", SkipInitializeWithVersion: true, DefaultStringSize: 191},
			mysqlDSN: true,
		},
		{
			name:     "different drivers are left alone",
			primary:  pgPrimary,
			replica:  mysql.Open("u@tcp(r)/db"),
			want:     mysql.Config{DSN: "u@tcp(r)/db"},
			mysqlDSN: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := inheritDriverSettings(tt.primary, tt.replica)
			if err != nil {
				t.Fatal(err)
			}
			var cfg any
			switch d := got.(type) {
			case *postgres.Dialector:
				cfg = *d.Config
			case *mysql.Dialector:
				c := *d.Config
				if tt.mysqlDSN != (c.DSNConfig != nil && c.DSNConfig.Addr == "r:3306") {
					t.Errorf("DSNConfig = %+v, want the replica's", c.DSNConfig)
				}
				c.DSNConfig = nil
				cfg = c
			default:
				t.Fatalf("got %T", got)
			}
			if !reflect.DeepEqual(cfg, tt.want) {
				t.Errorf("config = %+v, want %+v", cfg, tt.want)
			}
		})
	}

	// The primary's own dialector is never modified.
	if d := pgPrimary.(*postgres.Dialector); d.DSN != "host=p" {
		t.Errorf("primary DSN changed to %q", d.DSN)
	}
}

func TestInheritDriverSettingsEmptyDSN(t *testing.T) {
	if _, err := inheritDriverSettings(postgres.Open("host=p"), postgres.Open("")); err == nil {
		t.Fatal("want an error for a replica with an empty DSN")
	}
}
