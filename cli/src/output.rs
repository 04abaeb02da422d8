//! What a command prints on stdout. A reader that went away (`hookflow logs
//! | head`) ends the command quietly with status 0, as `cat` and `grep` do,
//! never a panic and a backtrace.

/// `println!` on stdout; a closed stdout ends the process (status 0).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// One line on stdout.
pub fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n")) {
        closed(e)
    }
}

/// Text as it is on stdout.
pub fn text(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        closed(e)
    }
}

fn closed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0)
    }
    eprintln!("hookflow: cannot write to stdout: {e}");
    std::process::exit(1)
}
