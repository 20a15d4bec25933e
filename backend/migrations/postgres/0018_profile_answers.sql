-- store::schedules: a set-point the CPO answered TOO_OFTEN (or UNKNOWN_SESSION) waits until
-- `not_before` (Unix s) before it is sent again, backing off with the number of such answers
-- in `deferrals`. A newer set-point of the same session inherits both, so a new plan does not
-- reset the back-off the CPO asked for.
ALTER TABLE setpoints ADD COLUMN not_before BIGINT NOT NULL DEFAULT 0;
ALTER TABLE setpoints ADD COLUMN deferrals BIGINT NOT NULL DEFAULT 0;
-- When the CPO last answered it (Unix s): the cockpit's "sent at", and the start of the wait for
-- its asynchronous result.
ALTER TABLE setpoints ADD COLUMN sent_at BIGINT;
-- When evflex asked the CPO for the profile in force (GET ActiveChargingProfile), because the
-- result of this set-point was overdue; asked once per set-point.
ALTER TABLE setpoints ADD COLUMN active_queried_at BIGINT;

-- store::active_profiles: the charging profile in force at a session's charge point, as the
-- CPO last reported it (its PUT of an ActiveChargingProfile, or the result of evflex's GET).
-- `limit_milli` is the limit in force when it arrived, in thousandths of `rate_unit` (W or A).
CREATE TABLE active_profiles (
    session_row BIGINT PRIMARY KEY,
    owner_party BIGINT NOT NULL,
    body TEXT NOT NULL,
    limit_milli BIGINT,
    rate_unit TEXT,
    source TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
