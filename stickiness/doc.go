// Package stickiness gives rwsplit read-your-own-writes: after a user
// writes, the user's reads go to the primary, or only to replicas that have
// replayed the write, for a while.
//
// A Tracker decides which reads are sticky and records the writes that make
// them so. A user's last write is a Record, kept in a Store (Memory, or
// redisstore for several application servers) by the key WithUser puts in
// the context, and in the context's carrier (WithCarrier, WithToken, and the
// cookie middleware, which carries it between HTTP requests). Merging two
// records never makes a user less sticky. This package does not import
// rwsplit or GORM. docs/stickiness.md explains the design.
package stickiness
