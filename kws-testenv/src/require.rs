//! The rule for missing services, and the per-run identity of test resources.

use std::sync::OnceLock;

use rand::Rng;

/// True when `KWS_TEST_REQUIRE=1`: a missing service is then a failure, not a skip.
pub fn required() -> bool {
    std::env::var("KWS_TEST_REQUIRE").is_ok_and(|v| v == "1")
}

/// Reports that `service` cannot be used because of `why`.
///
/// # Panics
/// Under `KWS_TEST_REQUIRE=1`, with a message that names the service; otherwise it prints a
/// loud `SKIPPED` line to stderr and returns `None`, so tests can write
/// `let Some(x) = ... else { return };`.
pub fn unavailable<T>(service: &str, why: impl std::fmt::Display) -> Option<T> {
    if required() {
        panic!("KWS_TEST_REQUIRE=1 and the required service {service} is unavailable: {why}");
    }
    eprintln!(
        "\n*** SKIPPED: {service} is unavailable ({why}); run scripts/test, or set KWS_TEST_REQUIRE=1 to make this a failure ***\n"
    );
    None
}

/// The id of this test run: `KWS_TEST_RUN_ID` when set (scripts/test sets it), else a random id
/// made once per process. Test resources carry it so leftovers of a run can be found.
pub fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| std::env::var("KWS_TEST_RUN_ID").unwrap_or_else(|_| random_suffix(8)))
}

/// `len` random lowercase hex digits, for names of test resources.
pub fn random_suffix(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}
