-- kws-ipam: a lease lookup by address and one by owner each have exactly one index that can
-- serve them.
--
-- Both unique indexes on leases used to lead with pool. A pool the statistics do not know yet
-- (any pool right after it is created) prices every index on pool at one row, and on such a
-- tie PostgreSQL takes the first index: a lookup by owner (a claim's first step, the held-owner
-- checks, lookup_owner) then read the pool's leases through (pool, address), filtering by
-- owner, O(leases). Leading with the address and with the owner leaves one index for each
-- lookup, whatever the statistics. Nothing on the hot path looks leases up by pool alone.
ALTER TABLE kws_ipam.leases
    DROP CONSTRAINT leases_address,
    DROP CONSTRAINT leases_owner,
    ADD CONSTRAINT leases_address UNIQUE (address, pool),
    ADD CONSTRAINT leases_owner UNIQUE (owner, pool);
