//! kws-db creates PostgreSQL databases for users, each owned by a role of its own that can do
//! everything inside that database and nothing outside it. The `DatabaseProvisioner` trait is
//! the contract; the PostgreSQL backend uses an admin connection to a server the platform runs.
