-- kws-ipam: the batch function's deletes by ctid stay TID scans whatever the statistics.
--
-- A run takes its entries with `DELETE ... WHERE ctid = ANY (ARRAY(SELECT ctid ... FOR UPDATE
-- SKIP LOCKED))`. The planner prices a TID scan of an array it cannot see at 10 random page
-- reads, which is more than it prices reading the whole of a small table: on a free_queue of
-- up to about 1,500 rows (one chunk of fresh addresses is 1,024) it read every row instead,
-- O(queue) per run: 700 rows for each run of a load test, 80-650 µs, even when the inner
-- query found nothing.
-- With sequential scans off inside the function, every statement of it runs on an index or
-- by TID, as each was written to. JIT is off too: a plan priced with the disable cost would
-- otherwise cross jit_above_cost and be compiled, at milliseconds a statement. A later
-- CREATE OR REPLACE of the function must carry both settings again: it resets them, and
-- tests/postgres.rs a_run_takes_its_entries_by_tid_whatever_the_statistics then fails.
ALTER FUNCTION kws_ipam.batch(text[], text[], inet[], text[], bigint[])
    SET enable_seqscan = off
    SET jit = off;
