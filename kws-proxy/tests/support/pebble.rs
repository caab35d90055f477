//! pebble.
