package postgres

import (
	"context"
	"fmt"
)

// migrations are applied in order, each once, in its own transaction; the
// applied versions are rows of kh_schema. Never edit a released entry:
// append a new one.
var migrations = []string{
	// 1: records, nonces, leases.
	`CREATE TABLE kh_records (
		tbl   bytea NOT NULL,
		key   bytea NOT NULL,
		value bytea NOT NULL,
		PRIMARY KEY (tbl, key)
	);
	CREATE TABLE kh_nonces (
		key     bytea PRIMARY KEY,
		expires timestamptz NOT NULL
	);
	CREATE INDEX kh_nonces_expires ON kh_nonces (expires);
	CREATE TABLE kh_leases (
		name    text PRIMARY KEY,
		holder  text NOT NULL DEFAULT '',
		token   bigint NOT NULL,
		expires timestamptz
	);`,
}

// SchemaVersion is the schema version this build creates and understands.
var SchemaVersion = len(migrations)

// migrate brings the schema to SchemaVersion. Replicas starting together
// serialize on an advisory lock; a database written by a newer build is
// refused rather than used half-understood.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Release()
	key := s.lockKey("schema")
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockClass, key); err != nil {
		conn.Conn().Close(context.Background())
		return fmt.Errorf("postgres: schema lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", lockClass, key)

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS kh_schema (
		version int PRIMARY KEY,
		applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: create schema table: %w", err)
	}
	var cur int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM kh_schema").Scan(&cur); err != nil {
		return fmt.Errorf("postgres: read schema version: %w", err)
	}
	if cur > SchemaVersion {
		return fmt.Errorf("postgres: the database schema is version %d, newer than this build understands (%d): upgrade keyhold", cur, SchemaVersion)
	}
	for v := cur + 1; v <= SchemaVersion; v++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("postgres: migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("postgres: migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO kh_schema (version) VALUES ($1)", v); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("postgres: migration %d: %w", v, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("postgres: migration %d: %w", v, err)
		}
	}
	return nil
}
