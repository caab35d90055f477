//! acme_pebble tests.
