// Command keyhold is the one Keyhold binary: the server (keyhold server) and
// the command-line client for every API operation (keyhold secret …,
// keyhold key …, keyhold configure …). The client commands talk to a server
// only through the public client package, as any other program would.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], newStdio())
	stop()
	os.Exit(code)
}
