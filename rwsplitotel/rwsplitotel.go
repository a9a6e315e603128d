// Package rwsplitotel puts rwsplit's routing on OpenTelemetry spans: each
// statement's span, as gorm.io/plugin/opentelemetry/tracing makes it,
// carries the node that ran it and why (db.rwsplit.node,
// db.rwsplit.reason). It is a package of its own so that the rwsplit
// package does not depend on OpenTelemetry.
//
//	db.Use(tracing.NewPlugin())     // gorm.io/plugin/opentelemetry/tracing
//	db.Use(rwsplit.New(cfg))
//	db.Use(rwsplitotel.New())
//
// It works with any tracing that keeps the statement's span in
// Statement.Context until GORM's own After callbacks have run.
package rwsplitotel

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
)

// Attribute keys.
const (
	NodeKey   = attribute.Key("db.rwsplit.node")
	ReasonKey = attribute.Key("db.rwsplit.reason")
)

// Plugin is the GORM plugin New returns.
type Plugin struct{}

// New returns the plugin. Install it with db.Use, after rwsplit.
func New() *Plugin { return &Plugin{} }

// Name implements gorm.Plugin.
func (*Plugin) Name() string { return "rwsplit:otel" }

// callbackName is the callback the plugin registers in each chain.
const callbackName = "rwsplit:otel"

// Initialize implements gorm.Plugin: it registers, in each chain, a
// callback right after GORM's own that sets the attributes, before
// gorm.io/plugin/opentelemetry ends the span.
func (*Plugin) Initialize(db *gorm.DB) error {
	cb := db.Callback()
	// gorm.io/plugin/opentelemetry/tracing ends the span in
	// otel:after:<op>; a name not registered is ignored.
	for _, register := range []func() error{
		func() error {
			return cb.Create().After("gorm:create").Before("otel:after:create").Register(callbackName, annotate)
		},
		func() error {
			return cb.Query().After("gorm:query").Before("otel:after:select").Register(callbackName, annotate)
		},
		func() error {
			return cb.Update().After("gorm:update").Before("otel:after:update").Register(callbackName, annotate)
		},
		func() error {
			return cb.Delete().After("gorm:delete").Before("otel:after:delete").Register(callbackName, annotate)
		},
		func() error {
			return cb.Row().After("gorm:row").Before("otel:after:row").Register(callbackName, annotate)
		},
		func() error {
			return cb.Raw().After("gorm:raw").Before("otel:after:raw").Register(callbackName, annotate)
		},
	} {
		if err := register(); err != nil {
			return err
		}
	}
	return nil
}

// annotate sets the route of db's statement on the span in its context.
func annotate(db *gorm.DB) {
	r, ok := rwsplit.RouteOf(db)
	if !ok || db.Statement.Context == nil {
		return
	}
	span := trace.SpanFromContext(db.Statement.Context)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(NodeKey.String(r.Node), ReasonKey.String(r.Reason.String()))
}
