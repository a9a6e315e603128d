// Package stickiness keeps the per-user state that rwsplit needs for "read
// your own writes": after a user writes, that user's reads stay on the
// primary (or, in causal mode, go only to a replica that has replayed the
// write) for a while.
//
// The state of one user is a Record: until when the user is sticky, and the
// primary's replication position after the user's last write. Records are
// kept in three places, which the plugin combines:
//
//   - a Store, keyed by the user key in the context (WithUser, User):
//     NewMemory for one application server, redisstore.New for several;
//   - a carrier in the context (WithCarrier, WithToken, Note, FromContext),
//     which the current request or job updates after each write;
//   - a signed cookie (NewCookieMiddleware), which carries the record of the
//     user's last write from one HTTP request to the next, across
//     application servers, without a shared store. Token and WithToken do the
//     same for background jobs.
//
// This package decides nothing about routing: the rwsplit plugin reads the
// records, compares positions (lagcheck.Position.Covers) and routes. It does
// not import rwsplit or GORM.
//
// Merging two records (Record.Merge) never makes a user less sticky: the
// later Until wins, and the position kept is the one that covers the other,
// or the zero (unknown) position, which means "the primary until Until",
// when neither covers the other. Every Store and the carrier merge this way,
// so a late, older write cannot roll stickiness back.
package stickiness
