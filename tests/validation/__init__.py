"""Malformed requests, for every RPC of SocialGraphService and AdminService,
on every backend.

Each case really sends the request and checks the gRPC code, the ErrorInfo
reason and (where the SPEC promises it) ErrorInfo.metadata["field"]. Every
refused *write* is wrapped in a snapshot of the involved users (GetStats
totals, their counters, the relationships between them and their user
records) taken before the call and compared afterwards: a request that fails
changes nothing. Write cases seed some state first (a follow, a pending
request, a connection, a block, a report...) so that a wrongly executed call
would visibly change it.
"""
