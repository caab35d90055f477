//! `kwsd`: the kws daemon. See `kws::daemon`.

fn main() -> std::process::ExitCode {
    kws::daemon::main()
}
