"""socialgraph.v1.ErrorReason names exactly the reasons the error map sends."""

from __future__ import annotations

from google.rpc import error_details_pb2, status_pb2

from server import errors
from server.rules import InvalidArgument, Reason
from socialgraph.v1 import error_reason_pb2
from storage import StorageUnavailable

ErrorReason = error_reason_pb2.ErrorReason


def test_error_reason_enum_and_the_error_map_agree_both_ways():
    sent = {reason.value for reason in Reason} | {errors.INTERNAL_REASON}
    declared = set(ErrorReason.keys()) - {"ERROR_REASON_UNSPECIFIED"}
    assert sent - declared == set(), "reasons the server sends that ErrorReason lacks"
    assert declared - sent == set(), "ErrorReason values the server never sends"


def test_unspecified_is_zero_and_every_reason_has_its_own_number():
    assert ErrorReason.Value("ERROR_REASON_UNSPECIFIED") == 0
    assert len(set(ErrorReason.values())) == len(ErrorReason.values())


def test_sent_reasons_are_enum_names():
    cases = [
        (InvalidArgument(Reason.INVALID_USER_ID, "user_id", "not a UUID"), error_reason_pb2.INVALID_USER_ID),
        (StorageUnavailable("down"), error_reason_pb2.STORAGE_UNAVAILABLE),
        (RuntimeError("boom"), error_reason_pb2.INTERNAL),
    ]
    for exc, expected in cases:
        assert _reason(errors.status_for(exc)) == ErrorReason.Name(expected)


def _reason(status: errors.Status) -> str:
    [blob] = [value for key, value in status.trailing_metadata if key == "grpc-status-details-bin"]
    assert isinstance(blob, bytes)
    info = error_details_pb2.ErrorInfo()
    status_pb2.Status.FromString(blob).details[0].Unpack(info)
    return info.reason
