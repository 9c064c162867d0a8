// Package socialgraph is the Go client of the socialgraph.v1 services: the
// generated stubs live in package socialgraphv1
// (github.com/socialgraph/socialgraph/clients/go/socialgraph/v1); this package
// dials them with the published service config, decodes their errors, and
// carries consistency tokens from writes into later reads (Session).
package socialgraph

import (
	_ "embed"

	"google.golang.org/grpc"

	socialgraphv1 "github.com/socialgraph/socialgraph/clients/go/socialgraph/v1"
)

// ServiceConfig is the published gRPC service config (clients/service_config.json):
// a default deadline for every call and retries of UNAVAILABLE, which the
// service returns only when nothing was written.
//
//go:embed service_config.json
var ServiceConfig string

// Client is one connection with the stubs of both services.
type Client struct {
	Graph socialgraphv1.SocialGraphServiceClient
	Admin socialgraphv1.AdminServiceClient
	conn  *grpc.ClientConn
}

// DialOptions are the options NewClient adds before the caller's: the
// published service config as the channel's default.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultServiceConfig(ServiceConfig)}
}

// NewClient connects lazily to target ("host:port" or any gRPC target). The
// caller chooses the transport credentials, e.g.
// grpc.WithTransportCredentials(insecure.NewCredentials()) on loopback.
func NewClient(target string, opts ...grpc.DialOption) (*Client, error) {
	conn, err := grpc.NewClient(target, append(DialOptions(), opts...)...)
	if err != nil {
		return nil, err
	}
	return &Client{
		Graph: socialgraphv1.NewSocialGraphServiceClient(conn),
		Admin: socialgraphv1.NewAdminServiceClient(conn),
		conn:  conn,
	}, nil
}

// Conn is the underlying connection, for other stubs (health, reflection).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
