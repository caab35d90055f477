//! Rebuilds the package when a migration of the Platform's store is added or changed:
//! `sqlx::migrate!` embeds `migrations/platform` at compile time, and cargo does not watch it
//! by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations/platform");
}
