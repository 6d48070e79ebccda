//! The `alongside` binary: everything lives in the library; see `alongside::cli`.

fn main() -> std::process::ExitCode {
    alongside::cli::main()
}
