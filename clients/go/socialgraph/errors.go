package socialgraph

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	socialgraphv1 "github.com/socialgraph/socialgraph/clients/go/socialgraph/v1"
)

// Domain is the ErrorInfo domain of every error the service raises.
const Domain = "socialgraph.v1"

// Error is a failed call, decoded.
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Message is the status message, for people.
	Message string
	// Reason is the ErrorInfo reason as an ErrorReason constant
	// (socialgraphv1.ErrorReason_BLOCKED...); ERROR_REASON_UNSPECIFIED when the
	// error did not come from the service (a deadline, a connection that could
	// not be made) or names a reason this client does not know yet.
	Reason socialgraphv1.ErrorReason
	// ReasonName is the ErrorInfo reason string as sent; empty without one.
	ReasonName string
	// Domain is the ErrorInfo domain: Domain for the service's own errors.
	Domain string
	// Metadata is the ErrorInfo metadata: "field" for INVALID_ARGUMENT,
	// "user_id" and "window" or "limit" for RESOURCE_EXHAUSTED.
	Metadata map[string]string
	// RetryAfter is how long to wait before trying again, from RetryInfo or,
	// failing that, the retry-after trailer; zero when the service named none.
	RetryAfter time.Duration

	status *status.Status
}

// DecodeError decodes the error of a call. It returns nil for a nil error.
// Pass the call's trailer (grpc.Trailer) to read retry-after from it when the
// status carries no RetryInfo.
func DecodeError(err error, trailer ...metadata.MD) *Error {
	if err == nil {
		return nil
	}
	var decoded *Error
	if errors.As(err, &decoded) {
		return decoded
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	decoded = &Error{Code: st.Code(), Message: st.Message(), Metadata: map[string]string{}, status: st}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			if decoded.ReasonName == "" {
				decoded.ReasonName, decoded.Domain = d.GetReason(), d.GetDomain()
				decoded.Reason = socialgraphv1.ErrorReason(socialgraphv1.ErrorReason_value[d.GetReason()])
				for k, v := range d.GetMetadata() {
					decoded.Metadata[k] = v
				}
			}
		case *errdetails.RetryInfo:
			decoded.RetryAfter = d.GetRetryDelay().AsDuration()
		}
	}
	if decoded.RetryAfter == 0 {
		for _, md := range trailer {
			if values := md.Get("retry-after"); len(values) > 0 {
				if seconds, err := strconv.Atoi(values[0]); err == nil && seconds > 0 {
					decoded.RetryAfter = time.Duration(seconds) * time.Second
				}
			}
		}
	}
	return decoded
}

func (e *Error) Error() string {
	if e.ReasonName == "" {
		return fmt.Sprintf("socialgraph: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("socialgraph: %s/%s: %s", e.Code, e.ReasonName, e.Message)
}

// GRPCStatus lets status.FromError and status.Code read the original status.
func (e *Error) GRPCStatus() *status.Status { return e.status }
