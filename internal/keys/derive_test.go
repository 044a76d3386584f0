package keys_test

import (
	"bytes"
	"testing"

	"github.com/keyhold/keyhold/internal/keys"
)

func TestDeriveKeyIsStablePerRootKeyAndPurpose(t *testing.T) {
	b1, err := keys.NewBarrier(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	b1again, _ := keys.NewBarrier(bytes.Repeat([]byte{1}, 32))
	b2, _ := keys.NewBarrier(bytes.Repeat([]byte{2}, 32))

	a := b1.DeriveKey("keyhold/audit/mac/v1")
	if len(a) != 32 {
		t.Fatalf("derived key length %d", len(a))
	}
	if !bytes.Equal(a, b1again.DeriveKey("keyhold/audit/mac/v1")) {
		t.Error("same root key and purpose gave different keys (replicas would disagree)")
	}
	if bytes.Equal(a, b1.DeriveKey("keyhold/audit/checkpoint/v1")) {
		t.Error("different purposes gave the same key")
	}
	if bytes.Equal(a, b2.DeriveKey("keyhold/audit/mac/v1")) {
		t.Error("different root keys gave the same key")
	}
	if bytes.Equal(a, bytes.Repeat([]byte{1}, 32)) {
		t.Error("derived key is the root key")
	}
}
