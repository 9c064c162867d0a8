package socialgraph_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/socialgraph/socialgraph/clients/go/socialgraph"
)

// serverAddress is the address of the `socialgraph serve` process TestMain
// starts: a SQLite file in a temporary directory, a free port, and a limit of
// three connection requests per hour so a refusal is reachable.
var serverAddress string

func TestMain(m *testing.M) {
	os.Exit(runWithServer(m))
}

func runWithServer(m *testing.M) int {
	command := os.Getenv("SOCIALGRAPH_SERVER")
	if command == "" {
		command = "../../../.venv/bin/socialgraph"
	}
	dir, err := os.MkdirTemp("", "socialgraph-go-client")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	serverAddress = fmt.Sprintf("127.0.0.1:%d", freePort())
	var logs bytes.Buffer
	server := exec.Command(command, "serve", "--listen", serverAddress,
		"--database-url", "sqlite:///"+filepath.Join(dir, "graph.db"), "--rate-limits", "3/1h")
	server.Stdout, server.Stderr = &logs, &logs
	if err := server.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot start %s: %v\n", command, err)
		return 1
	}
	defer func() {
		server.Process.Signal(syscall.SIGTERM)
		server.Wait()
	}()
	if err := waitServing(serverAddress, 30*time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "server did not start: %v\n%s", err, logs.String())
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "server log:\n%s", logs.String())
	}
	return code
}

func freePort() int {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}

func waitServing(address string, timeout time.Duration) error {
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	health := healthpb.NewHealthClient(conn)
	for {
		reply, err := health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		if err == nil && reply.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no SERVING health within %s (last error: %v)", timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func newClient(t *testing.T) *socialgraph.Client {
	t.Helper()
	client, err := socialgraph.NewClient(serverAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}
