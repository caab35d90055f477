//! cloudflare tests.
