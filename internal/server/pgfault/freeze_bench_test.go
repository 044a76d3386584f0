package pgfault_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
	"github.com/keyhold/keyhold/internal/testutil/rootcreds"
)

// BenchmarkFrozenCall measures how long a call takes to fail while the
// database is frozen (the proxy forwards nothing, sockets stay open), at
// the default bound on a database round trip and at the tests' one. Each
// call must answer ServiceUnavailableTemporary. Slow by design: run with
//
//	CI=true go test -run '^$' -bench BenchmarkFrozenCall -benchtime 3x ./internal/server/pgfault/
func BenchmarkFrozenCall(b *testing.B) {
	for _, bound := range []string{"default", frozenOpTimeout} {
		b.Run("op_timeout="+bound, func(b *testing.B) {
			pg := pgtest.Start(b)
			direct := pg.DSN(b)
			proxy := pgtest.NewProxy(b, direct)
			dsn := proxy.DSN(b, direct)
			if bound != "default" {
				dsn += "&keyhold_op_timeout=" + bound
			}
			kc := benchReplica(b, dsn)
			if _, err := kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("bench/a"), VersionId: tea.String("v1"), SecretData: tea.String("x")}); err != nil {
				b.Fatal(err)
			}
			proxy.Freeze()
			defer proxy.Thaw()
			calls := []struct {
				name string
				call func() error
			}{
				{"GetSecretValue", func() error {
					return errOf(kc.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("bench/a")}))
				}},
				{"PutSecretValue", func() error {
					return errOf(kc.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("bench/a"), VersionId: tea.String("v2"), SecretData: tea.String("y")}))
				}},
				{"CreateSecret", func() error {
					return errOf(kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("bench/b"), VersionId: tea.String("v1"), SecretData: tea.String("z")}))
				}},
			}
			for _, c := range calls {
				b.Run(c.name, func(b *testing.B) {
					for b.Loop() {
						var se *tea.SDKError
						if err := c.call(); !errors.As(err, &se) || tea.StringValue(se.Code) != "ServiceUnavailableTemporary" {
							b.Fatalf("%s with the database frozen: %v, want ServiceUnavailableTemporary", c.name, err)
						}
					}
				})
			}
		})
	}
}

// benchReplica starts a replica on dsn and returns the KMS SDK with its
// root key; the client waits up to 2 minutes for an answer, longer than
// any bound measured.
func benchReplica(b *testing.B, dsn string) *kms.Client {
	b.Helper()
	dir := b.TempDir()
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: dir, Storage: dsn, Listen: "127.0.0.1:0", TLSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	c := rootcreds.Read(b, dir)
	kc, err := kms.NewClient(&openapi.Config{
		AccessKeyId: tea.String(c.ID), AccessKeySecret: tea.String(c.Secret),
		Endpoint: tea.String(strings.TrimPrefix(srv.HTTPURL, "http://")), Protocol: tea.String("http"),
		RegionId: tea.String("cn-hangzhou"), ReadTimeout: tea.Int(120_000),
	})
	if err != nil {
		b.Fatal(err)
	}
	return kc
}
