-- store::leases: one lease row per group. A replica ticking a group locks the group's row
-- (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL) in the transaction that solves and stores
-- the group's schedule, so replicas sharing one database never solve a group twice and a
-- replica that dies mid-tick releases the lock with its aborted transaction. holder/timestep
-- record the replica that last committed the group and for which timestep (observability).
CREATE TABLE group_leases (
    group_id BIGINT PRIMARY KEY,
    holder TEXT NOT NULL DEFAULT '',
    timestep BIGINT NOT NULL DEFAULT -1,
    updated_at BIGINT NOT NULL DEFAULT 0
);
