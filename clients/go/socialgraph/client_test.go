package socialgraph_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/socialgraph/socialgraph/clients/go/socialgraph"
	pb "github.com/socialgraph/socialgraph/clients/go/socialgraph/v1"
)

func newUser() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func relationship(t *testing.T, c *socialgraph.Client, user, other string) *pb.Relationship {
	t.Helper()
	reply, err := c.Graph.GetRelationship(context.Background(), &pb.GetRelationshipRequest{UserId: user, OtherUserId: other})
	if err != nil {
		t.Fatalf("GetRelationship: %v", socialgraph.DecodeError(err))
	}
	return reply.GetRelationship()
}

func TestFollowAndUnfollow(t *testing.T) {
	c, ctx := newClient(t), context.Background()
	alice, bob := newUser(), newUser()
	for i, wantCreated := range []bool{true, false} {
		reply, err := c.Graph.Follow(ctx, &pb.FollowRequest{FollowerId: alice, FolloweeId: bob})
		if err != nil {
			t.Fatalf("Follow #%d: %v", i+1, err)
		}
		if reply.GetCreated() != wantCreated || reply.GetSince() == nil {
			t.Fatalf("Follow #%d = %v, want created=%v with a time", i+1, reply, wantCreated)
		}
	}
	if rel := relationship(t, c, alice, bob); !rel.GetFollowing() || rel.GetFollowedBy() {
		t.Fatalf("after Follow: %v", rel)
	}
	unfollowed, err := c.Graph.Unfollow(ctx, &pb.UnfollowRequest{FollowerId: alice, FolloweeId: bob})
	if err != nil || !unfollowed.GetRemoved() {
		t.Fatalf("Unfollow = %v, %v", unfollowed, err)
	}
	if rel := relationship(t, c, alice, bob); rel.GetFollowing() {
		t.Fatalf("after Unfollow: %v", rel)
	}
}

func TestConnectAndAccept(t *testing.T) {
	c, ctx := newClient(t), context.Background()
	alice, bob := newUser(), newUser()
	sent, err := c.Graph.SendConnectionRequest(ctx, &pb.SendConnectionRequestRequest{RequesterId: bob, RecipientId: alice, Message: "hi"})
	if err != nil {
		t.Fatal(socialgraph.DecodeError(err))
	}
	if sent.GetState() != pb.ConnectionState_CONNECTION_STATE_PENDING || !sent.GetCreated() || sent.GetRequest().GetMessage() != "hi" {
		t.Fatalf("SendConnectionRequest = %v", sent)
	}
	if rel := relationship(t, c, alice, bob); !rel.GetIncomingRequestPending() || rel.GetConnected() {
		t.Fatalf("while pending: %v", rel)
	}
	accepted, err := c.Graph.AcceptConnectionRequest(ctx, &pb.AcceptConnectionRequestRequest{RecipientId: alice, RequesterId: bob})
	if err != nil || accepted.GetConnectedAt() == nil {
		t.Fatalf("AcceptConnectionRequest = %v, %v", accepted, err)
	}
	if rel := relationship(t, c, alice, bob); !rel.GetConnected() || rel.GetIncomingRequestPending() {
		t.Fatalf("after accept: %v", rel)
	}
	connections, err := c.Graph.ListConnections(ctx, &pb.ListConnectionsRequest{UserId: alice})
	if err != nil || len(connections.GetUsers()) != 1 || connections.GetUsers()[0].GetUserId() != bob {
		t.Fatalf("ListConnections = %v, %v", connections, err)
	}
}

func TestBlockRefusesFollowWithItsReason(t *testing.T) {
	c, ctx := newClient(t), context.Background()
	alice, bob := newUser(), newUser()
	if _, err := c.Graph.Follow(ctx, &pb.FollowRequest{FollowerId: bob, FolloweeId: alice}); err != nil {
		t.Fatal(err)
	}
	blocked, err := c.Graph.Block(ctx, &pb.BlockRequest{BlockerId: alice, BlockedId: bob, Reason: "spam"})
	if err != nil || !blocked.GetCreated() || blocked.GetRemovedFollows() != 1 {
		t.Fatalf("Block = %v, %v", blocked, err)
	}
	_, err = c.Graph.Follow(ctx, &pb.FollowRequest{FollowerId: bob, FolloweeId: alice})
	decoded := socialgraph.DecodeError(err)
	if decoded == nil || decoded.Code != codes.PermissionDenied || decoded.Reason != pb.ErrorReason_BLOCKED || decoded.ReasonName != "BLOCKED" || decoded.Domain != socialgraph.Domain {
		t.Fatalf("Follow of a blocker: %#v", decoded)
	}
	if status.Code(decoded) != codes.PermissionDenied {
		t.Fatalf("status.Code of the decoded error = %v", status.Code(decoded))
	}
	interact, err := c.Graph.CanInteract(ctx, &pb.CanInteractRequest{UserId: bob, OtherUserId: alice})
	if err != nil || interact.GetCanInteract() {
		t.Fatalf("CanInteract = %v, %v", interact, err)
	}
}

