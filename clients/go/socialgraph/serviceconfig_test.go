package socialgraph_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/socialgraph/socialgraph/clients/go/socialgraph"
	pb "github.com/socialgraph/socialgraph/clients/go/socialgraph/v1"
)

// flakyGraph fails GetCounts with UNAVAILABLE until failures run out, and
// records whether each attempt arrived with a deadline.
type flakyGraph struct {
	pb.UnimplementedSocialGraphServiceServer
	failures     atomic.Int32
	attempts     atomic.Int32
	lastDeadline atomic.Int64
}

func (f *flakyGraph) GetCounts(ctx context.Context, _ *pb.GetCountsRequest) (*pb.GetCountsResponse, error) {
	f.attempts.Add(1)
	if deadline, ok := ctx.Deadline(); ok {
		f.lastDeadline.Store(int64(time.Until(deadline)))
	}
	if f.failures.Add(-1) >= 0 {
		return nil, status.Error(codes.Unavailable, "database unreachable")
	}
	return &pb.GetCountsResponse{}, nil
}

func serveFlaky(t *testing.T, failures int32) (*flakyGraph, *socialgraph.Client) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	graph := &flakyGraph{}
	graph.failures.Store(failures)
	server := grpc.NewServer()
	pb.RegisterSocialGraphServiceServer(server, graph)
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	client, err := socialgraph.NewClient(listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return graph, client
}

func TestServiceConfigRetriesUnavailable(t *testing.T) {
	graph, client := serveFlaky(t, 3)
	if _, err := client.Graph.GetCounts(context.Background(), &pb.GetCountsRequest{}); err != nil {
		t.Fatalf("GetCounts after three UNAVAILABLE: %v", err)
	}
	if got := graph.attempts.Load(); got != 4 {
		t.Fatalf("attempts = %d, want 4", got)
	}
}

func TestServiceConfigGivesUpAfterFourAttempts(t *testing.T) {
	graph, client := serveFlaky(t, 10)
	_, err := client.Graph.GetCounts(context.Background(), &pb.GetCountsRequest{})
	if decoded := socialgraph.DecodeError(err); decoded == nil || decoded.Code != codes.Unavailable {
		t.Fatalf("GetCounts = %v, want UNAVAILABLE", err)
	}
	if got := graph.attempts.Load(); got != 4 {
		t.Fatalf("attempts = %d, want 4", got)
	}
}

func TestServiceConfigSetsADefaultDeadline(t *testing.T) {
	graph, client := serveFlaky(t, 0)
	if _, err := client.Graph.GetCounts(context.Background(), &pb.GetCountsRequest{}); err != nil {
		t.Fatal(err)
	}
	if remaining := time.Duration(graph.lastDeadline.Load()); remaining <= 8*time.Second || remaining > 10*time.Second {
		t.Fatalf("deadline the server saw: %v from now, want the service config's 10s", remaining)
	}
}
