//! The spec and status of each kind of tenant object (see [`Resource`](super::store::Resource)).

mod app;
mod database;
mod device;
mod instance;
mod job;

pub use app::{AppSpec, AppStatus, CertificateState};
pub use database::{DatabaseSpec, DatabaseStatus};
pub use device::{DeviceSpec, DeviceStatus};
pub use instance::{Desired, InstanceResources, InstanceSpec, InstanceStatus, RunState};
pub use job::{JobSpec, JobStatus};
