//! The steps of `create` (named by fault injection in tests) and how a `create` is stopped.

use crate::Error;

/// The steps of `create`, in order (see [`crate::postgres`]); fault injection in tests
/// names the step after which `create` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateStep {
    /// The catalogue row exists, in state `creating`.
    Reserved,
    /// The role exists.
    RoleCreated,
    /// The database exists.
    DatabaseCreated,
    /// `CONNECT` and `TEMPORARY` are revoked from `PUBLIC`, and the database is open.
    DatabaseRestricted,
    /// `CREATE` on schema `public` is revoked from `PUBLIC`.
    SchemaRestricted,
}

impl CreateStep {
    /// Every step, in order.
    pub const ALL: [CreateStep; 5] = [
        CreateStep::Reserved,
        CreateStep::RoleCreated,
        CreateStep::DatabaseCreated,
        CreateStep::DatabaseRestricted,
        CreateStep::SchemaRestricted,
    ];
}

/// What an injected fault does (tests of atomicity and recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The step fails; `create` undoes what it made, as after any failure.
    Fail,
    /// The process dies: the lock's session ends, nothing is undone.
    Crash,
    /// The server ends the admin session: the step fails and so does undoing it (the error is
    /// `CleanupPending`).
    Disconnect,
}

/// How a `create` was stopped: a failure is undone; a crash (a simulated process death) is
/// left for the next operation to clean up.
pub(super) enum Abort {
    Fail(Error),
    Crash(Error),
}

impl From<Error> for Abort {
    fn from(e: Error) -> Self {
        Abort::Fail(e)
    }
}
