-- kws-ipam: an allocation answered `busy` pauses and asks again instead of queueing for the
-- held entry's address lock and row (kws_ipam.wait_for_address). A request queued or granted
-- on either made every other allocation pass the entry over (pg_try_advisory_xact_lock yields
-- to queued requests, SKIP LOCKED to any row lock), so near exhaustion the waiters for the
-- oldest ready entry kept it from being taken while newer ones were handed out.
DROP FUNCTION kws_ipam.wait_for_address(text, inet);
