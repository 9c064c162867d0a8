package socialgraph_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/socialgraph/socialgraph/clients/go/socialgraph"
	pb "github.com/socialgraph/socialgraph/clients/go/socialgraph/v1"
)

func TestSessionCarriesAWritesTokenIntoTheNextReads(t *testing.T) {
	c, ctx := newClient(t), context.Background()
	alice, bob := newUser(), newUser()
	var session socialgraph.Session
	if got := session.Consistency(); !got.GetMinimizeLatency() {
		t.Fatalf("Consistency before any write = %v, want minimize_latency", got)
	}
	followed, err := c.Graph.Follow(ctx, &pb.FollowRequest{FollowerId: alice, FolloweeId: bob})
	session.Observe(followed)
	if err != nil {
		t.Fatal(socialgraph.DecodeError(err))
	}
	if followed.GetConsistencyToken() == "" || session.Token() != followed.GetConsistencyToken() {
		t.Fatalf("token %q after Follow answered %q", session.Token(), followed.GetConsistencyToken())
	}
	if got := session.Consistency(); got.GetAtLeastAsFresh() != followed.GetConsistencyToken() {
		t.Fatalf("Consistency after Follow = %v", got)
	}

	reply, err := c.Graph.GetRelationship(ctx, &pb.GetRelationshipRequest{UserId: alice, OtherUserId: bob, Consistency: session.Consistency()})
	if err != nil || !reply.GetRelationship().GetFollowing() {
		t.Fatalf("GetRelationship = %v, %v", reply, socialgraph.DecodeError(err))
	}
	counts, err := c.Graph.GetCounts(ctx, &pb.GetCountsRequest{UserIds: []string{alice, bob}, Consistency: session.Consistency()})
	if err != nil {
		t.Fatal(socialgraph.DecodeError(err))
	}
	if got := counts.GetCounts(); len(got) != 2 || got[0].GetFollowing() != 1 || got[1].GetFollowers() != 1 {
		t.Fatalf("GetCounts = %v", got)
	}

	var failed *pb.FollowResponse
	session.Observe(failed)
	session.Observe(&pb.FollowResponse{})
	if session.Token() != followed.GetConsistencyToken() {
		t.Fatalf("an empty token replaced %q with %q", followed.GetConsistencyToken(), session.Token())
	}
}

func TestAtLeastAsFreshOfAnEmptyTokenMinimizesLatency(t *testing.T) {
	if got := socialgraph.AtLeastAsFresh(""); !got.GetMinimizeLatency() {
		t.Fatalf("AtLeastAsFresh(\"\") = %v", got)
	}
	if got := socialgraph.AtLeastAsFresh("t"); got.GetAtLeastAsFresh() != "t" {
		t.Fatalf("AtLeastAsFresh(\"t\") = %v", got)
	}
	if got := socialgraph.NewSession("t").Consistency(); !proto.Equal(got, socialgraph.AtLeastAsFresh("t")) {
		t.Fatalf("NewSession(\"t\").Consistency() = %v", got)
	}
}

func TestMalformedTokenDecodesIntoItsReason(t *testing.T) {
	c := newClient(t)
	_, err := c.Graph.GetCounts(context.Background(), &pb.GetCountsRequest{UserIds: []string{newUser()}, Consistency: socialgraph.AtLeastAsFresh("not-a-token")})
	decoded := socialgraph.DecodeError(err)
	if decoded == nil || decoded.Code != codes.InvalidArgument || decoded.Reason != pb.ErrorReason_INVALID_CONSISTENCY_TOKEN {
		t.Fatalf("GetCounts with a malformed token: %#v", decoded)
	}
}
