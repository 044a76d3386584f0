package store

// TableLister is an optional capability of a backend's Tx: the names of the
// tables that hold at least one record, in ascending byte order. Backup and
// migration use it, inside one View, to copy a whole deployment from one
// consistent snapshot without knowing which tables the domain packages use.
// Nonces and leases are not tables: they are short-lived coordination state
// that a copy need not carry.
type TableLister interface {
	Tables() ([]string, error)
}
