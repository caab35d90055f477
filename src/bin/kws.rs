//! `kws`: the command-line client of the kws API (see [`kws::cli`]).

fn main() -> std::process::ExitCode {
    kws::cli::main()
}
