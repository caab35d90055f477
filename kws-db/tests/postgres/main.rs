//! The PostgreSQL backend against a real server (`KWS_TEST_POSTGRES_URL`): the conformance
//! suite, directly and through `Box<dyn DatabaseProvisioner>` (`conformance`), the state the
//! server ends up in (`server_state`), and the atomicity and durability of the provisioner's
//! operations (`atomicity`).

mod atomicity;
mod conformance;
mod server_state;
mod support;
