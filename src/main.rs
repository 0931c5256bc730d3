use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    cmpaint::engine::kernels::memory::retain_freed_memory();
    let cli = cmpaint::cli::Cli::parse();
    match cmpaint::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes joined by ": ".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