func TestInvalidArgumentDecodesReasonAndField(t *testing.T) {
	c := newClient(t)
	_, err := c.Graph.Follow(context.Background(), &pb.FollowRequest{FollowerId: newUser(), FolloweeId: "not-a-uuid"})
	decoded := socialgraph.DecodeError(err)
	if decoded == nil || decoded.Code != codes.InvalidArgument || decoded.Reason != pb.ErrorReason_INVALID_USER_ID {
		t.Fatalf("Follow of a malformed id: %#v", decoded)
	}
	if decoded.Metadata["field"] != "followee_id" {
		t.Fatalf("metadata = %v, want field=followee_id", decoded.Metadata)
	}
}

func TestPagingToTheEnd(t *testing.T) {
	c, ctx := newClient(t), context.Background()
	star := newUser()
	var want []string
	for range 7 {
		follower := newUser()
		want = append(want, follower)
		if _, err := c.Graph.Follow(ctx, &pb.FollowRequest{FollowerId: follower, FolloweeId: star}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var pageSizes []int
	token := ""
	for {
		page, err := c.Graph.ListFollowers(ctx, &pb.ListFollowersRequest{UserId: star, PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(socialgraph.DecodeError(err))
		}
		pageSizes = append(pageSizes, len(page.GetUsers()))
		for _, user := range page.GetUsers() {
			got = append(got, user.GetUserId())
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if fmt.Sprint(pageSizes) != "[3 3 1]" {
		t.Fatalf("page sizes = %v, want [3 3 1]", pageSizes)
	}
	sort.Strings(got)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("followers = %v, want %v", got, want)
	}
}

func TestRateLimitRefusalCarriesRetryAfter(t *testing.T) {
	c, ctx := newClient(t), context.Background()
	requester := newUser()
	for i := range 3 {
		if _, err := c.Graph.SendConnectionRequest(ctx, &pb.SendConnectionRequestRequest{RequesterId: requester, RecipientId: newUser()}); err != nil {
			t.Fatalf("request %d: %v", i+1, socialgraph.DecodeError(err))
		}
	}
	var trailer metadata.MD
	_, err := c.Graph.SendConnectionRequest(ctx, &pb.SendConnectionRequestRequest{RequesterId: requester, RecipientId: newUser()}, grpc.Trailer(&trailer))
	decoded := socialgraph.DecodeError(err, trailer)
	if decoded == nil || decoded.Code != codes.ResourceExhausted || decoded.Reason != pb.ErrorReason_RATE_LIMITED {
		t.Fatalf("fourth request: %#v", decoded)
	}
	if decoded.RetryAfter <= 59*time.Minute || decoded.RetryAfter > time.Hour {
		t.Fatalf("RetryAfter = %v, want just under an hour", decoded.RetryAfter)
	}
	if decoded.Metadata["window"] != "3/1h" || decoded.Metadata["user_id"] != requester {
		t.Fatalf("metadata = %v", decoded.Metadata)
	}
	if len(trailer.Get("retry-after")) != 1 {
		t.Fatalf("trailer = %v, want retry-after", trailer)
	}
}

func TestRetryAfterFallsBackToTheTrailer(t *testing.T) {
	err := status.Error(codes.ResourceExhausted, "slow down")
	decoded := socialgraph.DecodeError(err, metadata.Pairs("retry-after", "17"))
	if decoded.RetryAfter != 17*time.Second || decoded.Reason != pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		t.Fatalf("decoded = %#v", decoded)
	}
	if socialgraph.DecodeError(nil) != nil {
		t.Fatal("DecodeError(nil) != nil")
	}
}

func TestDeadlineExceeded(t *testing.T) {
	c := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	_, err := c.Graph.GetCounts(ctx, &pb.GetCountsRequest{UserIds: []string{newUser()}})
	decoded := socialgraph.DecodeError(err)
	if decoded == nil || decoded.Code != codes.DeadlineExceeded || decoded.Reason != pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		t.Fatalf("call past its deadline: %#v", decoded)
	}
}
