// Package sqlclass decides whether a raw SQL string may run on a read-only
// replica.
//
// The contract is conservative: Classify returns Read only when it can
// show that the text is one read-only query, for PostgreSQL and for
// MySQL/MariaDB alike. Anything it does not recognise, cannot lex, or
// finds ambiguous is Write, which sends it to the primary. Classify reads
// the text in one forward pass (two for text the two families lex
// differently), allocates nothing, and uses no regular expressions.
//
// docs/routing-classifier.md lists the decisions taken where the rules
// leave a choice (EXPLAIN, functions, session state, hints, ...).
package sqlclass
