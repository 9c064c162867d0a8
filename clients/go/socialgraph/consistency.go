package socialgraph

import (
	"sync"

	socialgraphv1 "github.com/socialgraph/socialgraph/clients/go/socialgraph/v1"
)

// AtLeastAsFresh is the read requirement that reflects the write whose
// response carried token (its consistency_token) and every write committed
// before it; minimize_latency when token is empty (the write's position could
// not be read, or there was no write).
func AtLeastAsFresh(token string) *socialgraphv1.Consistency {
	if token == "" {
		return &socialgraphv1.Consistency{Requirement: &socialgraphv1.Consistency_MinimizeLatency{MinimizeLatency: true}}
	}
	return &socialgraphv1.Consistency{Requirement: &socialgraphv1.Consistency_AtLeastAsFresh{AtLeastAsFresh: token}}
}

// WriteResponse is any write response: every one carries a consistency token.
type WriteResponse interface {
	GetConsistencyToken() string
}

// Session gives read-your-writes across calls and processes: it remembers the
// token of the last write response observed and hands out the matching
// Consistency for later reads. Observe responses in the order their writes
// completed; a response with an empty token keeps the token before it. The
// zero value is ready to use, and a Session is safe for concurrent use.
type Session struct {
	mu    sync.Mutex
	token string
}

// NewSession resumes a session from a token another process handed over.
func NewSession(token string) *Session {
	return &Session{token: token}
}

// Observe notes response's consistency token. A nil response (that of a
// failed call) changes nothing, so Observe can follow a call before its error
// is checked.
func (s *Session) Observe(response WriteResponse) {
	if token := response.GetConsistencyToken(); token != "" {
		s.mu.Lock()
		s.token = token
		s.mu.Unlock()
	}
}

// Token is the last token observed, to hand to another process.
func (s *Session) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// Consistency is AtLeastAsFresh of the last token observed (minimize_latency
// before any).
func (s *Session) Consistency() *socialgraphv1.Consistency {
	return AtLeastAsFresh(s.Token())
}
