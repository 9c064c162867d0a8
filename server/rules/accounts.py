"""Users and reports (R1-R4), and the batches of big-account jobs: a
deleted user's edges, the blocks against a promoted user."""

from __future__ import annotations

import logging

from storage.deletion import JobKind
from storage.types import Cascade, Cause, Cursor, EventKind, Removed, Report, ReportReason, ReportStatus, Tx, User

from .core import GraphCore, _distinct, _emit, _lock_present, new_id
from .errors import NotFound, PermissionDenied, Reason
from .policy import MINIMIZE_LATENCY, Consistency, Page

log = logging.getLogger("server.rules.graph")  # the rules layer's log


class AccountRules(GraphCore):
    # ------------------------------------------------------- users, reports

    def upsert_user(self, user: User) -> User:
        """R3; B3: a moderator or admin is blocked by nobody. The first batch
        of blocks against a promoted user is lifted with the role; when more
        are left, a job lifts them (see ``Jobs``)."""
        size = self.jobs.batch_size()

        def run(tx: Tx) -> tuple[User, bool]:
            _lock_present(tx, (user.user_id,))
            before = tx.get_user(user.user_id)
            now = self._now()
            stored = tx.upsert_user(user, now)
            more = stored.role.is_staff and self._lift_blocks(tx, stored.user_id, size, now)
            if more:
                tx.add_job(stored.user_id, JobKind.LIFT_BLOCKS, now)
            if before is None or (before.role, before.display_name, before.avatar_url) != (
                stored.role, stored.display_name, stored.avatar_url
            ):
                _emit(
                    tx, EventKind.USER_UPSERTED, stored.user_id, stored.user_id, now,
                    user={
                        "role": int(stored.role),
                        "previous_role": int(before.role) if before else 0,
                        "display_name": stored.display_name,
                        "avatar_url": stored.avatar_url,
                    },
                )
            return stored, more

        stored, more = self.storage.read_write(run)
        if more:
            self._run_job(user.user_id, JobKind.LIFT_BLOCKS)
        return stored

    def get_user(self, user_id: str, consistency: Consistency = MINIMIZE_LATENCY) -> User:
        self._token_position(consistency)
        user = self.storage.read_only(lambda tx: tx.get_user(user_id))
        if user is None:
            raise NotFound(Reason.USER_NOT_FOUND, f"user {user_id} is not registered")
        return user

    def delete_user(self, user_id: str) -> Removed:
        """R4: one short transaction tombstones the user (record gone, own
        counters zero, absent for every read and write from its commit on)
        and adds the job that removes their edges in batches, one event per
        edge, then USER_DELETED (``_delete_batch``). Returns what the job
        removes; a deletion already in progress returns zeros."""

        def start(tx: Tx) -> tuple[Removed, bool] | None:
            tx.lock_users((user_id,))
            return tx.start_deletion(user_id, self._now())

        started = self.storage.read_write(start)
        if started is None:
            return Removed()
        removed, job = started
        if job:
            self._run_job(user_id, JobKind.DELETE)
        return removed

    def _run_job(self, user_id: str, kind: JobKind) -> None:
        """Runs the job for the request's budget; its commit stands either
        way, and whatever is left the runner finishes."""
        try:
            self.jobs.run(user_id, kind, self.policy.inline_seconds)
        except Exception:
            if self.policy.inline_seconds is None:
                raise
            log.exception("big-account job of %s left to the background runner", user_id)

    def _delete_batch(self, tx: Tx, user_id: str, size: int) -> bool:
        """One batch of a deletion; the last one (it found fewer edges than
        ``size``) also drops the counters and the tombstone and appends
        USER_DELETED."""
        cascade = tx.delete_edges(user_id, size)
        self._cascade(tx, cascade)
        if cascade.more:
            return False
        tx.finish_deletion(user_id)
        _emit(tx, EventKind.USER_DELETED, user_id, user_id, self._now())
        return True

    def _lift_batch(self, tx: Tx, user_id: str, size: int) -> bool:
        """One batch of lifting the blocks against a promoted user. It stops
        when the user is no longer staff (blocks made after a demotion
        stand) or is being deleted (the deletion removes them)."""
        if not tx.role_of(user_id).is_staff or tx.deleting((user_id,)):
            tx.finish_job(user_id, JobKind.LIFT_BLOCKS)
            return True
        if self._lift_blocks(tx, user_id, size, self._now()):
            return False
        tx.finish_job(user_id, JobKind.LIFT_BLOCKS)
        return True

    def report_user(self, reporter_id: str, reported_id: str, reason: ReportReason, details: str) -> Report:
        """R1."""
        _distinct("reported_id", reporter_id, reported_id)
        report = Report(
            new_id(), reporter_id, reported_id, reason, details, ReportStatus.OPEN, "", "", self._now(), None
        )

        def run(tx: Tx) -> None:
            tx.insert_report(report)
            _emit(
                tx, EventKind.REPORT_FILED, reporter_id, reported_id, report.created_us,
                report={
                    "report_id": report.report_id,
                    "reason": int(reason),
                    "details": details,
                    "status": int(ReportStatus.OPEN),
                },
            )

        self.storage.read_write(run)
        return report

    def list_reports(
        self,
        moderator_id: str,
        status: ReportStatus,
        size: int,
        token: str,
        consistency: Consistency = MINIMIZE_LATENCY,
    ) -> Page[Report]:
        """R2."""
        scope = str(int(status))
        after = self.page_tokens.decode(token, "reports", scope)
        self._token_position(consistency)

        def run(tx: Tx) -> list[Report]:
            _require_staff(tx, moderator_id)
            return tx.list_reports(status, after, size + 1)

        rows = self.storage.read_only(run)
        return self._page("reports", scope, rows, size, lambda r: Cursor(r.created_us, r.report_id))

    def resolve_report(self, report_id: str, moderator_id: str, status: ReportStatus, note: str) -> Report:
        """R2: repeating the same resolution changes nothing."""

        def run(tx: Tx) -> Report:
            _require_staff(tx, moderator_id)
            report = tx.get_report(report_id)
            if report is None:
                raise NotFound(Reason.REPORT_NOT_FOUND, f"report {report_id} does not exist")
            if report.status == status:
                return report
            now = self._now()
            resolved = Report(
                report.report_id,
                report.reporter_id,
                report.reported_id,
                report.reason,
                report.details,
                status,
                moderator_id,
                note,
                report.created_us,
                now,
            )
            tx.update_report(resolved)
            _emit(
                tx, EventKind.REPORT_RESOLVED, moderator_id, report.reported_id, now,
                report={
                    "report_id": report.report_id,
                    "reason": int(report.reason),
                    "status": int(status),
                    "note": note,
                },
            )
            return resolved

        return self.storage.read_write(run)

    def _cascade(self, tx: Tx, cascade: Cascade) -> Removed:
        """One event for each edge a user deletion removed."""
        now = self._now()
        gone = Cause.USER_DELETED
        for follower, followee in cascade.follows:
            _emit(tx, EventKind.UNFOLLOWED, follower, followee, now, gone)
        for user, other in cascade.connections:
            _emit(tx, EventKind.CONNECTION_REMOVED, user, other, now, gone)
        for request_id, requester, recipient in cascade.requests:
            _emit(
                tx, EventKind.CONNECTION_REQUEST_CANCELLED, requester, recipient, now, gone,
                request={"request_id": request_id},
            )
        for blocker, blocked in cascade.blocks:
            _emit(tx, EventKind.UNBLOCKED, blocker, blocked, now, gone)
        return cascade.removed

    def _lift_blocks(self, tx: Tx, user_id: str, size: int, now: int) -> bool:
        """Lifts up to ``size`` blocks against a staff user, one UNBLOCKED
        event each; returns whether more may be left."""
        blockers, more = tx.lift_blocks(user_id, size)
        for blocker_id in blockers:
            _emit(tx, EventKind.UNBLOCKED, blocker_id, user_id, now, Cause.PROMOTION)
        return more


def _require_staff(tx: Tx, user_id: str) -> None:
    if not tx.role_of(user_id).is_staff:
        raise PermissionDenied(Reason.NOT_A_MODERATOR, f"user {user_id} is not a moderator or admin")
