//! `Port`: a transport port that is never 0 and never above 65535.

use std::{fmt, num::NonZeroU16};

use crate::StateError;

/// A TCP or UDP port in `1..=65535`.
///
/// # Contract
/// Built only by [`Port::new`] (or deserialized through it), so port 0 or a value above 65535
/// can never reach a rendered rule. Serialized as a plain number.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u32", into = "u32")]
pub struct Port(NonZeroU16);

impl Port {
    /// Checks `value` against `1..=65535`; [`StateError::PortOutOfRange`] names it otherwise.
    pub fn new(value: u32) -> Result<Self, StateError> {
        u16::try_from(value)
            .ok()
            .and_then(NonZeroU16::new)
            .map(Self)
            .ok_or(StateError::PortOutOfRange { value })
    }

    /// The port number.
    pub fn get(self) -> u16 {
        self.0.get()
    }
}

impl TryFrom<u32> for Port {
    type Error = StateError;

    fn try_from(value: u32) -> Result<Self, StateError> {
        Self::new(value)
    }
}

impl From<Port> for u32 {
    fn from(port: Port) -> u32 {
        u32::from(port.get())
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
