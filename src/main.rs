use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    cmpaint::engine::kernels::memory::retain_freed_memory();
    let cli = cmpaint::cli::Cli::parse();
    if !matches!(cli.command, None | Some(cmpaint::cli::Command::App(_))) {
        end_quietly_on_a_closed_pipe();
    }
    match cmpaint::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes joined by ": ".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command whose reader goes away (`cmpaint info model.pt | head -3`) ends there, as Unix tools do;
/// Rust ignores SIGPIPE, so `println!` would panic on the closed pipe instead. Not for the window,
/// whose sockets must not end it.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
